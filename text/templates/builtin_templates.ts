// The built-in chat templates. Each renders exactly what the model family's own Jinja template renders
// (tests compare them), with the parts marked as they are appended.
import type { Message } from "../records/records.js";
import type { TextTokenizer } from "../tokenizers/tokenizer.js";
import { ChatmlTemplate, Qwen3Template } from "./chatml_templates.js";
import { Llama2Template, Llama3Template } from "./llama_templates.js";
import { parseArgs } from "./tool_args.js";
import {
  PartsBuilder,
  type ChatTemplate,
  type RenderedChat,
  type TemplateName,
  type TemplateOptions,
} from "./template.js";

export { parseArgs };

/** No chat markers (base models): turns separated by newlines, each answer closed by EOS. */
class NoTemplate implements ChatTemplate {
  readonly name = "none" as const;
  readonly specialTokens: string[] = [];
  constructor(private readonly t: { bos: string; eos: string }) {}

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    if (tools?.length) throw new Error("the none template has no place for a tool list; use chatml, qwen3 or llama3");
    const b = new PartsBuilder();
    b.add(this.t.bos, "prompt", -1);
    messages.forEach((m, i) => {
      if (m.role === "assistant") {
        const calls = (m.toolCalls ?? []).map((c) =>
          JSON.stringify({ name: c.name, arguments: parseArgs(c.arguments) }),
        );
        b.add([m.content, ...calls].filter((s) => s !== "").join("\n") + this.t.eos, "answer", i);
      } else b.add(`${m.content}\n`, m.role === "tool" ? "tool" : "prompt", i);
    });
    return b.build();
  }

  renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[] {
    return [this.render(messages, tools)];
  }

  renderPrompt(messages: Message[], tools?: unknown[]): string {
    return this.render(messages, tools).text;
  }
}

/** Which options each built-in template reads; any other is a mistake in the job file. */
const BUILTIN_OPTIONS: Record<Exclude<TemplateName, "model">, readonly string[]> = {
  chatml: [],
  llama2: [],
  llama3: [],
  qwen3: ["enable_thinking"],
  none: [],
};

export function builtinTemplate(
  name: Exclude<TemplateName, "model">,
  tok: TextTokenizer | null,
  options: TemplateOptions = {},
): ChatTemplate {
  for (const key of Object.keys(options)) {
    if (!BUILTIN_OPTIONS[name].includes(key)) {
      const known = BUILTIN_OPTIONS[name].join(", ") || "none";
      throw new Error(`template_options.${key}: the ${name} template has no such option (it reads: ${known})`);
    }
  }
  const bos = tok?.bosToken ?? "";
  const eos = tok?.eosToken ?? "</s>";
  switch (name) {
    case "chatml":
      return new ChatmlTemplate();
    case "qwen3":
      return new Qwen3Template(options);
    case "llama2":
      return new Llama2Template({ bos: tok?.bosToken ?? "<s>", eos });
    case "llama3":
      // The byte tokenizer's own <s> is not Llama 3's; the template's markers are its specials.
      return new Llama3Template({ bos: tok === null || tok.kind === "byte" ? "<|begin_of_text|>" : bos, eos });
    case "none":
      return new NoTemplate({ bos, eos });
  }
}
