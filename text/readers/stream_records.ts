// Records streamed from a JSONL file or a JSON array in fixed-size chunks, so a file larger than memory
// is read with memory bounded by the chunk size and the largest single record.
import { closeSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import type { RawRecord } from "./raw_record.js";
import { DEFAULT_MAX_RECORD_BYTES, overByteLimit, recordBytesProblem } from "../records/record_limits.js";
import { hasUndecodableBytes, NOT_UTF8, withoutBom } from "../records/text_encoding.js";
import { openInputSync } from "../../files/input_files.js";

const DEFAULT_CHUNK_BYTES = 1 << 20;

/** Text of a file in chunks; a multi-byte character cut by a chunk boundary is completed by the next chunk. */
function* textChunks(file: string, chunkBytes: number): Generator<string> {
  const fd = openInputSync(file);
  try {
    const buf = Buffer.allocUnsafe(chunkBytes);
    const decoder = new StringDecoder("utf8");
    for (;;) {
      const n = readSync(fd, buf, 0, chunkBytes, null);
      if (n === 0) break;
      const s = decoder.write(buf.subarray(0, n));
      if (s) yield s;
    }
    const rest = decoder.end();
    if (rest) yield rest;
  } finally {
    closeSync(fd);
  }
}

function parsed(line: number, s: string): RawRecord {
  if (hasUndecodableBytes(s)) return { line, error: NOT_UTF8 };
  try {
    return { line, value: JSON.parse(s) };
  } catch (err) {
    return { line, error: `invalid JSON: ${(err as Error).message}` };
  }
}

/**
 * The records of a JSONL file or a JSON array (JSON array when the first non-blank character is `[`,
 * JSONL otherwise), each with the line it starts on and one bad record its own error, read one chunk at a
 * time. A record longer than
 * `maxRecordBytes` is an error record, and no more than that limit of it is held at once.
 */
export function* streamRecords(
  file: string,
  chunkBytes = DEFAULT_CHUNK_BYTES,
  maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
): Generator<RawRecord> {
  const chunks = textChunks(file, chunkBytes);
  // Chunks are pulled by hand until the first non-blank character: leaving a for-of early would close
  // the generator and lose the rest of the file.
  let head = "";
  let first = -1;
  while (first < 0) {
    const next = chunks.next();
    if (next.done) return;
    head = withoutBom(head + next.value);
    first = head.search(/\S/);
  }
  const all = (function* () {
    yield head;
    yield* chunks;
  })();
  if (head[first] === "[") yield* jsonArrayRecords(all, maxRecordBytes);
  else yield* jsonlRecords(all, maxRecordBytes);
}

function* jsonlRecords(chunks: Iterable<string>, limit: number): Generator<RawRecord> {
  let pending = "";
  let oversize = false; // the current line passed the limit; its text so far was dropped
  let line = 1;
  for (const c of chunks) {
    pending += c;
    let start = 0;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n", start)) {
      const s = pending.slice(start, end);
      if (oversize || overByteLimit(s, limit)) yield { line, error: recordBytesProblem(limit) };
      else if (s.trim() !== "") yield parsed(line, s);
      oversize = false;
      line++;
      start = end + 1;
    }
    pending = pending.slice(start);
    if (pending.length > limit) {
      oversize = true;
      pending = "";
    }
  }
  if (oversize || overByteLimit(pending, limit)) yield { line, error: recordBytesProblem(limit) };
  else if (pending.trim() !== "") yield parsed(line, pending);
}

/**
 * JSON.parse keeps no positions, so the array is scanned once for the start and end of each top-level
 * element (strings and nesting tracked), and each element is parsed on its own: one bad element is one
 * bad record with its own line, not a failed file. The scan is carried across chunks: only the element
 * being scanned is kept between chunks.
 */
function* jsonArrayRecords(chunks: Iterable<string>, limit: number): Generator<RawRecord> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let line = 1;
  let elem = ""; // text of the current element from earlier chunks
  let oversize = false; // the current element passed the limit; its text so far was dropped
  let elemStart = -1; // start of the current element in this chunk, or -1 when none or it began earlier
  let inElem = false;
  let elemLine = 0;
  for (const text of chunks) {
    const out: RawRecord[] = [];
    const close = (end: number) => {
      if (!inElem) return;
      const whole = oversize ? "" : elem + text.slice(elemStart < 0 ? 0 : elemStart, end);
      if (oversize || overByteLimit(whole, limit)) out.push({ line: elemLine, error: recordBytesProblem(limit) });
      else out.push(parsed(elemLine, whole));
      oversize = false;
      elem = "";
      elemStart = -1;
      inElem = false;
    };
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 92) escaped = true;
        else if (c === 34) inString = false;
        continue;
      }
      if (depth === 1 && !inElem && c > 32 && c !== 44 && c !== 93) {
        inElem = true;
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
    if (inElem) {
      if (!oversize) elem += text.slice(elemStart < 0 ? 0 : elemStart);
      if (elem.length > limit) {
        oversize = true;
        elem = "";
      }
      elemStart = -1;
    }
    yield* out;
  }
  if (depth !== 0) yield { line, error: "invalid JSON: unterminated array" };
}
