// TCP address exchange over NATS: each ring member answers requests for its own data-plane address,
// and asks for its next neighbour's. Request/reply needs no shared state and works in any start order.
//
// Every worker's NATS user may use the ring subjects, so any worker can receive an address request and
// answer it. In a ring with a secret both the request and the answer are sealed with it (nats_seal.ts,
// bound to the subject and to which of the two it is), and the answer carries the request's fresh nonce:
// an answer that does not open, or answers another request, is ignored and the asker keeps waiting for
// the real member's. Without that, another worker could point a rank at a listener of its own and relay
// the edge's authenticated hello to the real peer, sitting in the middle of the gradient stream.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  PeerAddress,
  PeerAddressRequest,
  decodeMessage,
  encodeMessage,
  subjects,
  type Message,
} from "../../proto/mod.js";
import { PeerSetupError } from "./errors.js";
import { NO_SEAL, ringSeal, type Seal } from "./nats_seal.js";
import { DEFAULT_SETUP_TIMEOUT_MS, peerNotServingYet } from "./request_retry.js";
import { newHelloNonce } from "./ring_auth.js";

export interface Address {
  host: string;
  port: number;
}

export interface PeerAddressOptions {
  /** the ring's secret: requests and answers are sealed with it, and what does not open is ignored */
  secret?: Uint8Array;
  /** told of each request or answer ignored because it did not come from a holder of the secret */
  onRefused?: (why: string) => void;
}

/**
 * How long one request's answers are collected before it is sent again: the real member may subscribe only
 * after a request went out, and while a forger answers, "no responders" never says to ask again sooner.
 */
const ANSWER_WINDOW_MS = 500;

/** A sealed request and a sealed answer on one subject never open as each other. */
const requestSealSubject = (subject: string) => `${subject} request`;
const answerSealSubject = (subject: string) => `${subject} answer`;

function sealOf(secret: Uint8Array | undefined): Seal {
  return secret ? ringSeal(secret) : NO_SEAL;
}

/** Answers requests for `rank`'s address until the returned subscription is unsubscribed. */
export function servePeerAddress(
  nc: NatsConnection,
  ring: string,
  rank: number,
  addr: Address,
  o: PeerAddressOptions = {},
): Subscription {
  const subject = subjects.peerAddress(ring, rank);
  const seal = sealOf(o.secret);
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const plain = seal.open(requestSealSubject(subject), msg.data);
      if (!plain) {
        o.onRefused?.(
          `ring ${ring}: ignored an address request on ${subject}: it does not prove the secret of the ring`,
        );
        return;
      }
      // An asker of another version refuses the answer when decoding it, which says more than silence.
      let nonce: Uint8Array<ArrayBuffer> | undefined;
      try {
        const asked = decodeMessage(PeerAddressRequest, plain).nonce;
        nonce = asked && Uint8Array.from(asked);
      } catch {
        nonce = undefined;
      }
      const answer = encodeMessage(PeerAddress, { ring, rank, host: addr.host, port: addr.port, nonce });
      msg.respond(seal.seal(answerSealSubject(subject), answer));
    },
  });
}

/**
 * `rank`'s address, asked for by `asker` until the real member answers or the deadline passes; answers that
 * do not prove the ring's secret (or answer an older request) are ignored.
 */
export async function lookupPeerAddress(
  nc: NatsConnection,
  ring: string,
  asker: number,
  rank: number,
  o: PeerAddressOptions & { deadlineMs?: number } = {},
): Promise<Message<typeof PeerAddress>> {
  const subject = subjects.peerAddress(ring, rank);
  const seal = sealOf(o.secret);
  const deadlineMs = o.deadlineMs ?? DEFAULT_SETUP_TIMEOUT_MS;
  const until = Date.now() + deadlineMs;
  let pause = 5;
  let ignored = 0;
  for (;;) {
    const nonce = o.secret ? newHelloNonce() : undefined;
    const request = seal.seal(
      requestSealSubject(subject),
      encodeMessage(PeerAddressRequest, { ring, rank: asker, nonce }),
    );
    try {
      // Every answer within the window is looked at: a forged one arriving first does not hide the real one.
      const answers = await nc.requestMany(subject, request, {
        strategy: "timer",
        maxWait: Math.max(1, Math.min(ANSWER_WINDOW_MS, until - Date.now())),
      });
      for await (const msg of answers) {
        const answer = openAnswer(msg.data, seal, subject, ring, rank, nonce);
        if (answer) return answer;
        ignored++;
        o.onRefused?.(`ring ${ring}: ignored an answer on ${subject}: it does not prove the secret of the ring`);
      }
    } catch (err) {
      if (!peerNotServingYet(err)) throw err;
    }
    if (Date.now() + pause >= until) {
      const forged = ignored > 0 ? ` (${ignored} answer(s) without the ring's secret ignored)` : "";
      throw new PeerSetupError(`no reply on ${subject} within ${deadlineMs} ms${forged}: is that ring member running?`);
    }
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 100);
  }
}

/** The answer, or undefined when it was not sealed with the secret for this request. */
function openAnswer(
  data: Uint8Array,
  seal: Seal,
  subject: string,
  ring: string,
  rank: number,
  nonce: Uint8Array | undefined,
): Message<typeof PeerAddress> | undefined {
  const plain = seal.open(answerSealSubject(subject), data);
  if (!plain) return undefined;
  // Opened with the secret: a ring member, so a decoding error (another version) is the ring's to report.
  const answer = decodeMessage(PeerAddress, plain);
  if (answer.ring !== ring || answer.rank !== rank) return undefined;
  if (nonce && !(answer.nonce && Buffer.from(answer.nonce).equals(Buffer.from(nonce)))) return undefined;
  return answer;
}
