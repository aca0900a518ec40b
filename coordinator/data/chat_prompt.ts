// The one way a conversation becomes the prompt a model answers, and what ends the answer. The generation
// eval, `ringtune serve` (HTTP and NATS) and serving workers all call these with the text setup the model
// was trained with, so a chat becomes the same token ids wherever it is asked, and those ids are the ones
// training built for the same conversation up to the assistant's turn.
import type { Message } from "./records.js";
import type { TextSetup } from "./setup.js";

export interface ChatPrompt {
  /** the conversation so far and the generation prompt, rendered by the template */
  text: string;
  /** `text` tokenized, special tokens recognised, nothing added */
  ids: number[];
}

/** The prompt for the next assistant turn after `messages` (with `tools` offered, if any). */
export function renderChatPrompt(setup: TextSetup, messages: Message[], tools?: unknown[]): ChatPrompt {
  const text = setup.template.renderPrompt(messages, tools);
  return { text, ids: setup.tokenizer.encode(text) };
}

/** End-of-turn markers the built-in and common model templates close an answer with. */
const END_OF_TURN = ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "</s>"];

/** A string is a single special token when it encodes to one id that decodes back to itself. */
function specialId(setup: TextSetup, s: string): number | null {
  const ids = setup.tokenizer.encode(s);
  return ids.length === 1 && setup.tokenizer.decode(ids) === s ? ids[0] : null;
}

/**
 * Token ids that end an answer to a chat: the model's own EOS ids (generation_config.json, else
 * config.json), the tokenizer's EOS and the template's end-of-turn tokens. Sorted, without repeats.
 */
export function chatStopIds(setup: TextSetup, modelEosIds: readonly number[] = []): Int32Array {
  const ids = new Set<number>([...modelEosIds, setup.tokenizer.eosId]);
  for (const s of END_OF_TURN) {
    const id = specialId(setup, s);
    if (id !== null) ids.add(id);
  }
  return Int32Array.from([...ids].sort((a, b) => a - b));
}

/**
 * Whether an answer is read for tool calls: when the chat offers tools. The generation eval and serving
 * both ask this, so an answer comes back as `tool_calls` exactly where the eval scores it as calls.
 */
export function readsToolCalls(tools: readonly unknown[] | undefined): boolean {
  return (tools?.length ?? 0) > 0;
}
