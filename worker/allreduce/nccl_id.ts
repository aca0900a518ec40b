// The NCCL unique id of a ring epoch, as it travels: the ring's first rank makes it, seals it with the ring's
// secret, and the coordinator hands the sealed bytes to every rank with its assignment. The id names the first
// rank's bootstrap listener; anyone holding it could join the communicator, so on NATS it is only ever sealed,
// bound to the ring formation (a sealed id replayed into another ring does not open).
import { ringSeal } from "./nats_seal.js";

/** NCCL_UNIQUE_ID_BYTES */
export const NCCL_ID_BYTES = 128;

function idSubject(ring: string): string {
  return `ringtune.ring.${ring}.nccl-id`;
}

export function sealNcclId(secret: Uint8Array, ring: string, id: Uint8Array): Uint8Array {
  if (id.length !== NCCL_ID_BYTES)
    throw new RangeError(`an NCCL unique id is ${NCCL_ID_BYTES} bytes, got ${id.length}`);
  return ringSeal(secret).seal(idSubject(ring), id);
}

/** The id, or an error saying the bytes (the assign's `field`) were not sealed for this ring with its secret. */
export function openNcclId(secret: Uint8Array, ring: string, sealed: Uint8Array, field = "nccl_id"): Uint8Array {
  const id = ringSeal(secret).open(idSubject(ring), sealed);
  if (!id || id.length !== NCCL_ID_BYTES)
    throw new Error(`assign: ${field} was not sealed for ring ${ring} with the ring's secret`);
  return new Uint8Array(id);
}
