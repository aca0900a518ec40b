// The one way a conversation becomes the prompt a model answers. The generation eval, `ringtune serve`
// (HTTP and NATS) and serving workers all call it with the text setup the model was trained with, so a
// chat becomes the same token ids wherever it is asked, and those ids are the ones training built for the
// same conversation up to the assistant's turn. Where the answer stops is stop_ids.ts.
import type { Message } from "./records/records.js";
import type { ChatTemplate } from "./templates/template.js";
import type { TextTokenizer } from "./tokenizers/tokenizer.js";

export interface ChatPrompt {
  /** the conversation so far and the generation prompt, rendered by the template */
  text: string;
  /** `text` tokenized, special tokens recognised, nothing added */
  ids: number[];
}

/** The prompt for the next assistant turn after `messages` (with `tools` offered, if any). */
export function renderChatPrompt(
  setup: { tokenizer: TextTokenizer; template: ChatTemplate },
  messages: Message[],
  tools?: unknown[],
): ChatPrompt {
  const text = setup.template.renderPrompt(messages, tools);
  return { text, ids: setup.tokenizer.encode(text) };
}

/**
 * Whether an answer is read for tool calls: when the chat offers tools. The generation eval and serving
 * both ask this, so an answer comes back as `tool_calls` exactly where the eval scores it as calls.
 */
export function readsToolCalls(tools: readonly unknown[] | undefined): boolean {
  return (tools?.length ?? 0) > 0;
}
