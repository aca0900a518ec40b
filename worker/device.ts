// What this worker computes on, as it tells the coordinator.
import os from "node:os";
import type { z } from "zod";
import type { Device } from "../proto/mod.js";

/**
 * memoryBytes: what the worker may use, when less than the machine's RAM (other processes share it); the
 * coordinator refuses jobs whose per-rank estimate exceeds it.
 */
export function cpuDevice(memoryBytes?: number): z.infer<typeof Device> {
  const threads = Number(process.env.OMP_NUM_THREADS) || os.cpus().length;
  return {
    kind: "cpu",
    name: os.cpus()[0]?.model.trim() ?? "cpu",
    memory_bytes: memoryBytes ?? os.totalmem(),
    cores: threads,
  };
}
