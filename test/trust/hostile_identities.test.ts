// Each NATS user of a `make cluster-up` cluster (coordinator, client, serve, one per worker) tried against
// every subject family it must not reach, on a real nats-server with the cluster's rendered users and the
// coordinator and two workers as processes: no worker takes, answers or forges another's traffic, no one
// reads another's replies, clients create no JetStream consumers, and the cluster runs a job afterwards while
// worker w1's user answers the ring's address requests with a listener of its own (answers that do not prove
// the ring's secret are ignored).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  decodeMessage,
  encodeMessage,
  JOBS_BUCKET,
  jobSubjects,
  PeerAddress,
  subjects,
  WorkerHeartbeat,
  WorkerRegister,
  WorkerRegisterReply,
} from "../../proto/mod.js";
import { trainingFixture } from "../helpers/cluster.js";
import { hostileClusterForFile } from "../helpers/hostile_cluster.js";
import { rawRequest } from "../helpers/json_requests.js";

const cluster = hostileClusterForFile({ workerIds: ["w0", "w1"] });
const WAIT_MS = 300;

type Who = "coordinator" | "client" | "serve" | "w0" | "w1";
async function as(who: Who): Promise<NatsConnection> {
  if (who === "w0" || who === "w1") {
    const nc = await connect({ servers: cluster.url, ...cluster.users.asWorker(who) });
    return nc;
  }
  return cluster.open(who);
}

/** A payload no real process sends, so a spy counts only the probe's own message (workers heartbeat meanwhile). */
function marker(): Uint8Array {
  return new TextEncoder().encode(`probe-${randomBytes(8).toString("hex")}`);
}
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** How many of the messages `publisher` sends on `subject` reach a coordinator-role spy. */
async function delivered(subject: string, publisher: NatsConnection): Promise<number> {
  const spy = await cluster.open("coordinator");
  const probe = marker();
  let seen = 0;
  spy.subscribe(subject, {
    callback: (_err, msg) => {
      if (same(msg.data, probe)) seen++;
    },
  });
  await spy.flush();
  publisher.publish(subject, probe);
  await publisher.flush().catch(() => {});
  await new Promise((r) => setTimeout(r, WAIT_MS));
  await spy.close();
  return seen;
}

/** How many of the messages the coordinator's user sends on `subject` reach `subscriber`'s subscription to `pattern`. */
async function overheard(pattern: string, subject: string, subscriber: NatsConnection): Promise<number> {
  const probe = marker();
  let seen = 0;
  subscriber.subscribe(pattern, {
    callback: (err, msg) => {
      if (!err && same(msg.data, probe)) seen++;
    },
  });
  await subscriber.flush().catch(() => {});
  const coordinator = await cluster.open("coordinator");
  coordinator.publish(subject, probe);
  await coordinator.flush();
  await new Promise((r) => setTimeout(r, WAIT_MS));
  await coordinator.close();
  return seen;
}

test("no worker, client or serve user can publish on another's subjects or the coordinator's", async () => {
  const probes: [Who, string][] = [];
  for (const who of ["client", "serve", "w1"] as const) {
    probes.push(
      [who, jobSubjects.workerCommand("w0", "step")], // answering or commanding another worker
      [who, subjects.workerHeartbeat("w0")], // keeping another worker alive
      [who, subjects.workerRegister("w0")], // registering as another worker
      [who, jobSubjects.coordinatorHello], // making every worker register again
      [who, `$KV.${JOBS_BUCKET}.job-forged`], // writing job state
      [who, `$JS.API.CONSUMER.CREATE.KV_${JOBS_BUCKET}.push.$KV.${JOBS_BUCKET}.>`], // a consumer of its own choosing
      [who, `$JS.API.CONSUMER.DELETE.KV_${JOBS_BUCKET}.someone-elses`],
      [who, `$JS.API.STREAM.PURGE.KV_${JOBS_BUCKET}`],
      [who, "_INBOX_coordinator.forged.reply"], // a reply the coordinator waits for
      [who, "_INBOX_client.forged.reply"],
    );
  }
  probes.push(["serve", jobSubjects.submit], ["w1", jobSubjects.submit], ["w1", jobSubjects.cancel]);
  const results = await Promise.all(
    probes.map(async ([who, subject]) => {
      const nc = await as(who);
      const n = await delivered(subject, nc);
      await nc.close();
      return { who, subject, n };
    }),
  );
  const leaked = results.filter((r) => r.n > 0);
  assert.deepEqual(leaked, [], `published where it must not: ${JSON.stringify(leaked)}`);
  // the control: the coordinator's own user reaches these subjects
  const coordinator = await cluster.open("coordinator");
  assert.equal(await delivered(jobSubjects.workerCommand("w0", "step"), coordinator), 1);
  await cluster.stillServing();
});

test("no one but a worker reads its commands (its assignment, ring secret and batches), and no one reads another's replies", async () => {
  const probes: [Who, string, string][] = [];
  for (const who of ["client", "serve", "w1"] as const)
    probes.push(
      [who, "ringtune.worker.*.cmd.*", jobSubjects.workerCommand("w0", "assign")],
      [who, "ringtune.worker.w0.cmd.>", jobSubjects.workerCommand("w0", "step")],
      [who, "_INBOX.>", "_INBOX.someone.reply"],
      [who, ">", "_INBOX_coordinator.someone.reply"],
      [who, "_INBOX_worker-w0.>", "_INBOX_worker-w0.reply"],
    );
  probes.push(["w1", "_INBOX_client.>", "_INBOX_client.reply"], ["serve", "_INBOX_client.>", "_INBOX_client.reply"]);
  probes.push(["client", "ringtune.serve.>", "ringtune.serve.base.chat"]);
  const results = await Promise.all(
    probes.map(async ([who, pattern, subject]) => {
      const nc = await as(who);
      const n = await overheard(pattern, subject, nc);
      await nc.close().catch(() => {});
      return { who, pattern, subject, n };
    }),
  );
  const leaked = results.filter((r) => r.n > 0);
  assert.deepEqual(leaked, [], `read what it must not: ${JSON.stringify(leaked)}`);
  // the control: w0's own user reads its commands
  const w0 = await as("w0");
  assert.equal(await overheard("ringtune.worker.w0.cmd.*", jobSubjects.workerCommand("w0", "assign"), w0), 1);
  await w0.close();
  await cluster.stillServing();
});

test("a worker registering or heartbeating as another on its own subject is refused", async () => {
  const w1 = await as("w1");
  const register = (worker_id: string, host = "forged") =>
    encodeMessage(WorkerRegister, {
      worker_id,
      host,
      pid: 1,
      device: { kind: "cpu", name: "cpu", memory_bytes: 1 << 30, cores: 1 },
      transports: ["tcp"],
    });
  const reply = decodeMessage(
    WorkerRegisterReply,
    (await w1.request(subjects.workerRegister("w1"), register("w0"), { timeout: 5000 })).data,
  );
  assert.equal(reply.ok, false);
  assert.match(reply.error ?? "", /worker w1's subject names worker w0/);
  w1.publish(
    subjects.workerHeartbeat("w1"),
    encodeMessage(WorkerHeartbeat, { worker_id: "w0", seq: 1, sent_at_ms: Date.now(), state: "busy", job: "x" }),
  );
  await w1.flush();
  const deadline = Date.now() + 5000;
  while (!cluster.coordinator.logged(/heartbeat on worker w1's subject names worker w0: ignored/)) {
    assert.ok(Date.now() < deadline, "the coordinator did not refuse the forged heartbeat");
    await new Promise((r) => setTimeout(r, 100));
  }
  await w1.close();
  await cluster.stillServing();
});

test("a registration with a 5 MB host, sent twice, is refused and the coordinator keeps serving", async () => {
  const w1 = await as("w1");
  const body = encodeMessage(WorkerRegister, {
    worker_id: "w1",
    host: "h",
    pid: 1,
    device: { kind: "cpu", name: "cpu", memory_bytes: 1 << 30, cores: 1 },
    transports: ["tcp"],
  });
  // the message as a worker without bounds would send it (the codec here refuses to encode it)
  const { decode, encode } = await import("@msgpack/msgpack");
  const huge = encode({ ...(decode(body) as object), host: "h".repeat(5 * 1024 * 1024) });
  for (let i = 0; i < 2; i++) {
    const reply = decodeMessage(
      WorkerRegisterReply,
      (await w1.request(subjects.workerRegister("w1"), huge, { timeout: 10_000 })).data,
    );
    assert.equal(reply.ok, false);
    assert.match(reply.error ?? "", /host/);
    assert.ok((reply.error ?? "").length < 4096);
  }
  await w1.close();
  await cluster.stillServing();
});

test("a client reads job state by DIRECT.GET but cannot create, or delete, JetStream consumers", async () => {
  const client = await cluster.open("client");
  const jsm = await jetstreamManager(client);
  await assert.rejects(
    jsm.consumers.add(`KV_${JOBS_BUCKET}`, { durable_name: "mine", deliver_subject: jobSubjects.coordinatorHello }),
    /Permissions Violation|timeout/i,
  );
  await assert.rejects(jsm.consumers.delete(`KV_${JOBS_BUCKET}`, "anyone"), /Permissions Violation|timeout/i);
  const reply = await rawRequest(client, jobSubjects.list, {});
  assert.equal(reply.json.ok, true);
  await cluster.stillServing();
});

/**
 * Worker w1's user (a second connection, as someone holding its password would open) answers every ring
 * address request with a listener of its own; returns how many connections that listener got, and the stop.
 */
async function forgeRingAddresses(): Promise<{
  answered: () => number;
  connections: () => number;
  stop: () => Promise<void>;
}> {
  let connections = 0;
  let answered = 0;
  const listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as { port: number }).port;
  const forger = await as("w1");
  forger.subscribe("ringtune.ring.*.rank.*.addr", {
    callback: (_err, msg) => {
      const [, , ring, , rank] = msg.subject.split(".");
      answered++;
      msg.respond(encodeMessage(PeerAddress, { ring: ring!, rank: Number(rank), host: "127.0.0.1", port }));
    },
  });
  await forger.flush();
  return {
    answered: () => answered,
    connections: () => connections,
    stop: async () => {
      await forger.close();
      listener.close();
    },
  };
}

test("after every probe a job runs to completion on both workers, with worker w1's user forging ring addresses", async () => {
  const { dir, baseSpec } = trainingFixture(cluster.root);
  const forged = await forgeRingAddresses();
  try {
    const client = await cluster.open("client");
    const submitted = await rawRequest(client, jobSubjects.submit, {
      spec: { ...baseSpec, workers: 2, max_steps: 3, output: "out" },
      base_dir: dir,
    });
    assert.equal(submitted.json.ok, true, JSON.stringify(submitted.json));
    const id = submitted.json.id as string;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const job = (await rawRequest(client, jobSubjects.get, { id })).json.job as { status: string; message?: string };
      if (job.status === "completed") break;
      assert.ok(!["failed", "canceled"].includes(job.status), job.message);
      assert.ok(Date.now() < deadline, `still ${job.status}: ${job.message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await forged.stop();
  }
  assert.ok(forged.answered() >= 2, `the forger saw ${forged.answered()} address requests`);
  assert.equal(forged.connections(), 0, "a ring member followed a forged address");
  await cluster.stillServing();
});
