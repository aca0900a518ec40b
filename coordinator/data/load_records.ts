// Reading one data source into valid records and problems (`file:line: reason`).
import path from "node:path";
import type { DataSource } from "../job_spec/job_spec.js";
import { checkRecord } from "./checks.js";
import { normalizeRecord } from "./formats.js";
import { problemAt, type Problem } from "./problems.js";
import { readDataFile } from "./read.js";
import { UNKNOWN_TASK, type DataRecord } from "./records.js";
import type { Progress } from "./progress.js";

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
): LoadedSource {
  const raws = readDataFile(src.path, src.text_split);
  const records: DataRecord[] = [];
  const problems: Problem[] = [];
  raws.forEach((raw, i) => {
    progress?.update(`checking ${path.basename(src.path)}`, i + 1, raws.length);
    const source = { file: displayName, line: raw.line };
    if (raw.error !== undefined) {
      problems.push(problemAt(source, "invalid", raw.error));
      return;
    }
    const n = normalizeRecord(raw.value, src.format, source, src);
    if ("error" in n) {
      problems.push(problemAt(source, "invalid", n.error));
      return;
    }
    const r = n.record;
    r.sourceIndex = sourceIndex;
    if (r.taskType === UNKNOWN_TASK && src.task_type) r.taskType = src.task_type;
    if (src.response_format) r.responseFormat = src.response_format;
    const bad = checkRecord(r);
    if (bad) problems.push(problemAt(source, "invalid", bad));
    else records.push(r);
  });
  return { records, problems, read: raws.length };
}
