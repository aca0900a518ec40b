// Records streamed in chunks: the same records, lines and errors as reading the whole file, whatever the
// chunk size (lines, strings, escapes and multi-byte characters cut between chunks).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readWholeRecords } from "../helpers/whole_file_records.js";
import { streamRecords } from "../../text/readers/stream_records.js";
import { fixtures } from "../helpers/data_fixtures.js";

const CHUNK_SIZES = [1, 2, 3, 7, 64, 4096];

function file(name: string, text: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), "ringtune-stream-")), name);
  writeFileSync(f, text);
  return f;
}

const awkward = [
  { instruction: 'brackets ] } [ { inside a string, and a quote \\" too', output: "ok" },
  { instruction: "天气 很好 — 翻译 🙂", output: "multi-byte characters" },
  { text: "back\\\\slash at the end\\\\" },
  {
    messages: [
      { role: "user", content: "a,b" },
      { role: "assistant", content: "[1, 2]" },
    ],
  },
];

test("JSONL: every chunk size gives the records, lines and errors of the whole file", () => {
  const lines = awkward.map((r) => JSON.stringify(r));
  const f = file("a.jsonl", ["", lines[0], "{not json", "", lines[1], lines[2] + "\r", lines[3]].join("\n"));
  const whole = readWholeRecords(f);
  assert.deepEqual(
    whole.map((r) => [r.line, r.error === undefined]),
    [
      [2, true],
      [3, false],
      [5, true],
      [6, true],
      [7, true],
    ],
  );
  for (const size of CHUNK_SIZES) assert.deepEqual([...streamRecords(f, size)], whole, `chunk size ${size}`);
});

test("JSON array: every chunk size gives the elements with their lines, a bad element its own error", () => {
  const text = `\n  [\n${awkward.map((r) => JSON.stringify(r, null, 2)).join(",\n")},\n {"bad": tru},\n "just a string"\n]\n`;
  const f = file("a.json", text);
  const whole = readWholeRecords(f);
  assert.equal(whole.length, 6);
  assert.ok(whole[4].error?.startsWith("invalid JSON"));
  for (const size of CHUNK_SIZES) assert.deepEqual([...streamRecords(f, size)], whole, `chunk size ${size}`);
  const cut = file("cut.json", text.slice(0, text.length - 3));
  for (const size of [1, 5, 4096]) assert.deepEqual([...streamRecords(cut, size)], readWholeRecords(cut));
});

test("the bad-record fixtures and an empty file stream as they read", () => {
  for (const name of ["bad_records.jsonl", "bad_records.json"]) {
    const f = path.join(fixtures, name);
    for (const size of [1, 13, 1 << 20]) assert.deepEqual([...streamRecords(f, size)], readWholeRecords(f), name);
  }
  assert.deepEqual([...streamRecords(file("empty.jsonl", "\n  \n"), 1)], []);
});
