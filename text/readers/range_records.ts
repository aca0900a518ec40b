// The JSONL records of one byte range of a file (see file_ranges.ts), read in chunks by the worker thread
// that parses them. Lines are numbered from 1 at the range's start; the caller adds the lines before it.
// A line longer than the record limit is skipped to its end as it is read, never held whole.
import { closeSync, readSync } from "node:fs";
import type { ByteRange } from "./file_ranges.js";
import type { RawRecord } from "./raw_record.js";
import { recordBytesProblem } from "../records/record_limits.js";
import { hasUndecodableBytes, NOT_UTF8 } from "../records/text_encoding.js";
import { openInputSync } from "../../files/input_files.js";

const CHUNK_BYTES = 1 << 20;

export interface RangeRecords {
  records: RawRecord[];
  /** newlines in the range: the line count the next range starts after */
  lines: number;
}

function parsedLine(line: number, bytes: Buffer): RawRecord | null {
  const s = bytes.toString("utf8");
  if (s.trim() === "") return null;
  if (hasUndecodableBytes(s)) return { line, error: NOT_UTF8 };
  try {
    return { line, value: JSON.parse(s) };
  } catch (err) {
    return { line, error: `invalid JSON: ${(err as Error).message}` };
  }
}

/** The same records, errors and (relative) lines as the whole file's JSONL records in the range. */
export function readRangeRecords(file: string, range: ByteRange, maxRecordBytes: number): RangeRecords {
  const records: RawRecord[] = [];
  const fd = openInputSync(file);
  try {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, range.end - range.start)));
    let pending: Buffer[] = []; // the current line's bytes from earlier chunks
    let pendingBytes = 0;
    let oversize = false;
    let line = 1;
    let position = range.start;
    const finishLine = (tail: Buffer) => {
      if (oversize) records.push({ line, error: recordBytesProblem(maxRecordBytes) });
      else {
        const r = parsedLine(line, pending.length ? Buffer.concat([...pending, tail]) : tail);
        if (r) records.push(r);
      }
      pending = [];
      pendingBytes = 0;
      oversize = false;
    };
    while (position < range.end) {
      const n = readSync(fd, chunk, 0, Math.min(chunk.length, range.end - position), position);
      if (n === 0) break;
      let data = chunk.subarray(0, n);
      // A byte order mark is allowed at the start of the file only.
      if (position === 0 && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
      position += n;
      let start = 0;
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
        if (!oversize && pendingBytes + nl - start > maxRecordBytes) oversize = true;
        finishLine(data.subarray(start, nl));
        line++;
        start = nl + 1;
      }
      const rest = data.subarray(start);
      if (!oversize && pendingBytes + rest.length > maxRecordBytes) {
        oversize = true;
        pending = [];
        pendingBytes = 0;
      }
      if (!oversize && rest.length) {
        pending.push(Buffer.from(rest)); // copied: the chunk buffer is reused
        pendingBytes += rest.length;
      }
    }
    if (oversize || pendingBytes > 0) finishLine(Buffer.alloc(0));
    return { records, lines: line - 1 };
  } finally {
    closeSync(fd);
  }
}
