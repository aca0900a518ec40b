// A worker's sequence-parallel group: ranks [g*N, (g+1)*N) of the job's ring form group g, and their
// native ring link carries ring attention's key/value blocks. Addresses are exchanged over NATS like the
// all-reduce's; the link itself is native TCP, driven by the model's own threads during a step. (A group whose
// ranks all compute on CUDA devices with NCCL moves the blocks by NCCL send/recv instead: nccl_group.ts.)
import { createHmac } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { loadAddon, type NativeModel } from "../../native/js/addon.js";
import { sequenceGroupOf, sequenceGroupRing } from "../../proto/mod.js";
import { lookupPeerAddress, servePeerAddress } from "../allreduce/peer_address.js";
import { DEFAULT_PEER_TIMEOUT_MS } from "../allreduce/peer_liveness.js";
import { DEFAULT_SETUP_TIMEOUT_MS } from "../allreduce/request_retry.js";
import { externalHost } from "../allreduce/tcp_link.js";

/** forwardBackward's sequenceParallel option: the group's TCP link, or its NCCL communicator. */
export type SequenceParallelOption = NonNullable<Parameters<NativeModel["forwardBackward"]>[1]["sequenceParallel"]>;

export interface SequenceGroup {
  /** how the group's blocks travel: "nccl" or "tcp" */
  dataPlane: "nccl" | "tcp";
  /** what each step's forwardBackward is handed */
  option: SequenceParallelOption;
  /** this worker's place in its group */
  rank: number;
  size: number;
  /** ends the group's transfers: one in progress fails at once (idempotent) */
  close(): void;
}

export interface SequenceGroupMember {
  nc: NatsConnection;
  /** the job's ring id */
  ring: string;
  /** rank in the job's ring */
  rank: number;
  /** workers per group (sequence_parallel) */
  size: number;
  listenHost?: string;
  advertiseHost?: string;
  setupTimeoutMs?: number;
  /** a step's attention transfer fails after this long without progress from a group neighbour */
  peerTimeoutMs?: number;
  /** the ring's secret (from the coordinator): the group's links accept only a peer that holds it */
  secret?: Uint8Array;
}

/** Joins this rank's group over TCP; resolves once the link to both group neighbours is up. */
export async function joinSequenceGroup(m: SequenceGroupMember): Promise<SequenceGroup> {
  // The group's own ring id: its addresses never mix with the ring's.
  const { group, rank } = sequenceGroupOf(m.rank, m.size);
  const ring = sequenceGroupRing(m.ring, group);
  const timeoutMs = m.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
  const link = loadAddon().createRingLink(m.listenHost ?? "0.0.0.0", 0);
  const sealed = { secret: m.secret };
  const sub = servePeerAddress(m.nc, ring, rank, { host: m.advertiseHost ?? externalHost(), port: link.port }, sealed);
  try {
    const next = await lookupPeerAddress(m.nc, ring, rank, (rank + 1) % m.size, { ...sealed, deadlineMs: timeoutMs });
    // A key derived from the ring's secret (or, in rings without one, the group's ring id) admits the previous
    // rank: a connection that does not present it first is dropped. The secret itself never goes on the wire.
    const key = m.secret ? createHmac("sha256", m.secret).update(`sequence-group ${ring}`).digest("hex") : ring;
    await link.join(next.host, next.port, key, timeoutMs, m.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS);
  } catch (err) {
    link.close();
    throw new Error(`sequence-parallel group ${group} (ring ${m.ring}): rank ${rank}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    sub.unsubscribe();
  }
  return {
    dataPlane: "tcp",
    option: { link, rank, size: m.size },
    rank,
    size: m.size,
    close: () => link.close(),
  };
}
