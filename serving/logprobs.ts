// OpenAI's log-probability fields: what a request asks for (`logprobs` / `top_logprobs`), checked with
// errors that name the field, and the two shapes an answer reports them in (chat's `content` list and
// the legacy completions' parallel lists).
import type { TokenLogprob } from "./engine.js";
import { badRequest } from "./errors.js";

/** OpenAI's limits: chat's top_logprobs at most 20, the legacy completions' logprobs at most 5. */
const MAX_CHAT_TOP = 20;
const MAX_COMPLETION_TOP = 5;

/** Chat: `logprobs: true` reports each token's; `top_logprobs: k` (needs logprobs) the k likeliest too. Undefined: none. */
export function chatLogprobsRequest(body: Record<string, unknown>): number | undefined {
  const on = body.logprobs ?? false;
  if (typeof on !== "boolean")
    throw badRequest(`logprobs must be true or false, got ${JSON.stringify(on)}`, "logprobs");
  const top = body.top_logprobs;
  if (top !== undefined && top !== null) {
    if (typeof top !== "number" || !Number.isInteger(top) || top < 0 || top > MAX_CHAT_TOP)
      throw badRequest(
        `top_logprobs must be an integer in [0, ${MAX_CHAT_TOP}], got ${JSON.stringify(top)}`,
        "top_logprobs",
      );
    if (!on) throw badRequest("top_logprobs needs logprobs: true", "top_logprobs");
    return top;
  }
  return on ? 0 : undefined;
}

/** Completions: `logprobs: k` reports each token's and the k likeliest. Undefined: none. */
export function completionLogprobsRequest(body: Record<string, unknown>): number | undefined {
  const k = body.logprobs;
  if (k === undefined || k === null) return undefined;
  if (typeof k !== "number" || !Number.isInteger(k) || k < 0 || k > MAX_COMPLETION_TOP)
    throw badRequest(`logprobs must be an integer in [0, ${MAX_COMPLETION_TOP}], got ${JSON.stringify(k)}`, "logprobs");
  return k;
}

type Decode = (ids: number[]) => string;

function entry(decode: Decode, token: number, logprob: number) {
  const text = decode([token]);
  return { token: text, logprob, bytes: [...Buffer.from(text, "utf8")] };
}

/** Chat's `logprobs` object: {content: [{token, logprob, bytes, top_logprobs: [...]}]} */
export function chatLogprobs(lps: readonly TokenLogprob[], decode: Decode): object {
  return {
    content: lps.map((t) => ({
      ...entry(decode, t.token, t.logprob),
      top_logprobs: t.top.map((x) => entry(decode, x.token, x.logprob)),
    })),
  };
}

/** The legacy completions' `logprobs` object: {tokens, token_logprobs, top_logprobs, text_offset}. */
export function completionLogprobs(lps: readonly TokenLogprob[], decode: Decode, offset = 0): object {
  const tokens = lps.map((t) => decode([t.token]));
  const textOffset: number[] = [];
  let at = offset;
  for (const t of tokens) {
    textOffset.push(at);
    at += t.length;
  }
  return {
    tokens,
    token_logprobs: lps.map((t) => t.logprob),
    top_logprobs: lps.map((t) => topByText(t.top, decode)),
    text_offset: textOffset,
  };
}

/** Tokens whose text is the same (bytes that are not text alone) share a key: the likeliest one keeps it. */
function topByText(top: TokenLogprob["top"], decode: Decode): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of top) {
    const text = decode([x.token]);
    if (!(text in out)) out[text] = x.logprob;
  }
  return out;
}
