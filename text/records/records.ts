// The one shape every dataset format is normalised into before templating (formats.ts produces it).

/** A tool call made by the assistant; `arguments` kept as the JSON text the data gave (OpenAI style). */
export interface ToolCall {
  name: string;
  arguments: string;
}

export type Role = "system" | "user" | "assistant" | "tool";

export interface Message {
  role: Role;
  content: string;
  /** assistant only: tools it calls in this turn */
  toolCalls?: ToolCall[];
  /** tool only: which tool answered (optional in most data) */
  name?: string;
  /** assistant only: the reasoning before the answer (OpenAI-style `reasoning_content`; Qwen3's `<think>` block) */
  reasoning_content?: string;
}

/** Where a record came from, for `file:line: reason` messages. */
export interface Source {
  file: string;
  line: number;
}

interface RecordBase {
  source: Source;
  /** which entry of the job's `data` list it came from (mixing weights apply per entry) */
  sourceIndex: number;
  /** "reasoning/cot" or "general"; "unknown" when the record has none */
  taskType: string;
  tags: string[];
  /** a dataset or record may declare that every answer must be JSON */
  responseFormat?: "json";
}

export interface ChatRecord extends RecordBase {
  kind: "chat";
  messages: Message[];
  /** tool definitions, each `{"type": "function", "function": {...}}`, handed to templates that render them */
  tools?: unknown[];
}

/** Continued pretraining: every token is a target. */
export interface TextRecord extends RecordBase {
  kind: "text";
  text: string;
}

export type DataRecord = ChatRecord | TextRecord;

export const UNKNOWN_TASK = "unknown";

/** Tag that exempts a record from duplicate removal: bad prompts, good answers, kept on purpose. */
export const ROBUSTNESS_TAG = "robustness";
