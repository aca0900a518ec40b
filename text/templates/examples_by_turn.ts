// Training texts for templates whose rendering of a turn depends on what follows it. Qwen3, for one,
// shows an assistant turn's reasoning only while it is the last turn: a single text of the whole
// conversation would train every earlier answer without the thinking the model produces at inference.
import type { Message } from "../records/records.js";
import type { RenderedChat } from "./template.js";

/**
 * Starting from the whole conversation, each rendering trains the answers that appear in it as they do
 * when they are the last turn (the rendering of the conversation up to them is a prefix of it); the
 * latest answer not yet trained starts the next rendering, of the conversation up to that answer.
 * A template that renders every prefix the same way gives one text, the whole conversation.
 */
export function examplesByTurn(messages: Message[], renderUpTo: (count: number) => RenderedChat): RenderedChat[] {
  const pending = new Set<number>();
  messages.forEach((m, i) => {
    if (m.role === "assistant") pending.add(i);
  });
  const prefixText = new Map<number, string>();
  const textUpTo = (i: number): string => {
    let t = prefixText.get(i);
    if (t === undefined) prefixText.set(i, (t = renderUpTo(i + 1).text));
    return t;
  };
  const examples: RenderedChat[] = [];
  let count = messages.length;
  for (;;) {
    const chat = renderUpTo(count);
    const answered = new Set(chat.parts.filter((p) => p.kind === "answer").map((p) => p.message));
    const trained = new Set<number>();
    for (const j of pending) {
      if (j < count && answered.has(j) && (j === count - 1 || chat.text.startsWith(textUpTo(j)))) trained.add(j);
    }
    if (pending.has(count - 1) && !trained.has(count - 1)) {
      throw new Error(`chat template: the answer of message ${count} cannot be found in its own rendering`);
    }
    // A conversation without answers still gives its one text (it is refused later for having no target).
    if (trained.size > 0 || pending.size === 0) examples.push(keepAnswers(chat, trained));
    for (const j of trained) pending.delete(j);
    if (pending.size === 0) break;
    count = Math.max(...pending) + 1;
  }
  return examples.reverse();
}

/** Answers of other turns become context: they are trained in the rendering that ends with them. */
function keepAnswers(chat: RenderedChat, trained: Set<number>): RenderedChat {
  return {
    text: chat.text,
    parts: chat.parts.map((p) => (p.kind === "answer" && !trained.has(p.message) ? { ...p, kind: "prompt" } : p)),
  };
}
