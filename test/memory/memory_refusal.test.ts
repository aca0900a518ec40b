// Workers report their usable memory at registration (`ringtune worker --memory`), and the coordinator
// refuses a job whose per-rank estimate exceeds it, naming the numbers: at intake when the worker is
// already registered, at scheduling when it joins after the job was accepted. A job that fits runs.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

after(killAllWorkerProcesses);

const NEEDS = /needs \d+\.\d [MG]iB per rank \(params [\d.]+, grads [\d.]+, moments [\d.]+, activations [\d.]+\)/;

test(
  "a job larger than the workers' reported memory is refused with the numbers; one that fits runs",
  {
    timeout: 240_000,
  },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    // About 45M parameters: some 0.7 GiB per rank for full training, far above the worker's 256 MiB.
    writeFileSync(
      path.join(dir, "big.json"),
      JSON.stringify({
        architectures: ["LlamaForCausalLM"],
        vocab_size: 32000,
        hidden_size: 512,
        intermediate_size: 1376,
        num_hidden_layers: 4,
        num_attention_heads: 8,
        bos_token_id: 256,
        eos_token_id: 257,
      }),
    );
    const big = { ...baseSpec, model: { init: { config: "big.json" } }, max_steps: 1 };
    const cluster = await TestCluster.start(0);
    let small: WorkerProcess | undefined;
    try {
      const early = await cluster.submit(big, dir);
      assert.equal(early.ok, true, "with no worker registered yet the job is accepted: one may join");
      const estimate = (await cluster.record(early.id!))!.memory_estimate!;
      assert.ok(estimate.per_rank_bytes > 512 * 1024 ** 2, `estimate ${estimate.per_rank_bytes} bytes`);
      assert.equal(
        estimate.per_rank_bytes,
        estimate.params_bytes + estimate.grads_bytes + estimate.optimizer_bytes + estimate.activations_bytes,
      );

      small = WorkerProcess.start(cluster.server.url, "w-small", ["--memory", "256MiB"]);
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 1, "the worker to register", 120_000);
      const failed = await cluster.finished(early.id!, 60_000);
      assert.equal(failed.status, "failed");
      assert.match(failed.message!, NEEDS);
      assert.match(failed.message!, /w-small has 256\.0 MiB/);

      const refused = await cluster.submit(big, dir);
      assert.equal(refused.ok, false);
      assert.match(refused.error!, NEEDS);
      assert.match(refused.error!, /w-small has 256\.0 MiB/);

      const fits = await cluster.submit({ ...baseSpec, max_steps: 1 }, dir);
      assert.equal(fits.ok, true, fits.error);
      const done = await cluster.finished(fits.id!, 120_000);
      assert.equal(done.status, "completed", done.message);
      assert.ok(done.memory_estimate!.per_rank_bytes < 256 * 1024 ** 2);
    } finally {
      await small?.kill();
      await cluster.stop();
    }
  },
);
