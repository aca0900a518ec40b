// Preference pairs: LLaMA-Factory's ranking datasets (sharegpt as in its dpo_en_demo.json, alpaca columns)
// and TRL's prompt/chosen/rejected load with their pair counts; both answers share the prompt's tokens and
// only the answers are targets; a pair sits in one row as neighbouring segments; bad pairs are refused with
// file:line; ranking data needs stage: dpo.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { formatProblem } from "../../text/records/problems.js";
import { preparePairs } from "../helpers/in_memory_pairs.js";
import type { Row } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { preparePairsInThread } from "../../data/preference/pairs_in_thread.js";
import { rowToJson } from "../../data/rows/row.js";
import { INPUT_ROOTS_VARIABLE } from "../../files/input_files.js";
import os from "node:os";
import { runRingtune } from "../helpers/processes.js";

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test/fixtures/preference");

function spec(extra: Record<string, unknown>) {
  return parseSpec(
    {
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      template: "chatml",
      stage: "dpo",
      method: "lora",
      seq_len: 256,
      dataset_dir: extra.dataset === undefined ? undefined : ".",
      ...extra,
    },
    "job.yaml",
    dir,
  );
}

function pairs(extra: Record<string, unknown>) {
  return preparePairs(spec(extra), { displayRoot: dir });
}

/** Per row: its segments as [start, end) runs with their targets. */
function segments(r: Row): { start: number; end: number; targets: number }[] {
  const out: { start: number; end: number; targets: number }[] = [];
  for (let t = 0; t < r.inputIds.length; t++) {
    const s = r.segmentIds[t]!;
    if (!out[s]) out[s] = { start: t, end: t, targets: 0 };
    out[s].end = t + 1;
    if (r.labels[t] !== IGNORE_INDEX) out[s].targets++;
  }
  return out;
}

function lastTarget(r: Row, s: { start: number; end: number }): number {
  for (let t = s.end - 1; t >= s.start; t--) if (r.labels[t] !== IGNORE_INDEX) return t;
  return -1;
}

test("LLaMA-Factory's dpo_en_demo.json shape (sharegpt conversations, chosen/rejected objects) gives its pairs", () => {
  const d = pairs({ dataset: "dpo_en_demo" });
  assert.deepEqual(d.problems.map(formatProblem), []);
  assert.equal(d.stats.pairs.train, 5);
  assert.equal(d.stats.pairs.val, 0);
  // every row holds whole pairs: an even number of real segments, each with targets
  let seen = 0;
  for (const r of d.train.slice()) {
    const real = r.taskTypes.length;
    assert.equal(real % 2, 0, "a row holds whole pairs");
    seen += real / 2;
    const segs = segments(r);
    for (let s = 0; s < real; s++) assert.ok(segs[s]!.targets > 0, `segment ${s} has answer targets`);
  }
  assert.equal(seen, 5);
});

test("a pair's chosen and rejected share the prompt's tokens and only the final answers are targets", () => {
  const d = pairs({ dataset: "dpo_en_demo", packing: false });
  assert.equal(d.train.length, 5, "without packing a pair is a row");
  for (const r of d.train.slice()) {
    const [c, rj] = segments(r);
    const firstTarget = (s: { start: number; end: number }) => {
      for (let t = s.start; t < s.end; t++) if (r.labels[t] !== IGNORE_INDEX) return t - s.start;
      return -1;
    };
    const pc = firstTarget(c!);
    assert.equal(pc, firstTarget(rj!), "same prompt length");
    assert.deepEqual(
      Array.from(r.inputIds.subarray(c!.start, c!.start + pc + 1)),
      Array.from(r.inputIds.subarray(rj!.start, rj!.start + pc + 1)),
    );
    // the targets are one run: the final answer and its end-of-turn
    for (const s of [c!, rj!]) assert.equal(s.targets, lastTarget(r, s) - (s.start + firstTarget(s)) + 1);
  }
  // the multi-turn record's first answer ("Hello.") is context, not a target
  const text = (ids: number[]) => Buffer.from(ids.filter((x) => x < 256)).toString("latin1");
  const multi = d.train.slice().find((r) => text(Array.from(r.inputIds)).includes("French"))!;
  const targets = Array.from(multi.labels).filter((l) => l !== IGNORE_INDEX);
  assert.ok(!text(targets).includes("Hello."));
  assert.ok(text(targets).includes("Bonjour."));
});

test("alpaca ranking columns and TRL's prompt/chosen/rejected forms load, task_type per pair", () => {
  const d = pairs({ dataset: "alpaca_pairs", data: [{ path: "trl_pairs.jsonl" }] });
  assert.deepEqual(d.problems.map(formatProblem), []);
  assert.equal(d.stats.pairs.train, 6);
  assert.deepEqual(d.stats.pairs.perTask, { unknown: 4, "qa/short": 2 });
});

test("equal answers, a prompt that renders differently and a missing answer are refused as file:line", () => {
  const d = pairs({ data: [{ path: "bad_pairs.jsonl" }] });
  const lines = d.problems.map(formatProblem);
  assert.equal(d.stats.pairs.train, 1);
  assert.equal(lines.length, 3, lines.join("\n"));
  assert.match(lines[0]!, /^bad_pairs\.jsonl:1: .*chosen and rejected answers are equal/);
  assert.match(lines[1]!, /^bad_pairs\.jsonl:2: .*prompt renders differently/);
  assert.match(lines[2]!, /^bad_pairs\.jsonl:4: .*needs 'chosen' and 'rejected'/);
  assert.equal(d.failed, false);
  assert.equal(pairs({ data: [{ path: "bad_pairs.jsonl" }], on_bad_record: "fail" }).failed, true);
});

test("a validation share of pairs is split off whole", () => {
  const d = pairs({ dataset: "dpo_en_demo,alpaca_pairs", val_size: 2 });
  assert.equal(d.stats.pairs.train + d.stats.pairs.val, 8);
  assert.ok(d.stats.pairs.val >= 1);
  for (const r of d.val.slice()) assert.equal(r.taskTypes.length % 2, 0);
});

test("ranking data needs stage: dpo, and preference keys need it too", () => {
  assert.throws(
    () => parseSpec({ model: { init: { config: "x" } }, dataset: "dpo_en_demo", dataset_dir: "." }, "job.yaml", dir),
    /data\[0\] \(dpo_en_demo\.json\): ranking data .* needs stage: dpo/,
  );
  assert.throws(
    () => parseSpec({ model: { init: { config: "x" } }, data: [{ path: "a.jsonl" }], pref_beta: 0.2 }, "job.yaml", dir),
    /pref_beta.*needs stage: dpo/,
  );
  assert.equal(spec({ dataset: "dpo_en_demo", method: "full" }).method, "full", "full DPO: a stored reference");
  assert.throws(
    () => spec({ dataset: "dpo_en_demo", pref_loss: "ipo", dpo_label_smoothing: 0.1 }),
    /dpo_label_smoothing/,
  );
  const ok = spec({ dataset: "dpo_en_demo", method: "full", pref_loss: "simpo", simpo_gamma: 1 });
  assert.equal(ok.stage, "dpo");
  assert.equal(ok.data[0]!.ranking, true);
});

test("`ringtune data check` reports the pairs, per task_type, and the bad pairs as file:line", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-pairs-"));
  const job = path.join(tmp, "job.json");
  writeFileSync(
    job,
    JSON.stringify({
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      stage: "dpo",
      method: "lora",
      seq_len: 256,
      cache_dir: path.join(tmp, "cache"),
      data: [{ path: path.join(dir, "trl_pairs.jsonl") }, { path: path.join(dir, "bad_pairs.jsonl") }],
    }),
  );
  const r = await runRingtune(["data", "check", "--spec", job], {
    cwd: tmp,
    env: { ...process.env, RINGTUNE_DATA_ROOT: "/" },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /bad_pairs\.jsonl:1: .*chosen and rejected answers are equal/);
  assert.match(r.stdout, /^pairs: 4 train, 0 val; per task_type: qa\/short 2, unknown 2$/m);
});

/** A temp copy of the TRL pairs with a job spec over `file`, its cache in the temp folder. */
function threadedSpec(file: string, tmp: string) {
  return parseSpec(
    {
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      stage: "dpo",
      method: "full",
      seq_len: 256,
      val_size: 1,
      cache_dir: path.join(tmp, "cache"),
      data: [{ path: file }],
    },
    "job.yaml",
    tmp,
  );
}

test("preference data is prepared off the main thread into the token cache: the same rows, progress, reuse, abort", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-pairs-thread-"));
  const file = path.join(tmp, "pairs.jsonl");
  copyFileSync(path.join(dir, "trl_pairs.jsonl"), file);
  const s = threadedSpec(file, tmp);
  const inMemory = preparePairs(s, { displayRoot: tmp });
  const progress: number[] = [];
  const built = await preparePairsInThread(s, (p) => progress.push(p.records));
  try {
    assert.equal(built.fromCache, false);
    assert.ok(progress.length > 0 && progress.at(-1)! === 3, `progress: ${progress.join(", ")}`);
    for (const split of ["train", "val"] as const) {
      assert.equal(built[split].length, inMemory[split].length, split);
      assert.deepEqual(built[split].slice().map(rowToJson), inMemory[split].slice().map(rowToJson), split);
    }
    assert.deepEqual(built.stats.pairs, inMemory.stats.pairs);
  } finally {
    built.close();
  }
  const again = await preparePairsInThread(s);
  assert.equal(again.fromCache, true, "a second start opens the cache entry");
  again.close();
  const stop = new AbortController();
  const aborted = preparePairsInThread({ ...s, seed: 99 }, undefined, stop.signal);
  stop.abort(new Error("cancelled"));
  await assert.rejects(aborted, /cancelled/);
});

test("preference files are read through the confined reader: a link out of the input roots and a FIFO are refused", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-pairs-confined-"));
  const root = path.join(tmp, "data");
  const outside = path.join(tmp, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  copyFileSync(path.join(dir, "trl_pairs.jsonl"), path.join(outside, "private.jsonl"));
  symlinkSync(path.join(outside, "private.jsonl"), path.join(root, "pairs.jsonl"));
  execFileSync("mkfifo", [path.join(root, "pipe.jsonl")]);
  const saved = process.env[INPUT_ROOTS_VARIABLE];
  process.env[INPUT_ROOTS_VARIABLE] = root; // the thread inherits it, as the coordinator's threads do
  try {
    await assert.rejects(
      preparePairsInThread(threadedSpec(path.join(root, "pairs.jsonl"), tmp)),
      /pairs\.jsonl: leads out of the input roots/,
    );
    const started = Date.now();
    await assert.rejects(
      preparePairsInThread(threadedSpec(path.join(root, "pipe.jsonl"), tmp)),
      /pipe\.jsonl: is a FIFO; inputs must be regular files/,
    );
    assert.ok(Date.now() - started < 5000, "a FIFO is refused without waiting on it");
  } finally {
    if (saved === undefined) delete process.env[INPUT_ROOTS_VARIABLE];
    else process.env[INPUT_ROOTS_VARIABLE] = saved;
  }
});
