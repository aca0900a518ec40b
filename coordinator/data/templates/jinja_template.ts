// The model's own chat_template (tokenizer_config.json), rendered with @huggingface/jinja.
//
// Parts are found by rendering prefixes of the conversation, which works for any template without
// knowing its markers: message i occupies [len(render(m[:i])), len(render(m[:i+1]))) of the whole
// render, and an assistant turn's answer starts where render(m[:i], add_generation_prompt) ends, so
// the generation header the model is given at inference is prompt, and everything after it up to the
// turn's trailing whitespace (content, tool calls, end-of-turn token) is the answer. Searching for the
// content in the text instead would break on templates that trim or rewrite it, and on tool calls.
import { Template } from "@huggingface/jinja";
import type { Message } from "../records.js";
import type { TokenizerConfig } from "../hf_tokenizer.js";
import { tokenText } from "../hf_tokenizer.js";
import { parseArgs } from "./builtin_templates.js";
import { PartsBuilder, type ChatTemplate, type RenderedChat } from "./template.js";

export function chatTemplateSource(config: TokenizerConfig, where: string): string {
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => x.name === "default") ?? t[0];
    if (d) return d.template;
  }
  throw new Error(
    `${where}: tokenizer_config.json has no chat_template (template: model needs one; use chatml, llama2, llama3 or none)`,
  );
}

export class JinjaTemplate implements ChatTemplate {
  readonly name = "model" as const;
  readonly specialTokens: string[];
  private readonly template: Template;
  private readonly bos: string;
  private readonly eos: string;

  constructor(source: string, config: TokenizerConfig) {
    this.template = new Template(source);
    this.bos = tokenText(config.bos_token) ?? "";
    this.eos = tokenText(config.eos_token) ?? "";
    this.specialTokens = [this.bos, this.eos].filter((s) => s !== "");
  }

  private renderText(messages: Message[], tools: unknown[] | undefined, addGenerationPrompt: boolean): string {
    try {
      return this.template.render({
        messages: messages.map(toHf),
        tools,
        bos_token: this.bos,
        eos_token: this.eos,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new Error(`chat template: ${(err as Error).message}`);
    }
  }

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    const full = this.renderText(messages, tools, false);
    const b = new PartsBuilder();
    let prevEnd = 0;
    for (let i = 0; i < messages.length; i++) {
      const upTo = this.renderText(messages.slice(0, i + 1), tools, false);
      if (!full.startsWith(upTo)) {
        throw new Error(
          `chat template renders message ${i + 1} differently once later messages follow; masks cannot be derived (use a built-in template)`,
        );
      }
      const end = upTo.length;
      const m = messages[i];
      if (m.role === "assistant") {
        const header = this.renderText(messages.slice(0, i), tools, true);
        const start = Math.min(end, Math.max(prevEnd, commonPrefixLength(header, full)));
        let answerEnd = end;
        while (answerEnd > start && /\s/.test(full[answerEnd - 1])) answerEnd--;
        b.add(full.slice(prevEnd, start), "prompt", i);
        b.add(full.slice(start, answerEnd), "answer", i);
        b.add(full.slice(answerEnd, end), "prompt", i);
      } else {
        b.add(full.slice(prevEnd, end), m.role === "tool" ? "tool" : "prompt", i);
      }
      prevEnd = end;
    }
    b.add(full.slice(prevEnd), "prompt", -1);
    return b.build();
  }

  renderPrompt(messages: Message[], tools?: unknown[]): string {
    return this.renderText(messages, tools, true);
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
  return out;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}
