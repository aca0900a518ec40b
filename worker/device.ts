// What this worker computes on, as it tells the coordinator.
import os from "node:os";
import type { z } from "zod";
import type { Device } from "../proto/mod.js";

export function cpuDevice(): z.infer<typeof Device> {
  const threads = Number(process.env.OMP_NUM_THREADS) || os.cpus().length;
  return { kind: "cpu", name: os.cpus()[0]?.model.trim() ?? "cpu", memory_bytes: os.totalmem(), cores: threads };
}
