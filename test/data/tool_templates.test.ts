// Tools in every built-in template: schemas, calls and results rendered as each family's own template
// does, calls trained like any answer, results never; a template that cannot show them refuses the record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import type { Message } from "../../text/records/records.js";
import { JinjaTemplate } from "../../text/templates/jinja_template.js";
import { pythonJson } from "../../text/templates/python_json.js";
import { parseSpec } from "../../spec/load.js";
import { builtin, fixtureTemplate, sequences } from "../helpers/template_runs.js";

const weather = {
  type: "function",
  function: { name: "get_weather", parameters: {} },
};
const oneCall: Message[] = [
  { role: "system", content: "S" },
  { role: "user", content: "Weather?" },
  { role: "assistant", content: "", toolCalls: [{ name: "get_weather", arguments: '{"city":"Beijing"}' }] },
  { role: "tool", content: "Sunny, 20 C" },
  { role: "assistant", content: "It is sunny." },
];
const richTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather of a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "城市" } }, required: ["city"] },
  },
};
const twoCalls: Message[] = [
  { role: "user", content: "Beijing and Paris?" },
  {
    role: "assistant",
    content: "Let me look.",
    toolCalls: [
      { name: "get_weather", arguments: '{"city":"Beijing","days":[1,2]}' },
      { name: "get_weather", arguments: '{"city": "Paris"}' },
    ],
  },
  { role: "tool", content: '{"temp": 20}' },
  { role: "tool", content: '{"temp": 15}' },
  { role: "assistant", content: "20 and 15." },
  { role: "user", content: "Thanks" },
  { role: "assistant", content: "Welcome." },
];

test("tool JSON is written as Python's json.dumps writes it, as chat templates' tojson does", () => {
  const v = { a: [1, "é", { b: null }], c: {}, d: [], e: 1.5, f: true };
  assert.equal(pythonJson(v), '{"a": [1, "é", {"b": null}], "c": {}, "d": [], "e": 1.5, "f": true}');
  assert.equal(
    pythonJson({ a: [1, { b: null }], c: {}, d: [] }, 4),
    '{\n    "a": [\n        1,\n        {\n            "b": null\n        }\n    ],\n    "c": {},\n    "d": []\n}',
  );
});

test("chatml: tools in a # Tools system block, calls in <tool_call>, results in <tool_response> (Qwen2.5's form)", () => {
  const { tok, tpl } = builtin("chatml");
  assert.deepEqual(sequences(tok, tpl, oneCall, [weather]), [
    {
      text:
        "<|im_start|>system\nS\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        '{"type": "function", "function": {"name": "get_weather", "parameters": {}}}\n</tools>\n\n' +
        "For each function call, return a json object with function name and arguments within " +
        "<tool_call></tool_call> XML tags:\n<tool_call>\n" +
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\nWeather?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\n<tool_response>\nSunny, 20 C\n</tool_response><|im_end|>\n" +
        "<|im_start|>assistant\nIt is sunny.<|im_end|>\n",
      runs: [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call><|im_end|>',
        "It is sunny.<|im_end|>",
      ],
    },
  ]);
});

test("chatml renders and trains tools, calls and results exactly as Qwen2.5's own template", () => {
  const mine = builtin("chatml");
  const real = fixtureTemplate("qwen2.5-instruct.jinja", null, "<|im_end|>");
  for (const [conv, tools] of [
    [oneCall, [weather]],
    [[{ role: "system", content: "S" }, ...twoCalls], [richTool]],
    [oneCall, undefined],
  ] as [Message[], unknown[] | undefined][]) {
    for (const opts of [
      { trainOnPrompt: false, lastTurnOnly: false },
      { trainOnPrompt: true, lastTurnOnly: false },
    ]) {
      assert.deepEqual(
        sequences(mine.tok, mine.tpl, conv, tools, opts),
        sequences(real.tok, real.tpl, conv, tools, opts),
      );
    }
  }
  const s = sequences(mine.tok, mine.tpl, [{ role: "system", content: "S" }, ...twoCalls], [richTool]);
  assert.ok(s[0].text.includes('"description": "城市"'), "non-ASCII kept as Qwen's tojson keeps it");
  assert.ok(s[0].text.includes("\n</tool_response>\n<tool_response>\n"), "consecutive results share one user turn");
  assert.deepEqual(s[0].runs, [
    "Let me look.\n" +
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing", "days": [1, 2]}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
    "20 and 15.<|im_end|>",
    "Welcome.<|im_end|>",
  ]);
});

test("chatml without a system prompt starts the system turn with the tools (no Qwen identity line)", () => {
  const { tok, tpl } = builtin("chatml");
  const [s] = sequences(tok, tpl, oneCall.slice(1), [weather]);
  assert.ok(s.text.startsWith("<|im_start|>system\n# Tools\n\n"));
});

test("tool results are never targets, even with train_on_prompt", () => {
  for (const name of ["chatml", "qwen3", "llama3"] as const) {
    const { tok, tpl } = builtin(name);
    const all = sequences(tok, tpl, oneCall, [weather], { trainOnPrompt: true, lastTurnOnly: false })
      .flatMap((s) => s.runs)
      .join("");
    assert.ok(!all.includes("Sunny, 20 C"), `${name}: a tool result must not be a target`);
    assert.ok(all.includes("Weather?"), `${name}: prompts are targets with train_on_prompt`);
  }
});

test("llama3: tools in the first user message under Environment: ipython, calls as JSON (Llama 3.1's form)", () => {
  const { tok, tpl } = builtin("llama3");
  assert.deepEqual(sequences(tok, tpl, oneCall, [weather]), [
    {
      text:
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nS<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\n" +
        "Given the following functions, please respond with a JSON for a function call with its proper arguments " +
        "that best answers the given prompt.\n\n" +
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' +
        "Do not use variables.\n\n" +
        '{\n    "type": "function",\n    "function": {\n        "name": "get_weather",\n        "parameters": {}\n    }\n}\n\n' +
        "Weather?<|eot_id|>" +
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Beijing"}}<|eot_id|>' +
        '<|start_header_id|>ipython<|end_header_id|>\n\n"Sunny, 20 C"<|eot_id|>' +
        "<|start_header_id|>assistant<|end_header_id|>\n\nIt is sunny.<|eot_id|>",
      runs: ['{"name": "get_weather", "parameters": {"city": "Beijing"}}<|eot_id|>', "It is sunny.<|eot_id|>"],
    },
  ]);
});

test("llama3 refuses what Llama 3.1 cannot show: two calls in a turn, text beside a call", () => {
  const { tok, tpl } = builtin("llama3");
  assert.throws(
    () => sequences(tok, tpl, twoCalls, [weather]),
    /the llama3 template shows one tool call per turn; message 2 has 2/,
  );
  const withText = oneCall.map((m, i) => (i === 2 ? { ...m, content: "Let me look." } : m));
  assert.throws(() => sequences(tok, tpl, withText, [weather]), /message 3 has text beside its call/);
});

test("llama3 refuses tools when no user message comes first to carry them", () => {
  const { tok, tpl } = builtin("llama3");
  const assistantFirst: Message[] = [
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "Sunny." },
  ];
  assert.throws(() => sequences(tok, tpl, assistantFirst, [weather]), /puts tools in the first user message/);
});

test("a model template that drops tool results refuses the record", () => {
  const { tok, tpl } = fixtureTemplate("qwen2.5-instruct.jinja", null, "<|im_end|>");
  const dropsTools = new JinjaTemplate(
    "{% for m in messages %}{% if m.role != 'tool' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}" +
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    { eos_token: "<|im_end|>" },
  );
  const plain: Message[] = [
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "Let me look." },
    { role: "tool", content: "Sunny, 20 C" },
    { role: "assistant", content: "It is sunny." },
  ];
  assert.equal(sequences(tok, tpl, plain).length, 1);
  assert.throws(() => sequences(tok, dropsTools, plain), /does not show tool results \(message 3 renders as nothing\)/);
});

test("llama2 and none refuse records whose tools or calls they cannot show", () => {
  const l2 = builtin("llama2");
  assert.throws(
    () => sequences(l2.tok, l2.tpl, oneCall.slice(0, 3), [weather]),
    /the llama2 template cannot show tools/,
  );
  assert.throws(
    () => sequences(l2.tok, l2.tpl, oneCall.slice(0, 3)),
    /the llama2 template cannot show tool calls \(message 3\)/,
  );
  assert.throws(
    () =>
      sequences(
        l2.tok,
        l2.tpl,
        oneCall.slice(1).map((m) => ({ ...m, toolCalls: undefined })),
      ),
    /the llama2 template has no tool role \(message 3\)/,
  );
  const none = builtin("none");
  assert.throws(
    () => sequences(none.tok, none.tpl, oneCall, [weather]),
    /the none template has no place for a tool list/,
  );
});

test("a model template without tool support is detected by rendering and refuses tools and calls", () => {
  const { tok, tpl } = fixtureTemplate("llama3-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>");
  assert.throws(() => sequences(tok, tpl, oneCall, [weather]), /the chat template does not show tools/);
  assert.throws(
    () => sequences(tok, tpl, oneCall),
    /the chat template does not show tool calls \(message 3 renders without its call to get_weather\)/,
  );
  // Qwen2.5's template shows both: the same record is accepted.
  const qwen = fixtureTemplate("qwen2.5-instruct.jinja", null, "<|im_end|>");
  assert.equal(sequences(qwen.tok, qwen.tpl, oneCall, [weather]).length, 1);
});

test("data check reports each refused tool record as file:line: reason and counts it", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-tools-"));
  const call = { type: "function", function: { name: "get_weather", arguments: '{"city":"Beijing"}' } };
  const lines = [
    {
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello" },
      ],
    },
    {
      messages: [
        { role: "user", content: "Weather?" },
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", content: "sunny" },
        { role: "assistant", content: "It is sunny." },
      ],
      tools: [weather],
    },
    {
      messages: [
        { role: "user", content: "Weather?" },
        { role: "assistant", content: null, tool_calls: [call, call] },
        { role: "tool", content: "sunny" },
        { role: "assistant", content: "It is sunny." },
      ],
    },
  ];
  writeFileSync(path.join(dir, "tools.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  const build = (template: string) =>
    buildDataset(
      parseSpec(
        { model: { init: { config: "none.json" } }, tokenizer: "byte", template, data: [{ path: "tools.jsonl" }] },
        "test",
        dir,
      ),
      { quiet: true, useCache: false, displayRoot: dir },
    );
  const l2 = build("llama2");
  assert.deepEqual(l2.problems.map(formatProblem), [
    "tools.jsonl:2: the llama2 template cannot show tools; use llama3, chatml or qwen3",
    "tools.jsonl:3: the llama2 template cannot show tool calls (message 2); use llama3, chatml or qwen3",
  ]);
  assert.equal(l2.stats.dropped.template, 2);
  const l3 = build("llama3");
  assert.deepEqual(l3.problems.map(formatProblem), [
    "tools.jsonl:3: the llama3 template shows one tool call per turn; message 2 has 2",
  ]);
  assert.equal(l3.stats.dropped.template, 1);
  assert.equal(build("chatml").problems.length, 0);
});
