// Dataset formats (alpaca, sharegpt, OpenAI messages, text): detection, zod shapes, and normalisation
// into ChatRecord/TextRecord. Roles and turn order are checked later (checks.ts), so every problem in a
// record is reported with the same wording whatever format it came in.
import { z } from "zod";
import type { ChatRecord, DataRecord, Message, Source, TextRecord, ToolCall } from "./records.js";
import { UNKNOWN_TASK } from "./records.js";

export const DATA_FORMATS = ["auto", "alpaca", "sharegpt", "openai", "text"] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

const meta = {
  task_type: z
    .string()
    .regex(/^[^/\s]+(\/[^/\s]+)?$/, "task_type must be one or two levels, like 'reasoning/cot'")
    .optional(),
  tags: z.array(z.string()).optional(),
  response_format: z.literal("json").optional(),
};

const alpacaSchema = z.object({
  instruction: z.string(),
  input: z.string().optional(),
  output: z.string(),
  system: z.string().optional(),
  history: z.array(z.tuple([z.string(), z.string()])).optional(),
  ...meta,
});

const sharegptSchema = z.object({
  conversations: z.array(z.object({ from: z.string(), value: z.string() })),
  system: z.string().optional(),
  tools: z.union([z.string(), z.array(z.unknown())]).optional(),
  ...meta,
});

const openaiToolCall = z.object({
  id: z.string().optional(),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string(), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]) }),
});

const openaiSchema = z.object({
  messages: z.array(
    z.object({
      role: z.string(),
      content: z.union([z.string(), z.null()]).optional(),
      tool_calls: z.array(openaiToolCall).optional(),
      tool_call_id: z.string().optional(),
      name: z.string().optional(),
    }),
  ),
  tools: z.array(z.unknown()).optional(),
  ...meta,
});

const textSchema = z.object({ text: z.string(), ...meta });

export type NormalizeResult = { record: DataRecord } | { error: string };

/** Which format a record is in, from its keys; null when none fits. */
export function detectFormat(value: unknown): Exclude<DataFormat, "auto"> | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  if ("messages" in value) return "openai";
  if ("conversations" in value) return "sharegpt";
  if ("instruction" in value || "output" in value) return "alpaca";
  if ("text" in value) return "text";
  return null;
}

export function normalizeRecord(value: unknown, format: DataFormat, source: Source): NormalizeResult {
  const f = format === "auto" ? detectFormat(value) : format;
  if (f === null)
    return { error: "cannot detect format: expected 'messages', 'conversations', 'instruction'/'output' or 'text'" };
  const schema = { alpaca: alpacaSchema, sharegpt: sharegptSchema, openai: openaiSchema, text: textSchema }[f];
  const parsed = schema.safeParse(value);
  if (!parsed.success) return { error: `${f}: ${describeIssue(parsed.error.issues[0])}` };
  const d = parsed.data as { task_type?: string; tags?: string[]; response_format?: "json" };
  const base = {
    source,
    sourceIndex: 0,
    taskType: d.task_type ?? UNKNOWN_TASK,
    tags: d.tags ?? [],
    responseFormat: d.response_format,
  };
  switch (f) {
    case "text":
      return {
        record: { ...base, kind: "text", text: (parsed.data as z.infer<typeof textSchema>).text } satisfies TextRecord,
      };
    case "alpaca":
      return {
        record: {
          ...base,
          kind: "chat",
          messages: fromAlpaca(parsed.data as z.infer<typeof alpacaSchema>),
        } satisfies ChatRecord,
      };
    case "sharegpt":
      return fromSharegpt(parsed.data as z.infer<typeof sharegptSchema>, base);
    case "openai":
      return fromOpenai(parsed.data as z.infer<typeof openaiSchema>, base);
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? `'${issue.path.join(".")}'` : "record";
  if (issue.code === "invalid_type") return `${where}: expected ${issue.expected}`;
  return `${where}: ${issue.message}`;
}

function fromAlpaca(d: z.infer<typeof alpacaSchema>): Message[] {
  const messages: Message[] = [];
  if (d.system) messages.push({ role: "system", content: d.system });
  for (const [q, a] of d.history ?? []) {
    messages.push({ role: "user", content: q }, { role: "assistant", content: a });
  }
  const prompt = d.input ? `${d.instruction}\n${d.input}` : d.instruction;
  messages.push({ role: "user", content: prompt }, { role: "assistant", content: d.output });
  return messages;
}

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

function fromSharegpt(d: z.infer<typeof sharegptSchema>, base: Base): NormalizeResult {
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
  let tools: unknown[] | undefined;
  if (typeof d.tools === "string") {
    try {
      tools = JSON.parse(d.tools) as unknown[];
    } catch {
      return { error: "'tools' is not valid JSON" };
    }
  } else tools = d.tools;
  return { record: { ...base, kind: "chat", messages, tools } };
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

const OPENAI_ROLES: Record<string, Message["role"]> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
  function: "tool",
};

function fromOpenai(d: z.infer<typeof openaiSchema>, base: Base): NormalizeResult {
  const messages: Message[] = [];
  for (let i = 0; i < d.messages.length; i++) {
    const m = d.messages[i];
    const role = OPENAI_ROLES[m.role];
    if (!role) return { error: `unknown role '${m.role}' in messages[${i}]` };
    const msg: Message = { role, content: m.content ?? "" };
    if (m.tool_calls?.length) {
      msg.toolCalls = m.tool_calls.map((c) => ({
        name: c.function.name,
        arguments:
          typeof c.function.arguments === "string" ? c.function.arguments : JSON.stringify(c.function.arguments),
      }));
    }
    if (m.name) msg.name = m.name;
    messages.push(msg);
  }
  return { record: { ...base, kind: "chat", messages, tools: d.tools } };
}
