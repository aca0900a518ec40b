// Job records in the KV bucket are JSON, so `nats kv get` and `nats kv watch` show them as they are and
// any client can follow a job without ringtune's code.
import type { Body } from "./codec.js";
import { decodeJobReply, encodeJobMessage } from "./job_encoding.js";
import { JobRecord } from "./jobs.js";

export type JobRecordBody = Body<typeof JobRecord>;

export function encodeJobRecord(record: JobRecordBody): Uint8Array {
  return encodeJobMessage(JobRecord, record, "json");
}

export function decodeJobRecord(bytes: Uint8Array): JobRecordBody {
  return decodeJobReply(JobRecord, bytes, "json");
}
