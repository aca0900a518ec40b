// A corpus of bad records: each gives its own message with its own line number.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import { parseSpec } from "../../spec/load.js";
import { fixtures, repoRoot } from "../helpers/data_fixtures.js";

function specFor(file: string, extra: Record<string, unknown> = {}) {
  return parseSpec(
    {
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      template: "chatml",
      data: [{ path: file }],
      seq_len: 128,
      ...extra,
    },
    "test",
    fixtures,
  );
}

test("each bad record in a JSONL file is reported as file:line: reason", () => {
  const d = buildDataset(specFor("bad_records.jsonl"), { quiet: true, useCache: false, displayRoot: fixtures });
  // the JSON parser's own detail differs between Node versions; the rest is ours
  const lines = d.problems
    .map(formatProblem)
    .map((l) => l.replace(/\(response_format: json\): .*/, "(response_format: json): ..."));
  assert.deepEqual(lines, [
    "bad_records.jsonl:2: invalid JSON: Unexpected end of JSON input",
    "bad_records.jsonl:3: cannot detect format: expected 'messages', 'conversations', 'instruction'/'output' or 'text'",
    "bad_records.jsonl:4: turn 2: empty response",
    "bad_records.jsonl:5: unknown role 'wizard' in messages[1]",
    "bad_records.jsonl:6: turn 2: turns do not alternate (user after user)",
    "bad_records.jsonl:7: missing response: the conversation does not end with an assistant answer",
    "bad_records.jsonl:8: unknown role 'bot' in conversations[1]",
    "bad_records.jsonl:9: turn 2: response is not valid JSON (response_format: json): ...",
    "bad_records.jsonl:10: alpaca: 'task_type': task_type must be one or two levels, like 'reasoning/cot'",
    "bad_records.jsonl:11: turn 2: tool result without a tool call",
    "bad_records.jsonl:12: exact duplicate of bad_records.jsonl:1",
    "bad_records.jsonl:13: empty text",
    "bad_records.jsonl:14: alpaca: 'instruction': expected string",
  ]);
  assert.equal(d.stats.recordsRead, 14);
  assert.equal(d.stats.recordsKept, 1);
  assert.equal(d.stats.dropped.invalid, 12);
  assert.equal(d.stats.dropped.duplicate, 1);
  assert.equal(d.failed, false);
});

test("records of a JSON array are reported at the line each starts on", () => {
  const d = buildDataset(specFor("bad_records.json"), { quiet: true, useCache: false, displayRoot: fixtures });
  assert.deepEqual(d.problems.map(formatProblem), [
    "bad_records.json:3: alpaca: 'output': expected string",
    "bad_records.json:6: turn 1: turns do not alternate (assistant after no user turn)",
  ]);
});

test("overlong examples are counted with their reason", () => {
  const d = buildDataset(specFor("bad_records.jsonl", { seq_len: 8, overlong: "drop" }), {
    quiet: true,
    useCache: false,
    displayRoot: fixtures,
  });
  assert.equal(d.stats.dropped.overlong, 1);
  assert.match(
    formatProblem(d.problems.find((p) => p.kind === "overlong")!),
    /^bad_records\.jsonl:1: too long: \d+ positions > seq_len 8/,
  );
});

test("near-duplicate answers are reported, not removed; robustness-tagged copies are kept", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-dedupe-"));
  const file = path.join(dir, "d.jsonl");
  const answer = "The capital of France is Paris, a city on the river Seine with many museums.";
  writeFileSync(
    file,
    [
      { instruction: "Capital of France?", output: answer },
      { instruction: "France capital?", output: answer.replace("many", "a lot of") },
      { instruction: "Capital of France?", output: answer },
      { instruction: "Capital of France?", output: answer, tags: ["robustness"] },
    ]
      .map((r) => JSON.stringify(r))
      .join("\n"),
  );
  const d = buildDataset(specFor(file), { quiet: true, useCache: false, displayRoot: dir });
  const lines = d.problems.map(formatProblem);
  assert.ok(
    lines.some((l) => /^d\.jsonl:2: response nearly duplicates d\.jsonl:1 \(MinHash Jaccard ~0\.\d+\); kept$/.test(l)),
    lines.join("\n"),
  );
  assert.ok(lines.includes("d.jsonl:3: exact duplicate of d.jsonl:1"));
  assert.equal(d.stats.train.examples, 3);
});

test("ringtune data check exits 1 under on_bad_record: fail, 0 under skip, listing the problems", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-check-"));
  const run = (policy: string) => {
    const spec = path.join(dir, `${policy}.yaml`);
    writeFileSync(
      spec,
      `model: {init: {config: x.json}}\ntokenizer: byte\ndata:\n  - {path: ${path.join(fixtures, "bad_records.json")}}\non_bad_record: ${policy}\ncache_dir: ${dir}/cache\n`,
    );
    return spawnSync(process.execPath, [path.join(repoRoot, "dist/cli/ringtune.js"), "data", "check", "--spec", spec], {
      encoding: "utf8",
      cwd: fixtures,
    });
  };
  const fail = run("fail");
  assert.equal(fail.status, 1, fail.stderr);
  assert.match(fail.stdout, /^bad_records\.json:3: alpaca: 'output': expected string$/m);
  assert.match(fail.stdout, /on_bad_record: fail: 2 bad record\(s\)/);
  assert.equal(run("skip").status, 0);
});
