// The NATS users of deploy/nats/auth.conf, on a real nats-server: nobody gets in without credentials (a
// fake worker is refused at the door), a worker's credentials cannot command another worker, submit a job
// or write job state, a client's cannot command workers or write job state, and a job runs to completion
// on a 2-worker ring with every process under its own role while a fake worker tries to join.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { Coordinator } from "../../coordinator/main.js";
import {
  ClusterStatusReply,
  ClusterStatusRequest,
  decodeJobRecord,
  decodeJobReply,
  encodeJobRecord,
  decodeMessage,
  encodeJobMessage,
  encodeMessage,
  FINAL_STATUSES,
  JOBS_BUCKET,
  jobSubjects,
  JobSubmit,
  JobSubmitReply,
  type JobRecordBody,
} from "../../proto/mod.js";
import { followJob } from "../../proto/job_records.js";
import { Worker } from "../../worker/main.js";
import { trainingFixture } from "../helpers/cluster.js";
import type { NatsServer } from "../helpers/nats_server.js";
import { startNatsServerWithUsers, type NatsWithUsers, type Role } from "../helpers/nats_users.js";
import { runRingtune } from "../helpers/processes.js";

const quiet = pino({ level: process.env.RINGTUNE_TEST_LOG ?? "silent" });

let server: NatsServer;
let users: NatsWithUsers;
let coordinator: Coordinator;
const workers: Worker[] = [];
const connections: NatsConnection[] = [];

before(async () => {
  users = await startNatsServerWithUsers({
    maxPayload: 8 * 1024 * 1024,
  });
  server = users.server;
  coordinator = await Coordinator.start({ natsUrl: server.url, auth: users.as("coordinator"), log: quiet });
  for (const id of ["w0", "w1"])
    workers.push(await Worker.start({ natsUrl: server.url, auth: users.asWorker(id), id, log: quiet }));
});

after(async () => {
  for (const w of workers) await w.close().catch(() => {});
  await coordinator?.close().catch(() => {});
  await Promise.all(connections.map((nc) => nc.close().catch(() => {})));
  await server?.stop();
});

async function open(role: Role | { worker: string }): Promise<NatsConnection> {
  const creds = typeof role === "string" ? users.as(role) : users.asWorker(role.worker);
  const nc = await connect({ servers: server.url, ...creds });
  connections.push(nc);
  return nc;
}

/** Messages published on `subject` that reach a coordinator-role subscriber within a short wait. */
async function delivered(subject: string, publisher: NatsConnection, spySubject = subject): Promise<number> {
  const spy = await open("coordinator");
  let seen = 0;
  const sub = spy.subscribe(spySubject, {
    callback: () => {
      seen++;
    },
  });
  await spy.flush();
  publisher.publish(subject, new Uint8Array([1]));
  await publisher.flush().catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  sub.unsubscribe();
  return seen;
}

async function idleWorkers(nc: NatsConnection): Promise<string[]> {
  const r = await nc.request(jobSubjects.clusterStatus, encodeMessage(ClusterStatusRequest, {}), { timeout: 5000 });
  return decodeMessage(ClusterStatusReply, r.data)
    .workers.filter((w) => w.state === "idle")
    .map((w) => w.worker_id);
}

test("a connection without credentials, or with a wrong password, is refused by the server", async () => {
  await assert.rejects(connect({ servers: server.url, timeout: 5000 }), /Authorization Violation/i);
  await assert.rejects(
    connect({ servers: server.url, user: "worker-w0", pass: "guess", timeout: 5000 }),
    /Authorization Violation/i,
  );
});

test("ringtune commands refuse to run without credentials unless --insecure, which warns", async () => {
  // An empty run dir: no local cluster's credentials to fall back on.
  const env = {
    RINGTUNE_RUN_DIR: mkdtempSync(path.join(tmpdir(), "ringtune-noauth-")),
    NATS_USER: "",
    NATS_PASSWORD: "",
  };
  const none = await runRingtune(["cluster", "status", "--nats", server.url], { env });
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /no NATS credentials: .*--insecure/s);
  const insecure = await runRingtune(["cluster", "status", "--nats", server.url, "--insecure"], { env });
  assert.equal(insecure.code, 1);
  assert.match(insecure.stderr, /warning: connecting to NATS without authentication/);
  assert.match(insecure.stderr, /refused the credentials/);
  const client = await runRingtune(
    ["cluster", "status", "--json", "--nats", server.url, "--user", "client", "--password", users.passwords.client],
    { env },
  );
  assert.equal(client.code, 0, client.stderr);
  assert.ok(JSON.parse(client.stdout).workers.length >= 2);
});

test("only the coordinator's commands reach a worker; workers and clients cannot submit as one another or write job state", async () => {
  const worker = await open({ worker: "w1" });
  const client = await open("client");
  const coord = await open("coordinator");
  const command = jobSubjects.workerCommand("w0", "release");
  assert.equal(await delivered(command, coord), 1, "the spy must see what the coordinator's user sends");
  assert.equal(await delivered(command, worker), 0, "a worker's user commanded another worker");
  assert.equal(await delivered(command, client), 0, "a client's user commanded a worker");
  assert.equal(await delivered(jobSubjects.submit, worker), 0, "a worker's user submitted a job");
  const kvKey = `$KV.${JOBS_BUCKET}.job-forged`;
  assert.equal(await delivered(kvKey, worker), 0, "a worker's user wrote a job record");
  assert.equal(await delivered(kvKey, client), 0, "a client's user wrote a job record");
  // What each role needs still works: a client reads the cluster, a worker's registration was answered.
  assert.deepEqual((await idleWorkers(client)).sort(), ["w0", "w1"]);
});

test("a job completes on a 2-worker ring under per-role users while a fake worker without credentials is refused", async () => {
  const client = await open("client");
  const { dir, baseSpec } = trainingFixture();
  const submit = await client.request(
    jobSubjects.submit,
    encodeJobMessage(
      JobSubmit,
      { spec: { ...baseSpec, workers: 2, max_steps: 4, output: "out" }, base_dir: dir, source: "auth.yaml" },
      "json",
    ),
    { timeout: 20_000 },
  );
  const reply = decodeJobReply(JobSubmitReply, submit.data, "json");
  assert.ok(reply.ok, JSON.stringify(reply));
  const fake = Worker.start({ natsUrl: server.url, id: "fake", log: quiet });
  await assert.rejects(fake, /Authorization Violation/i);

  const kv = await new Kvm(client).open(JOBS_BUCKET);
  let record: JobRecordBody | undefined;
  const end = Date.now() + 240_000;
  while (Date.now() < end) {
    const e = await kv.get(reply.id!);
    record = e && e.operation === "PUT" ? decodeJobRecord(e.value) : undefined;
    if (record && FINAL_STATUSES.includes(record.status)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(record?.status, "completed", record?.message);
  assert.equal(record?.step, 4);
  assert.ok(!(await idleWorkers(client)).includes("fake"));
});

test("a client follows a job record through many large updates without creating a JetStream consumer", async () => {
  // `submit --wait` and `watch` follow a job on its record's subject: the client user may create no consumer.
  const writer = await new Kvm(await open("coordinator")).open(JOBS_BUCKET);
  const client = await open("client");
  const reader = await new Kvm(client).open(JOBS_BUCKET);
  await assert.rejects(reader.watch({ key: "any" }), /Permissions Violation/);
  const id = "job-follow-probe";
  const now = () => new Date().toISOString();
  const record = (step: number, status: JobRecordBody["status"]): JobRecordBody => ({
    ...{ id, status, spec: { padding: "x".repeat(64 * 1024) }, base_dir: "/", created_at: now(), updated_at: now() },
    ...{ step, total_steps: 200, train_loss: {}, output: "/", workers: [] },
  });
  await writer.put(id, encodeJobRecord(record(0, "running")));
  const seen: number[] = [];
  const followed = followJob(client, reader, id, (r) => seen.push(r.step));
  for (let step = 1; step < 200; step++) await writer.put(id, encodeJobRecord(record(step, "running")));
  await writer.put(id, encodeJobRecord(record(200, "completed")));
  const final = await followed;
  await writer.purge(id);
  assert.equal(final.step, 200);
  assert.ok(
    seen.every((s, i) => i === 0 || s >= seen[i - 1]!),
    `records shown out of order: ${seen.join(" ")}`,
  );
});
