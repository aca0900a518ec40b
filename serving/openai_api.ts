// OpenAI's completion, chat completion and model list, independent of the transport: HTTP and NATS both
// hand a parsed body here and get back the response object, or stream chunks through `emit`.
import { randomBytes } from "node:crypto";
import { readsToolCalls, renderChatPrompt } from "../text/chat_prompt.js";
import { normalizeRecord } from "../text/formats/formats.js";
import type { ChatRecord } from "../text/records/records.js";
import type { GenerationEngine, GenerationResult, TokenLogprob } from "./engine.js";
import { badRequest } from "./errors.js";
import type { ModelCatalog, ServedModel } from "./model_catalog.js";
import { parseSampling, type SamplingParams } from "./sampling_params.js";
import { parseToolCalls, type ParsedAnswer } from "../text/tool_call_answers.js";
import { chatLogprobs, chatLogprobsRequest, completionLogprobs, completionLogprobsRequest } from "./logprobs.js";

export interface ApiContext {
  catalog: ModelCatalog;
  engine: GenerationEngine;
  /** prompt + new tokens of one request at most */
  maxContext: number;
  /** max_tokens of a chat request that sets none */
  defaultMaxTokens: number;
}

export interface CallOptions {
  /** aborted when the caller went away: the generation stops before its next step */
  signal?: AbortSignal;
  /** a streaming request's chunks, in order; the transport adds its framing and end marker */
  emit?: (chunk: object) => void;
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw badRequest("the request body must be a JSON object", null, "bad_json");
  return body as Record<string, unknown>;
}

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}

function checkLength(ctx: ApiContext, promptTokens: number, s: SamplingParams, param: string): void {
  if (promptTokens === 0) throw badRequest("the prompt is empty", param);
  if (promptTokens + s.maxTokens > ctx.maxContext)
    throw badRequest(
      `the prompt has ${promptTokens} tokens and max_tokens is ${s.maxTokens}: together more than this server's context of ${ctx.maxContext} tokens`,
      param,
      "context_length_exceeded",
    );
}

function run(
  ctx: ApiContext,
  m: ServedModel,
  ids: number[],
  s: SamplingParams,
  choice: number,
  stopIds: ReadonlySet<number>,
  signal: AbortSignal,
  topLogprobs: number | undefined,
  onText?: (delta: string, logprobs: TokenLogprob[]) => void,
): Promise<GenerationResult> {
  const tok = m.setup.tokenizer;
  return ctx.engine.generate({
    adapter: m.adapterId,
    promptIds: Int32Array.from(ids),
    maxTokens: s.maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    // Each of n choices draws its own stream: seed, seed + 1, ...
    seed: s.seed + choice,
    stopIds: new Set([...(s.ignoreEos ? [] : stopIds), ...s.stopIds]),
    stopStrings: s.stopStrings,
    decode: (xs) => tok.decode(xs),
    signal,
    topLogprobs,
    onText,
  });
}

/**
 * Runs `one` for choices 0..n-1 at once (they share the batch). The caller going away stops them all,
 * and so does one choice failing, so no sequence runs on for an answer that can no longer be given.
 */
async function eachChoice(
  n: number,
  call: CallOptions,
  one: (choice: number, signal: AbortSignal) => Promise<GenerationResult>,
): Promise<GenerationResult[]> {
  const group = new AbortController();
  const stop = () => group.abort();
  if (call.signal?.aborted) group.abort();
  call.signal?.addEventListener("abort", stop);
  try {
    return await Promise.all(
      Array.from({ length: n }, (_, i) =>
        one(i, group.signal).catch((err: unknown) => {
          group.abort();
          throw err;
        }),
      ),
    );
  } finally {
    call.signal?.removeEventListener("abort", stop);
  }
}

/**
 * How a token is written in a logprobs answer: its text, or (vLLM's return_tokens_as_token_ids) "token_id:ID",
 * for tokens whose text alone is not printable, such as single bytes of a multi-byte character.
 */
function logprobTokenText(m: ServedModel, body: Record<string, unknown>): (ids: number[]) => string {
  if (body.return_tokens_as_token_ids === true) return (ids) => `token_id:${ids.join(",")}`;
  return (ids) => m.setup.tokenizer.decode(ids);
}

/** The prompt counts once however many choices were generated from it. */
function usage(prompt: number, rs: readonly GenerationResult[]) {
  const completion = rs.reduce((sum, r) => sum + r.tokenIds.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The prompt of a completion: text, or token ids (a list of ints), or a list holding one of those. */
function promptIds(m: ServedModel, prompt: unknown, vocab: number): number[] {
  let p = prompt;
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === "string" || Array.isArray(p[0]))) p = p[0];
  if (typeof p === "string") return m.setup.tokenizer.encode(p);
  if (Array.isArray(p) && p.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) return p as number[];
  throw badRequest(
    `prompt must be a string or a list of token ids below ${vocab} (one prompt per request), got ${JSON.stringify(prompt)?.slice(0, 80)}`,
    "prompt",
  );
}

export async function completions(ctx: ApiContext, raw: unknown, call: CallOptions = {}): Promise<object | undefined> {
  const body = asObject(raw);
  const m = ctx.catalog.get(body.model);
  const vocab = ctx.catalog.base.vocabSize;
  const s = parseSampling(body, { maxTokens: 16, vocabSize: vocab });
  const top = completionLogprobsRequest(body);
  const ids = promptIds(m, body.prompt, vocab);
  checkLength(ctx, ids.length, s, "prompt");
  const withIds = body.return_token_ids === true;
  const id = newId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const decode = logprobTokenText(m, body);
  const chunk = (index: number, text: string, finish: string | null, logprobs: object | null = null) => ({
    id,
    object: "text_completion",
    created,
    model: m.name,
    choices: [{ index, text, logprobs, finish_reason: finish }],
  });
  if (s.stream && call.emit) {
    const emit = call.emit;
    const rs = await eachChoice(s.n, call, async (i, signal) => {
      let offset = 0;
      const r = await run(ctx, m, ids, s, i, m.completionStopIds, signal, top, (d, lps) => {
        emit(chunk(i, d, null, top === undefined ? null : completionLogprobs(lps, decode, offset)));
        offset += d.length;
      });
      if (r.finishReason !== "cancelled") emit(chunk(i, "", r.finishReason));
      return r;
    });
    if (rs.some((r) => r.finishReason === "cancelled")) return undefined;
    if (s.includeUsage)
      emit({ id, object: "text_completion", created, model: m.name, choices: [], usage: usage(ids.length, rs) });
    return undefined;
  }
  const rs = await eachChoice(s.n, call, (i, signal) => run(ctx, m, ids, s, i, m.completionStopIds, signal, top));
  const choices = rs.map((r, index) => {
    const choice: Record<string, unknown> = {
      index,
      text: r.text,
      logprobs: top === undefined ? null : completionLogprobs(r.logprobs ?? [], decode),
      finish_reason: r.finishReason,
    };
    if (withIds) {
      choice.prompt_token_ids = ids;
      choice.token_ids = r.tokenIds;
    }
    return choice;
  });
  return { id, object: "text_completion", created, model: m.name, choices, usage: usage(ids.length, rs) };
}

function chatRecord(body: Record<string, unknown>): ChatRecord {
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw badRequest("messages must be a non-empty list", "messages");
  const r = normalizeRecord({ messages: body.messages, tools: body.tools ?? undefined }, "openai", {
    file: "request",
    line: 0,
  });
  if ("error" in r) throw badRequest(r.error, "messages");
  return r.record as ChatRecord;
}

/** A chat request read and rendered: what its choices are generated from and how their answers are written. */
interface ChatRequest {
  m: ServedModel;
  s: SamplingParams;
  /** the prompt as the model was trained to see it */
  ids: number[];
  /** the answers are read whole, to tell tool calls from text */
  parseTools: boolean;
  top: number | undefined;
  /** vLLM's return_token_ids */
  withIds: boolean;
  logprobsOf: (lps: readonly TokenLogprob[]) => object | null;
  id: string;
  created: number;
}

function readChatRequest(ctx: ApiContext, body: Record<string, unknown>): ChatRequest {
  const m = ctx.catalog.get(body.model);
  const s = parseSampling(body, { maxTokens: ctx.defaultMaxTokens, vocabSize: ctx.catalog.base.vocabSize });
  const record = chatRecord(body);
  let ids: number[];
  try {
    // The generation eval's rendering, with the template, options and tokenizer the model was trained with.
    ids = renderChatPrompt(m.setup, record.messages, record.tools).ids;
  } catch (err) {
    throw badRequest(`template ${m.setup.template.name}: ${(err as Error).message}`, "messages");
  }
  // Without a limit of its own, an answer may fill what the context leaves (vLLM's default), up to the default.
  if (body.max_tokens == null && body.max_completion_tokens == null)
    s.maxTokens = Math.max(1, Math.min(ctx.defaultMaxTokens, ctx.maxContext - ids.length));
  checkLength(ctx, ids.length, s, "messages");
  const top = chatLogprobsRequest(body);
  const decode = logprobTokenText(m, body);
  return {
    m,
    s,
    ids,
    // With tools the answer is read whole, to tell calls from text; without, it streams as it comes.
    parseTools: readsToolCalls(record.tools) && body.tool_choice !== "none",
    top,
    withIds: body.return_token_ids === true,
    logprobsOf: (lps) => (top === undefined ? null : chatLogprobs(lps, decode)),
    id: newId("chatcmpl"),
    created: Math.floor(Date.now() / 1000),
  };
}

/** A choice's answer: its text, or the text and tool calls read from it, and the finish reason that follows. */
function chatAnswer(req: ChatRequest, r: GenerationResult): ParsedAnswer & { finish: string } {
  if (!req.parseTools) return { content: r.text, toolCalls: [], finish: r.finishReason };
  const a = parseToolCalls(r.text, req.m.setup.template.name, req.id);
  return { ...a, finish: a.toolCalls.length > 0 ? "tool_calls" : r.finishReason };
}

/** Each choice streamed as chunks: text as it comes, or (reading tool calls) the answer once whole. */
async function streamChat(
  ctx: ApiContext,
  req: ChatRequest,
  call: CallOptions,
  emit: (chunk: object) => void,
): Promise<undefined> {
  const { m, s, ids, id, created } = req;
  const chunk = (index: number, delta: object, finish: string | null, logprobs: object | null = null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: m.name,
    choices: [{ index, delta, logprobs, finish_reason: finish }],
  });
  const rs = await eachChoice(s.n, call, async (i, signal) => {
    emit(chunk(i, { role: "assistant", content: "" }, null));
    const onText = req.parseTools
      ? undefined
      : (d: string, lps: TokenLogprob[]) => emit(chunk(i, { content: d }, null, req.logprobsOf(lps)));
    const r = await run(ctx, m, ids, s, i, m.chatStopIds, signal, req.top, onText);
    if (r.finishReason === "cancelled") return r;
    const a = chatAnswer(req, r);
    if (req.parseTools) {
      if (a.content !== null) emit(chunk(i, { content: a.content }, null, req.logprobsOf(r.logprobs ?? [])));
      if (a.toolCalls.length > 0)
        emit(chunk(i, { tool_calls: a.toolCalls.map((c, index) => ({ index, ...c })) }, null));
    }
    emit(chunk(i, {}, a.finish));
    return r;
  });
  if (rs.some((r) => r.finishReason === "cancelled")) return undefined;
  if (s.includeUsage)
    emit({ id, object: "chat.completion.chunk", created, model: m.name, choices: [], usage: usage(ids.length, rs) });
  return undefined;
}

/** The whole response once every choice is done. */
function chatResponse(req: ChatRequest, rs: readonly GenerationResult[]): object {
  const choices = rs.map((r, index) => {
    const a = chatAnswer(req, r);
    const message: Record<string, unknown> = { role: "assistant", content: a.content };
    if (a.toolCalls.length > 0) message.tool_calls = a.toolCalls;
    const choice: Record<string, unknown> = {
      index,
      message,
      logprobs: req.logprobsOf(r.logprobs ?? []),
      finish_reason: a.finish,
    };
    if (req.withIds) choice.token_ids = r.tokenIds;
    return choice;
  });
  const response: Record<string, unknown> = {
    id: req.id,
    object: "chat.completion",
    created: req.created,
    model: req.m.name,
    choices,
    usage: usage(req.ids.length, rs),
  };
  // vLLM's return_token_ids: the prompt's ids as the server rendered and tokenized the chat
  if (req.withIds) response.prompt_token_ids = req.ids;
  return response;
}

export async function chatCompletions(
  ctx: ApiContext,
  raw: unknown,
  call: CallOptions = {},
): Promise<object | undefined> {
  const req = readChatRequest(ctx, asObject(raw));
  if (req.s.stream && call.emit) return streamChat(ctx, req, call, call.emit);
  const { m, s, ids, top } = req;
  const rs = await eachChoice(s.n, call, (i, signal) => run(ctx, m, ids, s, i, m.chatStopIds, signal, top));
  return chatResponse(req, rs);
}

export function listModels(ctx: ApiContext): object {
  return {
    object: "list",
    data: ctx.catalog.list().map((m) => ({
      id: m.name,
      object: "model",
      created: m.created,
      owned_by: "ringtune",
      root: m.adapterDir ?? ctx.catalog.base.dir,
      parent: m.adapterId < 0 ? null : ctx.catalog.base.name,
    })),
  };
}

/** vLLM's adapter endpoints: {lora_name, lora_path}. */
export async function loadAdapterRequest(
  ctx: ApiContext,
  raw: unknown,
  resolve: (source: string) => Promise<string>,
): Promise<object> {
  const body = asObject(raw);
  if (typeof body.lora_name !== "string") throw badRequest("lora_name must be a string", "lora_name");
  if (typeof body.lora_path !== "string" || body.lora_path === "")
    throw badRequest("lora_path must be an adapter folder or a job id", "lora_path");
  const dir = await resolve(body.lora_path);
  const m = await ctx.catalog.load(body.lora_name, dir);
  return { ok: true, model: m.name, path: m.adapterDir, rank: m.rank };
}

export function unloadAdapterRequest(ctx: ApiContext, raw: unknown): object {
  const body = asObject(raw);
  if (typeof body.lora_name !== "string") throw badRequest("lora_name must be a string", "lora_name");
  ctx.catalog.unload(body.lora_name);
  return { ok: true, model: body.lora_name };
}
