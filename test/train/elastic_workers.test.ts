// An elastic job (workers: {min, max}) on a real cluster: started on the one worker there is, it grows to
// three at a checkpoint once two more register, and shrinks to two when one of them is lost, never
// restarting from scratch; its losses are a fixed-size run's, and its record shows the ring's size over time.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { parseSpec } from "../../spec/load.js";

test("an elastic spec names its global batch, runs without sequence parallelism, and has min <= max", () => {
  const { dir, baseSpec } = trainingFixture();
  const parse = (extra: Record<string, unknown>) => () => parseSpec({ ...baseSpec, ...extra }, "job.yaml", dir);
  assert.doesNotThrow(parse({ workers: { min: 1, max: 3 } }));
  assert.doesNotThrow(parse({ workers: 2 }));
  const { global_batch_rows: _rows, ...unbatched } = baseSpec;
  assert.throws(
    () => parseSpec({ ...unbatched, workers: { min: 1, max: 3 } }, "job.yaml", dir),
    /names its global batch/,
  );
  assert.throws(parse({ workers: { min: 3, max: 2 } }), /workers\.min \(3\) exceeds workers\.max \(2\)/);
  assert.throws(parse({ workers: { min: 2, max: 4 }, sequence_parallel: 2, seq_len: 64 }), /without sequence_parallel/);
  assert.throws(parse({ workers: { min: 1, max: 3, most: 4 } }), /most/);
});

test(
  "an elastic job grows 1 -> 3 at a checkpoint and shrinks to 2 when a worker leaves, with a fixed-size run's losses",
  { timeout: 300_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(1, { timing: { heartbeatMs: 300, lostAfterMs: 4000 } });
    try {
      const spec = { ...baseSpec, max_steps: 36, save_every: 4, checksum_every: 4 };
      const reply = await cluster.submit({ ...spec, workers: { min: 1, max: 3 }, output: "elastic" }, dir);
      const record = async () => (await cluster.record(reply.id!))!;
      await cluster.waitFor(async () => (await record()).status === "running", "the job running on one worker");
      await cluster.addWorker("w1");
      await cluster.addWorker("w2");
      await cluster.waitFor(
        async () => (await record()).workers.length === 3 && (await record()).status === "running",
        "the ring grown to 3",
      );
      const grown = (await record()).ring_sizes!.at(-1)!;
      assert.equal(grown.size, 3);
      assert.equal(grown.step % spec.save_every, 0, "it grew at a checkpoint");
      await cluster.waitFor(async () => (await record()).step >= grown.step + 2, "steps on 3 workers");
      await cluster.workers.find((w) => w.id === "w2")!.close(); // gone: no answers, no heartbeats
      const done = await cluster.finished(reply.id!);
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 1, "growing and shrinking use up no start");
      const sizes = done.ring_sizes!.map((s) => s.size);
      assert.equal(sizes[0], 1, `started on one worker: ${JSON.stringify(done.ring_sizes)}`);
      assert.ok(sizes.includes(3), `grew to three: ${JSON.stringify(done.ring_sizes)}`);
      assert.equal(sizes.at(-1), 2, `ended on two: ${JSON.stringify(done.ring_sizes)}`);
      assert.ok(!done.workers.includes("w2"), `the lost worker is not in the final ring (${done.workers})`);
      for (const s of done.ring_sizes!) assert.equal(s.step % spec.save_every, 0, "every re-formation at a checkpoint");

      const fixed = await cluster.run({ ...spec, workers: 2, output: "fixed" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "elastic")), lossesByStep(fixed.output));
    } finally {
      await cluster.stop();
    }
  },
);
