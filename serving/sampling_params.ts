// The sampling fields OpenAI's completion and chat requests share, checked one by one: a bad value is a
// 400 that names the field, before anything is queued.
import { randomInt } from "node:crypto";
import { badRequest } from "./errors.js";

export interface SamplingParams {
  /** choices to generate for the prompt (each its own sequence, seeded seed + index) */
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stopStrings: string[];
  stopIds: number[];
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's ignore_eos: only max_tokens, stop and stop_token_ids end the generation */
  ignoreEos: boolean;
}

const MAX_STOP_STRINGS = 16;
/** choices per request at most: each is a sequence in the batch */
export const MAX_CHOICES = 16;

function num(
  body: Record<string, unknown>,
  key: string,
  fallback: number,
  ok: (n: number) => boolean,
  want: string,
): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v))
    throw badRequest(`${key} must be ${want}, got ${JSON.stringify(v)}`, key);
  return v;
}

function stopStrings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string" && s !== ""))
    throw badRequest(`stop must be a non-empty string or a list of them, got ${JSON.stringify(v)}`, "stop");
  if (list.length > MAX_STOP_STRINGS) throw badRequest(`stop takes at most ${MAX_STOP_STRINGS} strings`, "stop");
  return list as string[];
}

export function parseSampling(
  body: Record<string, unknown>,
  defaults: { maxTokens: number; vocabSize: number },
): SamplingParams {
  const n = num(
    body,
    "n",
    1,
    (x) => Number.isInteger(x) && x >= 1 && x <= MAX_CHOICES,
    `an integer in [1, ${MAX_CHOICES}]`,
  );
  const maxKey =
    body.max_completion_tokens !== undefined && body.max_completion_tokens !== null
      ? "max_completion_tokens"
      : "max_tokens";
  const maxTokens = num(body, maxKey, defaults.maxTokens, (x) => Number.isInteger(x) && x >= 1, "an integer >= 1");
  const temperature = num(body, "temperature", 1, (x) => x >= 0 && x <= 2, "a number in [0, 2]");
  const topP = num(body, "top_p", 1, (x) => x > 0 && x <= 1, "a number in (0, 1]");
  const seed = num(body, "seed", randomInt(2 ** 31), (x) => Number.isInteger(x) && x >= 0, "an integer >= 0");
  const ids = body.stop_token_ids ?? [];
  if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0 && t < defaults.vocabSize))
    throw badRequest(
      `stop_token_ids must be token ids below ${defaults.vocabSize}, got ${JSON.stringify(ids)}`,
      "stop_token_ids",
    );
  const stream = body.stream ?? false;
  if (typeof stream !== "boolean")
    throw badRequest(`stream must be true or false, got ${JSON.stringify(stream)}`, "stream");
  const so = body.stream_options as { include_usage?: unknown } | null | undefined;
  return {
    n,
    maxTokens,
    temperature,
    topP,
    seed,
    stopStrings: stopStrings(body.stop),
    stopIds: ids as number[],
    stream,
    includeUsage: so?.include_usage === true,
    ignoreEos: body.ignore_eos === true,
  };
}
