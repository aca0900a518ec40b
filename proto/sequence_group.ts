// Sequence-parallel groups as both sides name them: ranks [g*N, (g+1)*N) of a ring of N-wide groups form
// group g, whose own ring id keeps its addresses and its NCCL id apart from the ring's and the other groups'.

/** The ring id of group g of ring `ring`: a NATS subject token of its own. */
export function sequenceGroupRing(ring: string, group: number): string {
  return `${ring}-sp${group}`;
}

/** The group of ring rank `rank` and its place in that group, for groups of `size` ranks. */
export function sequenceGroupOf(rank: number, size: number): { group: number; rank: number } {
  return { group: Math.floor(rank / size), rank: rank % size };
}
