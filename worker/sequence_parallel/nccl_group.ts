// A sequence-parallel group whose ranks all compute on CUDA devices with NCCL: ring attention's key/value
// blocks move by NCCL send/recv between device buffers, over a communicator of the group's own. The group's
// first rank made the unique id, sealed with the ring's secret for the group's ring id, and the coordinator
// handed it over with the assignment: an id sealed for another group or ring does not open here. One
// communicator per ring formation: a re-formed ring brings a new id, and closing the group aborts this one.
import { sequenceGroupOf, sequenceGroupRing } from "../../proto/mod.js";
import { NcclDataPlane, openNcclId } from "../allreduce/mod.js";
import type { SequenceGroup } from "./group_link.js";

export interface NcclGroupMember {
  /** the job's ring id */
  ring: string;
  /** rank in the job's ring */
  rank: number;
  /** workers per group (sequence_parallel) */
  size: number;
  /** the assign's sequence_nccl_id */
  sealedId: Uint8Array;
  /** the ring's secret, which sealed the id */
  secret: Uint8Array | undefined;
  /** how long the others may take to join, and a step's send/recv to progress */
  timeoutMs: number;
  /** the device the model computes on ("cuda-emu", "cuda:N") */
  device: string;
}

/**
 * Refuses, before anything is built, an assign whose sequence_nccl_id cannot serve: no groups to use it, or no
 * secret to open it with.
 */
export function checkSequenceNcclId(m: {
  sequence_parallel?: number;
  sequence_nccl_id?: Uint8Array;
  ring_secret?: Uint8Array;
}): void {
  if (!m.sequence_nccl_id) return;
  if ((m.sequence_parallel ?? 1) < 2) throw new Error("assign: sequence_nccl_id comes without sequence_parallel");
  if (!m.ring_secret) throw new Error("assign: sequence_nccl_id comes without the ring secret that opens it");
}

/** Joins this rank's group's communicator; rejects when the group has not all joined within timeoutMs. */
export async function joinNcclSequenceGroup(m: NcclGroupMember): Promise<SequenceGroup> {
  const { group, rank } = sequenceGroupOf(m.rank, m.size);
  const ring = sequenceGroupRing(m.ring, group);
  let plane: NcclDataPlane;
  try {
    if (!m.secret) throw new Error("assign: sequence_nccl_id comes without the ring secret that opens it");
    const id = openNcclId(m.secret, ring, m.sealedId, "sequence_nccl_id");
    plane = await NcclDataPlane.connect(id, rank, m.size, m.timeoutMs, m.device);
  } catch (err) {
    throw new Error(`sequence-parallel group ${group} (ring ${m.ring}): rank ${rank}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    dataPlane: "nccl",
    // The communicator's NCCL rank is ncclRankOf(rank, size), as the native step expects of a group's.
    option: { ncclComm: plane.comm, timeoutMs: m.timeoutMs, rank, size: m.size },
    rank,
    size: m.size,
    close: () => plane.abort(),
  };
}
