// The coordinator's serving front door: the workers started to serve a base say in each heartbeat which
// models they hold and how busy they are; a request goes to the least loaded worker holding its model,
// over that worker's NATS node subject, and streams back. A worker that is gone (no subscriber, or its
// heartbeats stopped) before it sent anything is skipped and the request tried on the next; a model named
// by a job id that no worker holds yet is hot-loaded from that job's output on the least loaded worker.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { serveSubjects, type NodeOp } from "../../proto/serve_subjects.js";
import type { ServingStatus } from "../../proto/mod.js";
import { badRequest, ServeError, unknownModel, type OpenAiErrorType } from "../../serving/errors.js";
import type { CallOptions, ServeApi } from "../../serving/serve_api.js";
import type { WorkerRegistry } from "../workers/registry.js";
import { forwardToWorker, isErrorBody, WorkerUnreachableError } from "./forward.js";

const JOB_ID = /^job-[A-Za-z0-9_-]+$/;

const STATUS: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  server_error: 500,
};

/** A worker's OpenAI error object as the same error here, with the HTTP status its type implies. */
function asServeError(body: { error: { message: string; type: string; param?: string | null; code?: string | null } }) {
  const e = body.error;
  return new ServeError(STATUS[e.type] ?? 500, e.type as OpenAiErrorType, e.message, e.param ?? null, e.code ?? null);
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw badRequest("the request body must be a JSON object", null, "bad_json");
  return body as Record<string, unknown>;
}

interface Candidate {
  id: string;
  serving: ServingStatus;
}

export class ServeRouter implements ServeApi {
  /** requests this router has in flight per worker: fresher than the heartbeats' counts */
  private readonly inFlight = new Map<string, number>();
  /** adapters this router loaded, per worker, until that worker's heartbeat lists them */
  private readonly loadedHere = new Map<string, Set<string>>();
  /** on-demand loads under way, so concurrent requests for one job id load it once */
  private readonly loading = new Map<string, Promise<Candidate[]>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
    /** a worker whose last heartbeat is older than this is not routed to, and its waits are given up */
    private readonly freshMs = Math.max(5_000, 3 * registry.heartbeatMs),
  ) {}

  /** The workers holding `model`, least loaded first. */
  private holders(model: string): Candidate[] {
    const held = (w: Candidate) => {
      const mine = this.loadedHere.get(w.id);
      if (!w.serving.models.includes(model)) return mine?.has(model) ?? false;
      mine?.delete(model);
      return true;
    };
    return this.byLoad(this.registry.serving(this.freshMs).filter(held));
  }

  private byLoad(ws: Candidate[]): Candidate[] {
    const load = (w: Candidate) => (this.inFlight.get(w.id) ?? 0) + w.serving.waiting;
    return [...ws].sort((a, b) => load(a) - load(b) || a.id.localeCompare(b.id));
  }

  private alive(id: string): () => boolean {
    return () => this.registry.serving(this.freshMs).some((w) => w.id === id);
  }

  models(): object {
    const seen = new Map<string, { id: string; object: "model"; owned_by: string; parent: string | null }>();
    for (const { serving } of this.registry.serving(this.freshMs))
      for (const m of serving.models)
        if (!seen.has(m))
          seen.set(m, {
            id: m,
            object: "model",
            owned_by: "ringtune",
            parent: m === serving.base ? null : serving.base,
          });
    return { object: "list", data: [...seen.values()] };
  }

  completions(body: unknown, call: CallOptions): Promise<object | undefined> {
    return this.generate("completions", body, call);
  }

  chat(body: unknown, call: CallOptions): Promise<object | undefined> {
    return this.generate("chat", body, call);
  }

  private async generate(op: "chat" | "completions", raw: unknown, call: CallOptions): Promise<object | undefined> {
    const body = asObject(raw);
    const model = body.model;
    if (typeof model !== "string" || model === "") throw badRequest("model must be a non-empty string", "model");
    let candidates = this.holders(model);
    if (candidates.length === 0) {
      const loading = this.loading.get(model) ?? this.loadOnDemand(model);
      this.loading.set(model, loading);
      try {
        candidates = await loading;
      } finally {
        this.loading.delete(model);
      }
    }
    const stream = body.stream === true && call.emit !== undefined;
    let sent = false;
    let lastError: Error | undefined;
    for (const w of candidates) {
      this.inFlight.set(w.id, (this.inFlight.get(w.id) ?? 0) + 1);
      try {
        const reply = await forwardToWorker(this.nc, serveSubjects.node(w.id, op), body, {
          stream,
          onChunk: (chunk) => {
            sent = true;
            call.emit!(chunk);
          },
          signal: call.signal,
          alive: this.alive(w.id),
          checkEveryMs: this.registry.heartbeatMs,
        });
        if (isErrorBody(reply)) throw asServeError(reply);
        return reply;
      } catch (err) {
        // Only a request nothing was sent back for can start again elsewhere.
        if (!(err instanceof WorkerUnreachableError) || sent) throw err;
        this.log.warn({ worker: w.id, model, err: err.message }, "serving worker unreachable; trying the next");
        this.registry.suspect(w.id);
        lastError = err;
      } finally {
        this.inFlight.set(w.id, (this.inFlight.get(w.id) ?? 1) - 1);
      }
    }
    throw new ServeError(
      503,
      "server_error",
      `no serving worker could take the request for '${model}'${lastError ? ` (${lastError.message})` : ""}`,
      "model",
      "no_worker",
    );
  }

  /** A job id no worker holds: its adapter loaded on the least loaded serving worker, which then serves it. */
  private async loadOnDemand(model: string): Promise<Candidate[]> {
    const all = this.registry.serving(this.freshMs);
    if (!JOB_ID.test(model) || all.length === 0)
      throw unknownModel(model, [...new Set(all.flatMap((w) => w.serving.models))]);
    const w = this.byLoad(all)[0]!;
    await this.ask(w.id, "load_adapter", { lora_name: model, lora_path: model });
    this.noteLoaded(w.id, model);
    return [w];
  }

  private noteLoaded(worker: string, model: string): void {
    const set = this.loadedHere.get(worker) ?? new Set<string>();
    set.add(model);
    this.loadedHere.set(worker, set);
  }

  private async ask(worker: string, op: NodeOp, body: object): Promise<object> {
    const reply = await forwardToWorker(this.nc, serveSubjects.node(worker, op), body, {
      stream: false,
      alive: this.alive(worker),
      checkEveryMs: this.registry.heartbeatMs,
    });
    if (isErrorBody(reply)) throw asServeError(reply);
    return reply ?? {};
  }

  /** Loads the adapter on every serving worker, so any of them can take its requests. */
  async loadAdapter(raw: unknown): Promise<object> {
    const body = asObject(raw);
    const workers = this.registry.serving(this.freshMs);
    if (workers.length === 0) throw new ServeError(503, "server_error", "no serving worker is up", null, "no_worker");
    const replies = await Promise.all(
      workers.map(async (w) => {
        const r = await this.ask(w.id, "load_adapter", body);
        if (typeof body.lora_name === "string") this.noteLoaded(w.id, body.lora_name);
        return r;
      }),
    );
    return { ...replies[0], workers: workers.map((w) => w.id) };
  }

  /** Unloads the adapter from every serving worker that holds it. */
  async unloadAdapter(raw: unknown): Promise<object> {
    const body = asObject(raw);
    if (typeof body.lora_name !== "string") throw badRequest("lora_name must be a string", "lora_name");
    const workers = this.holders(body.lora_name);
    if (workers.length === 0) throw unknownModel(body.lora_name, []);
    await Promise.all(workers.map((w) => this.ask(w.id, "unload_adapter", body)));
    for (const w of workers) this.loadedHere.get(w.id)?.delete(body.lora_name);
    return { ok: true, model: body.lora_name, workers: workers.map((w) => w.id).sort() };
  }
}
