// What a front door (HTTP or NATS) calls: OpenAI's endpoints and vLLM's adapter endpoints, each taking a
// parsed body. A serving process answers them from its own engine; the coordinator answers them by
// forwarding to a worker that holds the model, so one HTTP door serves both.
import {
  chatCompletions,
  completions,
  listModels,
  loadAdapterRequest,
  unloadAdapterRequest,
  type ApiContext,
  type CallOptions,
} from "./openai_api.js";

export type { CallOptions };

export interface ServeApi {
  models(): Promise<object> | object;
  /** a streaming request (`stream: true` with `call.emit`) resolves to undefined once its chunks are out */
  completions(body: unknown, call: CallOptions): Promise<object | undefined>;
  chat(body: unknown, call: CallOptions): Promise<object | undefined>;
  loadAdapter(body: unknown): Promise<object>;
  unloadAdapter(body: unknown): Promise<object> | object;
}

/** The endpoints answered by this process's own catalog and engine. */
export function localServeApi(ctx: ApiContext, resolveAdapter: (source: string) => Promise<string>): ServeApi {
  return {
    models: () => listModels(ctx),
    completions: (b, c) => completions(ctx, b, c),
    chat: (b, c) => chatCompletions(ctx, b, c),
    loadAdapter: (b) => loadAdapterRequest(ctx, b, resolveAdapter),
    unloadAdapter: (b) => unloadAdapterRequest(ctx, b),
  };
}
