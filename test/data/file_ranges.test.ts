// A JSONL file cut into line-aligned byte ranges and read range by range (as the pipeline's worker threads
// read it) gives the records, lines and errors of reading the whole file, whatever the range size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { lineAlignedRanges, startsWithArray } from "../../text/readers/file_ranges.js";
import { readRangeRecords } from "../../text/readers/range_records.js";
import type { RawRecord } from "../../text/readers/read.js";
import { readWholeRecords } from "../helpers/whole_file_records.js";
import { DEFAULT_MAX_RECORD_BYTES } from "../../text/records/record_limits.js";

function file(name: string, content: string | Buffer): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), "ringtune-ranges-")), name);
  writeFileSync(f, content);
  return f;
}

/** Every range read on its own, lines made absolute by the newlines of the ranges before it. */
function readByRanges(f: string, rangeBytes: number, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): RawRecord[] {
  const out: RawRecord[] = [];
  let base = 0;
  let covered = 0;
  for (const range of lineAlignedRanges(f, rangeBytes)) {
    assert.equal(range.start, covered, "ranges are contiguous");
    covered = range.end;
    const got = readRangeRecords(f, range, maxRecordBytes);
    for (const r of got.records) out.push({ ...r, line: r.line + base });
    base += got.lines;
  }
  return out;
}

const lines = [
  JSON.stringify({ instruction: "天气 很好 — 翻译 🙂", output: "multi-byte characters" }),
  "",
  "{not json",
  "   ",
  JSON.stringify({ instruction: "a\nb", output: "escaped newline" }) + "\r",
  JSON.stringify({ text: "x".repeat(300) }),
  JSON.stringify({ messages: [{ role: "user", content: "a,b" }] }),
];

test("every range size gives the records, lines and errors of the whole file (BOM, CRLF, blanks, bad JSON)", () => {
  const text = "\ufeff" + lines.join("\n");
  for (const content of [text, text + "\n", text + "\n\n  \n"]) {
    const f = file("a.jsonl", content);
    const whole = readWholeRecords(f);
    assert.equal(whole.length, 5);
    for (const size of [1, 2, 7, 50, 333, 1 << 20]) assert.deepEqual(readByRanges(f, size), whole, `range ${size}`);
  }
});

test("bytes that are not UTF-8 are refused on their line, as when the whole file is read", () => {
  const f = file(
    "b.jsonl",
    Buffer.concat([
      Buffer.from('{"text": "ok"}\n{"text": "'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}\n{"text": "fine"}\n'),
    ]),
  );
  const whole = readWholeRecords(f);
  assert.match(whole[1].error ?? "", /not valid UTF-8/);
  for (const size of [1, 5, 4096]) assert.deepEqual(readByRanges(f, size), whole);
});

test("a line over max_record_bytes is an error record on its line; the lines after it are read", () => {
  const big = JSON.stringify({ text: "y".repeat(5000) });
  const f = file("c.jsonl", [lines[0], big, lines[5], big].join("\n"));
  const whole = readWholeRecords(f, 1000);
  assert.deepEqual(
    whole.map((r) => [r.line, r.error === undefined ? "ok" : r.error]),
    [
      [1, "ok"],
      [2, "record is larger than max_record_bytes (1000 bytes); raise max_record_bytes to read it"],
      [3, "ok"],
      [4, "record is larger than max_record_bytes (1000 bytes); raise max_record_bytes to read it"],
    ],
  );
  for (const size of [1, 100, 1 << 20]) assert.deepEqual(readByRanges(f, size, 1000), whole, `range ${size}`);
});

test("a JSON array is told from JSONL by its first non-blank character, after a byte order mark", () => {
  assert.equal(startsWithArray(file("a.json", "\ufeff \n [ {}]")), true);
  assert.equal(startsWithArray(file("b.json", '\n{"a": [1]}')), false);
  assert.equal(startsWithArray(file("c.json", " \n ")), false);
  assert.equal(startsWithArray(file("d.json", " ".repeat(100_000) + "[]")), true);
});
