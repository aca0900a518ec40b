// The NCCL data plane of an all-GPU ring: one communicator per ring epoch, over which a step's gradient
// buckets are summed on the device as they become final (the native step issues the collectives; see
// forwardBackward's ncclBuckets). The TCP ring stays up beside it for the small collectives of control (the
// ZeRO-1 gradient norm, checkpoint gathers) and for noticing a silent neighbour; when either fails, the
// communicator is aborted so a collective blocked on a dead or silent peer ends at once, and the ring
// re-forms from the last checkpoint as for any lost worker.
import { loadAddon, type NcclComm, type NcclDevice, type NativeModel } from "../../native/js/addon.js";

export type Range = [offset: number, size: number];

/**
 * The NCCL rank of ring rank `rank`: NCCL's reduce-scatter leaves segment q on rank q, and the TCP ring leaves
 * segment rank+1 on `rank` (ownedSpan); numbering NCCL ranks one ahead makes the two data planes shard alike.
 */
export function ncclRankOf(rank: number, size: number): number {
  return (rank + 1) % size;
}

/** The devices whose models the NCCL data plane can sum in place: the emulator's and the GPU library's. */
function ncclDevice(device: string): NcclDevice | undefined {
  return device === "cuda-emu" || /^cuda:\d+$/.test(device) ? (device as NcclDevice) : undefined;
}

/** Why NCCL cannot serve this worker ("" when it can): the device, then the library. */
export function ncclUnavailableReason(device: string): string {
  const on = ncclDevice(device);
  if (!on) return `the worker computes on ${device}`;
  const probeNccl = loadAddon().ncclProbe;
  if (!probeNccl) return "this build has no CUDA backend";
  // On a GPU the data plane is the GPU library's (its CUDA runtime holds the model): a library that does not
  // load is a reason like a missing libnccl.so.2.
  let probe;
  try {
    probe = probeNccl(on);
  } catch (err) {
    return (err as Error).message;
  }
  return probe.available ? "" : (probe.reason ?? "libnccl.so.2 not found");
}

/** A new unique id: this process runs its bootstrap, so only the ring's first rank calls it. */
export function newNcclId(device: string): Uint8Array {
  const make = loadAddon().ncclUniqueId;
  const on = ncclDevice(device);
  if (!make || !on) throw new Error(`NCCL: no data plane for a model on ${device}`);
  return make(on);
}

export class NcclDataPlane {
  readonly kind = "nccl" as const;

  private constructor(
    readonly comm: NcclComm,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Joins the epoch's communicator as ring rank `rank`, with the data plane of the runtime holding the model on
   * `device`; rejects when the others have not all joined in timeoutMs.
   */
  static async connect(
    id: Uint8Array,
    rank: number,
    size: number,
    timeoutMs: number,
    device: string,
  ): Promise<NcclDataPlane> {
    const connect = loadAddon().ncclConnect;
    const on = ncclDevice(device);
    if (!connect || !on) throw new Error(`NCCL: no data plane for a model on ${device}`);
    try {
      return new NcclDataPlane(await connect(id, ncclRankOf(rank, size), size, timeoutMs, on), timeoutMs);
    } catch (err) {
      throw new Error(`NCCL data plane of rank ${rank} of ${size}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** forwardBackward's ncclBuckets: each bucket all-reduced (ZeRO-1: reduce-scattered) as it becomes final. */
  bucketsOption(sharded: boolean) {
    return {
      comm: this.comm,
      op: sharded ? ("reduce-scatter" as const) : ("all-reduce" as const),
      timeoutMs: this.timeoutMs,
    };
  }

  /** Every bucket at once, outside a backward: a rank without rows this step adds its zero gradients. */
  reduceBuckets(model: NativeModel, buckets: readonly Range[], sharded: boolean): Promise<void> {
    const op = sharded ? "reduce-scatter" : "all-reduce";
    return this.collective(model, { op, buffer: "grads", ranges: buckets.map(([o, n]): Range => [o, n]) });
  }

  /** ZeRO-1: every rank's updated segment of each bucket of the weights copied to every rank. */
  allGatherWeights(model: NativeModel, buckets: readonly Range[]): Promise<void> {
    return this.collective(model, {
      op: "all-gather",
      buffer: "weights",
      ranges: buckets.map(([o, n]): Range => [o, n]),
    });
  }

  /** Ends the communicator (idempotent): a collective in progress fails at once. */
  abort(): void {
    this.comm.abort();
  }

  private collective(
    model: NativeModel,
    o: { op: "all-reduce" | "reduce-scatter" | "all-gather"; buffer: "grads" | "weights"; ranges: Range[] },
  ): Promise<void> {
    if (!model.ncclCollective) throw new Error("NCCL: this build has no CUDA backend");
    return model.ncclCollective(this.comm, { ...o, timeoutMs: this.timeoutMs });
  }
}
