// Llama 2 and Llama 3 chat templates. Llama 2 has no way to show tools, so records with tools, tool
// calls or tool results are refused. Llama 3 renders plain conversations as Llama 3 Instruct does and
// tools as Llama 3.1 Instruct's template does: the tool list in the first user message under an
// "Environment: ipython" system header, each call a whole answer `{"name": ..., "parameters": ...}`,
// results in the `ipython` role.
import type { Message } from "../records/records.js";
import { pythonJson } from "./python_json.js";
import { parseArgs } from "./tool_args.js";
import { PartsBuilder, type ChatTemplate, type RenderedChat } from "./template.js";

export interface MarkerTokens {
  bos: string;
  eos: string;
}

/** Llama 2 chat: `<s>[INST] user [/INST] answer </s>`, the system prompt inside the first [INST]. */
export class Llama2Template implements ChatTemplate {
  readonly name = "llama2" as const;
  readonly specialTokens: string[] = [];
  constructor(private readonly t: MarkerTokens) {}

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    if (tools?.length) throw new Error("the llama2 template cannot show tools; use llama3, chatml or qwen3");
    const b = new PartsBuilder();
    let system: string | null = null;
    messages.forEach((m, i) => {
      if (m.role === "system") system = m.content;
      else if (m.role === "user") {
        const content = system !== null ? `<<SYS>>\n${system}\n<</SYS>>\n\n${m.content}` : m.content;
        system = null;
        b.add(`${this.t.bos}[INST] ${content.trim()} [/INST]`, "prompt", i);
      } else if (m.role === "assistant") {
        if (m.toolCalls?.length) {
          throw new Error(`the llama2 template cannot show tool calls (message ${i + 1}); use llama3, chatml or qwen3`);
        }
        b.add(` ${m.content.trim()} ${this.t.eos}`, "answer", i);
      } else {
        throw new Error(`the llama2 template has no tool role (message ${i + 1}); use llama3, chatml or qwen3`);
      }
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

const HEADER = (role: string): string => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
const TOOLS_INTRO =
  "Given the following functions, please respond with a JSON for a function call " +
  "with its proper arguments that best answers the given prompt.\n\n" +
  'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' +
  "Do not use variables.\n\n";

/** Llama 3 instruct: header-delimited turns closed by `<|eot_id|>`; Llama 3.1's tool format. */
export class Llama3Template implements ChatTemplate {
  readonly name = "llama3" as const;
  readonly specialTokens = [
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|end_of_text|>",
  ];
  constructor(private readonly t: MarkerTokens) {}

  render(messages: Message[], tools?: unknown[]): RenderedChat {
    const b = new PartsBuilder();
    b.add(this.t.bos, "prompt", -1);
    let rest = messages.map((m, i) => ({ m, i }));
    if (tools?.length) {
      const hasSystem = messages[0]?.role === "system";
      const system = hasSystem ? messages[0].content.trim() : "";
      // Llama 3.1 always writes this header when tools are given; the date is its template's default.
      b.add(
        HEADER("system") + "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n",
        "prompt",
        -1,
      );
      b.add(system + "<|eot_id|>", "prompt", hasSystem ? 0 : -1);
      if (hasSystem) rest = rest.slice(1);
      const first = rest[0];
      if (first?.m.role !== "user") {
        throw new Error(
          "the llama3 template puts tools in the first user message, and the conversation has none first",
        );
      }
      const toolText = tools.map((t) => pythonJson(t, 4) + "\n\n").join("");
      b.add(HEADER("user") + TOOLS_INTRO + toolText + first.m.content.trim() + "<|eot_id|>", "prompt", first.i);
      rest = rest.slice(1);
    }
    for (const { m, i } of rest) {
      if (m.role === "assistant") {
        b.add(HEADER("assistant"), "prompt", i);
        b.add(this.answerText(m, i) + "<|eot_id|>", "answer", i);
      } else if (m.role === "tool") {
        // Llama 3.1's template writes a result with `tojson` (text is iterable in Jinja), so a result
        // reaches the model as a quoted JSON string; trained the same way here.
        b.add(HEADER("ipython") + pythonJson(m.content) + "<|eot_id|>", "tool", i);
      } else {
        b.add(HEADER(m.role) + m.content.trim() + "<|eot_id|>", "prompt", i);
      }
    }
    return b.build();
  }

  renderExamples(messages: Message[], tools?: unknown[]): RenderedChat[] {
    return [this.render(messages, tools)];
  }

  renderPrompt(messages: Message[], tools?: unknown[]): string {
    return this.render(messages, tools).text + HEADER("assistant");
  }

  /** A call is the whole answer, one per turn, as Llama 3.1 calls tools: text beside it has no place. */
  private answerText(m: Message, i: number): string {
    const calls = m.toolCalls ?? [];
    if (calls.length === 0) return m.content.trim();
    if (calls.length > 1) {
      throw new Error(`the llama3 template shows one tool call per turn; message ${i + 1} has ${calls.length}`);
    }
    if (m.content.trim() !== "") {
      throw new Error(
        `the llama3 template shows a tool call as the whole answer; message ${i + 1} has text beside its call`,
      );
    }
    return `{"name": "${calls[0].name}", "parameters": ${pythonJson(parseArgs(calls[0].arguments))}}`;
  }
}
