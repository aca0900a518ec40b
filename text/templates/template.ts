// A chat template turns messages into text and says which characters belong to which kind of turn;
// masking (../mask.ts) picks the targets from those parts, so every template is masked the same way.
import type { Message } from "../records/records.js";

export const TEMPLATE_NAMES = ["chatml", "llama2", "llama3", "qwen3", "model", "none"] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

/**
 * Variables a job hands to its template, as `apply_chat_template(**kwargs)` does: Qwen3's
 * `enable_thinking`, or whatever a model's own Jinja template reads.
 */
export type TemplateOptions = Record<string, string | number | boolean>;

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
  /** the whole conversation as one text */
  render(messages: Message[], tools?: unknown[]): RenderedChat;
  /**
   * The texts to train on, in conversation order, each assistant turn an answer in exactly one.
   * One text, unless the template renders an earlier turn differently once later turns follow (Qwen3
   * drops past reasoning): then each such turn is trained in the text that ends with it, the form the
   * model is given and produces at inference, and is context elsewhere.
   */
  renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[];
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
