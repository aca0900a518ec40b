// Whether a NATS user reaches a subject, measured on a real server rather than read from its config: a
// message carrying a fresh marker either arrives where it was sent or it does not. A spy with full rights
// (the coordinator's user) receives what a probed user publishes, and publishes what a probed user tries to
// read; only messages with the probe's own marker are counted, so real traffic on the subject never counts.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";

/** How long a probe waits for its message: delivery on a local server takes well under a millisecond. */
const WAIT_MS = 300;

function marker(): Uint8Array {
  return new TextEncoder().encode(`probe-${randomBytes(8).toString("hex")}`);
}
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** How many of the messages `publisher` sends on `subject` reach a subscription of `spy`'s (0 or 1). */
export async function delivered(subject: string, publisher: NatsConnection, spy: NatsConnection): Promise<number> {
  const probe = marker();
  let seen = 0;
  const sub = spy.subscribe(subject, {
    callback: (_err, msg) => {
      if (same(msg.data, probe)) seen++;
    },
  });
  await spy.flush();
  publisher.publish(subject, probe);
  await publisher.flush().catch(() => {});
  await new Promise((r) => setTimeout(r, WAIT_MS));
  sub.unsubscribe();
  return seen;
}

/** How many of the messages `spy` sends on `subject` reach `subscriber`'s subscription to `pattern` (0 or 1). */
export async function overheard(
  pattern: string,
  subject: string,
  subscriber: NatsConnection,
  spy: NatsConnection,
): Promise<number> {
  const probe = marker();
  let seen = 0;
  const sub = subscriber.subscribe(pattern, {
    callback: (err, msg) => {
      if (!err && same(msg.data, probe)) seen++;
    },
  });
  await subscriber.flush().catch(() => {});
  spy.publish(subject, probe);
  await spy.flush();
  await new Promise((r) => setTimeout(r, WAIT_MS));
  if (!sub.isClosed()) sub.unsubscribe();
  return seen;
}
