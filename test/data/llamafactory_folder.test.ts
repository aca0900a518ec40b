// A LLaMA-Factory data folder (dataset_info.json with alpaca and sharegpt entries, column mappings, tags,
// a folder of shards and a .txt corpus) gives the same records and the same ids as the same data in
// ringtune's own formats.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { loadSource } from "../helpers/in_memory_steps.js";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import type { Row } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";
import { fixtures } from "../helpers/data_fixtures.js";

const lfDir = path.join(fixtures, "llamafactory");
const nativeDir = path.join(fixtures, "llamafactory_native");

function spec(data: Record<string, unknown>) {
  return parseSpec(
    {
      model: { init: { config: "none.json" } },
      tokenizer: "bpe-qwen",
      template: "model",
      packing: false,
      seq_len: 512,
      ...data,
    },
    "test.yaml",
    fixtures,
  );
}

/** Rows as comparable text, sorted: sources split differently must still give the same examples. */
function rowSet(rows: Row[]): string[] {
  return rows.map((r) => `${Array.from(r.inputIds).join(",")}|${Array.from(r.labels).join(",")}`).sort();
}

function build(data: Record<string, unknown>) {
  return buildDataset(spec(data), { quiet: true, useCache: false, displayRoot: fixtures });
}

// dataset name -> the same data in ringtune's own format
const NATIVE: Record<string, string> = {
  qa_custom: "qa_custom",
  tool_chats: "tool_chats",
  openai_chats: "tool_chats",
  shards: "shards",
  corpus: "corpus",
};

for (const [name, nativeName] of Object.entries(NATIVE)) {
  test(`dataset '${name}' from dataset_info.json gives the ids and labels of the same data in native form`, () => {
    const lf = build({ dataset_dir: "llamafactory", dataset: name });
    const native = build({ data: [{ path: `llamafactory_native/${nativeName}.jsonl` }] });
    assert.deepEqual(lf.problems, []);
    assert.deepEqual(native.problems, []);
    assert.ok(lf.train.length > 0);
    assert.deepEqual(rowSet(lf.train), rowSet(native.train));
  });
}

test("column mappings and tags give the native records, tools wrapped, unnamed columns ignored", () => {
  const s = spec({ dataset_dir: "llamafactory", dataset: "qa_custom, tool_chats,shards" });
  assert.deepEqual(
    s.data.map((d) => path.relative(lfDir, d.path)),
    ["qa_custom.json", "tool_chats.jsonl", "shards/part-0.jsonl", "shards/part-1.jsonl"],
  );
  const lf = s.data.flatMap((d, i) => loadSource(d, i, d.path).records);
  const nativeSpec = spec({
    data: ["qa_custom", "tool_chats", "shards"].map((n) => ({ path: path.join(nativeDir, `${n}.jsonl`) })),
  });
  const native = nativeSpec.data.flatMap((d, i) => loadSource(d, i, d.path).records);
  const strip = (rs: typeof lf) => rs.map((r) => (r.kind === "chat" ? { m: r.messages, t: r.tools } : r.text));
  assert.deepEqual(strip(lf), strip(native));
  const call = lf.find((r) => r.kind === "chat" && r.tools);
  assert.ok(call && call.kind === "chat");
  assert.deepEqual((call.tools![0] as { type: string }).type, "function");
  // the shard's `system` field is not named in `columns`, so it is not read
  assert.ok(lf.every((r) => r.kind !== "chat" || !r.messages.some((m) => m.content.startsWith("not read"))));
});

test("datasets from dataset_info.json are added to the job's own data files", () => {
  const s = spec({
    data: [{ path: "llamafactory_native/shards.jsonl" }],
    dataset_dir: "llamafactory",
    dataset: ["corpus"],
  });
  assert.equal(s.data.length, 2);
  assert.equal(s.data[1].path, path.join(lfDir, "corpus.txt"));
  assert.equal(s.data[1].format, "alpaca");
});

test("a data entry with LLaMA-Factory columns and tags reads its file as dataset_info.json would", () => {
  const lf = build({
    data: [
      {
        path: "llamafactory/tool_chats.jsonl",
        format: "sharegpt",
        columns: { messages: "msgs", system: "sys", tools: "functions" },
        tags: { role_tag: "role", content_tag: "content", user_tag: "user", assistant_tag: "assistant" },
      },
    ],
  });
  const native = build({ data: [{ path: "llamafactory_native/tool_chats.jsonl" }] });
  // observation and function tags keep LLaMA-Factory's defaults, so this file's "tool"/"tool_call" roles are unknown
  assert.deepEqual(
    lf.problems.map((p) => [p.line, p.reason.replace(/ \(tags:.*/, "")]),
    [[1, "unknown role 'tool_call' in msgs[2].role"]],
  );
  const withAllTags = build({
    data: [
      {
        path: "llamafactory/tool_chats.jsonl",
        format: "sharegpt",
        columns: { messages: "msgs", system: "sys", tools: "functions" },
        tags: {
          role_tag: "role",
          content_tag: "content",
          user_tag: "user",
          assistant_tag: "assistant",
          observation_tag: "tool",
          function_tag: "tool_call",
        },
      },
    ],
  });
  assert.deepEqual(withAllTags.problems, []);
  assert.deepEqual(rowSet(withAllTags.train), rowSet(native.train));
});
