// Dataset formats (alpaca, sharegpt, OpenAI messages, text): detection, zod shapes, and normalisation
// into ChatRecord/TextRecord. Roles and turn order are checked later (checks.ts), so every problem in a
// record is reported with the same wording whatever format it came in. Records laid out with
// LLaMA-Factory column and tag names are first renamed into these shapes (llamafactory_columns.ts).
import { z } from "zod";
import { fromOpenai, openaiSchema } from "./format_openai.js";
import { fromSharegpt, sharegptSchema } from "./format_sharegpt.js";
import { fromLlamaFactoryLayout, type ColumnLayout } from "./llamafactory_columns.js";
import type { ChatRecord, DataRecord, Message, Source, TextRecord } from "../records/records.js";
import { UNKNOWN_TASK } from "../records/records.js";
import { normalizeTools } from "./tools.js";

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
  // null where a table (parquet, a pandas export) has an empty cell
  input: z.string().nullish(),
  output: z.string(),
  system: z.string().nullish(),
  history: z.array(z.tuple([z.string(), z.string()])).optional(),
  tools: z.unknown().optional(),
  ...meta,
});

const textSchema = z.object({ text: z.string(), ...meta });

const SCHEMAS = {
  alpaca: alpacaSchema,
  sharegpt: sharegptSchema.extend(meta),
  openai: openaiSchema.extend(meta),
  text: textSchema,
};

/** Fields multimodal datasets carry; a text-only trainer must not quietly train without what they show. */
const MEDIA_FIELDS = ["images", "videos", "audios"] as const;

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

/** `layout`: the source's LLaMA-Factory column and tag names, when it has them. */
export function normalizeRecord(
  value: unknown,
  format: DataFormat,
  source: Source,
  layout?: ColumnLayout,
): NormalizeResult {
  if (layout?.columns || layout?.tags) {
    const renamed = fromLlamaFactoryLayout(value, format, layout);
    if ("error" in renamed) return renamed;
    value = renamed.value;
    format = renamed.format;
  }
  const f = format === "auto" ? detectFormat(value) : format;
  if (f === null)
    return { error: "cannot detect format: expected 'messages', 'conversations', 'instruction'/'output' or 'text'" };
  const media = mediaField(value);
  if (media)
    return { error: `'${media}': images, videos and audio are not supported: ringtune trains text-only models` };
  const parsed = SCHEMAS[f].safeParse(value);
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
      return fromAlpaca(parsed.data as z.infer<typeof alpacaSchema>, base);
    case "sharegpt":
      return fromSharegpt(parsed.data as z.infer<typeof sharegptSchema>, base);
    case "openai":
      return fromOpenai(parsed.data as z.infer<typeof openaiSchema>, base);
  }
}

function mediaField(value: unknown): string | null {
  const v = value as Record<string, unknown>;
  for (const k of MEDIA_FIELDS) {
    const x = v[k];
    if (x !== undefined && x !== null && x !== "" && !(Array.isArray(x) && x.length === 0)) return k;
  }
  return null;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? `'${issue.path.join(".")}'` : "record";
  if (issue.code === "invalid_type") return `${where}: expected ${issue.expected}`;
  return `${where}: ${issue.message}`;
}

type Base = Omit<ChatRecord, "kind" | "messages">;

function fromAlpaca(d: z.infer<typeof alpacaSchema>, base: Base): NormalizeResult {
  const messages: Message[] = [];
  if (d.system) messages.push({ role: "system", content: d.system });
  for (const [q, a] of d.history ?? []) {
    messages.push({ role: "user", content: q }, { role: "assistant", content: a });
  }
  const prompt = d.input ? `${d.instruction}\n${d.input}` : d.instruction;
  messages.push({ role: "user", content: prompt }, { role: "assistant", content: d.output });
  const tools = normalizeTools(d.tools);
  if ("error" in tools) return tools;
  return { record: { ...base, kind: "chat", messages, tools: tools.tools } };
}
