// Which data plane a ring formation's gradients use. NATS stays the control plane either way. A ring whose
// workers all compute on CUDA devices and all open libnccl.so.2 gets NCCL: its first rank makes the epoch's
// unique id, sealed with the ring's secret, and every assignment carries it. Any CPU worker, or any node
// without NCCL, keeps the ring on host staging over the job's transport, and the record says why.
import type { TransportKind } from "../../proto/mod.js";
import type { Ring } from "./ring.js";

/** A probe takes no long work on the worker: an unanswered one means the worker is busy or gone. */
const PROBE_TIMEOUT_MS = 60_000;

export interface DataPlaneChoice {
  /** the sealed NCCL unique id every assignment carries; absent: host staging */
  ncclId?: Uint8Array;
  /** for the job's record and message: "nccl", or "tcp (host staging: w1 computes on cpu)" */
  description: string;
}

/** Device labels as the record holds them ("cuda:0 (NVIDIA H100)", "cuda-emu (...)", "cpu (...)"). */
function onCuda(label: string | undefined): boolean {
  return label !== undefined && (label.startsWith("cuda:") || label.startsWith("cuda-emu"));
}

export async function chooseDataPlane(
  ring: Ring,
  o: {
    job: string;
    ringId: string;
    ringSecret: Uint8Array;
    transport: TransportKind;
    deviceOf?: (worker: string) => string | undefined;
  },
): Promise<DataPlaneChoice> {
  const staged = (why: string): DataPlaneChoice => ({ description: `${o.transport} (host staging: ${why})` });
  if (ring.size < 2) return { description: "none (one worker)" };
  const cpu = ring.workers.find((w) => !onCuda(o.deviceOf?.(w)));
  if (cpu !== undefined) return staged(`${cpu} computes on ${o.deviceOf?.(cpu) ?? "an unknown device"}`);
  let replies;
  try {
    replies = await ring.all((rank) =>
      ring.send(
        rank,
        "data_plane",
        {
          job: o.job,
          ring: o.ringId,
          create_nccl_id: rank === 0,
          ring_secret: rank === 0 ? Uint8Array.from(o.ringSecret) : undefined,
        },
        PROBE_TIMEOUT_MS,
      ),
    );
  } catch (err) {
    return staged(`the NCCL probe failed: ${(err as Error).message}`);
  }
  const without = replies.findIndex((r) => !r.nccl);
  if (without >= 0) return staged(`${ring.workers[without]}: ${replies[without]!.reason ?? "no NCCL"}`);
  const id = replies[0]!.nccl_id;
  if (!id) return staged(`${ring.workers[0]} made no NCCL id`);
  return { ncclId: id, description: "nccl" };
}
