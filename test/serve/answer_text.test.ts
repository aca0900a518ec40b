// How generated tokens become the answer: stop strings cut the text and never reach a stream, unfinished
// UTF-8 waits for its last byte, and tool calls are read back in each template family's form.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IncrementalText } from "../../serving/incremental_text.js";
import { parseToolCalls } from "../../text/tool_call_answers.js";

/** Token ids are bytes here, decoded as UTF-8 the way the byte tokenizer does. */
const decode = (ids: readonly number[]) => Buffer.from(ids).toString("utf8");
const bytes = (s: string) => [...Buffer.from(s, "utf8")];

function stream(text: string, stops: string[]): { pieces: string[]; stopped: boolean; full: string } {
  const t = new IncrementalText(decode, stops);
  const pieces: string[] = [];
  let stopped = false;
  for (const b of bytes(text)) {
    stopped = t.push(b);
    const p = t.takeFinal();
    if (p) pieces.push(p);
    if (stopped) break;
  }
  const rest = t.takeRest();
  if (rest) pieces.push(rest);
  return { pieces, stopped, full: t.text };
}

test("a stop string ends the text before it, and no streamed piece ever holds part of it", () => {
  const r = stream("The answer: 42\nEND more", ["\nEND"]);
  assert.equal(r.stopped, true);
  assert.equal(r.full, "The answer: 42");
  assert.equal(r.pieces.join(""), "The answer: 42");
  assert.ok(r.pieces.every((p) => !p.includes("\n")));
});

test("text that only looked like the start of a stop string is handed out once it is not", () => {
  const r = stream("a\nEb\nEND", ["\nEND"]);
  assert.equal(r.full, "a\nEb");
  assert.equal(r.pieces.join(""), "a\nEb");
});

test("a multi-byte character is handed out whole, never as a replacement character", () => {
  const r = stream("héllo wörld ✓", []);
  assert.equal(r.stopped, false);
  assert.equal(r.pieces.join(""), "héllo wörld ✓");
  assert.ok(r.pieces.every((p) => !p.includes("\uFFFD")));
});

test("Qwen-style tagged calls become tool_calls; text around them stays content", () => {
  const text =
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
  const a = parseToolCalls(text, "chatml", "x");
  assert.equal(a.content, "Let me check.");
  assert.deepEqual(
    a.toolCalls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)]),
    [
      ["call_x_0", "get_weather", { city: "Oslo" }],
      ["call_x_1", "get_time", {}],
    ],
  );
});

test("a tagged block that is not a valid call stays in the content", () => {
  const text = "<tool_call>\nnot json\n</tool_call>";
  assert.deepEqual(parseToolCalls(text, "qwen3", "x"), { content: text, toolCalls: [] });
});

test("Llama 3's whole-answer call object becomes a tool call with its parameters as arguments", () => {
  const a = parseToolCalls('{"name": "search", "parameters": {"q": "nats"}}', "llama3", "y");
  assert.equal(a.content, null);
  assert.equal(a.toolCalls[0]!.function.name, "search");
  assert.deepEqual(JSON.parse(a.toolCalls[0]!.function.arguments), { q: "nats" });
  assert.deepEqual(parseToolCalls("plain answer", "llama3", "y"), { content: "plain answer", toolCalls: [] });
});
