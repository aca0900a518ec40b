// Failures of the data plane, one class per case, each with `name` set.

export class TransportClosedError extends Error {
  override name = "TransportClosedError";
}

/** A ring neighbour went away or its connection broke. */
export class PeerDisconnectedError extends Error {
  override name = "PeerDisconnectedError";
}

/** A second all-reduce was opened with a tag already in use on this transport. */
export class TagInUseError extends Error {
  override name = "TagInUseError";
  constructor(readonly tag: string) {
    super(`all-reduce tag '${tag}' is already in use: give concurrent calls distinct tags (step and bucket)`);
  }
}

/** Chunks arrived out of order or beyond the window: a peer broke the protocol or reused a live tag. */
export class ChunkOrderError extends Error {
  override name = "ChunkOrderError";
}

/** A ring neighbour was not found, or refused the edge, within the setup deadline. */
export class PeerSetupError extends Error {
  override name = "PeerSetupError";
}

/** A ring neighbour sent nothing (not even a keepalive) for the ring's peer timeout: stopped or hung. */
export class PeerTimeoutError extends Error {
  override name = "PeerTimeoutError";
}
