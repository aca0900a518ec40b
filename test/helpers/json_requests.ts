// Job API requests as a client in another language makes them: bytes of JSON (or anything else) on a
// subject, an optional Content-Type header, the reply parsed with JSON.parse, not with ringtune's codec.
import { headers, type NatsConnection } from "@nats-io/transport-node";

export interface RawReply {
  contentType: string | undefined;
  bytes: Uint8Array;
  /** the reply parsed as JSON, when it is JSON */
  json: Record<string, unknown> & { ok?: boolean; error?: ApiErrorJson; errors?: ApiErrorJson[] };
}

export interface ApiErrorJson {
  code: string;
  message: string;
  key: string | null;
  versions?: number[];
}

/** Sends `body` (an object is sent as JSON; a string or bytes as they are) and returns the raw reply. */
export async function rawRequest(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  contentType?: string,
): Promise<RawReply> {
  const data =
    body instanceof Uint8Array
      ? body
      : new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
  const h = headers();
  if (contentType !== undefined) h.set("Content-Type", contentType);
  const msg = await nc.request(subject, data, { timeout: 10_000, headers: contentType === undefined ? undefined : h });
  const replyType = msg.headers?.get("Content-Type") || undefined;
  let json = {} as RawReply["json"];
  if (replyType === "application/json") json = JSON.parse(new TextDecoder().decode(msg.data)) as RawReply["json"];
  return { contentType: replyType, bytes: msg.data, json };
}
