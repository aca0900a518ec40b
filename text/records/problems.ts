// Bad records and what happened to them; printed as `file:line: reason` everywhere.
import type { Source } from "./records.js";

export type ProblemKind = "invalid" | "duplicate" | "near-duplicate" | "overlong" | "template";

export interface Problem {
  file: string;
  line: number;
  kind: ProblemKind;
  reason: string;
  /** true when the record was removed from training because of it (near-duplicates are only reported) */
  dropped: boolean;
}

export function problemAt(source: Source, kind: ProblemKind, reason: string, dropped = true): Problem {
  return { file: source.file, line: source.line, kind, reason, dropped };
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}: ${p.reason}`;
}

/** Thrown when `on_bad_record: fail` and a record was bad; carries every problem found. */
export class BadRecordsError extends Error {
  override name = "BadRecordsError";
  constructor(readonly problems: Problem[]) {
    super(
      `on_bad_record is fail and ${problems.length} record(s) are bad; ` +
        `first: ${problems.length ? formatProblem(problems[0]) : "-"} (see 'ringtune data check')`,
    );
  }
}
