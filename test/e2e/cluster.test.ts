// The cluster as a user runs it: `make cluster-up`'s script (nats-server with JetStream, `ringtune
// coordinator`, two `ringtune worker` processes), then the `ringtune` command for everything else, then
// `make cluster-down`'s script. State, data cache and job outputs all live in a temp folder.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  assertRowsCoverHeldout,
  assertTableMatchesRecord,
  parseEvalTable,
  promptsPerTask,
} from "../helpers/eval_table.js";
import { LocalCluster } from "../helpers/local_cluster.js";
import { pngSize } from "../helpers/png_size.js";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus_text.js";
import { PLOT_HEIGHT, PLOT_WIDTH } from "../../plot/loss_svg.js";
import { REPO_ROOT, isAlive, runProcess, waitUntil } from "../helpers/processes.js";
import { repoStatus } from "../helpers/repo_snapshot.js";
import { writeTinyJob, writeTinyJobData } from "../helpers/tiny_job.js";

interface JobRecord {
  id: string;
  status: string;
  /** `ringtune ... --json` names the step count `steps` */
  steps: number;
  total_steps: number;
  output: string;
  generation_eval?: unknown;
}

// Enough steps of the tiny model for valid JSON answers after training (a few seconds on two CPU workers).
const SMALL_STEPS = 150;

const lastJson = (stdout: string) => JSON.parse(stdout.trimEnd().split("\n").pop()!) as JobRecord;

let cluster: LocalCluster;
let jobDir: string;
/** name -> pid of what cluster-up started, read while it runs */
let started: Map<string, number>;
/** what cluster-up printed */
let upStdout: string;
let statusBefore: string | undefined;

before(async () => {
  statusBefore = repoStatus();
  cluster = await LocalCluster.prepare(2);
  jobDir = path.join(cluster.dir, "job");
  writeTinyJobData(jobDir);
  const up = await cluster.up();
  assert.equal(up.code, 0, `cluster-up failed:\n${up.stdout}\n${up.stderr}`);
  started = cluster.pids();
  upStdout = up.stdout;
});

after(async () => {
  await cluster?.destroy();
});

async function jobsJson(): Promise<JobRecord[]> {
  const r = await cluster.cli(["jobs", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JobRecord);
}

test("cluster status shows the two workers cluster-up started", async () => {
  assert.deepEqual([...started.keys()].sort(), ["coordinator", "coordinator-standby", "nats", "worker-0", "worker-1"]);
  const r = await cluster.cli(["cluster", "status"]);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.split("\n").filter((l) => /^worker-\d/.test(l));
  assert.deepEqual(
    rows.map((l) => l.split(/\s+/)[0]),
    ["worker-0", "worker-1"],
    r.stdout,
  );
  for (const l of rows) assert.match(l, /\scpu\s.*\sidle\s/, l);
});

/** The JSON log lines of a process cluster-up started (its log file, from the run folder). */
function jsonLog(name: string): Record<string, unknown>[] {
  return readFileSync(path.join(cluster.runDir, "logs", `${name}.log`), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test("cluster-up shows the dashboard; coordinator and workers serve /metrics and log JSON naming themselves", async () => {
  const url = new RegExp(`dashboard: (http://127\\.0\\.0\\.1:${cluster.env.DASHBOARD_PORT}/)`).exec(upStdout)?.[1];
  assert.ok(url, upStdout);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>ringtune dashboard<\/title>/);
  const chartLibrary = await fetch(new URL("vendor/uPlot.iife.min.js", url));
  assert.equal(chartLibrary.status, 200, "the chart library is served from node_modules");
  const coordinator = parsePrometheusText(await (await fetch(new URL("metrics", url))).text());
  assert.equal(sampleValue(coordinator, "ringtune_workers", { state: "idle" }), 2);
  for (const worker of ["worker-0", "worker-1"]) {
    const listening = jsonLog(worker).find((l) => l.msg === "http server listening");
    assert.ok(listening, `${worker} logged its /metrics port`);
    assert.equal(listening.worker, worker);
    const text = await (await fetch(`http://127.0.0.1:${listening.port as number}/metrics`)).text();
    assert.equal(sampleValue(parsePrometheusText(text), "ringtune_worker_state", { worker, state: "idle" }), 1);
  }
  assert.ok(jsonLog("coordinator").some((l) => l.msg === "coordinator ready" && l.name === "coordinator"));
});

test("submit --wait runs a small job with generation_eval to the end; its table equals the job record", async () => {
  const file = writeTinyJob(jobDir, "small.yaml", {
    maxSteps: SMALL_STEPS,
    output: "../out/small",
    generationEval: true,
  });
  const r = await cluster.cli(["submit", file, "--wait", "--json"], 300_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const fromSubmit = lastJson(r.stdout);
  assert.equal(fromSubmit.status, "completed");
  assert.equal(fromSubmit.steps, SMALL_STEPS);
  assert.equal(fromSubmit.output, path.join(cluster.dir, "out/small"));
  assert.ok(existsSync(path.join(fromSubmit.output, "final/model.safetensors")));
  assert.deepEqual(pngSize(path.join(fromSubmit.output, "loss.png")), { width: PLOT_WIDTH, height: PLOT_HEIGHT });
  assert.match(r.stderr, new RegExp(`submitted .*small\\.yaml as job ${fromSubmit.id}`));

  // The table a person reads (as `make demo` prints it from the submit --json record) ...
  const resultFile = path.join(cluster.dir, "small_result.json");
  writeFileSync(resultFile, r.stdout);
  const summary = await runProcess(process.execPath, [path.join(REPO_ROOT, "dist/cli/summarize_job.js"), resultFile]);
  assert.equal(summary.code, 0, summary.stderr);
  const rows = parseEvalTable(summary.stdout);
  assertRowsCoverHeldout(rows, promptsPerTask(readFileSync(path.join(jobDir, "heldout.jsonl"), "utf8")));
  // ... holds the numbers of the record the coordinator keeps (read back separately with `jobs`).
  const stored = (await jobsJson()).find((j) => j.id === fromSubmit.id);
  assert.ok(stored, `job ${fromSubmit.id} is not listed by 'jobs --json'`);
  assert.deepEqual(stored.generation_eval, fromSubmit.generation_eval);
  assertTableMatchesRecord(rows, stored.generation_eval);
  // Before and after differ (so the comparison above could tell them apart): the job learned the format.
  const all = rows.find((row) => row.task === "all")!;
  assert.ok(all.jsonAfter > all.jsonBefore, `JSON validity ${all.jsonBefore}% -> ${all.jsonAfter}%`);

  // `jobs` lists it for people, `watch` of a finished job ends at once with its status.
  const jobs = await cluster.cli(["jobs"]);
  assert.equal(jobs.code, 0, jobs.stderr);
  const line = jobs.stdout.split("\n").find((l) => l.startsWith(fromSubmit.id));
  assert.ok(line, jobs.stdout);
  assert.deepEqual(line.split(/\s+/).slice(1, 4), ["completed", String(SMALL_STEPS), String(SMALL_STEPS)]);
  const watch = await cluster.cli(["watch", fromSubmit.id, "--json"]);
  assert.equal(watch.code, 0, watch.stderr);
  assert.equal(lastJson(watch.stdout).status, "completed");
});

test("submit without --wait, then cancel: the job ends canceled and watch exits 1", async () => {
  const file = writeTinyJob(jobDir, "long.yaml", { maxSteps: 100_000, output: "../out/long" });
  const r = await cluster.cli(["submit", file]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^\S+$/);
  await waitUntil(
    async () => (await jobsJson()).some((j) => j.id === id && j.status === "running" && j.steps > 0),
    `job ${id} to train`,
    180_000,
  );
  const cancel = await cluster.cli(["cancel", id]);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.match(cancel.stdout, new RegExp(`cancel requested for job ${id}`));
  const watch = await cluster.cli(["watch", id, "--json"], 120_000);
  assert.equal(watch.code, 1, `${watch.stdout}\n${watch.stderr}`);
  const final = lastJson(watch.stdout);
  assert.equal(final.status, "canceled");
  assert.ok(final.steps < final.total_steps);
  assert.equal((await jobsJson()).find((j) => j.id === id)?.status, "canceled");
});

test("cluster-down stops every process cluster-up started and leaves none of the cluster behind", async () => {
  for (const [name, pid] of started) assert.ok(isAlive(pid), `${name} (pid ${pid}) runs before cluster-down`);
  const down = await cluster.down();
  assert.equal(down.code, 0, down.stderr);
  for (const [name, pid] of started) assert.ok(!isAlive(pid), `${name} (pid ${pid}) still runs after cluster-down`);
  assert.deepEqual([...cluster.pids().keys()], [], "pid files removed");
  assert.deepEqual(cluster.leftovers(), []);
  const status = await cluster.cli(["cluster", "status"]);
  assert.notEqual(status.code, 0, "nothing answers after cluster-down");
  if (statusBefore !== undefined) assert.equal(repoStatus(), statusBefore, "the cluster wrote into the repository");
});
