// Every NATS subject ringtune uses, in one place. Ids inside subjects must be single subject tokens.
import { z } from "zod";

/** A subject token: no dots, wildcards or whitespace, so an id can never widen a subscription. */
export const SubjectToken = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, "must be letters, digits, '_' or '-' (it becomes a NATS subject token)");

function token(what: string, value: string | number): string {
  const s = String(value);
  const r = SubjectToken.safeParse(s);
  if (!r.success) throw new RangeError(`${what} '${s}' ${r.error.issues[0]?.message ?? "is not a subject token"}`);
  return s;
}

const ROOT = "ringtune";

export const subjects = {
  /**
   * Request/reply: a worker announces itself to the coordinator. The worker's id is in the subject, where
   * the NATS permissions of that worker's own user allow it and no other: the coordinator takes a
   * registration only when the message names the id of its subject.
   */
  workerRegister: (workerId: string) => `${ROOT}.worker.${token("worker id", workerId)}.register`,
  workerRegisterAll: `${ROOT}.worker.*.register`,
  /** A worker's periodic liveness message; the coordinator subscribes to the wildcard (same rule as above). */
  workerHeartbeat: (workerId: string) => `${ROOT}.worker.${token("worker id", workerId)}.heartbeat`,
  workerHeartbeatAll: `${ROOT}.worker.*.heartbeat`,
  /** The worker id a `ringtune.worker.<id>.…` subject names. */
  workerOfSubject: (subject: string) => subject.split(".")[2] ?? "",

  /** Request/reply: ask ring member `rank` for its data-plane TCP address. */
  peerAddress: (ring: string, rank: number) => `${ROOT}.ring.${token("ring id", ring)}.rank.${rank}.addr`,

  /** Request/reply: the sender of edge from->to checks the receiver is subscribed and speaks our version. */
  edgeHello: (ring: string, from: number, to: number) => `${edgeRoot(ring, from, to)}.hello`,
  /** One subject per ring edge for the chunks of the NATS transport. */
  edgeChunks: (ring: string, from: number, to: number) => `${edgeRoot(ring, from, to)}.chunks`,
  /** Flow-control acknowledgements flowing back along the edge, receiver to sender. */
  edgeAcks: (ring: string, from: number, to: number) => `${edgeRoot(ring, from, to)}.acks`,
} as const;

function edgeRoot(ring: string, from: number, to: number): string {
  return `${ROOT}.ring.${token("ring id", ring)}.edge.${from}-${to}`;
}
