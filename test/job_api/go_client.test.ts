// A client that is not ringtune's (test/clients/go: the NATS Go client and encoding/json, nothing of
// ringtune) submits a job, follows it in KV to completion and cancels another. What it sees equals what
// `ringtune submit --wait --json` reports for the same spec, and what `ringtune watch --json` reports for
// the very job it submitted.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { buildGoClient, goUnavailable, runGoClient } from "../helpers/go_client.js";
import { runCli } from "../helpers/run_cli.js";

const skip = goUnavailable();
let cluster: TestCluster;
let goClient: string;
let dir: string;
let spec: Record<string, unknown>;

before(async () => {
  if (skip) return;
  const [binary, started] = await Promise.all([buildGoClient(), TestCluster.start(1)]);
  goClient = binary;
  cluster = started;
  const fixture = trainingFixture();
  dir = fixture.dir;
  spec = { ...fixture.baseSpec, workers: 1, max_steps: 6, eval_every: 3 };
});

after(async () => {
  await cluster?.stop();
});

const lastJson = (stdout: string) => JSON.parse(stdout.trimEnd().split("\n").pop()!) as Record<string, unknown>;

async function go(...args: string[]) {
  return runGoClient(goClient, cluster.server.url, args);
}

async function ringtune(...args: string[]) {
  const r = await runCli(args, { NATS_URL: cluster.server.url }, 300_000);
  return { ...r, record: r.code === null ? undefined : lastJson(r.stdout) };
}

/** A job record as `--json` prints it, from the record as stored in KV (`step` is named `steps`). */
function asCliJson(stored: Record<string, unknown>): Record<string, unknown> {
  const { v: _v, step, val_loss, ...rest } = stored;
  return { ...rest, steps: step, val_loss: val_loss ?? null };
}

/** What two runs of the same spec must share: everything the training decides. */
function outcome(r: Record<string, unknown>) {
  const { status, steps, total_steps, train_loss, val_loss, val_loss_by_task, generation_eval } = r;
  return { status, steps, total_steps, train_loss, val_loss, val_loss_by_task, generation_eval };
}

function goSubmit(name: string, jobSpec: Record<string, unknown>) {
  const request = path.join(dir, `${name}.json`);
  writeFileSync(request, JSON.stringify({ spec: jobSpec, base_dir: dir }));
  return go("submit", request);
}

test(
  "the Go client runs a job to completion; it equals ringtune's report of it and of the same spec",
  { skip, timeout: 600_000 },
  async () => {
    const cliFile = path.join(dir, "cli_job.json");
    writeFileSync(cliFile, JSON.stringify({ ...spec, output: "out-cli" }));
    const cli = await ringtune("submit", cliFile, "--wait", "--json");
    assert.equal(cli.code, 0, cli.stderr);

    const submitted = await goSubmit("go_job", { ...spec, output: "out-go" });
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    assert.match(id, /^job-/);
    const followed = await go("follow", id);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stderr, new RegExp(`${id} completed at step 6`));
    const goRecord = JSON.parse(followed.stdout) as Record<string, unknown>;
    assert.equal(goRecord.status, "completed");
    assert.equal(goRecord.output, path.join(dir, "out-go"));

    const watched = await ringtune("watch", id, "--json");
    assert.equal(watched.code, 0, watched.stderr);
    assert.deepEqual(asCliJson(goRecord), watched.record, "the Go client and `ringtune watch` see the same record");
    assert.deepEqual(outcome(asCliJson(goRecord)), outcome(cli.record!), "the same spec trains the same way");
    assert.equal(typeof goRecord.val_loss, "number", "the job was evaluated");

    const got = await go("get", id);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), (({ v: _v, ...r }) => r)(goRecord));
  },
);

test("the Go client cancels a job and follows it to 'canceled'", { skip, timeout: 600_000 }, async () => {
  const submitted = await goSubmit("go_long", { ...spec, max_steps: 100_000, output: "out-long" });
  assert.equal(submitted.code, 0, submitted.stderr);
  const id = submitted.stdout.trim();
  await cluster.waitFor(async () => (await cluster.record(id))?.status === "running", "the long job to run");
  const canceled = await go("cancel", id);
  assert.equal(canceled.code, 0, canceled.stderr);
  const followed = await go("follow", id);
  assert.equal(followed.code, 0, followed.stderr);
  const record = JSON.parse(followed.stdout) as Record<string, unknown>;
  assert.equal(record.status, "canceled");
  assert.ok((record.step as number) < 100_000);
  const watched = await ringtune("watch", id, "--json");
  assert.equal(watched.code, 1, "watch exits 1 for a job that did not complete");
  assert.deepEqual(asCliJson(record), watched.record);

  const again = await go("cancel", id);
  assert.equal(again.code, 2);
  assert.deepEqual(JSON.parse(again.stderr), {
    code: "job_final",
    message: `job ${id} is already canceled`,
    key: "id",
  });
});

test("the Go client is refused with the error object for an unknown job and a bad spec", { skip }, async () => {
  const unknown = await go("cancel", "job-nope");
  assert.equal(unknown.code, 2);
  assert.deepEqual(JSON.parse(unknown.stderr), { code: "not_found", message: "no job 'job-nope'", key: "id" });
  const bad = await goSubmit("go_bad", { ...spec, learning_rate: 1 });
  assert.equal(bad.code, 2);
  assert.deepEqual(JSON.parse(bad.stderr), {
    code: "invalid_spec",
    message: "job spec: (top level): unknown key 'learning_rate'",
    key: "learning_rate",
  });
});
