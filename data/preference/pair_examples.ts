// A pair's two training sequences: the prompt with the chosen answer and with the rejected one, each
// templated with the job's template, loss on the final answer only (earlier answers of the conversation
// are context, as in LLaMA-Factory's pairwise data). The prompt is shared: both sequences must agree token
// for token up to their answers, so a template that renders the prompt differently for the two answers,
// or two equal answers, make the pair a bad record.
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { shiftLabels, type Example } from "../examples/example.js";
import { maskChat } from "../examples/mask.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import type { ChatRecord, Message } from "../../text/records/records.js";
import { recordTokensProblem } from "../../text/records/record_limits.js";
import type { ChatTemplate } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";
import { checkRecord } from "../../text/records/checks.js";
import type { PairRecord } from "./pair_records.js";

export interface PairExample {
  chosen: Example;
  rejected: Example;
  taskType: string;
  /** positions of the prompt both sequences share */
  promptLength: number;
}

export interface PairSettings {
  seqLen: number;
  maxRecordTokens: number;
}

/** The pair's examples, or the problem that keeps it out (file:line of its record). */
export function tokenizePair(
  p: PairRecord,
  tok: TextTokenizer,
  template: ChatTemplate,
  s: PairSettings,
): { example: PairExample } | { problem: Problem } {
  const bad = checkRecord(p.chosen) ?? checkRecord(p.rejected);
  if (bad) return { problem: problemAt(p.source, "invalid", bad) };
  if (sameAnswer(lastMessage(p.chosen), lastMessage(p.rejected)))
    return { problem: problemAt(p.source, "invalid", "chosen and rejected answers are equal") };
  let chosen, rejected;
  try {
    chosen = sequence(p.chosen, tok, template);
    rejected = sequence(p.rejected, tok, template);
  } catch (err) {
    return { problem: problemAt(p.source, "template", (err as Error).message) };
  }
  const tokens = chosen.inputIds.length + rejected.inputIds.length + 2;
  if (tokens > s.maxRecordTokens)
    return { problem: problemAt(p.source, "overlong", recordTokensProblem(tokens, s.maxRecordTokens)) };
  const promptC = firstTarget(chosen.labels);
  const promptR = firstTarget(rejected.labels);
  if (promptC < 0 || promptR < 0)
    return { problem: problemAt(p.source, "template", "no target tokens after templating") };
  const differs = firstDifference(chosen.inputIds, rejected.inputIds, Math.min(promptC, promptR) + 1);
  if (promptC !== promptR || differs >= 0)
    return {
      problem: problemAt(
        p.source,
        "invalid",
        `the prompt renders differently with the chosen and the rejected answer (from token ${differs >= 0 ? differs : Math.min(promptC, promptR)}): both answers must follow the same prompt`,
      ),
    };
  const length = chosen.inputIds.length + rejected.inputIds.length;
  if (length > s.seqLen)
    return {
      problem: problemAt(
        p.source,
        "overlong",
        `too long: chosen ${chosen.inputIds.length} + rejected ${rejected.inputIds.length} positions > seq_len ${s.seqLen} (a pair shares one row)`,
      ),
    };
  const ex = (x: { inputIds: Int32Array; labels: Int32Array }): Example => ({
    ...x,
    taskType: p.taskType,
    sourceIndex: p.sourceIndex,
  });
  return { example: { chosen: ex(chosen), rejected: ex(rejected), taskType: p.taskType, promptLength: promptC } };
}

function sequence(r: ChatRecord, tok: TextTokenizer, template: ChatTemplate) {
  const chats = template.renderExamples(r.messages, r.tools);
  const masked = maskChat(chats[chats.length - 1]!, tok, { trainOnPrompt: false, lastTurnOnly: true });
  return shiftLabels(masked);
}

function lastMessage(r: ChatRecord): Message {
  return r.messages[r.messages.length - 1]!;
}

function sameAnswer(a: Message, b: Message): boolean {
  return (
    a.content === b.content &&
    JSON.stringify(a.toolCalls ?? []) === JSON.stringify(b.toolCalls ?? []) &&
    (a.reasoning_content ?? "") === (b.reasoning_content ?? "")
  );
}

function firstTarget(labels: Int32Array): number {
  return labels.findIndex((l) => l !== IGNORE_INDEX);
}

/** The first index below `n` where a and b differ, or -1. */
function firstDifference(a: Int32Array, b: Int32Array, n: number): number {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}
