// A NATS request to a peer that may not be listening yet (it is still starting): retried on "no
// responders" and timeouts until the deadline, so ranks may start in any order.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { errors } from "@nats-io/transport-node";
import { PeerSetupError } from "./errors.js";

/** How long a rank waits for its ring neighbours to join unless the job says otherwise. */
export const DEFAULT_SETUP_TIMEOUT_MS = 30_000;

export async function requestUntilServed(
  nc: NatsConnection,
  subject: string,
  payload: Uint8Array,
  deadlineMs = DEFAULT_SETUP_TIMEOUT_MS,
): Promise<Msg> {
  const until = Date.now() + deadlineMs;
  let pause = 5;
  for (;;) {
    try {
      return await nc.request(subject, payload, { timeout: Math.max(1, Math.min(2_000, until - Date.now())) });
    } catch (err) {
      if (!peerNotServingYet(err)) throw err;
      if (Date.now() + pause >= until) {
        throw new PeerSetupError(`no reply on ${subject} within ${deadlineMs} ms: is that ring member running?`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 100);
    }
  }
}

/** Whether a request failed only because nobody answered it (yet): no responders, or a timeout. */
export function peerNotServingYet(err: unknown): boolean {
  return (
    (err instanceof errors.RequestError && err.isNoResponders()) ||
    err instanceof errors.NoRespondersError ||
    err instanceof errors.TimeoutError
  );
}
