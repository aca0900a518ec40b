// From a rendered conversation to token ids and which tokens are targets. Targets are chosen on the
// rendered text's parts, then mapped to tokens at cuts, so any template is masked the same way.
import type { Message } from "../../text/records/records.js";
import type { ChatTemplate, RenderedChat } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";

export interface LabelOptions {
  /** every token but tool results is a target */
  trainOnPrompt: boolean;
  /** only the final assistant turn is a target; earlier answers are context */
  lastTurnOnly: boolean;
}

export interface MaskedTokens {
  ids: number[];
  /** 1 where the token is one the model must predict */
  targets: Uint8Array;
}

/** Character spans [start, end) that are targets, merged, in order. */
export function targetSpans(chat: RenderedChat, opts: LabelOptions): [number, number][] {
  let lastAnswer = -1;
  for (const p of chat.parts) if (p.kind === "answer") lastAnswer = Math.max(lastAnswer, p.message);
  const spans: [number, number][] = [];
  for (const p of chat.parts) {
    const isTarget =
      p.kind === "answer" ? !opts.lastTurnOnly || p.message === lastAnswer : p.kind === "prompt" && opts.trainOnPrompt;
    if (!isTarget || p.end === p.start) continue;
    const last = spans[spans.length - 1];
    if (last && last[1] === p.start) last[1] = p.end;
    else spans.push([p.start, p.end]);
  }
  return spans;
}

export function maskChat(chat: RenderedChat, tok: TextTokenizer, opts: LabelOptions): MaskedTokens {
  const spans = targetSpans(chat, opts);
  const cuts = spans.flat();
  const { ids, cutTokens } = tok.encodeWithCuts(chat.text, cuts);
  const targets = new Uint8Array(ids.length);
  for (let s = 0; s < spans.length; s++) targets.fill(1, cutTokens[2 * s], cutTokens[2 * s + 1]);
  return { ids, targets };
}

/**
 * A conversation's training sequences: one, or one per rendering when the template renders earlier turns
 * differently once later turns follow. With lastTurnOnly only the rendering that ends with the final
 * answer is kept, the others train nothing.
 */
export function maskConversation(
  template: ChatTemplate,
  messages: Message[],
  tools: unknown[] | undefined,
  tok: TextTokenizer,
  opts: LabelOptions,
): MaskedTokens[] {
  const chats = template.renderExamples(messages, tools);
  return (opts.lastTurnOnly ? chats.slice(-1) : chats).map((c) => maskChat(c, tok, opts));
}

/** Continued pretraining: `<bos> x1..xn </s>`, every token a target. */
export function maskText(text: string, tok: TextTokenizer): MaskedTokens {
  const ids = tok.encode(text);
  if (tok.bosId !== null) ids.unshift(tok.bosId);
  ids.push(tok.eosId);
  return { ids, targets: new Uint8Array(ids.length).fill(1) };
}
