// Gradient all-reduce over a ring of workers: the public entry of worker/allreduce.
export { connectTransport, type RingMember } from "./create_transport.js";
export {
  ringAllReduce,
  ringReduceScatter,
  ringAllGather,
  ownedSpan,
  allReduceTag,
  DEFAULT_CHUNK_ELEMENTS,
  type AllReduceOptions,
} from "./ring_allreduce.js";
export type { Transport, TaggedStream } from "./transport.js";
export { DEFAULT_WINDOW } from "./credited_transport.js";
export { DEFAULT_PEER_TIMEOUT_MS } from "./peer_liveness.js";
export {
  ChunkOrderError,
  PeerDisconnectedError,
  PeerSetupError,
  PeerTimeoutError,
  TagInUseError,
  TransportClosedError,
} from "./errors.js";
export { NcclDataPlane, ncclRankOf, ncclUnavailableReason, newNcclId } from "./nccl_plane.js";
export { sealNcclId, openNcclId, NCCL_ID_BYTES } from "./nccl_id.js";
