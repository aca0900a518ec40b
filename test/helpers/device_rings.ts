// Jobs on rings of worker processes started with device flags of their own (`--device cuda-emu` beside CPU
// workers), each run on a cluster of its own so that a job's ring is exactly those workers.
import { TestCluster } from "./cluster.js";
import { EVIDENCE_DEVICE } from "./evidence_device.js";
import { lossesByStep } from "./losses.js";
import { WorkerProcess } from "./worker_process.js";

/** a GPU when the device proof runs the evidence tests (RINGTUNE_TEST_DEVICE), else the CUDA emulator */
export const EMU = ["--device", EVIDENCE_DEVICE];
const JOB_TIMEOUT_MS = 540_000;

/** Runs `spec` on workers started with these flags each; returns the job's losses by step and its output. */
export async function runOnWorkers(
  workerFlags: string[][],
  spec: Record<string, unknown>,
  dir: string,
): Promise<{ losses: Map<number, number>; output: string }> {
  const cluster = await TestCluster.start(0);
  const workers = workerFlags.map((flags, i) => WorkerProcess.start(cluster.server.url, `p${i}`, flags));
  try {
    await cluster.waitFor(
      async () => (await cluster.idleWorkers()) >= workers.length,
      `worker processes to register:\n${workers.map((w) => w.log).join("\n")}`,
    );
    // The emulator runs every CUDA thread on the CPU: on a loaded machine a tiny job takes minutes. These rings
    // compare a device's numbers with the CPU's to fp32 rounding: the device computes in fp32 unless the spec
    // asks for its default, bf16, by name.
    const reply = await cluster.submit({ precision: "fp32", ...spec }, dir);
    if (!reply.ok) throw new Error(`submit refused: ${reply.error}`);
    const rec = await cluster.finished(reply.id!, JOB_TIMEOUT_MS);
    if (rec.status !== "completed") throw new Error(`job ${rec.id} ${rec.status}: ${rec.message}`);
    return { losses: lossesByStep(rec.output), output: rec.output };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${workers.map((w) => w.log).join("\n")}`);
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await cluster.stop();
  }
}
