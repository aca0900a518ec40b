// Per-record checks that do not need a tokenizer: roles in order, a response present, declared formats.
import type { DataRecord, Message } from "./records.js";

/** First problem found in a record, or null when it is fine. */
export function checkRecord(r: DataRecord): string | null {
  if (r.kind === "text") return r.text.trim() === "" ? "empty text" : null;
  return checkTurns(r.messages) ?? (r.responseFormat === "json" ? checkJsonResponses(r.messages) : null);
}

/**
 * Accepted order: optional system, then user -> assistant pairs; an assistant turn with tool calls is
 * followed by one or more tool results and then an assistant turn again. The last turn is the
 * assistant's (a conversation without a final answer has nothing to learn from).
 */
export function checkTurns(messages: Message[]): string | null {
  if (messages.length === 0) return "no messages";
  let i = 0;
  if (messages[0].role === "system") i = 1;
  let expect: "user" | "assistant" | "tool-or-assistant" | "tool" = "user";
  for (; i < messages.length; i++) {
    const m = messages[i];
    const n = `turn ${i + 1}`;
    if (m.role === "system") return `${n}: system message after the first turn`;
    if (m.role === "assistant") {
      if (expect === "user")
        return `${n}: turns do not alternate (assistant after ${i === 0 || messages[i - 1].role === "system" ? "no user turn" : "assistant"})`;
      if (expect === "tool") return `${n}: tool call has no tool result`;
      const calls = m.toolCalls?.length ?? 0;
      if (calls === 0 && m.content.trim() === "") return `${n}: empty response`;
      expect = calls > 0 ? "tool" : "user";
    } else if (m.role === "user") {
      if (expect !== "user") return `${n}: turns do not alternate (user after ${messages[i - 1].role})`;
      expect = "assistant";
    } else {
      if (expect !== "tool" && expect !== "tool-or-assistant") return `${n}: tool result without a tool call`;
      expect = "tool-or-assistant";
    }
  }
  if (expect !== "user") return "missing response: the conversation does not end with an assistant answer";
  return null;
}

/** A dataset declared `response_format: json`: every assistant answer (not tool calls) must parse. */
export function checkJsonResponses(messages: Message[]): string | null {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== "assistant" || m.content.trim() === "") continue;
    try {
      JSON.parse(m.content);
    } catch (err) {
      return `turn ${i + 1}: response is not valid JSON (response_format: json): ${(err as Error).message}`;
    }
  }
  return null;
}
