// A JSONL file cut into byte ranges that begin and end at line boundaries, so that worker threads read
// and parse their own parts of the file. The main thread reads only a few KiB at each cut (to find the
// next newline), never the records themselves.
import { closeSync, fstatSync, readSync } from "node:fs";
import { openInputSync } from "../../files/input_files.js";

export interface ByteRange {
  start: number;
  /** exclusive; just past a newline, or the end of the file */
  end: number;
}

/** About 2 MiB of records per range: a few thousand chat records, a few MiB of tokens back per range. */
export const RANGE_BYTES = 2 << 20;
const PROBE_BYTES = 64 << 10;

/** Ranges covering the whole file in order, each about `rangeBytes` long (longer when a line crosses the cut). */
export function* lineAlignedRanges(file: string, rangeBytes = RANGE_BYTES): Generator<ByteRange> {
  const fd = openInputSync(file);
  try {
    const size = fstatSync(fd).size;
    const probe = Buffer.allocUnsafe(PROBE_BYTES);
    let start = 0;
    while (start < size) {
      let end = Math.min(size, start + rangeBytes);
      // Scan forward from the cut for the newline that ends the line it falls in; one long line makes
      // one long range (the worker bounds what it keeps of it).
      while (end < size) {
        const n = readSync(fd, probe, 0, PROBE_BYTES, end - 1);
        const nl = probe.subarray(0, n).indexOf(10);
        if (nl >= 0) {
          end = end - 1 + nl + 1;
          break;
        }
        end = Math.min(size, end - 1 + n + 1);
      }
      yield { start, end };
      start = end;
    }
  } finally {
    closeSync(fd);
  }
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c]);

/** Whether the file's first non-blank character (after a byte order mark) is `[`: a JSON array, not JSONL. */
export function startsWithArray(file: string): boolean {
  const fd = openInputSync(file);
  try {
    const buf = Buffer.allocUnsafe(PROBE_BYTES);
    let position = 0;
    for (let n = readSync(fd, buf, 0, PROBE_BYTES, 0); n > 0; n = readSync(fd, buf, 0, PROBE_BYTES, position)) {
      let i = position === 0 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
      while (i < n && WHITESPACE.has(buf[i])) i++;
      if (i < n) return buf[i] === 0x5b;
      position += n;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}
