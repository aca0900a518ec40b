// One serving request forwarded to one worker over NATS: the body goes to the worker's node subject with a
// fresh inbox as reply subject; a plain request gets one reply, a streamed one a chunk per message and an
// empty message at the end. The caller learns when the worker is not there (no subscriber, or its
// heartbeats stopped) so it can try another, and a caller that goes away cancels the generation.
import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { serveSubjects } from "../../proto/serve_subjects.js";

/** The worker did not answer: no subscriber on its subject, or it stopped sending heartbeats. */
export class WorkerUnreachableError extends Error {
  override name = "WorkerUnreachableError";
}

export interface ForwardOptions {
  stream: boolean;
  /** a streamed reply's chunks, in order */
  onChunk?: (chunk: object) => void;
  /** aborting sends a cancel for this request and resolves at once */
  signal?: AbortSignal;
  /** asked every `checkEveryMs` while waiting: false means the worker is gone */
  alive: () => boolean;
  checkEveryMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The single reply (a plain request, or the error that refused a stream before its first chunk), or
 * undefined (a stream that ended, or a request cancelled).
 */
export function forwardToWorker(
  nc: NatsConnection,
  subject: string,
  body: object,
  o: ForwardOptions,
): Promise<object | undefined> {
  const inbox = createInbox();
  return new Promise((resolve, reject) => {
    let done = false;
    let chunks = 0;
    const finish = (f: () => void) => {
      if (done) return;
      done = true;
      clearInterval(watch);
      o.signal?.removeEventListener("abort", onAbort);
      sub.unsubscribe();
      f();
    };
    const onAbort = () => {
      nc.publish(serveSubjects.cancel, encoder.encode(JSON.stringify({ reply: inbox })));
      finish(() => resolve(undefined));
    };
    const sub = nc.subscribe(inbox, {
      callback: (err, msg) => {
        if (err) return finish(() => reject(err));
        if (isNoResponders(msg))
          return finish(() => reject(new WorkerUnreachableError(`no worker listens on ${subject}`)));
        if (msg.data.length === 0) return finish(() => resolve(undefined));
        let reply: object;
        try {
          reply = JSON.parse(decoder.decode(msg.data)) as object;
        } catch (e) {
          return finish(() => reject(new Error(`${subject}: a reply that is not JSON (${(e as Error).message})`)));
        }
        // A stream refused before its first chunk is answered like a plain request: with the error alone.
        if (o.stream && !(chunks === 0 && isErrorBody(reply))) {
          chunks++;
          o.onChunk?.(reply);
        } else finish(() => resolve(reply));
      },
    });
    const watch = setInterval(() => {
      if (!o.alive())
        finish(() => reject(new WorkerUnreachableError(`the worker behind ${subject} stopped answering`)));
    }, o.checkEveryMs);
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener("abort", onAbort);
    nc.publish(subject, encoder.encode(JSON.stringify(body)), { reply: inbox });
  });
}

function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

/** An OpenAI error object: {error: {message, type, ...}} */
export function isErrorBody(x: unknown): x is { error: { message: string; type: string; param?: string | null } } {
  return typeof x === "object" && x !== null && "error" in x && typeof (x as { error: unknown }).error === "object";
}
