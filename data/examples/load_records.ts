// One raw record of a data source made a valid record, or the problem (`file:line: reason`) that keeps it out.
import type { DataSource } from "../../spec/job_spec.js";
import { checkRecord } from "../../text/records/checks.js";
import { normalizeRecord } from "../../text/formats/formats.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import type { RawRecord } from "../../text/readers/read.js";
import { UNKNOWN_TASK, type DataRecord } from "../../text/records/records.js";

/** One raw record normalised and checked: a record, or the problem that keeps it out. */
export function loadRecord(
  raw: RawRecord,
  src: DataSource,
  sourceIndex: number,
  displayName: string,
): { record: DataRecord } | { problem: Problem } {
  const source = { file: displayName, line: raw.line };
  if (raw.error !== undefined) return { problem: problemAt(source, "invalid", raw.error) };
  const n = normalizeRecord(raw.value, src.format, source, src);
  if ("error" in n) return { problem: problemAt(source, "invalid", n.error) };
  const r = n.record;
  r.sourceIndex = sourceIndex;
  if (r.taskType === UNKNOWN_TASK && src.task_type) r.taskType = src.task_type;
  if (src.response_format) r.responseFormat = src.response_format;
  const bad = checkRecord(r);
  return bad ? { problem: problemAt(source, "invalid", bad) } : { record: r };
}
