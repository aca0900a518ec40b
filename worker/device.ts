// What this worker computes on, as it tells the coordinator (registration) and everyone else (heartbeats).
import os from "node:os";
import type { z } from "zod";
import { CUDA_EMU_NAME, type Device } from "../proto/mod.js";
import type { ComputeDevice } from "../native/js/compute_device.js";
import type { CudaProbe, ModelDeviceName } from "../native/js/addon.js";

type DeviceInfo = z.infer<typeof Device>;

/** The emulator's device memory per device when RINGTUNE_EMU_MEMORY_MB is not set (native/emu's default). */
const EMU_DEFAULT_MEMORY_MB = 16384;

function hostThreads(): number {
  return Number(process.env.OMP_NUM_THREADS) || os.cpus().length;
}

/**
 * memoryBytes: what the worker may use, when less than the machine's RAM (other processes share it); the
 * coordinator refuses jobs whose per-rank estimate exceeds it.
 */
export function cpuDevice(memoryBytes?: number): DeviceInfo {
  return {
    kind: "cpu",
    name: os.cpus()[0]?.model.trim() ?? "cpu",
    memory_bytes: memoryBytes ?? os.totalmem(),
    cores: hostThreads(),
  };
}

/**
 * The device a worker started with `--device` reports. A GPU's memory is its own (from the driver), capped by
 * --memory when that is smaller; the emulator's is host memory, capped by its arena (RINGTUNE_EMU_MEMORY_MB).
 * `probe` asks the driver about CUDA device N (only called for kind cuda).
 */
export function workerDevice(
  device: ComputeDevice,
  memoryBytes: number | undefined,
  probe: (index: number) => CudaProbe,
  env: NodeJS.ProcessEnv = process.env,
): DeviceInfo {
  const cap = (bytes: number) => (memoryBytes === undefined ? bytes : Math.min(bytes, memoryBytes));
  if (device.kind === "cpu") return cpuDevice(memoryBytes);
  if (device.kind === "cuda-emu") {
    const arenaMb = Number(env.RINGTUNE_EMU_MEMORY_MB) || EMU_DEFAULT_MEMORY_MB;
    return {
      kind: "cuda-emu",
      name: CUDA_EMU_NAME,
      memory_bytes: cap(Math.min(arenaMb * 2 ** 20, os.totalmem())),
      cores: hostThreads(),
    };
  }
  const p = probe(device.index);
  return {
    kind: "cuda",
    index: device.index,
    name: p.deviceName || `CUDA device ${device.index}`,
    memory_bytes: cap(p.memoryBytes),
    cores: hostThreads(),
  };
}

/** Where the worker builds each job's model: on its GPU, on the CUDA emulator, or on the CPU. */
export function modelDeviceOf(device: DeviceInfo): ModelDeviceName {
  if (device.kind === "cuda") return `cuda:${device.index ?? 0}`;
  return device.kind === "cuda-emu" ? "cuda-emu" : "cpu";
}
