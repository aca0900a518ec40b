// A job that every coordinator dies while running (a crash loop, as a poison job would cause) is stopped
// after a bounded number of coordinator restarts and marked failed with the reason, instead of taking each
// new coordinator down with it. Coordinators are real processes killed with -9.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { MAX_COORDINATOR_RESTARTS } from "../../coordinator/jobs/recovery.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { startNatsServer } from "../helpers/nats_server.js";
import { waitUntil } from "../helpers/processes.js";

after(killAllCoordinatorProcesses);

const LEASE = ["--lease-ttl", "3"];

test(
  `a job running through ${MAX_COORDINATOR_RESTARTS + 1} coordinator crashes is failed by the next coordinator, saying why`,
  { timeout: 420_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
    // The coordinator first: a worker's start waits until a coordinator answers its registration.
    let coordinator = CoordinatorProcess.start(server.url, LEASE);
    const cluster = await TestCluster.start(1, { coordinator: false, server });
    try {
      // Far more steps than the test lets it run: each coordinator is killed once the job has made a step.
      const reply = await cluster.submit({ ...baseSpec, workers: 1, max_steps: 100_000, output: "poison" }, dir);
      assert.ok(reply.ok, reply.error);
      for (let restarts = 0; restarts <= MAX_COORDINATOR_RESTARTS; restarts++) {
        await waitUntil(
          async () => {
            const rec = await cluster.record(reply.id!).catch(() => undefined);
            return rec?.status === "running" && (rec.coordinator_restarts ?? 0) === restarts && rec.step >= 1;
          },
          `the job to run under coordinator ${restarts + 1}`,
          120_000,
        );
        await coordinator.kill9();
        coordinator = CoordinatorProcess.start(server.url, LEASE);
      }
      await waitUntil(async () => coordinator.logged(/coordinator ready/), "the last coordinator", 120_000);
      const done = (await cluster.record(reply.id!))!;
      assert.equal(done.status, "failed", done.message);
      assert.equal(done.coordinator_restarts, MAX_COORDINATOR_RESTARTS + 1);
      assert.match(
        done.message!,
        new RegExp(
          `restarted ${MAX_COORDINATOR_RESTARTS + 1} times while this job ran \\(at most ${MAX_COORDINATOR_RESTARTS}\\)`,
        ),
      );
      assert.match(done.message!, /last checkpoint|see the coordinator's log/);
      assert.ok(coordinator.running, "the coordinator that failed the job keeps serving");
      assert.equal(coordinator.startSteps(reply.id!).length, 0, "it never started the job again");
    } finally {
      await coordinator.kill9();
      await cluster.stop();
    }
  },
);
