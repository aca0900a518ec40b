// ShareGPT format (`conversations` of `{from, value}`), with function calls and observations.
import { z } from "zod";
import type { ChatRecord, Message, ToolCall } from "../records/records.js";
import { normalizeTools } from "./tools.js";

export const sharegptSchema = z.object({
  conversations: z.array(z.object({ from: z.string(), value: z.string() })),
  system: z.string().nullish(),
  tools: z.unknown().optional(),
});

const SHAREGPT_ROLES: Record<string, Message["role"]> = {
  system: "system",
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
  function_call: "assistant",
  observation: "tool",
  tool: "tool",
};

type Base = Omit<ChatRecord, "kind" | "messages">;

export function fromSharegpt(
  d: z.infer<typeof sharegptSchema>,
  base: Base,
): { record: ChatRecord } | { error: string } {
  const messages: Message[] = [];
  if (d.system) messages.push({ role: "system", content: d.system });
  for (let i = 0; i < d.conversations.length; i++) {
    const { from, value } = d.conversations[i];
    const role = SHAREGPT_ROLES[from];
    if (!role) return { error: `unknown role '${from}' in conversations[${i}]` };
    if (from === "function_call") {
      const call = parseToolCallJson(value);
      if ("error" in call) return { error: `conversations[${i}]: function_call ${call.error}` };
      messages.push({ role: "assistant", content: "", toolCalls: call.calls });
    } else {
      messages.push({ role, content: value });
    }
  }
  const tools = normalizeTools(d.tools);
  if ("error" in tools) return tools;
  return { record: { ...base, kind: "chat", messages, tools: tools.tools } };
}

/** A sharegpt function_call value: `{"name":..., "arguments":...}` or an array of them. */
function parseToolCallJson(value: string): { calls: ToolCall[] } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return { error: "is not valid JSON" };
  }
  const list = Array.isArray(v) ? v : [v];
  const calls: ToolCall[] = [];
  for (const c of list) {
    if (typeof c !== "object" || c === null || typeof (c as { name?: unknown }).name !== "string") {
      return { error: "needs a 'name'" };
    }
    const args = (c as { arguments?: unknown }).arguments ?? {};
    calls.push({
      name: (c as { name: string }).name,
      arguments: typeof args === "string" ? args : JSON.stringify(args),
    });
  }
  return { calls };
}
