// `make demo` (deploy/scripts/demo.sh) as a person runs it, both acts shortened with DEMO_STEPS and
// DEMO_DPO_STEPS, its state and outputs in a temp folder: a real local cluster, the bundled SFT job, the DPO
// job on the SFT job's model, the before/after tables they print, the outputs they name, and a cluster that
// is down again afterwards.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  assertRowsCoverHeldout,
  assertTableMatchesRecord,
  parseEvalTable,
  promptsPerTask,
  type EvalTableRow,
} from "../helpers/eval_table.js";
import { LocalCluster } from "../helpers/local_cluster.js";
import { REPO_ROOT, runProcess, type ProcessResult } from "../helpers/processes.js";
import { repoStatus } from "../helpers/repo_snapshot.js";

const DEMO = path.join(REPO_ROOT, "deploy/scripts/demo.sh");
const HELDOUT = path.join(REPO_ROOT, "examples/demo/heldout.jsonl");
// Enough steps for the loss to fall clearly from a random init, few enough for a small machine.
const STEPS = 20;
// The DPO act's plumbing (its pairs, act 1's model, the reference pass, the preference metrics), not its result.
const DPO_STEPS = 2;

let cluster: LocalCluster;
let output: string;
let demo: ProcessResult;
let statusBefore: string | undefined;

interface JobRecord {
  id: string;
  status: string;
  /** `ringtune ... --json` names the step count `steps` */
  steps: number;
  output: string;
  train_loss: { first?: number; last?: number };
  val_loss?: number;
  generation_eval?: unknown;
}
let record: JobRecord;
let dpoRecord: JobRecord;

before(async () => {
  statusBefore = repoStatus();
  cluster = await LocalCluster.prepare(2);
  output = path.join(cluster.dir, "out");
  // A previous demo's outputs: this run must move them aside whole, say where, and never mix with them.
  mkdirSync(path.join(output, "checkpoints", "step-000800"), { recursive: true });
  writeFileSync(path.join(output, "ringtune_job.json"), JSON.stringify({ job: "job-previous-demo" }));
  writeFileSync(path.join(output, "metrics.jsonl"), JSON.stringify({ step: 1000, loss: 0.5 }) + "\n");
  demo = await runProcess("bash", [DEMO], {
    env: { ...cluster.env, DEMO_STEPS: String(STEPS), DEMO_DPO_STEPS: String(DPO_STEPS), DEMO_OUTPUT: output },
    timeoutMs: 600_000,
  });
  const last = (file: string) => JSON.parse(readFileSync(file, "utf8").trimEnd().split("\n").pop()!) as JobRecord;
  const result = path.join(cluster.runDir, "demo_result.json");
  if (existsSync(result)) record = last(result);
  const dpoResult = path.join(cluster.runDir, "demo_dpo_result.json");
  if (existsSync(dpoResult)) dpoRecord = last(dpoResult);
});

after(async () => {
  await cluster?.destroy();
});

const transcript = () => `stdout:\n${demo.stdout}\nstderr:\n${demo.stderr}`;
const DPO_ACT = "== act 2 (DPO): what was learned";
/** What the demo printed for act 1 (SFT), and for act 2 (DPO). */
const act1 = () => demo.stdout.slice(0, demo.stdout.indexOf(DPO_ACT));
const act2 = () => demo.stdout.slice(demo.stdout.indexOf(DPO_ACT));

test("the demo script trains DEMO_STEPS steps of the bundled job on a local cluster, then takes it down", () => {
  assert.equal(demo.code, 0, transcript());
  assert.match(
    demo.stdout,
    /ringtune cluster up: NATS at nats:\/\/127\.0\.0\.1:\d+, a coordinator \(and a standby\) and 2 worker/,
  );
  assert.equal(record.status, "completed");
  assert.equal(record.steps, STEPS);
  assert.equal(record.output, output);
  assert.deepEqual([...cluster.pids().keys()], [], "cluster-down removed every pid file");
  assert.deepEqual(cluster.leftovers(), [], "no process of the demo's cluster is left running");
  if (statusBefore !== undefined) assert.equal(repoStatus(), statusBefore, "the demo wrote into the repository");
});

test("the demo prints, per held-out task_type, exact match and JSON validity before and after as percentages", () => {
  assert.ok(demo.stdout.includes(DPO_ACT), `no '${DPO_ACT}' in\n${transcript()}`);
  const heldout = promptsPerTask(readFileSync(HELDOUT, "utf8"));
  const rows = parseEvalTable(act1());
  assertRowsCoverHeldout(rows, heldout);
  assertTableMatchesRecord(rows, record.generation_eval);
  const dpoRows = parseEvalTable(act2());
  assertRowsCoverHeldout(dpoRows, heldout);
  assertTableMatchesRecord(dpoRows, dpoRecord.generation_eval);
});

test("act 2 trains DEMO_DPO_STEPS preference steps on act 1's final model, into DEMO_OUTPUT/dpo", () => {
  assert.equal(dpoRecord?.status, "completed", transcript());
  assert.equal(dpoRecord.steps, DPO_STEPS);
  assert.equal(dpoRecord.output, path.join(output, "dpo"));
  // Act 2 starts from act 1's model: scored before its training, it answers as act 1's model did after.
  type Ev = { before: { overall: unknown }; after: { overall: unknown } };
  assert.deepEqual((dpoRecord.generation_eval as Ev).before.overall, (record.generation_eval as Ev).after.overall);
  const lines = readFileSync(path.join(output, "dpo", "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step?: number; event?: string; loss?: number; pairs?: number; accuracy?: number });
  assert.ok(
    lines.some((m) => m.event === "reference_logps"),
    "full DPO computes the reference's log-probabilities first",
  );
  const steps = lines.filter((m) => m.loss !== undefined);
  assert.deepEqual(
    steps.map((m) => m.step),
    [1, 2],
  );
  for (const m of steps) {
    assert.ok(m.pairs! > 0, `step ${m.step}: ${m.pairs} pairs`);
    assert.equal(typeof m.accuracy, "number", `step ${m.step} logs the preference accuracy`);
  }
  assert.ok(existsSync(path.join(output, "dpo", "final", "model.safetensors")));
  // and says which held-out answers it changed against act 1's
  assert.match(act2(), /^held-out answers this stage changed: \d+ now right, \d+ now wrong \(of 100\)$/m);
});

test("the demo's table check fails on a broken table", () => {
  const table = demo.stdout;
  const heldout = promptsPerTask(readFileSync(HELDOUT, "utf8"));
  const check = (text: string) => assertRowsCoverHeldout(parseEvalTable(text), heldout);
  check(table); // the real one passes
  const rows: EvalTableRow[] = parseEvalTable(table);
  const person = rows.find((r) => r.task === "extract/person")!;
  const line = table.split("\n").find((l) => l.startsWith("extract/person"))!;
  assert.throws(() => check(table.replace(line + "\n", "")), /held-out/, "a task's row missing");
  assert.throws(() => check(table.replace(line, line.replace(/\d+\.\d%/, "-"))), /not a percentage/, "a score missing");
  assert.throws(
    () => check(table.replace(line, line.replace(` ${person.prompts} `, ` ${person.prompts + 1} `))),
    /held-out/,
    "a wrong prompt count",
  );
  assert.throws(() => check(table.replace("EXACT AFTER", "EXACT_AFTER")), /header/, "a renamed column");
  assert.throws(() => assertTableMatchesRecord(rows.slice(1), record.generation_eval), /a table row per task/);
});

test("the outputs the demo names exist: a Hugging Face model folder in final/ and metrics.jsonl", () => {
  const named = /^outputs: (\S+) \(metrics per step: (\S+)\)$/m.exec(demo.stdout);
  assert.ok(named, `no 'outputs:' line in\n${transcript()}`);
  assert.equal(named[1], output);
  for (const f of ["final/config.json", "final/model.safetensors"])
    assert.ok(existsSync(path.join(output, f)), `${f} is missing in ${output}`);
  const metrics = readFileSync(named[2]!, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; loss?: number });
  assert.equal(Math.max(...metrics.map((m) => m.step)), STEPS);
});

test("the demo ends by asking the last act's served model a held-out chat through the chat API: the eval's answer", () => {
  const served = /^ {3}served answer: (.*)$/m.exec(demo.stdout);
  const evals = /^ {3}eval's answer: (.*)$/m.exec(demo.stdout);
  assert.ok(served && evals, `no served and eval answers in\n${transcript()}`);
  assert.equal(served[1], evals[1]);
  const first = JSON.parse(readFileSync(path.join(output, "dpo", "generation_eval.jsonl"), "utf8").split("\n")[0]!) as {
    answer: string;
  };
  // printed as it is, or quoted as JSON when it holds a line break or a tab
  assert.equal(evals[1], /[\n\r\t]/.test(first.answer) ? JSON.stringify(first.answer) : first.answer);
  assert.match(demo.stdout, /POST http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
});

test("DEMO_STEPS steps of the demo job lower the loss well below a random model's", () => {
  const losses = readFileSync(path.join(output, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss!);
  const first = losses[0]!;
  const last = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
  assert.ok(first > 4.5, `first loss ${first}, not about ln(264) as from a random init`);
  assert.ok(last < first - 1.5, `the loss went only ${first} -> ${last} in ${STEPS} steps`);
  if (record.val_loss !== undefined) assert.ok(record.val_loss < first - 1.5, `val loss ${record.val_loss}`);
});

test("a previous demo's outputs are moved aside whole to a timestamped folder, and the demo says where", () => {
  const moved = /^== the previous demo's outputs in (\S+) were moved to (\S+)$/m.exec(demo.stdout);
  assert.ok(moved, `no 'moved to' line in\n${transcript()}`);
  assert.equal(moved[1], output);
  assert.match(moved[2]!, new RegExp(`^${output}-\\d{8}-\\d{6}$`));
  assert.ok(existsSync(path.join(moved[2]!, "checkpoints", "step-000800")), "the old checkpoint is kept aside");
  assert.match(readFileSync(path.join(moved[2]!, "ringtune_job.json"), "utf8"), /job-previous-demo/);
  assert.ok(!existsSync(path.join(output, "checkpoints", "step-000800")), "no old checkpoint among the new");
  assert.doesNotMatch(readFileSync(path.join(output, "ringtune_job.json"), "utf8"), /job-previous-demo/);
});

test("a wrong DEMO_STAGE, DEMO_DPO_STEPS, or act 2 alone without act 1's folder is refused before anything starts", async () => {
  const refusals: [Record<string, string>, RegExp][] = [
    [{ DEMO_STAGE: "ppo" }, /DEMO_STAGE must be all, sft or dpo, got 'ppo'/],
    [{ DEMO_DPO_STEPS: "0" }, /DEMO_DPO_STEPS must be a positive number, got '0'/],
    [{ DEMO_STAGE: "dpo", DEMO_JOB: "examples/demo/job.yaml" }, /DEMO_STAGE=dpo with DEMO_JOB needs DEMO_OUTPUT/],
  ];
  const runDir = path.join(cluster.dir, "refused-run");
  for (const [env, message] of refusals) {
    const r = await runProcess("bash", [DEMO], {
      env: { ...cluster.env, RINGTUNE_RUN_DIR: runDir, DEMO_OUTPUT: "", ...env },
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.ok(!existsSync(runDir), `${JSON.stringify(env)}: nothing was started`);
  }
});
