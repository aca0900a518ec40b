// LLaMA-Factory's column and tag names (`columns`, `tags` in its dataset_info.json), applied the way
// LLaMA-Factory applies them: a record is renamed into ringtune's own alpaca/sharegpt/text shape, so
// the same data gives the same ids whichever way it is laid out. As in LLaMA-Factory, only named
// columns are read: `system`, `history` and `tools` are ignored unless `columns` names them.
import { z } from "zod";

export const columnsSchema = z.strictObject({
  prompt: z.string().optional(),
  query: z.string().optional(),
  response: z.string().optional(),
  history: z.string().optional(),
  messages: z.string().optional(),
  system: z.string().optional(),
  tools: z.string().optional(),
  /** preference data (ranking: true): the chosen and rejected answers */
  chosen: z.string().optional(),
  rejected: z.string().optional(),
});

export const tagsSchema = z.strictObject({
  role_tag: z.string().optional(),
  content_tag: z.string().optional(),
  user_tag: z.string().optional(),
  assistant_tag: z.string().optional(),
  observation_tag: z.string().optional(),
  function_tag: z.string().optional(),
  system_tag: z.string().optional(),
});

export type Columns = z.infer<typeof columnsSchema>;
export type Tags = z.infer<typeof tagsSchema>;

export interface ColumnLayout {
  columns?: Columns;
  tags?: Tags;
}

/** LLaMA-Factory's defaults for the columns and tags a dataset does not name. */
const DEFAULT_COLUMNS = { prompt: "instruction", query: "input", response: "output", messages: "conversations" };
const DEFAULT_TAGS: Required<Tags> = {
  role_tag: "from",
  content_tag: "value",
  user_tag: "human",
  assistant_tag: "gpt",
  observation_tag: "observation",
  function_tag: "function_call",
  system_tag: "system",
};

type Renamed =
  { value: Record<string, unknown>; format: "alpaca" | "sharegpt" | "openai" | "text" } | { error: string };
type Row = Record<string, unknown>;

/** Fields ringtune reads from any record, kept as they are when present. */
const PASSED_THROUGH = ["task_type", "response_format"] as const;

export function fromLlamaFactoryLayout(value: unknown, format: string, layout: ColumnLayout): Renamed {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { error: "expected a JSON object per record" };
  const row = value as Row;
  const columns = { ...DEFAULT_COLUMNS, ...layout.columns };
  const tags = { ...DEFAULT_TAGS, ...layout.tags };
  const renamed =
    format === "sharegpt"
      ? sharegptLayout(row, columns, tags)
      : format === "openai"
        ? openaiLayout(row, columns, tags)
        : alpacaLayout(row, columns);
  if ("value" in renamed) for (const k of PASSED_THROUGH) if (k in row) renamed.value[k] = row[k];
  return renamed;
}

function optionalColumn(row: Row, column: string | undefined): unknown {
  if (column === undefined) return undefined;
  const v = row[column];
  return v === null || v === "" ? undefined : v;
}

function alpacaLayout(row: Row, c: Columns & typeof DEFAULT_COLUMNS): Renamed {
  // "instruction\ninput", either part left out when empty, as LLaMA-Factory joins them
  const parts: string[] = [];
  for (const column of [c.prompt, c.query]) {
    const v = optionalColumn(row, column);
    if (v === undefined) continue;
    if (typeof v !== "string") return { error: `'${column}': expected string` };
    parts.push(v);
  }
  const prompt = parts.join("\n");
  const response = optionalColumn(row, c.response);
  const history = optionalColumn(row, c.history);
  if (response === undefined) {
    // LLaMA-Factory's pretraining layout: a prompt column (often `text`) and no response
    if (history !== undefined || parts.length === 0) return { error: `'${c.response}': missing response` };
    return { value: { text: prompt }, format: "text" };
  }
  if (typeof response !== "string") return { error: `'${c.response}': expected string` };
  const out: Row = { instruction: prompt, output: response };
  if (Array.isArray(history)) out.history = history;
  const system = optionalColumn(row, c.system);
  if (system !== undefined) out.system = system;
  const tools = optionalColumn(row, c.tools);
  if (tools !== undefined) out.tools = tools;
  return { value: out, format: "alpaca" };
}

function sharegptLayout(row: Row, c: Columns & typeof DEFAULT_COLUMNS, t: Required<Tags>): Renamed {
  const list = row[c.messages];
  if (!Array.isArray(list)) return { error: `'${c.messages}': expected a list of messages` };
  // tag value -> ringtune's sharegpt role name
  const roles = new Map<unknown, string>([
    [t.user_tag, "human"],
    [t.assistant_tag, "gpt"],
    [t.observation_tag, "observation"],
    [t.function_tag, "function_call"],
    [t.system_tag, "system"],
  ]);
  const conversations: { from: string; value: unknown }[] = [];
  let system = optionalColumn(row, c.system);
  for (let i = 0; i < list.length; i++) {
    const m = list[i] as Row | null;
    if (typeof m !== "object" || m === null) return { error: `'${c.messages}[${i}]': expected an object` };
    const role = m[t.role_tag];
    const from = roles.get(role);
    if (from === undefined)
      return {
        error:
          `unknown role '${String(role)}' in ${c.messages}[${i}].${t.role_tag} ` +
          `(tags: user '${t.user_tag}', assistant '${t.assistant_tag}', observation '${t.observation_tag}', ` +
          `function '${t.function_tag}', system '${t.system_tag}')`,
      };
    const content = m[t.content_tag];
    if (typeof content !== "string") return { error: `'${c.messages}[${i}].${t.content_tag}': expected string` };
    // a leading system turn overrides the system column, as in LLaMA-Factory
    if (i === 0 && from === "system") system = content;
    else conversations.push({ from, value: content });
  }
  const out: Row = { conversations };
  if (system !== undefined) out.system = system;
  const tools = optionalColumn(row, c.tools);
  if (tools !== undefined) out.tools = tools;
  return { value: out, format: "sharegpt" };
}

/**
 * LLaMA-Factory's `formatting: openai`: messages named by the tags (usually role/content), tool calls in
 * `tool_calls` as OpenAI writes them. Renamed into ringtune's OpenAI shape, roles translated by the tags.
 */
function openaiLayout(row: Row, c: Columns & typeof DEFAULT_COLUMNS, t: Required<Tags>): Renamed {
  const list = row[c.messages];
  if (!Array.isArray(list)) return { error: `'${c.messages}': expected a list of messages` };
  const roles = new Map<unknown, string>([
    [t.user_tag, "user"],
    [t.assistant_tag, "assistant"],
    [t.observation_tag, "tool"],
    [t.function_tag, "assistant"],
    [t.system_tag, "system"],
  ]);
  const messages: Row[] = [];
  for (let i = 0; i < list.length; i++) {
    const m = list[i] as Row | null;
    if (typeof m !== "object" || m === null) return { error: `'${c.messages}[${i}]': expected an object` };
    const role = roles.get(m[t.role_tag]);
    if (role === undefined)
      return { error: `unknown role '${String(m[t.role_tag])}' in ${c.messages}[${i}].${t.role_tag}` };
    const { [t.role_tag]: _role, [t.content_tag]: content, ...rest } = m;
    messages.push({ ...rest, role, content });
  }
  const system = optionalColumn(row, c.system);
  if (system !== undefined && messages[0]?.role !== "system") messages.unshift({ role: "system", content: system });
  const out: Row = { messages };
  const tools = optionalColumn(row, c.tools);
  if (tools !== undefined) out.tools = tools;
  return { value: out, format: "openai" };
}
