// Generation eval: which prompt the model sees, what the expected answer is, and how outputs score.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import { chatStopIds } from "../../text/stop_ids.js";
import {
  answersMatch,
  decodeAnswer,
  GenerationEvalError,
  loadEvalPrompts,
  scoreGenerations,
  type EvalPrompt,
} from "../../coordinator/eval/generation_eval.js";
import { parseSpec } from "../../spec/load.js";
import { formatGenerationEval } from "../../cli/format_generation_eval.js";
import { GenerationEval } from "../../proto/mod.js";

const chatml = (): TextSetup =>
  setupText({ tokenizer: "byte", model: { init: { config: "x.json", seed: 0 } }, template: "chatml" });

function evalFile(lines: unknown[], name = "heldout.jsonl"): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-geval-"));
  const file = path.join(dir, name);
  writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return file;
}

function specFor(file: string, extra: Record<string, unknown> = {}) {
  return parseSpec(
    {
      model: { init: { config: "model.json" } },
      tokenizer: "byte",
      data: [{ path: "train.jsonl" }],
      generation_eval: { path: path.basename(file), ...extra },
    },
    "test",
    path.dirname(file),
  );
}

const multiTurn = {
  task_type: "extract/person",
  messages: [
    { role: "system", content: "Answer with JSON only." },
    { role: "user", content: "Ana Silva is 30 and lives in Porto." },
    { role: "assistant", content: '{"name":"Ana Silva","age":30,"city":"Porto"}' },
    { role: "user", content: "Ivan Popov, 41, lives in Riga." },
    { role: "assistant", content: '{"name":"Ivan Popov","age":41,"city":"Riga"}' },
  ],
};

test("the prompt is the conversation before the last assistant turn, with the generation prompt; that turn is the answer", () => {
  const setup = chatml();
  const [p] = loadEvalPrompts(specFor(evalFile([multiTurn])), setup);
  assert.equal(p.expected, '{"name":"Ivan Popov","age":41,"city":"Riga"}');
  assert.equal(p.taskType, "extract/person");
  assert.equal(p.question, "Ivan Popov, 41, lives in Riga.");
  assert.equal(p.source.line, 1);
  // The earlier answer is context; the last one is nowhere in the prompt.
  assert.ok(p.text.includes('"Ana Silva"'));
  assert.ok(!p.text.includes('"Ivan Popov"'));
  assert.ok(p.text.endsWith("Ivan Popov, 41, lives in Riga.<|im_end|>\n<|im_start|>assistant\n"), p.text);
  assert.equal(p.text, setup.template.renderPrompt(multiTurn.messages.slice(0, 4) as never));
  // The ids are the prompt text, the ChatML markers single tokens, and no answer token in them.
  assert.deepEqual(Array.from(p.ids), setup.tokenizer.encode(p.text));
  assert.equal(setup.tokenizer.decode(p.ids), p.text);
  const imStart = setup.tokenizer.encode("<|im_start|>");
  assert.equal(imStart.length, 1);
  const genPrompt = [imStart[0], ...setup.tokenizer.encode("assistant\n")];
  assert.deepEqual(Array.from(p.ids.slice(-genPrompt.length)), genPrompt);
  const answerIds = setup.tokenizer.encode(p.expected);
  const hay = Array.from(p.ids).join(",");
  assert.ok(!hay.includes(answerIds.join(",")), "answer tokens in the prompt");
});

test("formats as the pipeline reads them; task_type per prompt; limit keeps the first N", () => {
  const file = evalFile([
    { instruction: "Say hi.", output: "hi", task_type: "chat/greet" },
    {
      conversations: [
        { from: "human", value: "Two plus two?" },
        { from: "gpt", value: "4" },
      ],
      task_type: "math/add",
    },
    multiTurn,
    {
      messages: [
        { role: "user", content: "x" },
        { role: "assistant", content: "y" },
      ],
    },
  ]);
  const setup = chatml();
  const all = loadEvalPrompts(specFor(file), setup);
  assert.deepEqual(
    all.map((p) => p.taskType),
    ["chat/greet", "math/add", "extract/person", "unknown"],
  );
  assert.deepEqual(
    all.map((p) => p.expected),
    ["hi", "4", multiTurn.messages[4].content, "y"],
  );
  assert.ok(all[0].text.includes("<|im_start|>user\nSay hi.<|im_end|>"));
  const two = loadEvalPrompts(specFor(file, { limit: 2 }), setup);
  assert.deepEqual(
    two.map((p) => p.expected),
    ["hi", "4"],
  );
  // format: messages is the OpenAI form
  const msgs = loadEvalPrompts(specFor(evalFile([multiTurn]), { format: "messages" }), setup);
  assert.equal(msgs.length, 1);
});

test("bad records are errors as file:line: reason", () => {
  const file = evalFile([
    multiTurn,
    "{not json",
    { messages: [{ role: "user", content: "no answer" }] },
    { text: "plain text" },
    "",
    {
      messages: [
        { role: "system", content: "s" },
        { role: "assistant", content: "a" },
      ],
    },
  ]);
  const setup = chatml();
  assert.throws(
    () => loadEvalPrompts(specFor(file), setup, { displayRoot: path.dirname(file) }),
    (err: unknown) => {
      assert.ok(err instanceof GenerationEvalError);
      assert.equal(err.problems.length, 4, err.message);
      assert.match(err.problems[0], /^heldout\.jsonl:2: invalid JSON/);
      assert.match(err.problems[1], /^heldout\.jsonl:3: no assistant turn/);
      assert.match(err.problems[2], /^heldout\.jsonl:4: .*text/);
      assert.match(err.problems[3], /^heldout\.jsonl:6: .*no user turn/);
      assert.match(err.message, /heldout\.jsonl:2:/);
      return true;
    },
  );
  assert.throws(() => loadEvalPrompts(specFor(evalFile([""])), setup), /no records/);
  assert.throws(
    () =>
      loadEvalPrompts({ generation_eval: { path: "/nonexistent/h.jsonl", format: "auto", max_new_tokens: 8 } }, setup),
    /cannot read/,
  );
});

test("stop ids: the model's EOS ids, the tokenizer's EOS and the template's end-of-turn token", () => {
  const setup = chatml();
  const tok = setup.tokenizer;
  assert.deepEqual(
    Array.from(chatStopIds(setup)),
    [tok.eosId, tok.encode("<|im_end|>")[0]].sort((a, b) => a - b),
  );
  assert.deepEqual(
    Array.from(chatStopIds(setup, [300, tok.eosId])),
    [tok.eosId, tok.encode("<|im_end|>")[0], 300].sort((a, b) => a - b),
  );
  const l3 = setupText({ tokenizer: "byte", model: { init: { config: "x.json", seed: 0 } }, template: "llama3" });
  const ids = Array.from(chatStopIds(l3));
  assert.ok(ids.includes(l3.tokenizer.encode("<|eot_id|>")[0]));
  assert.ok(ids.includes(l3.tokenizer.eosId));
});

function prompt(taskType: string, expected: string): EvalPrompt {
  return {
    ids: new Int32Array([1]),
    text: "",
    expected,
    taskType,
    question: `q ${expected}`,
    source: { file: "h", line: 1 },
    messages: [],
  };
}

test("scoring: JSON validity, deep-equal exact match, stop at end-of-turn, per task", () => {
  const setup = chatml();
  const tok = setup.tokenizer;
  const imEnd = tok.encode("<|im_end|>")[0];
  const out = (s: string, tail: number[] = [imEnd]) => Int32Array.from([...tok.encode(s), ...tail]);
  const person = '{"name":"Ana Silva","age":30,"city":"Porto"}';
  const order = '{"order":4821,"qty":3,"item":"lamps","city":"Oslo"}';
  const prompts = [
    prompt("extract/person", person),
    prompt("extract/person", person),
    prompt("extract/person", person),
    prompt("extract/order", order),
    prompt("extract/order", order),
    prompt("chat/plain", "  hello there "),
  ];
  const outputs = [
    out(person, [imEnd, ...tok.encode("garbage after the end")]), // exact; what follows the stop is ignored
    out('{"city":"Porto","age":30,"name":"Ana Silva"}'), // same object, keys reordered: exact
    out('{"name":"Ana Silva","age":"30","city":"Porto"}'), // valid JSON, wrong type: not exact
    out('{"order":4821,"qty":3,"item":"lamps","city":"Oslo"', []), // no stop, truncated: invalid
    out(order, [tok.eosId]), // stops at EOS too
    out("hello there\n"), // plain text: trimmed comparison
  ];
  const r = scoreGenerations(prompts, outputs, setup, { maxNewTokens: 64 });
  assert.deepEqual(Object.keys(r.tasks), ["chat/plain", "extract/order", "extract/person"]);
  const p = r.tasks["extract/person"];
  assert.equal(p.count, 3);
  assert.equal(p.json_valid, 1);
  assert.ok(Math.abs(p.exact_match - 2 / 3) < 1e-12);
  assert.deepEqual(r.tasks["extract/order"], {
    ...r.tasks["extract/order"],
    count: 2,
    json_valid: 0.5,
    exact_match: 0.5,
  });
  assert.equal(r.tasks["chat/plain"].exact_match, 1);
  assert.equal(r.tasks["chat/plain"].json_valid, 0);
  assert.equal(r.overall.count, 6);
  assert.ok(Math.abs(r.overall.exact_match - 4 / 6) < 1e-12);
  assert.ok(Math.abs(r.overall.json_valid - 4 / 6) < 1e-12);
  assert.equal(r.max_new_tokens, 64);
  assert.equal(p.samples.length, 3);
  assert.deepEqual(p.samples[0], { prompt: `q ${person}`, expected: person, got: person });
  assert.equal(r.overall.samples.length, 3);
  // a plain JSON object: it survives JSON.stringify unchanged
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  assert.throws(() => scoreGenerations(prompts, outputs.slice(1), setup), /6 prompts but 5 outputs/);
  assert.equal(decodeAnswer(out("abc", [imEnd, 65]), setup), "abc");
});

test("answersMatch compares JSON by value and text by trimmed string", () => {
  assert.ok(answersMatch('{"a":[1,2],"b":{"c":null}}', ' {"b":{"c":null},"a":[1,2]} '));
  assert.ok(!answersMatch('{"a":[1,2]}', '{"a":[2,1]}'));
  assert.ok(!answersMatch('{"a":1}', '{"a":1,"b":2}'));
  assert.ok(!answersMatch('{"a":1}', "not json"));
  assert.ok(answersMatch("Paris", " Paris\n"));
  assert.ok(!answersMatch("Paris", "paris"));
});

test("the printed report shows exact match and JSON validity before -> after per task and overall", () => {
  const setup = chatml();
  const tok = setup.tokenizer;
  const imEnd = tok.encode("<|im_end|>")[0];
  const prompts = [prompt("extract/person", '{"a":1}'), prompt("extract/order", '{"b":2}')];
  const before = scoreGenerations(
    prompts,
    [Int32Array.from(tok.encode("xx")), Int32Array.from(tok.encode("yy"))],
    setup,
  );
  const after = scoreGenerations(
    prompts,
    [Int32Array.from([...tok.encode('{"a":1}'), imEnd]), Int32Array.from([...tok.encode('{"b":3}'), imEnd])],
    setup,
  );
  // what the coordinator stores in the job record must pass the record's schema
  assert.deepEqual(GenerationEval.parse({ before, after }), { before, after });
  const text = formatGenerationEval({ before, after });
  // columns: prompts, exact before, exact after, JSON before, JSON after
  assert.match(text, /extract\/person\s+1\s+0\.0%\s+100\.0%\s+0\.0%\s+100\.0%/);
  assert.match(text, /extract\/order\s+1\s+0\.0%\s+0\.0%\s+0\.0%\s+100\.0%/);
  assert.match(text, /all\s+2\s+0\.0%\s+50\.0%\s+0\.0%\s+100\.0%/);
  assert.match(text, /\[extract\/order\] .*\n\s+expected: \{"b":2\}\n\s+got:\s+\{"b":3\}/);
  assert.match(formatGenerationEval({ after }), /extract\/person\s+1\s+-\s+100\.0%\s+-\s+100\.0%/);
});
