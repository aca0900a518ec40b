// Qwen3 renders an answer's reasoning only while it follows the latest user query, so earlier turns
// look different once later turns follow: each answer is trained in the text that ends with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Message } from "../../text/records/records.js";
import type { TemplateOptions } from "../../text/templates/template.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { parseSpec } from "../../spec/load.js";
import { tokenizeRecords } from "../helpers/in_memory_steps.js";
import { formatProblem } from "../../text/records/problems.js";
import { builtin, fixtureTemplate, sequences, DEFAULT_LABELS } from "../helpers/template_runs.js";

const reasoned: Message[] = [
  { role: "system", content: "S" },
  { role: "user", content: "U1" },
  { role: "assistant", content: "A1", reasoning_content: "R1" },
  { role: "user", content: "U2" },
  { role: "assistant", content: "A2", reasoning_content: "R2" },
];
const plainMulti: Message[] = [
  { role: "user", content: "U1" },
  { role: "assistant", content: "A1" },
  { role: "user", content: "U2" },
  { role: "assistant", content: "A2" },
];
const thinkInContent: Message[] = [
  { role: "user", content: "U1" },
  { role: "assistant", content: "<think>\nR1\n</think>\n\nA1" },
  { role: "user", content: "U2" },
  { role: "assistant", content: "<think>R2</think>A2" },
];
const weather = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
};
const toolSteps: Message[] = [
  { role: "user", content: "Weather in Beijing?" },
  {
    role: "assistant",
    content: "",
    reasoning_content: "I should look it up.",
    toolCalls: [{ name: "get_weather", arguments: '{"city": "Beijing"}' }],
  },
  { role: "tool", content: "sunny" },
  { role: "assistant", content: "It is sunny." },
];

test("qwen3: each answer is trained with its own reasoning, earlier answers are context without theirs", () => {
  const { tok, tpl } = builtin("qwen3");
  assert.deepEqual(sequences(tok, tpl, reasoned), [
    {
      text:
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n" +
        "<|im_start|>assistant\n<think>\nR1\n</think>\n\nA1<|im_end|>\n",
      runs: ["<think>\nR1\n</think>\n\nA1<|im_end|>"],
    },
    {
      text:
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n" +
        "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n<think>\nR2\n</think>\n\nA2<|im_end|>\n",
      runs: ["<think>\nR2\n</think>\n\nA2<|im_end|>"],
    },
  ]);
});

test("qwen3 with last_turn_only trains only the sequence that ends with the final answer", () => {
  const { tok, tpl } = builtin("qwen3");
  const s = sequences(tok, tpl, reasoned, undefined, { trainOnPrompt: false, lastTurnOnly: true });
  assert.deepEqual(
    s.map((x) => x.runs),
    [["<think>\nR2\n</think>\n\nA2<|im_end|>"]],
  );
});

test("qwen3: the last answer gets an empty think block; with enable_thinking false it is the prompt's", () => {
  const single: Message[] = [
    { role: "user", content: "U" },
    { role: "assistant", content: "A" },
  ];
  const text = "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n";
  const thinking = builtin("qwen3");
  assert.deepEqual(sequences(thinking.tok, thinking.tpl, single), [
    { text, runs: ["<think>\n\n</think>\n\nA<|im_end|>"] },
  ]);
  const quiet = builtin("qwen3", { enable_thinking: false });
  assert.deepEqual(sequences(quiet.tok, quiet.tpl, single), [{ text, runs: ["A<|im_end|>"] }]);
  assert.ok(quiet.tpl.renderPrompt(single.slice(0, 1)).endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  assert.ok(thinking.tpl.renderPrompt(single.slice(0, 1)).endsWith("<|im_start|>assistant\n"));
});

test("qwen3: a multi-step tool call keeps its reasoning while the final answer follows it", () => {
  const { tok, tpl } = builtin("qwen3");
  const s = sequences(tok, tpl, toolSteps, [weather]);
  // Both answers follow the one user query, and the call carries reasoning: one text trains both.
  assert.equal(s.length, 1);
  assert.ok(s[0].text.startsWith("<|im_start|>system\n# Tools\n\n"));
  assert.deepEqual(s[0].runs, [
    '<think>\nI should look it up.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call><|im_end|>',
    "<think>\n\n</think>\n\nIt is sunny.<|im_end|>",
  ]);
  assert.ok(s[0].text.includes("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"));
});

for (const options of [{}, { enable_thinking: false }] as TemplateOptions[]) {
  test(`built-in qwen3 ${JSON.stringify(options)} trains what Qwen3's own template gives, sequence by sequence`, () => {
    const mine = builtin("qwen3", options);
    const real = fixtureTemplate("qwen3.jinja", null, "<|im_end|>", options);
    for (const [conv, tools] of [
      [reasoned, undefined],
      [plainMulti, undefined],
      [thinkInContent, undefined],
      [toolSteps, [weather]],
      [[{ role: "system", content: "S" }, ...toolSteps], [weather]],
    ] as [Message[], unknown[] | undefined][]) {
      for (const opts of [DEFAULT_LABELS, { trainOnPrompt: true, lastTurnOnly: false }]) {
        assert.deepEqual(
          sequences(mine.tok, mine.tpl, conv, tools, opts),
          sequences(real.tok, real.tpl, conv, tools, opts),
        );
      }
      assert.equal(mine.tpl.renderPrompt(conv.slice(0, -1), tools), real.tpl.renderPrompt(conv.slice(0, -1), tools));
    }
  });
}

test("multi-turn records with Qwen3's own template are trained, not dropped", () => {
  const { tok, tpl } = fixtureTemplate("qwen3.jinja", null, "<|im_end|>");
  const records = [plainMulti, reasoned, thinkInContent].map((messages, k) => ({
    kind: "chat" as const,
    messages,
    source: { file: "chats.jsonl", line: k + 1 },
    sourceIndex: 0,
    taskType: "general",
    tags: [],
  }));
  const settings = { ...DEFAULT_LABELS, seqLen: 512, overlong: "drop" as const };
  const out = tokenizeRecords(records, tok, tpl, settings, "test");
  assert.deepEqual(out.problems.map(formatProblem), []);
  assert.equal(out.examples.length, 6, "two sequences per two-turn record");
});

test("template options are checked: a built-in template names the option it does not read", () => {
  assert.throws(
    () => builtin("chatml", { enable_thinking: false }),
    /template_options\.enable_thinking: the chatml template has no such option/,
  );
  assert.throws(
    () => builtin("qwen3", { enable_thinking: "no" }),
    /template_options\.enable_thinking: expected true or false/,
  );
});

test("a job's template_options reach the template: enable_thinking false trains fewer target tokens", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-qwen3-"));
  const record = { messages: plainMulti.map((m) => ({ role: m.role, content: m.content })) };
  writeFileSync(path.join(dir, "chats.jsonl"), JSON.stringify(record) + "\n");
  const targets = (extra: Record<string, unknown>) => {
    const spec = {
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      template: "qwen3",
      data: [{ path: "chats.jsonl" }],
    };
    const d = buildDataset(parseSpec({ ...spec, ...extra }, "test", dir), { quiet: true, useCache: false });
    assert.deepEqual(d.problems, []);
    return d.stats.train.targets;
  };
  const thinking = targets({});
  const quiet = targets({ template_options: { enable_thinking: false } });
  // Each of the two answers loses "<think>", "\n", "\n", "</think>", "\n", "\n": 6 byte-tokenizer tokens.
  assert.equal(thinking - quiet, 2 * 6);
});
