// TCP address exchange over NATS: each ring member answers requests for its own data-plane address,
// and asks for its next neighbour's. Request/reply needs no shared state and works in any start order.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  PeerAddress,
  PeerAddressRequest,
  decodeMessage,
  encodeMessage,
  subjects,
  type Message,
} from "../../proto/mod.js";
import { requestUntilServed } from "./request_retry.js";

export interface Address {
  host: string;
  port: number;
}

/** Answers requests for `rank`'s address until the returned subscription is unsubscribed. */
export function servePeerAddress(nc: NatsConnection, ring: string, rank: number, addr: Address): Subscription {
  const reply = encodeMessage(PeerAddress, { ring, rank, host: addr.host, port: addr.port });
  return nc.subscribe(subjects.peerAddress(ring, rank), {
    // Every asker gets the same reply; an asker of another version refuses it when decoding.
    callback: (err, msg) => {
      if (!err) msg.respond(reply);
    },
  });
}

export async function lookupPeerAddress(
  nc: NatsConnection,
  ring: string,
  asker: number,
  rank: number,
  deadlineMs?: number,
): Promise<Message<typeof PeerAddress>> {
  const msg = await requestUntilServed(
    nc,
    subjects.peerAddress(ring, rank),
    encodeMessage(PeerAddressRequest, { ring, rank: asker }),
    deadlineMs,
  );
  return decodeMessage(PeerAddress, msg.data);
}
