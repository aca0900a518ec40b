// ringtune submit / watch / jobs / cancel / cluster status, run as processes against a real nats-server
// and a fake coordinator that speaks the job protocol.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { startFakeCoordinator, type FakeCoordinator } from "../helpers/fake_coordinator.js";
import { deadPort, lastLine, runCli } from "../helpers/run_cli.js";

const GOOD_SPEC =
  "model: {init: {config: models/tiny.json}}\ntokenizer: byte\ndata: [{path: data/train.jsonl}]\nmax_steps: 5\n";

describe("job commands against a fake coordinator", () => {
  let server: NatsServer;
  let coordinator: FakeCoordinator;
  let dir: string;
  let spec: string;
  const nats = () => ["--nats", server.url];

  before(async () => {
    server = await startNatsServer();
    coordinator = await startFakeCoordinator(server.url, { steps: 5, stepMs: 30 });
    dir = mkdtempSync(path.join(tmpdir(), "ringtune-cli-"));
    spec = path.join(dir, "job.yaml");
    writeFileSync(spec, GOOD_SPEC);
  });
  after(async () => {
    await coordinator.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("submit --wait --json ends with the final record as the last stdout line and exits 0", async () => {
    const r = await runCli(["submit", spec, "--wait", "--json", ...nats()]);
    assert.equal(r.code, 0, r.stderr);
    const record = JSON.parse(lastLine(r.stdout));
    assert.equal(record.status, "completed");
    assert.match(record.id, /^job-\d+$/);
    assert.equal(record.steps, 5);
    assert.equal(record.train_loss.first, 3);
    assert.equal(record.train_loss.last, 3 / 5);
    assert.equal(record.val_loss, 0.9);
    assert.equal(record.output, `/tmp/runs/${record.id}`);
    assert.ok(record.generation_eval, "the rest of the record is kept");
    // stdout is only JSON: every line parses.
    for (const line of r.stdout.trim().split("\n")) JSON.parse(line);
    assert.match(r.stderr, /completed: 5 steps, train loss 3\.0000 -> 0\.6000, val loss 0\.9000/);
  });

  test("submit sends the spec as written, with the file's folder as base_dir", async () => {
    const before = coordinator.submitted.length;
    const r = await runCli(["submit", spec, ...nats()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^job-\d+$/);
    const sent = coordinator.submitted[before]!;
    assert.equal(sent.base_dir, dir);
    assert.equal(sent.source, spec);
    assert.deepEqual(
      sent.spec.data,
      [{ path: "data/train.jsonl" }],
      "paths stay relative: the coordinator resolves them",
    );
  });

  test("submit --wait exits 1 when the job fails, and says why", async () => {
    const failing = await startFakeCoordinator(server.url, { steps: 2, stepMs: 10, finalStatus: "failed" });
    await coordinator.stop(); // only the failing one answers now
    try {
      const r = await runCli(["submit", spec, "--wait", ...nats()]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /failed at step 2\/2: worker-1 lost/);
    } finally {
      await failing.stop();
      coordinator = await startFakeCoordinator(server.url, { steps: 5, stepMs: 30 });
    }
  });

  test("watch follows a submitted job to its end", async () => {
    const id = (await runCli(["submit", spec, ...nats()])).stdout.trim();
    const r = await runCli(["watch", id, "--json", ...nats()]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(lastLine(r.stdout)).id, id);
    assert.match(r.stderr, new RegExp(`job ${id} completed`));
  });

  test("watch of an unknown job says so instead of waiting", async () => {
    const r = await runCli(["watch", "job-999", ...nats()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no job 'job-999'/);
  });

  test("jobs lists every job with status, step, total, loss and output", async () => {
    await runCli(["submit", spec, "--wait", ...nats()]);
    const r = await runCli(["jobs", ...nats()]);
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trim().split("\n");
    assert.match(header!, /^ID\s+STATUS\s+STEP\s+TOTAL\s+LOSS\s+OUTPUT$/);
    assert.ok(
      rows.some((l) => /^job-\d+\s+completed\s+5\s+5\s+0\.6000\s+\/tmp\/runs\/job-\d+$/.test(l)),
      r.stdout,
    );
    const json = await runCli(["jobs", "--json", ...nats()]);
    const records = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(records.length, rows.length);
    assert.ok(records.every((x) => typeof x.steps === "number"));
  });

  test("cancel stops a running job: watch then exits 1 with status canceled", async () => {
    const slow = await startFakeCoordinator(server.url, { steps: 200, stepMs: 50 });
    await coordinator.stop();
    try {
      const id = (await runCli(["submit", spec, ...nats()])).stdout.trim();
      const c = await runCli(["cancel", id, ...nats()]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, new RegExp(`cancel requested for job ${id}`));
      const w = await runCli(["watch", id, "--json", ...nats()]);
      assert.equal(w.code, 1);
      assert.equal(JSON.parse(lastLine(w.stdout)).status, "canceled");
      const unknown = await runCli(["cancel", "job-999", ...nats()]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /cannot cancel job-999: no job 'job-999'/);
    } finally {
      await slow.stop();
      coordinator = await startFakeCoordinator(server.url, { steps: 5, stepMs: 30 });
    }
  });

  test("cluster status shows each worker's device, state and job", async () => {
    const r = await runCli(["cluster", "status", ...nats()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /worker-0\s+node-a\s+cpu x86_64\s+4\s+8 GiB\s+busy\s+job-1/);
    assert.match(r.stdout, /worker-1\s+node-a\s+cpu x86_64\s+4\s+8 GiB\s+idle\s+-/);
    assert.match(r.stdout, /jobs running: job-1/);
    const json = JSON.parse((await runCli(["cluster", "status", "--json", ...nats()])).stdout);
    assert.equal(json.workers.length, 2);
  });

  test("NATS_URL is used when --nats is not given", async () => {
    const r = await runCli(["cluster", "status", "--json"], { NATS_URL: server.url });
    assert.equal(r.code, 0, r.stderr);
  });

  test("a job the coordinator refuses is reported with its reason (JSON job files too)", async () => {
    const refused = path.join(dir, "refused.json");
    writeFileSync(
      refused,
      JSON.stringify({ model: { init: { config: "m.json" } }, data: [{ path: "a.jsonl" }], workers: 3 }),
    );
    const r = await runCli(["submit", refused, ...nats()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the coordinator refused .*refused\.json:\n {2}workers: 3 wanted, 2 registered/);
  });
});

describe("job commands without a cluster", () => {
  test("a bad spec fails here, naming the key, before anything is sent", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ringtune-cli-"));
    try {
      const bad = path.join(dir, "bad.yaml");
      writeFileSync(bad, GOOD_SPEC + "learning_rate: 0.1\n");
      const r = await runCli(["submit", bad, "--nats", `nats://127.0.0.1:${await deadPort()}`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /unknown key 'learning_rate'/);
      assert.doesNotMatch(r.stderr, /NATS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no NATS server: the error says how to start one", async () => {
    const url = `nats://127.0.0.1:${await deadPort()}`;
    const r = await runCli(["jobs"], { NATS_URL: url });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`no NATS server at ${url}: start a cluster with 'make cluster-up' or set NATS_URL`),
    );
  });

  test("a NATS server without a coordinator: submit, cancel and cluster status say no coordinator answered; jobs names the missing bucket", async () => {
    const server = await startNatsServer();
    const dir = mkdtempSync(path.join(tmpdir(), "ringtune-cli-"));
    try {
      const spec = path.join(dir, "job.yaml");
      writeFileSync(spec, GOOD_SPEC);
      const r = await runCli(["submit", spec, "--nats", server.url]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no coordinator answered on ringtune\.job\.submit: is the cluster up\?/);
      const c = await runCli(["cancel", "job-1", "--nats", server.url]);
      assert.match(c.stderr, /no coordinator answered on ringtune\.job\.cancel/);
      const s = await runCli(["cluster", "status", "--nats", server.url]);
      assert.match(s.stderr, /no coordinator answered on ringtune\.cluster\.status/);
      const j = await runCli(["jobs", "--nats", server.url]);
      assert.equal(j.code, 1);
      assert.match(j.stderr, /no job bucket 'ringtune-jobs'/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
