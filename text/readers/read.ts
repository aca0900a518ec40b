// Reads a data file into raw values, each with the line it starts on, by the reader its name calls for.
import { readParquetFile } from "./read_parquet.js";
import { readTextFile, type TextSplit } from "./read_text.js";
import { DEFAULT_MAX_RECORD_BYTES } from "../records/record_limits.js";
import type { RawRecord } from "./raw_record.js";
import { streamRecords } from "./stream_records.js";

export type { RawRecord };

/** The files a data folder is read for (any other name is JSON or JSONL when named directly). */
export const DATA_FILE_EXTENSIONS = [".json", ".jsonl", ".txt", ".parquet"] as const;

/** By extension: `.txt` (split by line or whole), `.parquet`, else JSON or JSONL by content. */
export function readDataFile(
  file: string,
  textSplit: TextSplit = "line",
  maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
): RawRecord[] {
  const lower = file.toLowerCase();
  if (lower.endsWith(".txt")) return readTextFile(file, textSplit, maxRecordBytes);
  if (lower.endsWith(".parquet")) return readParquetFile(file);
  return readRecords(file, maxRecordBytes);
}

/** JSON array when the first non-blank character is `[`, JSONL otherwise. */
export function readRecords(file: string, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  return Array.from(streamRecords(file, undefined, maxRecordBytes));
}
