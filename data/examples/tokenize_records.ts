// A record to examples: template, tokenize, mask, shift, and fit to seq_len.
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { fitToRow, shiftLabels, type Example, type OverlongPolicy } from "./example.js";
import { maskConversation, maskText, type LabelOptions } from "./mask.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import type { DataRecord } from "../../text/records/records.js";
import type { ChatTemplate } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";
import { DEFAULT_MAX_RECORD_TOKENS, recordTokensProblem } from "../../text/records/record_limits.js";

export interface TokenizeSettings extends LabelOptions {
  seqLen: number;
  overlong: OverlongPolicy;
  /** a record templated into more tokens is refused (default DEFAULT_MAX_RECORD_TOKENS) */
  maxRecordTokens?: number;
}

export interface TokenizeOutcome {
  examples: Example[];
  problems: Problem[];
  truncated: number;
  split: number;
}

/** One record's examples (or its problem) added to `out`. */
export function tokenizeRecord(
  r: DataRecord,
  tok: TextTokenizer,
  template: ChatTemplate,
  s: TokenizeSettings,
  out: TokenizeOutcome,
): void {
  let sequences;
  try {
    sequences = r.kind === "text" ? [maskText(r.text, tok)] : maskConversation(template, r.messages, r.tools, tok, s);
  } catch (err) {
    out.problems.push(problemAt(r.source, "template", (err as Error).message));
    return;
  }
  // A record's sequences are kept together or refused together.
  const maxTokens = s.maxRecordTokens ?? DEFAULT_MAX_RECORD_TOKENS;
  const tokens = sequences.reduce((n, m) => n + m.ids.length, 0);
  if (tokens > maxTokens) {
    out.problems.push(problemAt(r.source, "overlong", recordTokensProblem(tokens, maxTokens)));
    return;
  }
  const kept: Example[] = [];
  let truncated = 0;
  let split = 0;
  for (const masked of sequences) {
    const shifted = shiftLabels(masked);
    if (!shifted.labels.some((l) => l !== IGNORE_INDEX)) {
      out.problems.push(problemAt(r.source, "template", "no target tokens after templating"));
      return;
    }
    const fit = fitToRow(shifted, s.seqLen, r.kind === "text", s.overlong);
    if (fit.kind === "dropped") {
      out.problems.push(problemAt(r.source, "overlong", fit.reason));
      return;
    }
    if (fit.kind === "truncated") truncated++;
    if (fit.kind === "split") split++;
    for (const p of fit.parts) kept.push({ ...p, taskType: r.taskType, sourceIndex: r.sourceIndex });
  }
  out.examples.push(...kept);
  out.truncated += truncated;
  out.split += split;
}
