// A worker on a GPU reports the device's memory at registration and its free memory in each heartbeat; the
// coordinator refuses a job whose per-rank estimate with the bf16 compute copy cannot fit that memory, naming
// the numbers and the device. The GPU here is the CUDA emulator with a small arena (RINGTUNE_EMU_MEMORY_MB).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";
import { loadAddon } from "../../native/js/addon.js";

after(killAllWorkerProcesses);

test(
  "a cuda-emu worker with 64 MiB of device memory: reported, and a job that cannot fit it refused with the numbers",
  { timeout: 180_000, skip: !loadAddon().cudaEmu && "the addon does not link the CUDA emulator" },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    // About 10M parameters: ~170 MiB per rank in fp32 on the CPU, more with a GPU's bf16 compute copy.
    writeFileSync(
      path.join(dir, "mid.json"),
      JSON.stringify({
        architectures: ["LlamaForCausalLM"],
        vocab_size: 8000,
        hidden_size: 256,
        intermediate_size: 688,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        bos_token_id: 256,
        eos_token_id: 257,
      }),
    );
    const cluster = await TestCluster.start(0);
    const worker = WorkerProcess.start(cluster.server.url, "w-emu", ["--device", "cuda-emu"], {
      RINGTUNE_EMU_MEMORY_MB: "64",
    });
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 1, `the worker to register:\n${worker.log}`);
      await cluster.waitFor(
        async () => (await cluster.registeredWorkers())[0]?.device.memory_free_bytes !== undefined,
        "a heartbeat with the device's free memory",
      );
      const [w] = await cluster.registeredWorkers();
      assert.equal(w!.device.kind, "cuda-emu");
      assert.equal(w!.device.memory_bytes, 64 * 2 ** 20);
      assert.ok(w!.device.memory_free_bytes! <= 64 * 2 ** 20, `free ${w!.device.memory_free_bytes}`);

      const refused = await cluster.submit({ ...baseSpec, model: { init: { config: "mid.json" } }, max_steps: 1 }, dir);
      assert.equal(refused.ok, false);
      assert.match(
        refused.error!,
        /needs [\d.]+ MiB per rank \(params [\d.]+, grads [\d.]+, moments [\d.]+, activations [\d.]+, bf16 compute copy [\d.]+\)/,
      );
      assert.match(refused.error!, /w-emu has 64\.0 MiB of cuda-emu memory/);
    } finally {
      await worker.kill();
      await cluster.stop();
    }
  },
);
