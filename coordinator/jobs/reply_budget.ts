// How large a reply the coordinator may send: one NATS message, under the server's max_payload, with room
// left for headers. A reply built from what clients sent (records, echoed values) is measured against it
// before it is sent, since a publish over the limit throws.
import type { NatsConnection } from "@nats-io/transport-node";

/** Headers (Content-Type, the reply's status) and msgpack/JSON framing: far more than they take. */
const HEADER_ALLOWANCE = 4096;
/** nats-server's default max_payload, for a connection that has not yet heard the server's limit. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** The most bytes one reply body may have on this connection. */
export function replyBudget(nc: NatsConnection): number {
  return (nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADER_ALLOWANCE;
}
