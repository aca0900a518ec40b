// Plain-text corpora for continued pretraining: one text per line, or the whole file as one text.
import type { RawRecord } from "./raw_record.js";
import { DEFAULT_MAX_RECORD_BYTES, overByteLimit, recordBytesProblem } from "../records/record_limits.js";
import { readRegularFile } from "../../files/input_files.js";

export type TextSplit = "line" | "document";

/** Each record is `{text}`; blank lines are skipped (they carry nothing to learn). */
export function readTextFile(file: string, split: TextSplit, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  const text = readRegularFile(file);
  const tooLarge = (line: number) => ({ line, error: recordBytesProblem(maxRecordBytes) });
  if (split === "document") {
    if (text.trim() === "") return [];
    return [overByteLimit(text, maxRecordBytes) ? tooLarge(1) : { line: 1, value: { text } }];
  }
  const out: RawRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (s.trim() === "") continue;
    out.push(overByteLimit(s, maxRecordBytes) ? tooLarge(i + 1) : { line: i + 1, value: { text: s } });
  }
  return out;
}
