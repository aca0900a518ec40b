// Encoding of the public job API: JSON for any NATS client, msgpack for ringtune's own CLI. The encoding
// of a message is named by its Content-Type header, never guessed from the bytes (a body can be both);
// no header means JSON, so `nats req` and plain clients need none. Replies use the request's encoding.
import { decode as decodeMsgpack, encode as encodeMsgpack } from "@msgpack/msgpack";
import type { z } from "zod";
import { JobApiRefusal, type ApiError } from "./job_api_error.js";
import { JOB_API_VERSION, JOB_API_VERSIONS } from "./job_api_version.js";
import type { Body, MessageType } from "./codec.js";
import { clippedJson } from "./clip_text.js";

export const CONTENT_TYPE_HEADER = "Content-Type";
export const JSON_CONTENT_TYPE = "application/json";
export const MSGPACK_CONTENT_TYPE = "application/msgpack";
export type JobEncoding = "json" | "msgpack";

/** The encoding a Content-Type header names; absent means JSON; anything else is refused. */
export function encodingOf(contentType: string | undefined): JobEncoding {
  const mediaType = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (mediaType === "" || mediaType === JSON_CONTENT_TYPE) return "json";
  if (mediaType === MSGPACK_CONTENT_TYPE || mediaType === "application/x-msgpack") return "msgpack";
  throw JobApiRefusal.one(
    "unsupported_encoding",
    `${CONTENT_TYPE_HEADER} '${contentType}' is not served: use ${JSON_CONTENT_TYPE} (or no header) or ${MSGPACK_CONTENT_TYPE}`,
    null,
  );
}

export function contentTypeOf(encoding: JobEncoding): string {
  return encoding === "json" ? JSON_CONTENT_TYPE : MSGPACK_CONTENT_TYPE;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseBody(messageType: string, bytes: Uint8Array, encoding: JobEncoding): unknown {
  if (bytes.length === 0) return {}; // a bare request (`nats req ringtune.job.list ""`) means no options
  try {
    return encoding === "json" ? JSON.parse(utf8.decode(bytes)) : decodeMsgpack(bytes);
  } catch (err) {
    const what = encoding === "json" ? "UTF-8 JSON" : "msgpack";
    throw JobApiRefusal.one("bad_json", `${messageType}: the body is not ${what} (${(err as Error).message})`);
  }
}

/** The major version a request's `v` names (an integer, or a string such as "1" or "1.2"). */
function majorVersion(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  // a version string is short: a longer one is not tested against the pattern at all
  if (typeof v === "string" && v.length <= 32 && /^\d+(\.\d+)*$/.test(v)) return Number(v.split(".")[0]);
  return undefined;
}

function checkRequestVersion(messageType: string, v: unknown): number {
  if (v === undefined) return JOB_API_VERSION;
  const major = majorVersion(v);
  if (major === undefined)
    throw JobApiRefusal.one(
      "wrong_type",
      `${messageType}: v: expected a version number such as 1, got ${clippedJson(v)}`,
      "v",
    );
  if (!JOB_API_VERSIONS.includes(major)) {
    throw new JobApiRefusal([
      {
        code: "unsupported_version",
        message: `${messageType}: version ${major} is not served; this coordinator serves version(s) ${JOB_API_VERSIONS.join(", ")}`,
        key: "v",
        versions: [...JOB_API_VERSIONS],
      },
    ]);
  }
  return major;
}

/** `a.b[0].c` for a zod issue path. */
export function keyPath(path: readonly PropertyKey[]): string {
  return path
    .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
    .join("")
    .replace(/^\./, "");
}

function problemsOf(messageType: string, error: z.ZodError): ApiError[] {
  return error.issues.flatMap((i): ApiError[] => {
    const where = keyPath(i.path);
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => {
        const key = where ? `${where}.${k}` : k;
        return { code: "unknown_key", message: `${messageType}: ${key}: unknown key '${k}'`, key };
      });
    }
    const code = i.code === "invalid_type" ? "wrong_type" : "invalid_value";
    return [{ code, message: `${messageType}: ${where || "(message)"}: ${i.message}`, key: where || null }];
  });
}

/**
 * Decodes and validates a job API request: unknown keys, wrong types and unserved versions become a
 * JobApiRefusal naming the key. A missing `v` is the current version.
 */
export function decodeJobRequest<M extends MessageType<z.ZodRawShape>>(
  type: M,
  bytes: Uint8Array,
  encoding: JobEncoding,
): Body<M> {
  const raw = parseBody(type.name, bytes, encoding);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    const got = raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw;
    throw JobApiRefusal.one("bad_json", `${type.name}: expected an object, got ${got}`);
  }
  const v = checkRequestVersion(type.name, (raw as { v?: unknown }).v);
  const r = type.schema.strict().safeParse({ ...raw, v });
  if (!r.success) throw new JobApiRefusal(problemsOf(type.name, r.error));
  const { v: _v, ...body } = r.data as Record<string, unknown>;
  return body as Body<M>;
}

/** Decodes a reply or a KV record. Not strict: a newer coordinator may add keys an older client ignores. */
export function decodeJobReply<M extends MessageType<z.ZodRawShape>>(
  type: M,
  bytes: Uint8Array,
  encoding: JobEncoding,
): Body<M> {
  const raw = parseBody(type.name, bytes, encoding) as { v?: unknown };
  checkRequestVersion(type.name, raw?.v);
  const r = type.schema.safeParse({ ...raw, v: raw?.v ?? JOB_API_VERSION });
  if (!r.success) throw new JobApiRefusal(problemsOf(type.name, r.error));
  const { v: _v, ...body } = r.data as Record<string, unknown>;
  return body as Body<M>;
}

/** Validates `body` and encodes it with the current job API version. */
export function encodeJobMessage<M extends MessageType<z.ZodRawShape>>(
  type: M,
  body: Body<M>,
  encoding: JobEncoding,
): Uint8Array {
  const message = { ...(body as object), v: JOB_API_VERSION };
  const r = type.schema.safeParse(message);
  if (!r.success) {
    const detail = problemsOf(type.name, r.error)
      .map((p) => p.message)
      .join("; ");
    throw new Error(`refusing to encode ${detail}`);
  }
  return encoding === "json"
    ? new TextEncoder().encode(JSON.stringify(message))
    : encodeMsgpack(message, { ignoreUndefined: true });
}
