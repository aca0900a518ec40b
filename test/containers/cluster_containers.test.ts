// The cluster as containers of ringtune's image (make test-containers): nats-server, a coordinator and two
// workers on a podman network with the manifests' users and TLS, an elastic job (2 to 3 workers) submitted
// from the host. A worker container killed mid-job is replaced and the job resumes at its checkpoint; a third
// worker started mid-job joins its ring at a checkpoint; the losses are those of the same job on
// `make cluster-up` with two workers.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { ContainerCluster, containerImages } from "../helpers/container_cluster.js";
import { LocalCluster } from "../helpers/local_cluster.js";
import { assertResumedAtCheckpoint, assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { writeTinyJob, writeTinyJobData } from "../helpers/tiny_job.js";
import type { JobRecordBody } from "../helpers/cluster.js";

const images = containerImages();
const SAVE_EVERY = 10;
// long enough for a kill, a replacement and a third worker to register while the job runs
const MAX_STEPS = 200;

const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trim().split("\n").at(-1)!) as T;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test(
  "containers: a job from the host completes with make cluster-up's losses through a killed, replaced and an added worker",
  { skip: typeof images === "string" ? images : false, timeout: 600_000 },
  async () => {
    // the StatefulSet's pods: their names are their worker ids and pick their NATS users
    const cluster = await ContainerCluster.start(images as { ringtune: string; nats: string }, [
      "ringtune-worker-0",
      "ringtune-worker-1",
    ]);
    let reference: LocalCluster | undefined;
    try {
      const jobDir = path.join(cluster.shared, "data", "job");
      writeTinyJobData(jobDir);
      const output = path.join(cluster.shared, "outputs", "containers");
      const spec = writeTinyJob(jobDir, "job.yaml", { maxSteps: MAX_STEPS, output });
      const overrides = ["--set", `save_every=${SAVE_EVERY}`, "--set", "checksum_every=10"];
      const elastic = ["--set", "workers={min: 2, max: 3}"];
      const submitted = await cluster.cli(["submit", spec, ...overrides, ...elastic, "--json"]);
      assert.equal(submitted.code, 0, submitted.stderr);
      const id = lastJson<JobRecordBody>(submitted.stdout).id;
      const record = () => cluster.record(id);

      const before = await waitFor("a first checkpoint", async () => {
        const r = await record();
        return (r?.last_checkpoint?.step ?? 0) >= SAVE_EVERY ? r : undefined;
      });
      assert.equal(before.status, "running");
      assert.ok(before.step < MAX_STEPS, "the job is still running when its worker is killed");
      await cluster.killWorker("ringtune-worker-1");
      // the StatefulSet's replacement (the same pod name, so the same NATS user), and a third worker scaled up
      await cluster.startWorker("ringtune-worker-1");
      await cluster.startWorker("ringtune-worker-2");
      const status = await cluster.cli(["cluster", "status", "--json"]);
      assert.equal(status.code, 0, status.stderr);
      for (const w of ["ringtune-worker-0", "ringtune-worker-1", "ringtune-worker-2"])
        assert.match(status.stdout, new RegExp(`"${w}"`), `${w} joined`);

      await waitFor("the ring grown to three", async () => {
        const r = await record();
        return r?.workers.length === 3 || (r && r.status !== "running" && r.status !== "queued") ? r : undefined;
      });
      const done = await waitFor("the job's end", async () => {
        const r = await record();
        return r && ["completed", "failed", "canceled"].includes(r.status) ? r : undefined;
      });
      assert.equal(done.status, "completed", done.message);
      assert.ok((done.ring_reformations ?? 0) >= 1, "the ring re-formed after the kill");
      assert.deepEqual(
        [...done.workers].sort(),
        ["ringtune-worker-0", "ringtune-worker-1", "ringtune-worker-2"],
        "the third worker joined the ring",
      );
      const sizes = done.ring_sizes!.map((s) => s.size);
      assert.deepEqual(
        [sizes[0], sizes.at(-1)],
        [2, 3],
        `the ring's size over time: ${JSON.stringify(done.ring_sizes)}`,
      );
      const starts = (await cluster.coordinatorLog())
        .filter((l) => l.msg === "job prepared" && l.job === id)
        .map((l) => l.startStep as number);
      // from scratch, from the checkpoint before the kill, then (growing) from a later one
      assertResumedAtCheckpoint(starts.slice(0, 2), before.last_checkpoint!.step, SAVE_EVERY);
      assert.equal(starts.length, 3, `three starts: ${starts}`);
      assert.ok(starts[2]! > starts[1]! && starts[2]! % SAVE_EVERY === 0, `grown at a later checkpoint: ${starts}`);

      // the same job on `make cluster-up`, two workers, no faults
      reference = await LocalCluster.prepare(2);
      const up = await reference.up();
      assert.equal(up.code, 0, up.stderr);
      const refOutput = path.join(cluster.dir, "reference");
      const ref = await reference.cli(
        ["submit", spec, ...overrides, "--set", `output=${refOutput}`, "--wait", "--json"],
        300_000,
      );
      assert.equal(ref.code, 0, ref.stderr);
      // the image's core is built for x86-64-v3, the host's for this CPU: the same sums, perhaps rounded apart
      assertSameLosses(lossesByStep(output), lossesByStep(refOutput), 1e-4);
    } catch (err) {
      // what the coordinator last said: the first thing to read when the job stalls in containers
      const lines = await cluster.coordinatorLog().catch((e: Error) => [{ msg: `no coordinator log: ${e.message}` }]);
      const tail = lines.slice(-30).map((l) => JSON.stringify(l));
      throw new Error(`${(err as Error).message}\ncoordinator's last log lines:\n${tail.join("\n")}`, { cause: err });
    } finally {
      await reference?.destroy();
      await cluster.stop();
    }
  },
);
