// Records read from a whole JSONL file or JSON array held in memory at once: the reference that the
// chunked readers (streamed files, byte ranges read by worker threads) must match record for record, line
// for line and error for error.
import { readRegularFile } from "../../files/input_files.js";
import type { RawRecord } from "../../text/readers/raw_record.js";
import { DEFAULT_MAX_RECORD_BYTES, overByteLimit, recordBytesProblem } from "../../text/records/record_limits.js";
import { hasUndecodableBytes, NOT_UTF8, withoutBom } from "../../text/records/text_encoding.js";

/** JSON array when the first non-blank character is `[`, JSONL otherwise. */
export function readWholeRecords(file: string, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  const text = withoutBom(readRegularFile(file));
  const first = text.search(/\S/);
  if (first >= 0 && text[first] === "[") return readJsonArray(text, maxRecordBytes);
  return readJsonl(text, maxRecordBytes);
}

export function readJsonl(text: string, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  const out: RawRecord[] = [];
  let start = 0;
  let line = 1;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const s = text.slice(start, end);
    if (overByteLimit(s, maxRecordBytes)) {
      out.push({ line, error: recordBytesProblem(maxRecordBytes) });
    } else if (s.trim() !== "" && hasUndecodableBytes(s)) {
      out.push({ line, error: NOT_UTF8 });
    } else if (s.trim() !== "") {
      try {
        out.push({ line, value: JSON.parse(s) });
      } catch (err) {
        out.push({ line, error: `invalid JSON: ${(err as Error).message}` });
      }
    }
    start = end + 1;
    line++;
  }
  return out;
}

/**
 * JSON.parse keeps no positions, so the array is scanned once for the start and end of each top-level
 * element (strings and nesting tracked), and each element is parsed on its own: one bad element is one
 * bad record with its own line, not a failed file.
 */
export function readJsonArray(text: string, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  const out: RawRecord[] = [];
  let depth = 0;
  let inString = false;
  let line = 1;
  let elemStart = -1;
  let elemLine = 0;
  const close = (end: number) => {
    if (elemStart < 0) return;
    const s = text.slice(elemStart, end);
    if (overByteLimit(s, maxRecordBytes)) {
      out.push({ line: elemLine, error: recordBytesProblem(maxRecordBytes) });
      elemStart = -1;
      return;
    }
    try {
      out.push({ line: elemLine, value: JSON.parse(s) });
    } catch (err) {
      out.push({ line: elemLine, error: `invalid JSON: ${(err as Error).message}` });
    }
    elemStart = -1;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) line++;
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
      continue;
    }
    if (depth === 1 && elemStart < 0 && c > 32 && c !== 44 && c !== 93) {
      elemStart = i;
      elemLine = line;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) depth++;
    else if (c === 93 || c === 125) {
      depth--;
      if (depth === 0) close(i);
    } else if (c === 44 && depth === 1) close(i);
  }
  if (depth !== 0) out.push({ line, error: "invalid JSON: unterminated array" });
  return out;
}
