// OpenAI chat format (`messages` with roles, content strings or part lists, tool calls, reasoning).
import { z } from "zod";
import { contentText } from "./content_parts.js";
import type { ChatRecord, Message } from "../records/records.js";
import { normalizeTools } from "./tools.js";

const openaiToolCall = z.object({
  id: z.string().optional(),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string(), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]) }),
});

export const openaiSchema = z.object({
  messages: z.array(
    z.object({
      role: z.string(),
      // a string or a list of content parts; content_parts.ts reads it and names what it refuses
      content: z.unknown().optional(),
      tool_calls: z.array(openaiToolCall).nullish(),
      tool_call_id: z.string().optional(),
      name: z.string().optional(),
      reasoning_content: z.string().nullish(),
    }),
  ),
  tools: z.unknown().optional(),
});

const OPENAI_ROLES: Record<string, Message["role"]> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
  function: "tool",
};

type Base = Omit<ChatRecord, "kind" | "messages">;

export function fromOpenai(d: z.infer<typeof openaiSchema>, base: Base): { record: ChatRecord } | { error: string } {
  const messages: Message[] = [];
  for (let i = 0; i < d.messages.length; i++) {
    const m = d.messages[i];
    const role = OPENAI_ROLES[m.role];
    if (!role) return { error: `unknown role '${m.role}' in messages[${i}]` };
    const content = contentText(m.content, `messages[${i}].content`);
    if ("error" in content) return content;
    const msg: Message = { role, content: content.text };
    if (m.tool_calls?.length) {
      msg.toolCalls = m.tool_calls.map((c) => ({
        name: c.function.name,
        arguments:
          typeof c.function.arguments === "string" ? c.function.arguments : JSON.stringify(c.function.arguments),
      }));
    }
    if (m.name) msg.name = m.name;
    if (typeof m.reasoning_content === "string") {
      if (role !== "assistant") return { error: `messages[${i}]: reasoning_content on a ${m.role} message` };
      msg.reasoning_content = m.reasoning_content;
    }
    messages.push(msg);
  }
  const tools = normalizeTools(d.tools);
  if ("error" in tools) return tools;
  return { record: { ...base, kind: "chat", messages, tools: tools.tools } };
}
