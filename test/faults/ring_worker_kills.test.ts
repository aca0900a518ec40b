// kill -9 of a ring worker, ten times in a row: each time the ring re-forms on the spare worker within the
// coordinator's lost-worker threshold (never after a command's long timeout), and the job goes on.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

after(killAllWorkerProcesses);

const timing = { heartbeatMs: 250, lostAfterMs: 5000 };
const KILLS = 10;

test(
  `kill -9 of a ring worker ${KILLS} times in a row: each ring re-forms within the lost-worker threshold`,
  { timeout: 300_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(1, { timing });
    // Worker processes are named to sort before w0: the scheduler takes idle workers in id order.
    const name = (k: number) => `a-${String(k).padStart(2, "0")}`;
    let current = WorkerProcess.start(cluster.server.url, name(0));
    const reformMs: number[] = [];
    const kills: number[] = [];
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 2, "the worker process to register");
      const reply = await cluster.submit({ ...baseSpec, workers: 2, max_steps: 100_000, output: "kills" }, dir);
      assert.ok(reply.ok, reply.error);
      let killedAt = 0;
      for (let k = 0; k <= KILLS; k++) {
        // The ring of this round runs, with the current process in it.
        await cluster.waitFor(
          async () => {
            const rec = await cluster.record(reply.id!);
            return rec?.status === "running" && (rec.ring_reformations ?? 0) === k && rec.workers.includes(current.id);
          },
          `ring ${k} to form with ${current.id}`,
          60_000,
        );
        if (k > 0) reformMs.push(Date.now() - killedAt);
        if (k === KILLS) break;
        const spare = WorkerProcess.start(cluster.server.url, name(k + 1));
        await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 1, `spare ${spare.id} to register`, 60_000);
        await current.kill();
        killedAt = Date.now();
        kills.push(killedAt);
        current = spare;
      }
      t.diagnostic(`rings re-formed ${reformMs.join(", ")} ms after the kills`);
      assert.ok((await cluster.cancel(reply.id!)).ok);
      assert.equal((await cluster.finished(reply.id!)).status, "canceled");
      for (const [k, ms] of reformMs.entries())
        assert.ok(
          ms < timing.lostAfterMs,
          `ring ${k + 1} re-formed ${ms} ms after the kill (all: ${reformMs.join(", ")})`,
        );
    } catch (err) {
      // What the coordinator did after each kill (when each failed start was handled, and why) tells a stall
      // in the release from one in the ring's own failure handling.
      const since = (t: number) => t - (kills.at(-1) ?? 0);
      const starts = cluster.coordinatorLog
        .filter((l) => /start failed|worker lost|starting job/.test(String(l.msg)))
        .map(
          (l) => `${since(l.time as number)} ms: ${String(l.msg)} ${JSON.stringify(l.gone ?? l.workers ?? l.worker)}`,
        );
      (err as Error).message += `\ncoordinator, relative to the last kill:\n${starts.slice(-6).join("\n")}`;
      throw err;
    } finally {
      await current.kill();
      await cluster.stop();
    }
  },
);
