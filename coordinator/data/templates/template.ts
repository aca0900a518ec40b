// A chat template turns messages into text and says which characters belong to which kind of turn;
// masking (../mask.ts) picks the targets from those parts, so every template is masked the same way.
import type { Message } from "../records.js";

export const TEMPLATE_NAMES = ["chatml", "llama2", "llama3", "model", "none"] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

/**
 * "answer": an assistant turn's own text and its end-of-turn token, what the model must produce;
 * "tool": a tool's result (never a target); "prompt": everything else (markers, system, user).
 */
export type PartKind = "prompt" | "answer" | "tool";

export interface Part {
  start: number;
  end: number;
  kind: PartKind;
  /** index of the message it renders, -1 for text that belongs to no message */
  message: number;
}

export interface RenderedChat {
  text: string;
  /** contiguous, in order, covering text */
  parts: Part[];
}

export interface ChatTemplate {
  readonly name: TemplateName;
  /** marker strings a byte tokenizer must treat as single tokens */
  readonly specialTokens: readonly string[];
  render(messages: Message[], tools?: unknown[]): RenderedChat;
  /** the text a model is given to answer the conversation so far (evaluation, generation) */
  renderPrompt(messages: Message[], tools?: unknown[]): string;
}

/** Builds RenderedChat by appending text with its kind; adjacent text of one kind and message merges. */
export class PartsBuilder {
  private text = "";
  private parts: Part[] = [];

  add(s: string, kind: PartKind, message: number): this {
    if (s === "") return this;
    const last = this.parts[this.parts.length - 1];
    if (last && last.kind === kind && last.message === message) last.end += s.length;
    else this.parts.push({ start: this.text.length, end: this.text.length + s.length, kind, message });
    this.text += s;
    return this;
  }

  build(): RenderedChat {
    return { text: this.text, parts: this.parts };
  }
}
