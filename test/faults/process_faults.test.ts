// Faults of whole processes against a real nats-server: kill -9 of the active coordinator mid-job (a standby
// takes over its lease and resumes the job), SIGSTOP of the active coordinator (the standby takes over; the
// stopped one, continued, finds its lease gone and exits instead of writing), and kill -9 of nats-server
// mid-job for twice the lease's TTL followed by a restart on the same port and store (the coordinator keeps
// its lease). Each job ends completed with an unbroken run's
// losses, and nothing is left running.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { TestCluster, trainingFixture, type JobRecordBody } from "../helpers/cluster.js";
import { FINAL_STATUSES } from "../../proto/mod.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { waitUntil } from "../helpers/processes.js";

after(killAllCoordinatorProcesses);

const LEASE_TTL_S = 3;
const LEASE = ["--lease-ttl", String(LEASE_TTL_S)];

interface CoordinatorPair {
  dir: string;
  baseSpec: ReturnType<typeof trainingFixture>["baseSpec"];
  cluster: TestCluster;
  active: CoordinatorProcess;
  standby: CoordinatorProcess;
}

/** One worker, an active coordinator process and a second one standing by; every process is gone after. */
async function withActiveAndStandby(body: (p: CoordinatorPair) => Promise<void>): Promise<void> {
  const { dir, baseSpec } = trainingFixture();
  // The coordinator first: a worker's start waits until a coordinator answers its registration.
  const server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
  const active = CoordinatorProcess.start(server.url, LEASE);
  const cluster = await TestCluster.start(1, { coordinator: false, server });
  let standby: CoordinatorProcess | undefined;
  try {
    await waitUntil(async () => (await cluster.idleWorkers()) >= 1, "the worker to register", 60_000);
    standby = CoordinatorProcess.start(cluster.server.url, LEASE);
    await waitUntil(async () => standby!.logged(/standing by/), "the second coordinator to stand by", 60_000);
    await body({ dir, baseSpec, cluster, active, standby });
  } finally {
    await active.kill9();
    await standby?.kill9();
    await cluster.stop();
  }
}

test(
  "kill -9 of the active coordinator mid-job: the standby takes over and the job completes with an unbroken run's losses",
  { timeout: 300_000 },
  async () => {
    await withActiveAndStandby(async ({ dir, baseSpec, cluster, active, standby }) => {
      const spec = { ...baseSpec, workers: 1, max_steps: 30, save_every: 5 };
      const reply = await cluster.submit({ ...spec, output: "killed" }, dir);
      assert.ok(reply.ok, reply.error);
      await cluster.waitFor(async () => ((await cluster.record(reply.id!))?.step ?? 0) >= 7, "step 7");
      await active.kill9();
      const done = await cluster.finished(reply.id!, 180_000);
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.coordinator_restarts, 1);
      const resumedAt = standby.startSteps(reply.id!);
      assert.equal(resumedAt.length, 1, "the standby started the job once");
      assert.ok(resumedAt[0]! >= 5 && resumedAt[0]! % 5 === 0, `resumed at a checkpoint, not at ${resumedAt[0]}`);
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "killed")), lossesByStep(unbroken.output));
    });
  },
);

test(
  "SIGSTOP of the active coordinator: the standby takes over; the stopped one, continued, exits non-zero",
  { timeout: 300_000 },
  async () => {
    await withActiveAndStandby(async ({ dir, baseSpec, cluster, active, standby }) => {
      const spec = { ...baseSpec, workers: 1, max_steps: 30, save_every: 5 };
      const reply = await cluster.submit({ ...spec, output: "stopped" }, dir);
      await cluster.waitFor(async () => ((await cluster.record(reply.id!))?.step ?? 0) >= 7, "step 7");
      active.pause();
      await waitUntil(async () => standby.logged(/coordinator ready/), "the standby to take over", 60_000);
      active.resume();
      assert.equal(await active.exited(), 3, "the old coordinator stops once it sees its lease taken");
      const done = await cluster.finished(reply.id!, 180_000);
      assert.equal(done.status, "completed", done.message);
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "stopped")), lossesByStep(unbroken.output));
    });
  },
);

test(
  "kill -9 of nats-server mid-job for twice the lease TTL, restarted on the same port and store: the coordinator keeps its lease, the job resumes and completes",
  { timeout: 300_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const storeDir = path.join(dir, "jetstream");
    const first = await startNatsServer({ maxPayload: 8 * 1024 * 1024, storeDir });
    const coordinator = CoordinatorProcess.start(first.url, LEASE);
    const cluster = await TestCluster.start(1, { coordinator: false, server: first });
    let second: NatsServer | undefined;
    try {
      await waitUntil(async () => (await cluster.idleWorkers()) >= 1, "the worker to register", 60_000);
      const spec = { ...baseSpec, workers: 1, max_steps: 30, save_every: 5 };
      const reply = await cluster.submit({ ...spec, output: "outage" }, dir);
      assert.ok(reply.ok, reply.error);
      await cluster.waitFor(async () => ((await cluster.record(reply.id!))?.step ?? 0) >= 7, "step 7");
      await first.kill9();
      // Longer than the lease's TTL: the renewals sent into the outage fail, which loses nothing by itself.
      await new Promise((r) => setTimeout(r, 2 * LEASE_TTL_S * 1000));
      second = await startNatsServer({ maxPayload: 8 * 1024 * 1024, storeDir, port: first.port });
      // JetStream answers only once it has recovered its streams: reads fail for a moment after the restart.
      let done: JobRecordBody | undefined;
      await waitUntil(
        async () => {
          done = await cluster.record(reply.id!).catch(() => undefined);
          return done !== undefined && FINAL_STATUSES.includes(done.status);
        },
        "the job to finish after the restart",
        180_000,
      ).catch((err: Error) => {
        const tail = coordinator.log.slice(-20).map((l) => JSON.stringify(l));
        throw new Error(`${err.message}; record: ${JSON.stringify(done)}; coordinator:\n${tail.join("\n")}`);
      });
      done = done!;
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 1, "the outage used up no start");
      assert.ok(coordinator.logged(/reconnected to NATS/), "the coordinator saw the outage end");
      const tail = () =>
        coordinator.log
          .slice(-15)
          .map((l) => JSON.stringify(l).slice(0, 300))
          .join("\n");
      assert.ok(coordinator.running, `the coordinator kept its lease and is still running; its log:\n${tail()}`);
      assert.ok(!coordinator.logged(/lost the coordinator lease/), "the coordinator never gave up its lease");
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "outage")), lossesByStep(unbroken.output));
    } finally {
      await coordinator.kill9();
      await cluster.stop();
      await second?.stop();
    }
  },
);
