// Which device each worker computes on is visible where people look: the worker's heartbeat names it (the CUDA
// emulator says it is one, so a slow job is never read as a slow GPU), the cluster status lists it, and the job
// record names the device of each of the job's workers. Real nats-server, coordinator and workers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { decodeMessage, subjects, WorkerHeartbeat } from "../../proto/mod.js";
import { workerDevice, cpuDevice, modelDeviceOf } from "../../worker/device.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import type { CudaProbe } from "../../native/js/addon.js";
import { ONE_HEAD_BYTE_LLAMA } from "../helpers/tiny_model.js";

const noGpu = (): CudaProbe => {
  throw new Error("the driver is not asked for cpu or cuda-emu");
};

test("workerDevice: cuda:N reports the GPU's name and memory from the driver, cuda-emu says it is the emulator", () => {
  const h100 = (index: number): CudaProbe => ({
    usable: true,
    problem: "none",
    message: "",
    deviceName: `NVIDIA H100 80GB HBM3 #${index}`,
    devices: 2,
    driverVersion: 13000,
    computeCapability: 90,
    memoryBytes: 80 * 2 ** 30,
    builtArchs: [80, 86, 89, 90],
  });
  const gpu = workerDevice({ kind: "cuda", index: 1 }, undefined, h100);
  assert.deepEqual(
    [gpu.kind, gpu.index, gpu.name, gpu.memory_bytes],
    ["cuda", 1, "NVIDIA H100 80GB HBM3 #1", 80 * 2 ** 30],
  );
  // --memory caps what a GPU worker offers, as on the CPU
  assert.equal(workerDevice({ kind: "cuda", index: 0 }, 2 ** 30, h100).memory_bytes, 2 ** 30);
  const emu = workerDevice({ kind: "cuda-emu" }, undefined, noGpu, { RINGTUNE_EMU_MEMORY_MB: "512" });
  assert.equal(emu.kind, "cuda-emu");
  assert.match(emu.name, /emulator.*slow/);
  assert.equal(emu.memory_bytes, 512 * 2 ** 20);
  assert.deepEqual(workerDevice({ kind: "cpu" }, 2 ** 30, noGpu), cpuDevice(2 ** 30));
  // each job's model is built on the worker's own device: GPU 1 stays GPU 1
  assert.deepEqual([gpu, emu, cpuDevice()].map(modelDeviceOf), ["cuda:1", "cuda-emu", "cpu"]);
});

test(
  "a cuda-emu worker says so in its heartbeat and the job record names each worker's device",
  { timeout: 300_000 },
  async () => {
    const emu = workerDevice({ kind: "cuda-emu" }, undefined, noGpu);
    const cluster = await TestCluster.start(2, { devices: [cpuDevice(), emu] });
    const beats = new Map<string, string | undefined>();
    cluster.client.subscribe(subjects.workerHeartbeatAll, {
      callback: (_err, msg) => {
        const hb = decodeMessage(WorkerHeartbeat, msg.data);
        beats.set(hb.worker_id, hb.device);
      },
    });
    try {
      await cluster.waitFor(async () => beats.size === 2, "both workers' heartbeats");
      assert.equal(beats.get("w1"), "cuda-emu (CUDA emulator on the CPU: slow)");
      assert.match(beats.get("w0")!, /^cpu \(/);

      const { dir, baseSpec } = trainingFixture();
      // w1 computes on the emulated CUDA backend: a model its attention kernels take
      writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
      const rec = await cluster.run({ ...baseSpec, workers: 2, max_steps: 1, output: "devices" }, dir);
      assert.deepEqual(rec.workers, ["w0", "w1"]);
      assert.equal(rec.worker_devices?.length, 2);
      assert.match(rec.worker_devices![0]!, /^cpu \(/);
      assert.equal(rec.worker_devices![1], "cuda-emu (CUDA emulator on the CPU: slow)");
    } finally {
      await cluster.stop();
    }
  },
);
