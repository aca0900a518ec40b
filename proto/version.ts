// The wire protocol version. Every message carries it as `v`; a peer speaking another version is refused
// with ProtocolVersionError rather than misread. Bump it whenever a schema changes incompatibly.
// 2: a TCP ring edge is opened by the rank that receives its chunks (it connects to rank-1 and says
//    hello), not by the sender; a rank of version 1 would wait for the opposite connection.
// 3: TrainStep and EvalStep carry `batch` (TokenBatch, with row_count) instead of `rows` (Rows, with rows).
export const PROTOCOL_VERSION = 3;
