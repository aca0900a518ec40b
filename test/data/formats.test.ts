// Formats real datasets come in: OpenAI content-part lists, tools as a JSON string or a list (bare
// schemas wrapped), reasoning_content, .txt corpora, parquet tables; what ringtune refuses is reported
// as file:line: reason; `dedup` decides whether exact repeats stay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { normalizeRecord } from "../../text/formats/formats.js";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import { readDataFile } from "../../text/readers/read.js";
import type { ChatRecord, DataRecord, TextRecord } from "../../text/records/records.js";
import type { Row } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";
import { fixtures } from "../helpers/data_fixtures.js";
import { ROWS } from "../fixtures/data/make_parquet_fixture.js";

const at = { file: "f.jsonl", line: 1 };

function chat(value: unknown): ChatRecord {
  const r = normalizeRecord(value, "auto", at);
  assert.ok("record" in r, "error" in r ? r.error : "");
  assert.equal(r.record.kind, "chat");
  return r.record as ChatRecord;
}

function refusal(value: unknown): string {
  const r = normalizeRecord(value, "auto", at);
  assert.ok("error" in r, "the record was accepted");
  return r.error;
}

/** Writes `lines` (objects as JSON, strings as they are) into a temporary file; returns its folder. */
function tempFile(name: string, lines: (string | object)[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-formats-"));
  writeFileSync(path.join(dir, name), lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return dir;
}

function build(dir: string, source: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const spec = parseSpec(
    { model: { init: { config: "c.json" } }, tokenizer: "byte", packing: false, data: [source], ...extra },
    "job.yaml",
    dir,
  );
  return buildDataset(spec, { quiet: true, useCache: false, displayRoot: dir });
}

const rowText = (rows: Row[]) => rows.map((r) => Array.from(r.inputIds).join(",")).sort();

const weatherSchema = {
  name: "get_weather",
  description: "Weather by city",
  parameters: { type: "object", properties: { city: { type: "string" } } },
};
const turns = [
  { role: "user", content: "Weather?" },
  { role: "assistant", content: "Sunny." },
];

test("OpenAI content-part lists: text parts are joined with a newline", () => {
  const r = chat({
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "Part one." },
          { type: "text", text: "Part two." },
        ],
      },
      { role: "assistant", content: [{ type: "text", text: "Answer." }] },
    ],
  });
  assert.deepEqual(
    r.messages.map((m) => m.content),
    ["Part one.\nPart two.", "Answer."],
  );
});

test("image and audio parts, and records with images, are refused with file:line and the reason", () => {
  const dir = tempFile("mm.jsonl", [
    { messages: turns },
    {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: "x.png" } },
          ],
        },
        turns[1],
      ],
    },
    {
      messages: [
        { role: "user", content: [{ type: "input_audio", input_audio: { data: "..", format: "wav" } }] },
        turns[1],
      ],
    },
    { instruction: "Describe <image>", output: "A cat.", images: ["cat.png"] },
    { messages: [{ role: "user", content: [{ type: "text" }] }, turns[1]] },
  ]);
  const d = build(dir, { path: "mm.jsonl" });
  assert.deepEqual(d.problems.map(formatProblem), [
    "mm.jsonl:2: 'messages[0].content[1]': image_url parts are not supported: ringtune trains text-only models",
    "mm.jsonl:3: 'messages[0].content[0]': input_audio parts are not supported: ringtune trains text-only models",
    "mm.jsonl:4: 'images': images, videos and audio are not supported: ringtune trains text-only models",
    "mm.jsonl:5: 'messages[0].content[0].text': expected string",
  ]);
  assert.equal(d.stats.recordsKept, 1);
});

test("tools as a JSON string or a list; bare function schemas are wrapped", () => {
  const wrapped = [{ type: "function", function: weatherSchema }];
  assert.deepEqual(chat({ messages: turns, tools: JSON.stringify([weatherSchema]) }).tools, wrapped);
  assert.deepEqual(chat({ messages: turns, tools: [weatherSchema] }).tools, wrapped);
  assert.deepEqual(chat({ messages: turns, tools: wrapped }).tools, wrapped);
  assert.deepEqual(chat({ messages: turns, tools: [{ function: weatherSchema }] }).tools, wrapped);
  const sharegpt = {
    conversations: [
      { from: "human", value: "Weather?" },
      { from: "gpt", value: "Sunny." },
    ],
  };
  assert.deepEqual(chat({ ...sharegpt, tools: JSON.stringify([weatherSchema]) }).tools, wrapped);
  assert.deepEqual(chat({ instruction: "Weather?", output: "Sunny.", tools: [weatherSchema] }).tools, wrapped);
  assert.equal(chat({ messages: turns, tools: "" }).tools, undefined);
});

test("tools that are not JSON, not a list or not function schemas are refused with a clear message", () => {
  const dir = tempFile("tools.jsonl", [
    { messages: turns, tools: "[{name: get_weather}]" },
    { messages: turns, tools: 42 },
    { messages: turns, tools: [{ description: "no name" }] },
  ]);
  const lines = build(dir, { path: "tools.jsonl" }).problems.map(formatProblem);
  assert.match(lines[0], /^tools\.jsonl:1: 'tools' is a string but not valid JSON \(.+\)$/);
  assert.equal(lines[1], "tools.jsonl:2: 'tools' must be a list of function schemas (or a JSON string of one)");
  assert.match(lines[2], /^tools\.jsonl:3: 'tools\[0\]' is not a function schema: expected \{"name", "description"/);
});

test("reasoning_content is kept on assistant messages and refused elsewhere", () => {
  const r = chat({
    messages: [
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "4", reasoning_content: "Two and two make four." },
    ],
  });
  assert.equal(r.messages[1].reasoning_content, "Two and two make four.");
  assert.equal(r.messages[0].reasoning_content, undefined);
  assert.equal(
    refusal({ messages: [{ role: "user", content: "x", reasoning_content: "y" }, turns[1]] }),
    "messages[0]: reasoning_content on a user message",
  );
});

test(".txt: one text per line (blank lines skipped), or the whole file with text_split: document", () => {
  const dir = tempFile("corpus.txt", ["First line.", "", "Second line.\r", ""]);
  const lines = readDataFile(path.join(dir, "corpus.txt"));
  assert.deepEqual(lines, [
    { line: 1, value: { text: "First line." } },
    { line: 3, value: { text: "Second line." } },
  ]);
  assert.deepEqual(readDataFile(path.join(dir, "corpus.txt"), "document"), [
    { line: 1, value: { text: "First line.\n\nSecond line.\r\n" } },
  ]);
  const byLine = build(dir, { path: "corpus.txt" });
  const whole = build(dir, { path: "corpus.txt", text_split: "document" });
  assert.equal(byLine.train.length, 2);
  assert.equal(whole.train.length, 1);
  // byte tokenizer: BOS + the text's bytes (+ EOS, which is only a label after the shift)
  assert.equal(whole.train[0].inputIds.length, Buffer.byteLength("First line.\n\nSecond line.\r\n") + 1);
});

test(".parquet: rows are records, with the ids of the same rows as JSONL", () => {
  const file = path.join(fixtures, "alpaca.parquet");
  const asJson = ROWS.map((r) => ({ ...r, id: Number(r.id) }));
  assert.deepEqual(
    readDataFile(file).map((r) => r.value),
    asJson,
  );
  const dir = tempFile("alpaca.jsonl", asJson);
  const fromParquet = build(fixtures, { path: "alpaca.parquet" });
  const fromJsonl = build(dir, { path: "alpaca.jsonl" });
  assert.deepEqual(fromParquet.problems, []);
  assert.equal(fromParquet.train.length, ROWS.length);
  assert.deepEqual(rowText(fromParquet.train), rowText(fromJsonl.train));
  assert.deepEqual(fromParquet.train.map((r) => r.taskTypes[0]).sort(), ["general", "math/add", "translate"]);
});

test("an unreadable parquet file is refused naming the file", () => {
  const dir = tempFile("broken.parquet", ["not parquet at all"]);
  assert.throws(() => build(dir, { path: "broken.parquet" }), /broken\.parquet: cannot read parquet: /);
});

test("dedup: exact drops repeats (the default), none keeps them; near-duplicates are reported either way", () => {
  const answer = "The capital of France is Paris, a city on the river Seine with many museums.";
  const dir = tempFile("d.jsonl", [
    { instruction: "Capital of France?", output: answer },
    { instruction: "Capital of France?", output: answer },
    { instruction: "France capital?", output: answer.replace("many", "a lot of") },
  ]);
  const exact = build(dir, { path: "d.jsonl" });
  const none = build(dir, { path: "d.jsonl" }, { dedup: "none" });
  assert.equal(exact.train.length, 2);
  assert.equal(none.train.length, 3);
  assert.ok(exact.problems.some((p) => p.kind === "duplicate"));
  assert.ok(!none.problems.some((p) => p.kind === "duplicate"));
  for (const d of [exact, none]) assert.ok(d.problems.some((p) => p.kind === "near-duplicate" && p.line === 3));
});

test("records that differ only in reasoning_content are not exact duplicates", () => {
  const record = (reasoning: string) => ({
    messages: [turns[0], { ...turns[1], reasoning_content: reasoning }],
  });
  const dir = tempFile("r.jsonl", [
    record("Look at the sky."),
    record("Check the forecast."),
    record("Look at the sky."),
  ]);
  const d = build(dir, { path: "r.jsonl" });
  assert.deepEqual(d.problems.filter((p) => p.kind === "duplicate").map(formatProblem), [
    "r.jsonl:3: exact duplicate of r.jsonl:1",
  ]);
});

test("a text record from a .txt line carries its line for messages", () => {
  const dir = tempFile("c.txt", ["ok", "   ", "also ok"]);
  const records = readDataFile(path.join(dir, "c.txt"))
    .map((raw) => normalizeRecord(raw.value, "auto", { file: "c.txt", line: raw.line }))
    .map((n) => ("record" in n ? (n.record as DataRecord) : null));
  assert.deepEqual(
    records.map((r) => [(r as TextRecord).text, r!.source.line]),
    [
      ["ok", 1],
      ["also ok", 3],
    ],
  );
});
