// The NATS front door: a subscription per served model (queue group SERVE_QUEUE, so replicas share its
// requests), added and dropped as adapters load and unload. A request with `stream: true` gets one reply
// message per chunk and an empty message at the end; any failure is an OpenAI error object. A message on
// serveSubjects.cancel naming a request's reply subject stops that generation. A serving worker also
// answers on its own node subjects, where the coordinator forwards the requests it routes there.
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { NODE_OPS, SERVE_QUEUE, serveSubjects, type NodeOp } from "../proto/serve_subjects.js";
import { badRequest, toOpenAiError } from "./errors.js";
import type { ModelCatalog, ServedModel } from "./model_catalog.js";
import type { CallOptions, ServeApi } from "./serve_api.js";

type Handler = (body: unknown, call: CallOptions) => Promise<object | undefined> | object;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NatsFrontDoor {
  private readonly perModel = new Map<string, Subscription[]>();
  private readonly shared: Subscription[] = [];
  /** running requests by reply subject, so a cancel message can stop one */
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly catalog: ModelCatalog,
    private readonly api: ServeApi,
    private readonly log: (msg: string) => void = () => {},
    /** a serving worker's id: it answers on serveSubjects.node(id, ...) too */
    nodeId?: string,
  ) {
    const base = catalog.base.name;
    this.shared.push(
      this.listen(serveSubjects.models, undefined, () => api.models()),
      // Every server of the base loads or unloads: no queue group.
      this.listen(serveSubjects.loadAdapter(base), undefined, (b) => api.loadAdapter(b)),
      this.listen(serveSubjects.unloadAdapter(base), undefined, (b) => api.unloadAdapter(b)),
      nc.subscribe(serveSubjects.cancel, { callback: (_err, msg) => this.cancel(msg) }),
    );
    if (nodeId !== undefined)
      for (const op of NODE_OPS) this.shared.push(this.listen(serveSubjects.node(nodeId, op), undefined, this.op(op)));
    for (const m of catalog.list()) this.add(m);
    catalog.onChange((c) => (c.type === "loaded" ? this.add(c.model) : this.remove(c.model)));
  }

  private op(op: NodeOp): Handler {
    switch (op) {
      case "chat":
        return (b, c) => this.api.chat(b, c);
      case "completions":
        return (b, c) => this.api.completions(b, c);
      case "load_adapter":
        return (b) => this.api.loadAdapter(b);
      case "unload_adapter":
        return (b) => this.api.unloadAdapter(b);
    }
  }

  private cancel(msg: Msg): void {
    let reply: unknown;
    try {
      reply = (JSON.parse(decoder.decode(msg.data)) as { reply?: unknown }).reply;
    } catch {
      return this.log(`nats ${serveSubjects.cancel}: the body is not JSON {"reply": SUBJECT}`);
    }
    if (typeof reply === "string") this.running.get(reply)?.abort();
  }

  private add(m: ServedModel): void {
    // The subject names the model; the body's `model` may be left out.
    const named =
      (f: Handler): Handler =>
      (b, c) =>
        f(typeof b === "object" && b !== null ? { model: m.name, ...b } : b, c);
    this.perModel.set(m.name, [
      this.listen(
        serveSubjects.chat(m.name),
        SERVE_QUEUE,
        named((b, c) => this.api.chat(b, c)),
      ),
      this.listen(
        serveSubjects.completions(m.name),
        SERVE_QUEUE,
        named((b, c) => this.api.completions(b, c)),
      ),
    ]);
  }

  private remove(m: ServedModel): void {
    for (const s of this.perModel.get(m.name) ?? []) s.unsubscribe();
    this.perModel.delete(m.name);
  }

  private listen(subject: string, queue: string | undefined, handler: Handler): Subscription {
    return this.nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) return this.log(`nats ${subject}: ${err.message}`);
        void this.answer(msg, handler);
      },
    });
  }

  private async answer(msg: Msg, handler: Handler): Promise<void> {
    const reply = (body: object | null) => {
      if (!msg.reply) return;
      try {
        this.nc.publish(msg.reply, body === null ? new Uint8Array(0) : encoder.encode(JSON.stringify(body)));
      } catch (err) {
        this.log(`nats reply: ${(err as Error).message}`);
      }
    };
    const aborter = new AbortController();
    if (msg.reply) this.running.set(msg.reply, aborter);
    let streamed = false;
    try {
      let body: unknown;
      try {
        body = msg.data.length === 0 ? {} : msg.json();
      } catch (err) {
        throw badRequest(`the body is not valid JSON: ${(err as Error).message}`, null, "bad_json");
      }
      const stream = typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true;
      const out = await handler(body, {
        signal: aborter.signal,
        emit: stream
          ? (chunk) => {
              streamed = true;
              reply(chunk);
            }
          : undefined,
      });
      if (stream) reply(null);
      else if (out) reply(out);
      else if (aborter.signal.aborted) reply(cancelledBody());
    } catch (err) {
      const { status, body } = toOpenAiError(err);
      if (status >= 500) this.log(`nats ${msg.subject}: ${(err as Error).stack ?? String(err)}`);
      reply(body);
      if (streamed || (msg.data.length > 0 && isStreamRequest(msg))) reply(null);
    } finally {
      if (msg.reply) this.running.delete(msg.reply);
    }
  }

  async close(): Promise<void> {
    for (const c of this.running.values()) c.abort();
    for (const subs of this.perModel.values()) for (const s of subs) s.unsubscribe();
    for (const s of this.shared) s.unsubscribe();
    this.perModel.clear();
  }
}

/** What a cancelled non-streamed request is answered, so a caller still waiting is not left hanging. */
function cancelledBody(): object {
  return {
    error: { message: "the request was cancelled", type: "invalid_request_error", param: null, code: "cancelled" },
  };
}

function isStreamRequest(msg: Msg): boolean {
  try {
    return (msg.json() as { stream?: unknown }).stream === true;
  } catch {
    return false;
  }
}
