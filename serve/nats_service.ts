// The NATS front door: a subscription per served model (queue group SERVE_QUEUE, so replicas share its
// requests), added and dropped as adapters load and unload. A request with `stream: true` gets one reply
// message per chunk and an empty message at the end; any failure is an OpenAI error object.
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { SERVE_QUEUE, serveSubjects } from "../proto/serve_subjects.js";
import { badRequest, toOpenAiError } from "./errors.js";
import type { ServedModel } from "./model_catalog.js";
import {
  chatCompletions,
  completions,
  listModels,
  loadAdapterRequest,
  unloadAdapterRequest,
  type ApiContext,
  type CallOptions,
} from "./openai_api.js";

type Handler = (body: unknown, call: CallOptions) => Promise<object | undefined> | object;

const encoder = new TextEncoder();

export class NatsFrontDoor {
  private readonly perModel = new Map<string, Subscription[]>();
  private readonly shared: Subscription[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly ctx: ApiContext,
    resolveAdapter: (source: string) => Promise<string>,
    private readonly log: (msg: string) => void = () => {},
  ) {
    const base = ctx.catalog.base.name;
    this.shared.push(
      this.listen(serveSubjects.models, undefined, () => listModels(ctx)),
      // Every server of the base loads or unloads: no queue group.
      this.listen(serveSubjects.loadAdapter(base), undefined, (b) => loadAdapterRequest(ctx, b, resolveAdapter)),
      this.listen(serveSubjects.unloadAdapter(base), undefined, (b) => unloadAdapterRequest(ctx, b)),
    );
    for (const m of ctx.catalog.list()) this.add(m);
    ctx.catalog.onChange((c) => (c.type === "loaded" ? this.add(c.model) : this.remove(c.model)));
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
        named((b, c) => chatCompletions(this.ctx, b, c)),
      ),
      this.listen(
        serveSubjects.completions(m.name),
        SERVE_QUEUE,
        named((b, c) => completions(this.ctx, b, c)),
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
        emit: stream
          ? (chunk) => {
              streamed = true;
              reply(chunk);
            }
          : undefined,
      });
      if (stream) reply(null);
      else if (out) reply(out);
    } catch (err) {
      const { status, body } = toOpenAiError(err);
      if (status >= 500) this.log(`nats ${msg.subject}: ${(err as Error).stack ?? String(err)}`);
      reply(body);
      if (streamed || (msg.data.length > 0 && isStreamRequest(msg))) reply(null);
    }
  }

  async close(): Promise<void> {
    for (const subs of this.perModel.values()) for (const s of subs) s.unsubscribe();
    for (const s of this.shared) s.unsubscribe();
    this.perModel.clear();
  }
}

function isStreamRequest(msg: Msg): boolean {
  try {
    return (msg.json() as { stream?: unknown }).stream === true;
  } catch {
    return false;
  }
}
