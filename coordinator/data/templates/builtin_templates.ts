// The built-in chat templates. Each renders exactly what the model family's own Jinja template renders
// for plain conversations (a test compares them), with the parts marked as they are appended.
import type { Message, ToolCall } from "../records.js";
import type { TextTokenizer } from "../tokenizer.js";
import { PartsBuilder, type ChatTemplate, type RenderedChat, type TemplateName } from "./template.js";

interface Tokens {
  bos: string;
  eos: string;
}

/** Qwen-style ChatML. No BOS; `<|im_end|>` closes every turn and is the answer's end-of-turn token. */
class ChatmlTemplate implements ChatTemplate {
  readonly name = "chatml" as const;
  readonly specialTokens = ["<|im_start|>", "<|im_end|>"];

  render(messages: Message[]): RenderedChat {
    const b = new PartsBuilder();
    messages.forEach((m, i) => {
      if (m.role === "assistant") {
        b.add("<|im_start|>assistant\n", "prompt", i);
        b.add(
          withToolCalls(
            m,
            (c) => `<tool_call>\n${JSON.stringify({ name: c.name, arguments: parseArgs(c.arguments) })}\n</tool_call>`,
          ) + "<|im_end|>",
          "answer",
          i,
        );
        b.add("\n", "prompt", i);
      } else if (m.role === "tool") {
        // Qwen2.5 hands tool results back in a user turn.
        b.add(`<|im_start|>user\n<tool_response>\n${m.content}\n</tool_response><|im_end|>\n`, "tool", i);
      } else {
        b.add(`<|im_start|>${m.role}\n${m.content}<|im_end|>\n`, "prompt", i);
      }
    });
    return b.build();
  }

  renderPrompt(messages: Message[]): string {
    return this.render(messages).text + "<|im_start|>assistant\n";
  }
}

/** Llama 2 chat: `<s>[INST] user [/INST] answer </s>`, the system prompt inside the first [INST]. */
class Llama2Template implements ChatTemplate {
  readonly name = "llama2" as const;
  readonly specialTokens: string[] = [];
  constructor(private readonly t: Tokens) {}

  render(messages: Message[]): RenderedChat {
    const b = new PartsBuilder();
    let system: string | null = null;
    messages.forEach((m, i) => {
      if (m.role === "system") system = m.content;
      else if (m.role === "user") {
        const content = system !== null ? `<<SYS>>\n${system}\n<</SYS>>\n\n${m.content}` : m.content;
        system = null;
        b.add(`${this.t.bos}[INST] ${content.trim()} [/INST]`, "prompt", i);
      } else if (m.role === "assistant") {
        const body = withToolCalls(m, (c) => JSON.stringify({ name: c.name, arguments: parseArgs(c.arguments) }));
        b.add(` ${body.trim()} ${this.t.eos}`, "answer", i);
      } else {
        throw new Error("the llama2 template has no tool role");
      }
    });
    return b.build();
  }

  renderPrompt(messages: Message[]): string {
    return this.render(messages).text;
  }
}

/** Llama 3 instruct: header-delimited turns closed by `<|eot_id|>`; tool results in the `ipython` role (3.1). */
class Llama3Template implements ChatTemplate {
  readonly name = "llama3" as const;
  readonly specialTokens = [
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|end_of_text|>",
  ];
  constructor(private readonly t: Tokens) {}

  render(messages: Message[]): RenderedChat {
    const b = new PartsBuilder();
    b.add(this.t.bos, "prompt", -1);
    messages.forEach((m, i) => {
      const role = m.role === "tool" ? "ipython" : m.role;
      const header = `<|start_header_id|>${role}<|end_header_id|>\n\n`;
      if (m.role === "assistant") {
        b.add(header, "prompt", i);
        const body = withToolCalls(m, (c) => JSON.stringify({ name: c.name, parameters: parseArgs(c.arguments) }));
        b.add(`${body.trim()}<|eot_id|>`, "answer", i);
      } else {
        b.add(`${header}${m.content.trim()}<|eot_id|>`, m.role === "tool" ? "tool" : "prompt", i);
      }
    });
    return b.build();
  }

  renderPrompt(messages: Message[]): string {
    return this.render(messages).text + "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
}

/** No chat markers (base models): turns separated by newlines, each answer closed by EOS. */
class NoTemplate implements ChatTemplate {
  readonly name = "none" as const;
  readonly specialTokens: string[] = [];
  constructor(private readonly t: Tokens) {}

  render(messages: Message[]): RenderedChat {
    const b = new PartsBuilder();
    b.add(this.t.bos, "prompt", -1);
    messages.forEach((m, i) => {
      if (m.role === "assistant") {
        b.add(
          withToolCalls(m, (c) => JSON.stringify({ name: c.name, arguments: parseArgs(c.arguments) })) + this.t.eos,
          "answer",
          i,
        );
      } else b.add(`${m.content}\n`, m.role === "tool" ? "tool" : "prompt", i);
    });
    return b.build();
  }

  renderPrompt(messages: Message[]): string {
    return this.render(messages).text;
  }
}

/** An assistant turn's text: its content, then each tool call rendered, one per line. */
function withToolCalls(m: Message, call: (c: ToolCall) => string): string {
  const calls = (m.toolCalls ?? []).map(call);
  return [m.content, ...calls].filter((s) => s !== "").join("\n");
}

/** Arguments are JSON text in the data; templates show them as JSON objects when they parse. */
export function parseArgs(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

export function builtinTemplate(name: Exclude<TemplateName, "model">, tok: TextTokenizer | null): ChatTemplate {
  const bos = tok?.bosToken ?? "";
  const eos = tok?.eosToken ?? "</s>";
  switch (name) {
    case "chatml":
      return new ChatmlTemplate();
    case "llama2":
      return new Llama2Template({ bos: tok?.bosToken ?? "<s>", eos });
    case "llama3":
      // The byte tokenizer's own <s> is not Llama 3's; the template's markers are its specials.
      return new Llama3Template({ bos: tok === null || tok.kind === "byte" ? "<|begin_of_text|>" : bos, eos });
    case "none":
      return new NoTemplate({ bos, eos });
  }
}
