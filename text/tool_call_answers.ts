// Tool calls in a generated answer, read back into OpenAI's `tool_calls` shape in the form the template
// taught the model to write them: Qwen's `<tool_call>{"name", "arguments"}</tool_call>` blocks (chatml,
// qwen3 and model templates that use them) or Llama 3.1's whole-answer `{"name", "parameters"}` object.
import type { TemplateName } from "./templates/template.js";

export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ParsedAnswer {
  /** the text outside the calls, null when there is none */
  content: string | null;
  toolCalls: OpenAiToolCall[];
}

const TAGGED = /<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g;

function callId(prefix: string, i: number): string {
  return `call_${prefix}_${i}`;
}

function asCall(json: unknown, argsKey: "arguments" | "parameters", id: string): OpenAiToolCall | null {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const o = json as Record<string, unknown>;
  const args = o[argsKey] ?? o.arguments;
  if (typeof o.name !== "string" || args === undefined) return null;
  return {
    id,
    type: "function",
    function: { name: o.name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
  };
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Splits `text` into content and tool calls. A block that is not a valid call stays in the content, so
 * nothing the model wrote is lost. `idPrefix` makes the call ids unique per response.
 */
export function parseToolCalls(text: string, template: TemplateName, idPrefix: string): ParsedAnswer {
  const calls: OpenAiToolCall[] = [];
  if (template === "llama3") {
    const call = asCall(tryJson(text.trim()), "parameters", callId(idPrefix, 0));
    if (call) return { content: null, toolCalls: [call] };
    return { content: text, toolCalls: [] };
  }
  const content = text.replace(TAGGED, (whole, body: string) => {
    const call = asCall(tryJson(body), "arguments", callId(idPrefix, calls.length));
    if (!call) return whole;
    calls.push(call);
    return "";
  });
  const rest = calls.length > 0 ? content.trim() : content;
  return { content: rest === "" ? null : rest, toolCalls: calls };
}
