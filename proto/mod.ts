// The wire protocol: the only module that knows subjects, schemas and encoding.
export { PROTOCOL_VERSION } from "./version.js";
export { ProtocolDecodeError, ProtocolVersionError } from "./errors.js";
export { decodeMessage, encodeMessage, type Body, type Message, type MessageType } from "./codec.js";
export { encodeChunk, encodeChunkParts, type ChunkParts } from "./chunk_frame.js";
export { SubjectToken, subjects } from "./subjects.js";
export * from "./messages.js";
export * from "./job_subjects.js";
export * from "./jobs.js";
export * from "./training.js";
export * from "./task_sums.js";
export * from "./token_batch.js";
export * from "./worker_commands.js";
export * from "./output_layout.js";
export * from "./generation_eval.js";
export * from "./memory_estimate.js";
