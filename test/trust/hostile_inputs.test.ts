// Inputs swapped after intake, against a cluster of real processes whose data and output root is the job's
// folder: while one job holds the only worker, queued jobs have their checked files replaced by a link out
// of the root (a data file, a data file's folder, a link to /dev/zero), a FIFO (as a data file, as model
// weights) or a socket. When each runs, its reads walk from the root (files/walk_beneath.ts): it fails at
// once naming the file, nothing outside is read, a refusal is the same whether the outside target exists,
// and the cluster still serves.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { jobSubjects } from "../../proto/mod.js";
import { trainingFixture } from "../helpers/cluster.js";
import { hostileClusterForFile } from "../helpers/hostile_cluster.js";
import { rawRequest } from "../helpers/json_requests.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const { dir, baseSpec } = trainingFixture();
const outside = mkdtempSync(path.join(tmpdir(), "ringtune-outside-"));
after(() => {
  rmSync(outside, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});
const SECRET = "s3cr3t-outside-line";
const secretLine = JSON.stringify({
  messages: [
    { role: "user", content: SECRET },
    { role: "assistant", content: "x" },
  ],
});
writeFileSync(path.join(outside, "private.jsonl"), secretLine + "\n");

const cluster = hostileClusterForFile({ root: dir });

const spec = (overrides: Record<string, unknown>) => ({ ...baseSpec, max_steps: 2, ...overrides });

interface Job {
  status: string;
  message?: string;
  step?: number;
}

async function ask(subject: string, body: unknown): Promise<Record<string, unknown>> {
  return (await rawRequest(await cluster.open("client"), subject, body)).json as Record<string, unknown>;
}

async function submit(overrides: Record<string, unknown>): Promise<string> {
  const reply = await ask(jobSubjects.submit, { spec: spec(overrides), base_dir: dir });
  assert.equal(reply.ok, true, JSON.stringify(reply).slice(0, 500));
  return reply.id as string;
}

async function job(id: string): Promise<Job> {
  return (await ask(jobSubjects.get, { id })).job as Job;
}

async function until(id: string, done: (j: Job) => boolean, what: string, ms = 60_000): Promise<Job> {
  const deadline = Date.now() + ms;
  for (;;) {
    const j = await job(id);
    if (done(j)) return j;
    assert.ok(Date.now() < deadline, `${what}: still ${j.status} (${j.message ?? ""})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ended = (j: Job) => ["completed", "failed", "canceled"].includes(j.status);

function copyJsonl(name: string): void {
  copyFileSync(path.join(dir, "train.jsonl"), path.join(dir, name));
}

test("inputs swapped after intake for links out, FIFOs, a socket or /dev/zero fail their jobs at once, naming the file", async () => {
  // the only worker is held by a long job while the others wait in the queue with their inputs checked
  const holder = await submit({ max_steps: 100_000, output: "holder" });
  await until(holder, (j) => (j.step ?? 0) >= 1, "the holding job training");

  copyJsonl("swapped.jsonl");
  copyJsonl("swapped-missing.jsonl");
  copyJsonl("fifo.jsonl");
  copyJsonl("zero.jsonl");
  copyJsonl("socket.jsonl");
  mkdirSync(path.join(dir, "sub"));
  copyJsonl("sub/train.jsonl");
  mkdirSync(path.join(outside, "sub"));
  writeFileSync(path.join(outside, "sub", "train.jsonl"), secretLine + "\n");
  const model = path.join(dir, "fifo-model");
  mkdirSync(model);
  writeFileSync(path.join(model, "config.json"), JSON.stringify(TINY_BYTE_LLAMA));
  writeFileSync(path.join(model, "model.safetensors"), "");

  const cases: { id: string; expect: RegExp }[] = [];
  const queue = async (data: string, expect: RegExp, extra: Record<string, unknown> = {}) =>
    cases.push({ id: await submit({ data: [{ path: data }], output: `out-${cases.length}`, ...extra }), expect });
  await queue(
    "swapped.jsonl",
    /^data\[0\]\.path: \S*swapped\.jsonl: leads out of the input roots through the symbolic link swapped\.jsonl/,
  );
  await queue("swapped-missing.jsonl", /^data\[0\]\.path: \S*swapped-missing\.jsonl: leads out of the input roots/);
  await queue(
    "sub/train.jsonl",
    /^data\[0\]\.path: \S*sub\/train\.jsonl: leads out of the input roots through the symbolic link sub /,
  );
  await queue("fifo.jsonl", /^data\[0\]\.path: \S*fifo\.jsonl: is a FIFO; inputs must be regular files/);
  await queue("zero.jsonl", /^data\[0\]\.path: \S*zero\.jsonl: leads out of the input roots/);
  await queue(
    "socket.jsonl",
    /^data\[0\]\.path: \S*socket\.jsonl: socket\.jsonl is a socket; inputs must be regular files/,
  );
  await queue(
    "train.jsonl",
    /model\.path: \S*fifo-model\/model\.safetensors: is a FIFO; inputs must be regular files/,
    {
      model: { path: "fifo-model" },
    },
  );
  for (const c of cases) assert.ok(["queued", "waiting"].includes((await job(c.id)).status));

  // the swaps, after every one of those was checked and accepted
  const swap = (name: string, make: (p: string) => void) => {
    rmSync(path.join(dir, name));
    make(path.join(dir, name));
  };
  swap("swapped.jsonl", (p) => symlinkSync(path.join(outside, "private.jsonl"), p));
  swap("swapped-missing.jsonl", (p) => symlinkSync(path.join(outside, "no-such.jsonl"), p));
  renameSync(path.join(dir, "sub"), path.join(dir, "sub-moved"));
  symlinkSync(path.join(outside, "sub"), path.join(dir, "sub"));
  swap("fifo.jsonl", (p) => execFileSync("mkfifo", [p]));
  swap("zero.jsonl", (p) => symlinkSync("/dev/zero", p));
  swap("fifo-model/model.safetensors", (p) => execFileSync("mkfifo", [p]));
  rmSync(path.join(dir, "socket.jsonl"));
  const server = net.createServer().listen(path.join(dir, "socket.jsonl"));
  await once(server, "listening");
  const outsideBefore = readdirSync(outside, { recursive: true }).sort();

  try {
    assert.equal((await ask(jobSubjects.cancel, { id: holder })).ok, true);
    const started = Date.now();
    const done: Job[] = [];
    for (const c of cases) {
      const j = await until(c.id, ended, `job ${c.id} (${String(c.expect)})`, 30_000);
      done.push(j);
      assert.equal(j.status, "failed", `${String(c.expect)}: ${j.status} ${j.message ?? ""}`);
      assert.match(j.message ?? "", c.expect);
      assert.ok(!(j.message ?? "").includes(SECRET), j.message);
      assert.ok(!(j.message ?? "").includes(outside), `the refusal names nothing outside: ${j.message}`);
    }
    // a link out is refused alike whether its target exists or not
    assert.equal(
      done[0]!.message!.replaceAll("swapped.jsonl", "X"),
      done[1]!.message!.replaceAll("swapped-missing.jsonl", "X"),
    );
    assert.ok(Date.now() - started < 30_000, "no job waited on a FIFO");
    assert.deepEqual(readdirSync(outside, { recursive: true }).sort(), outsideBefore, "nothing made outside");
  } finally {
    server.close();
  }
  // the worker whose assign failed is scheduled again from its next heartbeat
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await cluster.stillServing();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
});
