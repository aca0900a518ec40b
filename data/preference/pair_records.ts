// Preference records: a prompt (a conversation so far) with a chosen and a rejected answer. Each record is
// split into two ordinary records (the prompt plus one answer), normalised by the same code as SFT data, so a
// pair is read, checked and templated exactly like an SFT example. Layouts: LLaMA-Factory's ranking data
// (alpaca `chosen`/`rejected` strings; sharegpt `conversations` plus `chosen`/`rejected` message objects;
// their column and tag names) and TRL's (`prompt`, `chosen`, `rejected` as message lists, or as strings).
import { normalizeRecord, type DataFormat } from "../../text/formats/formats.js";
import type { ColumnLayout } from "../../text/formats/llamafactory_columns.js";
import type { RawRecord } from "../../text/readers/raw_record.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { UNKNOWN_TASK, type ChatRecord, type Source } from "../../text/records/records.js";
import type { PairSpec } from "./pair_spec.js";

export interface PairRecord {
  source: Source;
  sourceIndex: number;
  taskType: string;
  chosen: ChatRecord;
  rejected: ChatRecord;
}

type Obj = Record<string, unknown>;
type Split = { chosen: Obj; rejected: Obj; format: DataFormat; layout?: ColumnLayout } | { error: string };

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A raw pair record as its two records; `layout`: the source's LLaMA-Factory column and tag names. */
export function normalizePair(
  value: unknown,
  format: DataFormat,
  source: Source,
  layout?: ColumnLayout,
): { pair: Omit<PairRecord, "sourceIndex"> } | { error: string } {
  const split = splitPair(value, format, layout);
  if ("error" in split) return split;
  const c = normalizeRecord(split.chosen, split.format, source, split.layout);
  if ("error" in c) return { error: `chosen: ${c.error}` };
  const r = normalizeRecord(split.rejected, split.format, source, split.layout);
  if ("error" in r) return { error: `rejected: ${r.error}` };
  if (c.record.kind !== "chat" || r.record.kind !== "chat")
    return { error: "a preference pair needs a prompt and two answers, not plain text" };
  return { pair: { source, taskType: c.record.taskType, chosen: c.record, rejected: r.record } };
}

/**
 * A raw record of data source `sourceIndex` as a pair, its task type the source's where the record names none;
 * or the problem that drops it (a line that is not JSON, a pair that does not normalise).
 */
export function pairOfRaw(
  raw: RawRecord,
  src: PairSpec["data"][number],
  file: string,
  sourceIndex: number,
): { pair: PairRecord } | { problem: Problem } {
  const at = { file, line: raw.line };
  if (raw.error !== undefined) return { problem: problemAt(at, "invalid", raw.error) };
  const n = normalizePair(raw.value, src.format, at, src);
  if ("error" in n) return { problem: problemAt(at, "invalid", n.error) };
  const taskType = n.pair.taskType === UNKNOWN_TASK && src.task_type ? src.task_type : n.pair.taskType;
  return { pair: { ...n.pair, taskType, sourceIndex } };
}

function splitPair(value: unknown, format: DataFormat, layout?: ColumnLayout): Split {
  if (!isObject(value)) return { error: "expected a JSON object per record" };
  const chosenKey = layout?.columns?.chosen ?? "chosen";
  const rejectedKey = layout?.columns?.rejected ?? "rejected";
  const chosen = value[chosenKey];
  const rejected = value[rejectedKey];
  if (chosen === undefined || rejected === undefined)
    return { error: `a preference pair needs '${chosenKey}' and '${rejectedKey}'` };
  const rest: Obj = { ...value };
  delete rest[chosenKey];
  delete rest[rejectedKey];
  // The layout's own columns without chosen/rejected, which normalizeRecord does not know.
  const { chosen: _c, rejected: _r, ...columns } = layout?.columns ?? {};
  const inner: ColumnLayout | undefined = layout && { columns, tags: layout.tags };
  const messagesKey = layout?.columns?.messages ?? (format === "openai" ? "messages" : "conversations");
  // TRL: prompt, chosen and rejected as message lists (conversational) or strings (standard).
  if (format === "auto" && "prompt" in rest && !(messagesKey in rest)) {
    const prompt = rest.prompt;
    if (Array.isArray(prompt)) {
      if (!Array.isArray(chosen) || !Array.isArray(rejected))
        return { error: "'prompt' is a message list: 'chosen' and 'rejected' must be message lists too" };
      const meta = { ...rest, prompt: undefined };
      return {
        chosen: { ...meta, messages: [...prompt, ...chosen] },
        rejected: { ...meta, messages: [...prompt, ...rejected] },
        format: "openai",
      };
    }
    if (typeof prompt !== "string" || typeof chosen !== "string" || typeof rejected !== "string")
      return { error: "'prompt', 'chosen' and 'rejected' must be strings or message lists" };
    const meta = { ...rest, prompt: undefined };
    return {
      chosen: { ...meta, instruction: prompt, output: chosen },
      rejected: { ...meta, instruction: prompt, output: rejected },
      format: "alpaca",
    };
  }
  const conversational = format === "sharegpt" || format === "openai" || (format === "auto" && messagesKey in rest);
  if (conversational || Array.isArray(rest.messages)) {
    const key = messagesKey in rest ? messagesKey : "messages";
    const list = rest[key];
    if (!Array.isArray(list)) return { error: `'${key}': expected a list of messages` };
    const answer = (a: unknown, name: string) => (isObject(a) ? [a] : Array.isArray(a) ? a : name);
    const c = answer(chosen, chosenKey);
    const r = answer(rejected, rejectedKey);
    if (typeof c === "string" || typeof r === "string")
      return { error: `'${typeof c === "string" ? c : r}': expected a message object (or a list of them)` };
    return {
      chosen: { ...rest, [key]: [...list, ...c] },
      rejected: { ...rest, [key]: [...list, ...r] },
      format,
      layout: inner,
    };
  }
  // alpaca: the answers go where the response would.
  if (typeof chosen !== "string" || typeof rejected !== "string")
    return { error: `'${chosenKey}' and '${rejectedKey}' must be strings in the alpaca layout` };
  const responseKey = layout?.columns?.response ?? "output";
  return {
    chosen: { ...rest, [responseKey]: chosen },
    rejected: { ...rest, [responseKey]: rejected },
    format: format === "auto" ? "alpaca" : format,
    layout: inner,
  };
}
