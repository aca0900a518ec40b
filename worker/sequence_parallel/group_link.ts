// A worker's sequence-parallel group: ranks [g*N, (g+1)*N) of the job's ring form group g, and their
// native ring link carries ring attention's key/value blocks. Addresses are exchanged over NATS like the
// all-reduce's; the link itself is native TCP, driven by the model's own threads during a step.
import { createHmac } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { loadAddon, type NativeRingLink } from "../../native/js/addon.js";
import { lookupPeerAddress, servePeerAddress } from "../allreduce/peer_address.js";
import { DEFAULT_PEER_TIMEOUT_MS } from "../allreduce/peer_liveness.js";
import { DEFAULT_SETUP_TIMEOUT_MS } from "../allreduce/request_retry.js";
import { externalHost } from "../allreduce/tcp_link.js";

export interface SequenceGroup {
  link: NativeRingLink;
  /** this worker's place in its group */
  rank: number;
  size: number;
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

/** The ring id of group g: a NATS subject token of its own, so its addresses never mix with the ring's. */
export function sequenceGroupRing(ring: string, group: number): string {
  return `${ring}-sp${group}`;
}

/** Joins this rank's group; resolves once the link to both group neighbours is up. */
export async function joinSequenceGroup(m: SequenceGroupMember): Promise<SequenceGroup> {
  const group = Math.floor(m.rank / m.size);
  const rank = m.rank % m.size;
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
  return { link, rank, size: m.size, close: () => link.close() };
}
