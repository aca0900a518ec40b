// Builds a ring member's transport of either kind: the credit window on top of a TCP or NATS link.
import type { NatsConnection } from "@nats-io/transport-node";
import { DEFAULT_TRANSPORT, type TransportKind } from "../../proto/mod.js";
import { CreditedTransport, DEFAULT_WINDOW } from "./credited_transport.js";
import { connectNatsLink } from "./nats_link.js";
import { DEFAULT_PEER_TIMEOUT_MS } from "./peer_liveness.js";
import { connectTcpLink } from "./tcp_link.js";
import type { Transport } from "./transport.js";

export interface RingMember {
  nc: NatsConnection;
  /** Ring id, unique per job and ring formation; a NATS subject token. */
  ring: string;
  rank: number;
  size: number;
  kind?: TransportKind;
  /** Chunks in flight per edge and tag. */
  window?: number;
  /** TCP only: interface to listen on and address neighbours connect to. */
  listenHost?: string;
  advertiseHost?: string;
  /** How long to wait for the neighbours to appear. */
  setupTimeoutMs?: number;
  /** How long a neighbour may send nothing before every wait on the ring fails (0: for ever). */
  peerTimeoutMs?: number;
  /** How a rank is named in errors: its worker id, say. */
  describePeer?: (rank: number) => string;
  /** the ring's secret: TCP edges prove both sides hold it, NATS messages are sealed with it */
  secret?: Uint8Array;
  /** told of each stray connection (TCP) or unsealed message (NATS) refused */
  onRefused?: (why: string) => void;
}

/** Connects to both ring neighbours; resolves once both edges are up. n=1 needs no connection. */
export async function connectTransport(m: RingMember): Promise<Transport> {
  if (!Number.isInteger(m.size) || m.size < 1) throw new RangeError(`ring size must be an integer >= 1, got ${m.size}`);
  if (!Number.isInteger(m.rank) || m.rank < 0 || m.rank >= m.size) {
    throw new RangeError(`rank must be an integer in [0, ${m.size}), got ${m.rank}`);
  }
  const kind = m.kind ?? DEFAULT_TRANSPORT;
  const transport = new CreditedTransport(m.rank, m.size, m.window ?? DEFAULT_WINDOW, {
    timeoutMs: m.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS,
    describePeer: m.describePeer,
  });
  if (m.size === 1) {
    return transport.attach({
      kind,
      maxChunkElements: Number.MAX_SAFE_INTEGER,
      sendChunk: () => {
        throw new Error("a ring of one rank sends nothing");
      },
      sendAck: () => {},
      close: async () => {},
    });
  }
  const common = { ...m, events: transport.events };
  const link = kind === "tcp" ? await connectTcpLink(common) : await connectNatsLink(common);
  return transport.attach(link);
}
