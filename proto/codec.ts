// msgpack encoding of every wire message: the protocol version is added on encode and checked on decode
// before the schema, so a peer of another version gets ProtocolVersionError, not a confusing schema error.
import { Decoder, Encoder } from "@msgpack/msgpack";
import { z } from "zod";
import { ProtocolDecodeError, ProtocolVersionError } from "./errors.js";
import { typedArrayCodec } from "./typed_arrays.js";
import { PROTOCOL_VERSION } from "./version.js";

/** A named message schema; `v` is implied and not part of `shape`. */
export interface MessageType<S extends z.ZodRawShape> {
  readonly name: string;
  readonly schema: z.ZodObject<S & { v: z.ZodNumber }>;
}

export type Body<M> = M extends MessageType<infer S> ? z.infer<z.ZodObject<S>> : never;
export type Message<M> = Body<M> & { v: number };

export function defineMessage<S extends z.ZodRawShape>(name: string, shape: S): MessageType<S> {
  const schema = z.object({ ...shape, v: z.number() }) as unknown as z.ZodObject<S & { v: z.ZodNumber }>;
  return { name, schema };
}

const encoder = new Encoder({ extensionCodec: typedArrayCodec, ignoreUndefined: true });
const decoder = new Decoder({ extensionCodec: typedArrayCodec });

function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join(".") : "(message)"}: ${i.message}`).join("; ");
}

/** Validates `body` against the message schema and encodes it with the current protocol version. */
export function encodeMessage<M extends MessageType<z.ZodRawShape>>(type: M, body: Body<M>): Uint8Array {
  const message = { ...(body as object), v: PROTOCOL_VERSION };
  const r = type.schema.safeParse(message);
  if (!r.success) throw new ProtocolDecodeError(type.name, `refusing to encode: ${describeIssues(r.error)}`);
  return encoder.encode(message);
}

/** Decodes and validates bytes; typed arrays in the result may be views into `bytes` (no copy). */
export function decodeMessage<M extends MessageType<z.ZodRawShape>>(type: M, bytes: Uint8Array): Message<M> {
  let raw: unknown;
  try {
    raw = decoder.decode(bytes);
  } catch (err) {
    throw new ProtocolDecodeError(type.name, `not a msgpack message (${(err as Error).message})`, { cause: err });
  }
  checkVersion(type.name, raw);
  const r = type.schema.safeParse(raw);
  if (!r.success) throw new ProtocolDecodeError(type.name, describeIssues(r.error));
  return r.data as Message<M>;
}

/** Throws ProtocolVersionError unless `raw` is an object carrying this process's protocol version. */
export function checkVersion(messageType: string, raw: unknown): void {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ProtocolDecodeError(
      messageType,
      `expected a msgpack map, got ${Array.isArray(raw) ? "array" : typeof raw}`,
    );
  }
  const v = (raw as { v?: unknown }).v;
  if (v !== PROTOCOL_VERSION) throw new ProtocolVersionError(messageType, PROTOCOL_VERSION, v);
}
