// How a worker's device is named to people and in records: "cpu (AMD EPYC 7B13)", "cuda:1 (NVIDIA H100 80GB
// HBM3)", "cuda-emu (CUDA emulator on the CPU: slow)". The emulator always says so, so nobody reads a slow job
// as a slow GPU.
import type { z } from "zod";
import type { Device } from "./messages.js";

export const CUDA_EMU_NAME = "CUDA emulator on the CPU: slow";

/** The device id as the --device flag spells it: cpu, cuda:N or cuda-emu. */
export function deviceId(d: z.infer<typeof Device>): string {
  return d.kind === "cuda" ? `cuda:${d.index ?? 0}` : d.kind;
}

export function deviceLabel(d: z.infer<typeof Device>): string {
  return `${deviceId(d)} (${d.name})`;
}
