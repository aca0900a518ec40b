// The error object of the public job API: every refusal is `{ code, message, key }`, where `key` names
// the request key (or job spec key) at fault, or is null when the whole message is (bad JSON, say).
import { z } from "zod";

export const API_ERROR_CODES = [
  /** the Content-Type header names an encoding the job API does not speak */
  "unsupported_encoding",
  /** the body is not JSON (or msgpack), or not an object */
  "bad_json",
  "unknown_key",
  "wrong_type",
  "invalid_value",
  /** `v` names a major version this coordinator does not serve (`versions` lists those it does) */
  "unsupported_version",
  /** the job spec breaks its schema; `key` is the spec key, as written in the job file */
  "invalid_spec",
  /** the job spec names a file or folder that does not exist */
  "missing_file",
  /** the job's per-rank memory estimate exceeds what every set of registered workers holds */
  "insufficient_memory",
  /** the job's `output` holds another job's files (the message names the folder and that job) */
  "output_in_use",
  "not_found",
  /** the job already ended (cancel of a completed, failed or canceled job) */
  "job_final",
  /** the reply would not fit in one NATS message (the server's max_payload) */
  "too_large",
  "internal",
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export const ApiError = z.object({
  code: z.enum(API_ERROR_CODES),
  message: z.string(),
  key: z.string().nullable(),
  /** with unsupported_version: the major versions served */
  versions: z.array(z.number().int()).optional(),
});
export type ApiError = z.infer<typeof ApiError>;

/** A request the job API refuses; `problems` holds every problem found (at least one). */
export class JobApiRefusal extends Error {
  override name = "JobApiRefusal";
  readonly problems: ApiError[];
  constructor(problems: ApiError[]) {
    super(problems.map((p) => p.message).join("\n"));
    this.problems = problems;
  }

  static one(code: ApiErrorCode, message: string, key: string | null = null): JobApiRefusal {
    return new JobApiRefusal([{ code, message, key }]);
  }
}
