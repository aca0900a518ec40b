// Label masks per template and option, e.g. `[BOS][INST]U[/INST]A[EOS]` -> `-100 -100 -100 A [EOS]`, per template and option.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ByteTokenizer } from "../../text/tokenizers/byte_tokenizer.js";
import { HfTokenizer, readTokenizerConfig } from "../../text/tokenizers/hf_tokenizer.js";
import { shiftLabels } from "../../data/examples/example.js";
import { maskChat, maskText, type LabelOptions } from "../../data/examples/mask.js";
import { builtinTemplate } from "../../text/templates/builtin_templates.js";
import { JinjaTemplate, chatTemplateSource } from "../../text/templates/jinja_template.js";
import type { ChatTemplate } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";
import type { Message } from "../../text/records/records.js";
import { setupText } from "../../spec/text_setup.js";
import { fixtures, targetRuns } from "../helpers/data_fixtures.js";

const DEFAULT: LabelOptions = { trainOnPrompt: false, lastTurnOnly: false };
const single: Message[] = [
  { role: "user", content: "U" },
  { role: "assistant", content: "A" },
];
const multi: Message[] = [
  { role: "system", content: "S" },
  { role: "user", content: "U1" },
  { role: "assistant", content: "A1" },
  { role: "user", content: "U2" },
  { role: "assistant", content: "A2" },
];
const withTools: Message[] = [
  { role: "user", content: "Weather in Beijing?" },
  { role: "assistant", content: "", toolCalls: [{ name: "get_weather", arguments: '{"city": "Beijing"}' }] },
  { role: "tool", content: "sunny" },
  { role: "assistant", content: "It is sunny." },
];

function labelsFor(tok: TextTokenizer, tpl: ChatTemplate, messages: Message[], opts = DEFAULT) {
  return shiftLabels(maskChat(tpl.render(messages), tok, opts));
}

function byteSetup(name: "chatml" | "llama2" | "llama3" | "none") {
  const s = setupText({ tokenizer: "byte", model: {}, template: name });
  return { tok: s.tokenizer, tpl: s.template };
}

function qwenJinja() {
  const dir = path.join(fixtures, "bpe-qwen");
  const config = readTokenizerConfig(dir);
  return { tok: new HfTokenizer(dir), tpl: new JinjaTemplate(chatTemplateSource(config, dir), config) };
}

test("llama2 single turn: [BOS][INST]U[/INST] gives -100 labels, then A and [EOS] are the targets", () => {
  const { tok, tpl } = byteSetup("llama2");
  const { inputIds, labels } = labelsFor(tok, tpl, single);
  const text = "<s>[INST] U [/INST] A </s>";
  assert.equal(tpl.render(single).text, text);
  const ids = tok.encode(text);
  // inputs drop the final EOS (it is only ever predicted), labels are the next token or -100
  assert.deepEqual(Array.from(inputIds), ids.slice(0, -1));
  const firstTarget = tok.encode("<s>[INST] U [/INST]").length; // token index of " " before "A"
  for (let t = 0; t < labels.length; t++) {
    assert.equal(labels[t], t + 1 >= firstTarget ? ids[t + 1] : -100, `position ${t}`);
  }
  assert.equal(labels[labels.length - 1], tok.eosId);
  assert.deepEqual(targetRuns(labels, tok), [" A </s>"]);
});

test("llama2 multi turn: every answer and its EOS are targets, the second [BOS][INST]U2[/INST] is not", () => {
  const { tok, tpl } = byteSetup("llama2");
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi).labels, tok), [" A1 </s>", " A2 </s>"]);
});

test("last_turn_only: earlier answers become context", () => {
  const { tok, tpl } = byteSetup("llama2");
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi, { trainOnPrompt: false, lastTurnOnly: true }).labels, tok), [
    " A2 </s>",
  ]);
});

test("train_on_prompt: every token after the first is a target", () => {
  const { tok, tpl } = byteSetup("llama2");
  const { labels } = labelsFor(tok, tpl, multi, { trainOnPrompt: true, lastTurnOnly: false });
  assert.ok(labels.every((l) => l !== -100));
  assert.deepEqual(targetRuns(labels, tok), [tpl.render(multi).text.slice("<s>".length)]);
});

test("chatml: each answer plus <|im_end|> is a target, the newline after it is not", () => {
  const { tok, tpl } = byteSetup("chatml");
  assert.equal(tpl.render(single).text, "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi).labels, tok), ["A1<|im_end|>", "A2<|im_end|>"]);
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi, { trainOnPrompt: false, lastTurnOnly: true }).labels, tok), [
    "A2<|im_end|>",
  ]);
});

test("llama3: each answer plus <|eot_id|> is a target, headers are not", () => {
  const { tok, tpl } = byteSetup("llama3");
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi).labels, tok), ["A1<|eot_id|>", "A2<|eot_id|>"]);
});

test("none (base model): answers end with EOS, prompts are context", () => {
  const { tok, tpl } = byteSetup("none");
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi).labels, tok), ["A1</s>", "A2</s>"]);
});

test("tool results are never targets, not even with train_on_prompt; tool calls are", () => {
  const { tok, tpl } = byteSetup("chatml");
  const runs = targetRuns(labelsFor(tok, tpl, withTools).labels, tok);
  assert.deepEqual(runs, [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call><|im_end|>',
    "It is sunny.<|im_end|>",
  ]);
  const all = targetRuns(labelsFor(tok, tpl, withTools, { trainOnPrompt: true, lastTurnOnly: false }).labels, tok).join(
    "",
  );
  assert.ok(!all.includes("sunny\n</tool_response>"), "tool result must not be a target");
  assert.ok(all.includes("Weather in Beijing?"));
});

test("text: <bos> x1..xn -> x1..xn </s>, every token a target", () => {
  const tok = new ByteTokenizer();
  const { inputIds, labels } = shiftLabels(maskText("hi", tok));
  assert.deepEqual(Array.from(inputIds), [tok.bosId, 104, 105]);
  assert.deepEqual(Array.from(labels), [104, 105, tok.eosId]);
});

test("Qwen2.5's own Jinja template with a BPE tokenizer: answers and <|im_end|> are targets", () => {
  const { tok, tpl } = qwenJinja();
  const r = tpl.render(multi);
  assert.ok(r.text.startsWith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"));
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi).labels, tok), ["A1<|im_end|>", "A2<|im_end|>"]);
  assert.deepEqual(targetRuns(labelsFor(tok, tpl, multi, { trainOnPrompt: false, lastTurnOnly: true }).labels, tok), [
    "A2<|im_end|>",
  ]);
});

test("Qwen2.5's Jinja template with tools: tool call is a target, the <tool_response> turn is not", () => {
  const { tok, tpl } = qwenJinja();
  const runs = targetRuns(labelsFor(tok, tpl, withTools).labels, tok);
  // the generation prompt "<|im_start|>assistant\n" owns the newline, so the call starts the answer
  assert.deepEqual(runs, [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call><|im_end|>',
    "It is sunny.<|im_end|>",
  ]);
  const all = targetRuns(labelsFor(tok, tpl, withTools, { trainOnPrompt: true, lastTurnOnly: false }).labels, tok).join(
    "",
  );
  assert.ok(!all.includes("<tool_response>"));
});

test("Qwen2.5 generation prompt ends with the assistant header", () => {
  const { tpl } = qwenJinja();
  assert.ok(tpl.renderPrompt(single.slice(0, 1)).endsWith("<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"));
});

for (const [name, file, bos, eos] of [
  ["llama2", "llama2-chat.jinja", "<s>", "</s>"],
  ["llama3", "llama3-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"],
] as const) {
  test(`built-in ${name} renders what the model's own template renders, and masks the same`, () => {
    const { tok, tpl } = byteSetup(name);
    const source = readFileSync(path.join(fixtures, "chat_templates", file), "utf8");
    const jinja = new JinjaTemplate(source, { bos_token: bos, eos_token: eos });
    for (const conv of [single, multi]) {
      assert.equal(tpl.render(conv).text, jinja.render(conv).text);
      assert.deepEqual(
        targetRuns(labelsFor(tok, tpl, conv).labels, tok),
        targetRuns(labelsFor(tok, jinja, conv).labels, tok),
      );
    }
  });
}

test("built-in chatml renders what Qwen2.5's template renders when a system prompt is given", () => {
  const { tpl } = byteSetup("chatml");
  const { tpl: qwen } = qwenJinja();
  assert.equal(tpl.render(multi).text, qwen.render(multi).text);
});

test("a cut inside a BPE word: the straddling token goes to the target, ids stay those of the whole text", () => {
  const tok = new HfTokenizer(path.join(fixtures, "bpe-qwen"));
  const tpl = builtinTemplate("none", tok);
  // "none" puts the answer right after "U\n"; make the answer start mid-word: "capit" + "al".
  const r = {
    text: "the capital",
    parts: [
      { start: 0, end: 9, kind: "prompt" as const, message: 0 },
      { start: 9, end: 11, kind: "answer" as const, message: 1 },
    ],
  };
  const m = maskChat(r, tok, DEFAULT);
  assert.deepEqual(m.ids, tok.encode("the capital"));
  assert.equal(m.targets[m.targets.length - 1], 1);
  assert.ok(tpl.name === "none");
});
