// The model's own chat_template (tokenizer_config.json), rendered with @huggingface/jinja.
//
// Parts are found by rendering prefixes of the conversation, which works for any template without
// knowing its markers: message i occupies [len(render(m[:i])), len(render(m[:i+1]))) of the whole
// render, and an assistant turn's answer starts where render(m[:i], add_generation_prompt) ends, so
// the generation header the model is given at inference is prompt, and everything after it up to the
// turn's trailing whitespace (content, tool calls, end-of-turn token) is the answer. Searching for the
// content in the text instead would break on templates that trim or rewrite it, and on tool calls.
//
// Some templates render a turn differently once later turns follow (Qwen3 drops past reasoning). A
// message whose prefix render is not a prefix of the text has no exact place in it: it is context there,
// and its answer is trained in the rendering that ends with it (examples_by_turn.ts).
//
// Whether the template shows the record's tools and calls is also found by rendering: a template without
// tool support renders them as nothing, and training on that teaches calls to tools the model never saw,
// or empty answers.
import { Template } from "@huggingface/jinja";
import type { Message } from "../records/records.js";
import type { TokenizerConfig } from "../tokenizers/hf_tokenizer.js";
import { tokenText } from "../tokenizers/hf_tokenizer.js";
import { commonPrefixLength } from "./chatml_templates.js";
import { examplesByTurn } from "./examples_by_turn.js";
import { parseArgs } from "./tool_args.js";
import { PartsBuilder, type ChatTemplate, type PartKind, type RenderedChat, type TemplateOptions } from "./template.js";

export function chatTemplateSource(config: TokenizerConfig, where: string): string {
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => x.name === "default") ?? t[0];
    if (d) return d.template;
  }
  throw new Error(
    `${where}: tokenizer_config.json has no chat_template (template: model needs one; use chatml, qwen3, llama2, llama3 or none)`,
  );
}

/** Renders of one conversation's prefixes, each made once. */
class PrefixRenders {
  private readonly upTo = new Map<number, string>();
  private readonly prompts = new Map<number, string>();
  constructor(
    private readonly render: (messages: Message[], generationPrompt: boolean) => string,
    private readonly messages: Message[],
  ) {}

  /** the text of messages [0, i] */
  through(i: number): string {
    let t = this.upTo.get(i);
    if (t === undefined) this.upTo.set(i, (t = this.render(this.messages.slice(0, i + 1), false)));
    return t;
  }

  /** the text a model is given to write message i */
  promptFor(i: number): string {
    let t = this.prompts.get(i);
    if (t === undefined) this.prompts.set(i, (t = this.render(this.messages.slice(0, i), true)));
    return t;
  }
}

export class JinjaTemplate implements ChatTemplate {
  readonly name = "model" as const;
  readonly specialTokens: string[];
  private readonly template: Template;
  private readonly bos: string;
  private readonly eos: string;

  constructor(
    source: string,
    config: TokenizerConfig,
    private readonly options: TemplateOptions = {},
  ) {
    this.template = new Template(source);
    this.bos = tokenText(config.bos_token) ?? "";
    this.eos = tokenText(config.eos_token) ?? "";
    this.specialTokens = [this.bos, this.eos].filter((s) => s !== "");
  }

  private renderText(messages: Message[], tools: unknown[] | undefined, addGenerationPrompt: boolean): string {
    try {
      return this.template.render({
        ...this.options,
        messages: messages.map(toHf),
        tools: tools?.length ? tools : undefined,
        bos_token: this.bos,
        eos_token: this.eos,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new Error(`chat template: ${(err as Error).message}`);
    }
  }

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    return this.renderUpTo(this.prefixes(messages, tools), messages, messages.length);
  }

  renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[] {
    const prefixes = this.prefixes(messages, tools);
    if (tools?.length && prefixes.through(messages.length - 1) === this.renderText(messages, undefined, false)) {
      throw new Error("the chat template does not show tools (it renders the same text without them)");
    }
    const examples = examplesByTurn(messages, (count) => this.renderUpTo(prefixes, messages, count));
    for (const chat of examples) checkToolCallsShown(chat, messages);
    return examples;
  }

  renderPrompt(messages: Message[], tools?: unknown[]): string {
    return this.renderText(messages, tools, true);
  }

  private prefixes(messages: Message[], tools: unknown[] | undefined): PrefixRenders {
    return new PrefixRenders((m, gen) => this.renderText(m, tools, gen), messages);
  }

  /** Parts of the rendering of messages [0, count). */
  private renderUpTo(prefixes: PrefixRenders, messages: Message[], count: number): RenderedChat {
    const full = prefixes.through(count - 1);
    const b = new PartsBuilder();
    let prevEnd = 0;
    let unplaced: number[] = [];
    for (let i = 0; i < count; i++) {
      const upTo = prefixes.through(i);
      if (!full.startsWith(upTo) || upTo.length < prevEnd) {
        unplaced.push(i);
        continue;
      }
      const end = upTo.length;
      const m = messages[i];
      if (unplaced.length > 0) {
        // Messages rendered differently here than on their own, with this one: context, never an answer.
        const all = [...unplaced, i];
        const kind: PartKind = all.some((j) => messages[j].role === "tool") ? "tool" : "prompt";
        b.add(full.slice(prevEnd, end), kind, -1);
        unplaced = [];
      } else if (m.role === "assistant") {
        const start = Math.min(end, Math.max(prevEnd, commonPrefixLength(prefixes.promptFor(i), full)));
        let answerEnd = end;
        while (answerEnd > start && /\s/.test(full[answerEnd - 1])) answerEnd--;
        b.add(full.slice(prevEnd, start), "prompt", i);
        b.add(full.slice(start, answerEnd), "answer", i);
        b.add(full.slice(answerEnd, end), "prompt", i);
      } else {
        if (m.role === "tool" && end === prevEnd && m.content !== "") {
          throw new Error(`the chat template does not show tool results (message ${i + 1} renders as nothing)`);
        }
        b.add(full.slice(prevEnd, end), m.role === "tool" ? "tool" : "prompt", i);
      }
      prevEnd = end;
    }
    b.add(full.slice(prevEnd), "prompt", -1);
    return b.build();
  }
}

/** Every call's function name must appear in the answer that makes the call. */
function checkToolCallsShown(chat: RenderedChat, messages: Message[]): void {
  for (const p of chat.parts) {
    if (p.kind !== "answer") continue;
    const answer = chat.text.slice(p.start, p.end);
    for (const c of messages[p.message].toolCalls ?? []) {
      if (!answer.includes(c.name)) {
        throw new Error(
          `the chat template does not show tool calls (message ${p.message + 1} renders without its call to ${c.name})`,
        );
      }
    }
  }
}

/** Messages as Hugging Face templates expect them: tool call arguments as objects. */
function toHf(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role, content: m.content };
  if (m.toolCalls?.length) {
    out.tool_calls = m.toolCalls.map((c) => ({
      type: "function",
      function: { name: c.name, arguments: parseArgs(c.arguments) },
    }));
  }
  if (m.name) out.name = m.name;
  if (m.reasoning_content !== undefined) out.reasoning_content = m.reasoning_content;
  return out;
}
