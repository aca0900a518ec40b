// This process's peak resident memory so far (VmHWM), for child processes that report what a load cost.
import { readFileSync } from "node:fs";

export function highWaterMark(): number {
  const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  if (kib === undefined) throw new Error("/proc/self/status: no VmHWM line");
  return Number(kib) * 1024;
}
