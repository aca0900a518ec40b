// ChatML templates in the Qwen family's form: `chatml` as Qwen2.5 renders (tools in a `# Tools` system
// block, calls in `<tool_call>`, results in `<tool_response>` inside a user turn), and `qwen3`, which adds
// `<think>` blocks and shows an answer's reasoning only after the latest user query.
import type { Message, ToolCall } from "../records/records.js";
import { examplesByTurn } from "./examples_by_turn.js";
import { parseArgs } from "./tool_args.js";
import { pythonJson } from "./python_json.js";
import { PartsBuilder, type ChatTemplate, type RenderedChat, type TemplateOptions } from "./template.js";

const TOOLS_INTRO =
  "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
  "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
const TOOLS_OUTRO =
  "\n</tools>\n\nFor each function call, return a json object with function name and arguments within " +
  '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n' +
  "</tool_call><|im_end|>\n";

/** Qwen-style ChatML. No BOS; `<|im_end|>` closes every turn and is the answer's end-of-turn token. */
export class ChatmlTemplate implements ChatTemplate {
  readonly name: "chatml" | "qwen3" = "chatml";
  readonly specialTokens: string[] = ["<|im_start|>", "<|im_end|>"];

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    const b = new PartsBuilder();
    const hasSystem = messages[0]?.role === "system";
    if (tools?.length) {
      // Qwen2.5 puts a default identity here when there is no system prompt; plain ChatML has none, which
      // is what Qwen3 renders.
      b.add("<|im_start|>system\n", "prompt", hasSystem ? 0 : -1);
      if (hasSystem) b.add(messages[0].content + "\n\n", "prompt", 0);
      b.add(TOOLS_INTRO + tools.map((t) => "\n" + pythonJson(t)).join("") + TOOLS_OUTRO, "prompt", hasSystem ? 0 : -1);
    } else if (hasSystem) {
      b.add(`<|im_start|>system\n${messages[0].content}<|im_end|>\n`, "prompt", 0);
    }
    const lastQuery = this.lastQueryIndex(messages);
    messages.forEach((m, i) => {
      if (m.role === "assistant") {
        const turn = this.assistantTurn(m, i > lastQuery, i === messages.length - 1);
        const answerStart = commonPrefixLength(this.generationPrompt(), turn);
        b.add(turn.slice(0, answerStart), "prompt", i);
        b.add(turn.slice(answerStart) + "<|im_end|>", "answer", i);
        b.add("\n", "prompt", i);
      } else if (m.role === "tool") {
        // Consecutive tool results share one user turn.
        const first = i === 0 || messages[i - 1].role !== "tool";
        const last = i === messages.length - 1 || messages[i + 1].role !== "tool";
        const text = `${first ? "<|im_start|>user" : ""}\n<tool_response>\n${m.content}\n</tool_response>`;
        b.add(text + (last ? "<|im_end|>\n" : ""), "tool", i);
      } else if (!(m.role === "system" && i === 0)) {
        b.add(`<|im_start|>${m.role}\n${m.content}<|im_end|>\n`, "prompt", i);
      }
    });
    return b.build();
  }

  renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[] {
    return [this.render(messages, tools)];
  }

  renderPrompt(messages: Message[], tools?: unknown[]): string {
    return this.render(messages, tools).text + this.generationPrompt();
  }

  protected generationPrompt(): string {
    return "<|im_start|>assistant\n";
  }

  /** Only Qwen3 tells the latest query from earlier ones; for ChatML every turn renders the same. */
  protected lastQueryIndex(messages: Message[]): number {
    return messages.length;
  }

  /** The assistant turn from its header to just before `<|im_end|>`. */
  protected assistantTurn(m: Message, _afterLastQuery: boolean, _isLast: boolean): string {
    if (!m.toolCalls?.length) return "<|im_start|>assistant\n" + m.content;
    return "<|im_start|>assistant" + (m.content ? "\n" + m.content : "") + toolCallsText(m.toolCalls, true, "json");
  }
}

/**
 * Qwen3: `<think>` blocks on the answers after the latest user query (always on the last turn, on earlier
 * ones only when they carry reasoning); `enable_thinking: false` gives the model an empty think block
 * in its generation prompt, so the answer that follows it is trained without one.
 */
export class Qwen3Template extends ChatmlTemplate {
  override readonly name = "qwen3" as const;
  override readonly specialTokens = ["<|im_start|>", "<|im_end|>", "<think>", "</think>"];
  private readonly enableThinking: boolean;

  constructor(options: TemplateOptions) {
    super();
    const value = options.enable_thinking ?? true;
    if (typeof value !== "boolean") {
      throw new Error(`template_options.enable_thinking: expected true or false, got ${JSON.stringify(value)}`);
    }
    this.enableThinking = value;
  }

  override renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[] {
    return examplesByTurn(messages, (count) => this.render(messages.slice(0, count), tools));
  }

  protected override generationPrompt(): string {
    return "<|im_start|>assistant\n" + (this.enableThinking ? "" : "<think>\n\n</think>\n\n");
  }

  /** The latest user turn that is a real query, not tool results handed back as a user message. */
  protected override lastQueryIndex(messages: Message[]): number {
    for (let i = messages.length - 1; i >= 0; i--) {
      const c = messages[i].content;
      if (messages[i].role === "user" && !(c.startsWith("<tool_response>") && c.endsWith("</tool_response>"))) return i;
    }
    return messages.length - 1;
  }

  protected override assistantTurn(m: Message, afterLastQuery: boolean, isLast: boolean): string {
    let content = m.content;
    let reasoning = "";
    if (m.reasoning_content !== undefined) reasoning = m.reasoning_content;
    else if (content.includes("</think>")) {
      reasoning = trimStart(trimEnd(content.split("</think>")[0]).split("<think>").at(-1) ?? "");
      content = trimStart(content.split("</think>").at(-1) ?? "");
    }
    let text: string;
    if (afterLastQuery && (isLast || reasoning)) {
      text = `<|im_start|>assistant\n<think>\n${trimEnd(trimStart(reasoning))}\n</think>\n\n${trimStart(content)}`;
    } else {
      text = "<|im_start|>assistant\n" + content;
    }
    return text + toolCallsText(m.toolCalls, content !== "", "raw-if-string");
  }
}

/**
 * Each call as `<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`, arguments in Python's JSON
 * spelling. Qwen2.5 starts every call on a new line; Qwen3 only those after content or another call.
 * Arguments that are not JSON are quoted by Qwen2.5 and written as they are by Qwen3.
 */
function toolCallsText(calls: ToolCall[] | undefined, newlineFirst: boolean, args: "json" | "raw-if-string"): string {
  return (calls ?? [])
    .map((c, k) => {
      const parsed = parseArgs(c.arguments);
      const argText = args === "raw-if-string" && typeof parsed === "string" ? parsed : pythonJson(parsed);
      const sep = k > 0 || newlineFirst ? "\n" : "";
      return `${sep}<tool_call>\n{"name": "${c.name}", "arguments": ${argText}}\n</tool_call>`;
    })
    .join("");
}

function trimStart(s: string): string {
  return s.replace(/^\n+/, "");
}

function trimEnd(s: string): string {
  return s.replace(/\n+$/, "");
}

export function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}
