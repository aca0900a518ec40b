// Authentication of a ring's TCP edges: the coordinator gives every member of one ring formation the same
// random secret (in its assign command, over NATS where only the coordinator may publish commands), and
// each side of an edge proves it holds that secret with an HMAC over the edge it claims, bound to a fresh
// nonce of the connecting side. Anyone who can reach a worker's port can connect, but without the secret
// cannot join the ring, inject gradients or receive them.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Bytes of a ring secret and of a hello nonce. */
export const RING_SECRET_BYTES = 32;
export const HELLO_NONCE_BYTES = 16;

export function newRingSecret(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(randomBytes(RING_SECRET_BYTES));
}

export function newHelloNonce(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(randomBytes(HELLO_NONCE_BYTES));
}

export interface EdgeClaim {
  ring: string;
  from: number;
  to: number;
  transport: string;
}

/**
 * The MAC a side sends: `role` separates the connecting side's hello from the accepting side's reply, so
 * one can never be replayed as the other.
 */
export function edgeMac(
  secret: Uint8Array,
  role: "hello" | "accept",
  edge: EdgeClaim,
  nonce: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const h = createHmac("sha256", secret);
  h.update(`ringtune-edge-${role}\0${edge.ring}\0${edge.from}\0${edge.to}\0${edge.transport}\0`);
  h.update(nonce);
  return Uint8Array.from(h.digest());
}

/** Constant-time check of a MAC a peer sent; a missing or mis-sized one is simply wrong. */
export function edgeMacValid(
  secret: Uint8Array,
  role: "hello" | "accept",
  edge: EdgeClaim,
  nonce: Uint8Array | undefined,
  mac: Uint8Array | undefined,
): boolean {
  if (!nonce || !mac || nonce.length !== HELLO_NONCE_BYTES) return false;
  const want = edgeMac(secret, role, edge, nonce);
  return mac.length === want.length && timingSafeEqual(mac, want);
}
