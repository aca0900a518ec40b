// Reading one data source into valid records and problems (`file:line: reason`).
import path from "node:path";
import type { DataSource } from "../../spec/job_spec.js";
import { checkRecord } from "../../text/records/checks.js";
import { normalizeRecord } from "../../text/formats/formats.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { readDataFile, type RawRecord } from "../../text/readers/read.js";
import { UNKNOWN_TASK, type DataRecord } from "../../text/records/records.js";
import type { Progress } from "../progress.js";

export interface LoadedSource {
  records: DataRecord[];
  problems: Problem[];
  read: number;
}

export function loadSource(
  src: DataSource,
  sourceIndex: number,
  displayName: string,
  progress?: Progress,
  maxRecordBytes?: number,
): LoadedSource {
  const raws = readDataFile(src.path, src.text_split, maxRecordBytes);
  const records: DataRecord[] = [];
  const problems: Problem[] = [];
  raws.forEach((raw, i) => {
    progress?.update(`checking ${path.basename(src.path)}`, i + 1, raws.length);
    const r = loadRecord(raw, src, sourceIndex, displayName);
    if ("problem" in r) problems.push(r.problem);
    else records.push(r.record);
  });
  return { records, problems, read: raws.length };
}

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
