// The generation eval's answers, one JSON line per held-out chat (OUTPUT/generation_eval.jsonl): the chat
// as an OpenAI client sends it, the expected answer and the model's, read as a server reads it. Whoever
// serves the model can ask the same chats and compare; the answers must be byte-equal.
import type { Message } from "../../text/records/records.js";
import type { EvalPrompt, ReadAnswer } from "./generation_eval.js";

export interface EvalAnswerLine {
  /** file:line of the held-out record */
  source: string;
  task_type: string;
  /** the conversation before the answer, in OpenAI's chat form */
  messages: object[];
  tools?: unknown[];
  /** the eval's max_new_tokens: what to ask a server for to get the same answer */
  max_tokens: number;
  expected: string;
  /** the decoded answer up to its stop token */
  answer: string;
  /** with tools offered: the answer's text outside its calls (null when none) and the calls */
  content?: string | null;
  tool_calls?: { name: string; arguments: string }[];
}

/** Messages as OpenAI's chat API takes them (tool calls with ids, so tool results can refer to them). */
export function toOpenAiMessages(messages: readonly Message[]): object[] {
  let calls = 0;
  return messages.map((m) => {
    const o: Record<string, unknown> = { role: m.role, content: m.content };
    if (m.name !== undefined) o.name = m.name;
    if (m.reasoning_content !== undefined) o.reasoning_content = m.reasoning_content;
    if (m.toolCalls?.length)
      o.tool_calls = m.toolCalls.map((c) => ({
        id: `call_${calls++}`,
        type: "function",
        function: { name: c.name, arguments: c.arguments },
      }));
    return o;
  });
}

export function evalAnswerLines(prompts: EvalPrompt[], answers: ReadAnswer[], maxTokens: number): EvalAnswerLine[] {
  return prompts.map((p, i) => {
    const a = answers[i];
    const line: EvalAnswerLine = {
      source: `${p.source.file}:${p.source.line}`,
      task_type: p.taskType,
      messages: toOpenAiMessages(p.messages),
      max_tokens: maxTokens,
      expected: p.expected,
      answer: a.text,
    };
    if (p.tools?.length) {
      line.tools = p.tools;
      line.content = a.content;
      line.tool_calls = a.toolCalls;
    }
    return line;
  });
}
