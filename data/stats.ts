// What `ringtune data preview` reports about a built dataset.
import { IGNORE_INDEX } from "../native/js/addon.js";
import type { Example } from "./examples/example.js";
import type { Problem, ProblemKind } from "../text/records/problems.js";
import type { Row } from "./rows/row.js";

export interface SplitStats {
  examples: number;
  rows: number;
  /** real (non-padding) positions */
  tokens: number;
  targets: number;
  /** positions in all rows, padding included (packed mode: rows * seq_len) */
  rowTokens: number;
  /** tokens / rowTokens */
  efficiency: number;
}

export interface TaskStats {
  examples: number;
  tokens: number;
  targets: number;
}

export interface SourceStats {
  file: string;
  read: number;
  valid: number;
  /** examples this source contributes to the training mix (after weights and epochs) */
  mixed: number;
}

export interface DataStats {
  sources: SourceStats[];
  recordsRead: number;
  /** records that became training or validation examples */
  recordsKept: number;
  dropped: Record<ProblemKind, number>;
  nearDuplicates: number;
  truncated: number;
  split: number;
  perTask: Record<string, TaskStats>;
  train: SplitStats;
  val: SplitStats;
}

export function splitStats(examples: Example[], rows: Row[]): SplitStats {
  let tokens = 0;
  let targets = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    for (const l of e.labels) if (l !== IGNORE_INDEX) targets++;
  }
  const rowTokens = rows.reduce((a, r) => a + r.inputIds.length, 0);
  return {
    examples: examples.length,
    rows: rows.length,
    tokens,
    targets,
    rowTokens,
    efficiency: rowTokens ? tokens / rowTokens : 0,
  };
}

export function taskStats(examples: Example[]): Record<string, TaskStats> {
  const out: Record<string, TaskStats> = {};
  for (const e of examples) {
    const t = (out[e.taskType] ??= { examples: 0, tokens: 0, targets: 0 });
    t.examples++;
    t.tokens += e.inputIds.length;
    for (const l of e.labels) if (l !== IGNORE_INDEX) t.targets++;
  }
  return out;
}

/** The record counts of DataStats: what was read, what was kept, what was dropped and why. */
export function recordCounts(
  problems: Problem[],
  sources: SourceStats[],
): Pick<DataStats, "recordsRead" | "recordsKept" | "dropped"> {
  // A record can have several problems (a template refusal of two of its texts, say): count it once.
  const droppedRecords = new Set(problems.filter((p) => p.dropped).map((p) => `${p.file}:${p.line}`)).size;
  const recordsRead = sources.reduce((a, s) => a + s.read, 0);
  return { recordsRead, recordsKept: recordsRead - droppedRecords, dropped: countDropped(problems) };
}

/** Problems in file order, then line order: how `data check` lists them. */
export function sortProblems(problems: Problem[]): void {
  problems.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
}

function countDropped(problems: Problem[]): Record<ProblemKind, number> {
  const out: Record<ProblemKind, number> = { invalid: 0, duplicate: 0, "near-duplicate": 0, overlong: 0, template: 0 };
  for (const p of problems) if (p.dropped) out[p.kind]++;
  return out;
}
