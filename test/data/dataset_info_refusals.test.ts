// What a LLaMA-Factory dataset_info.json asks for and ringtune cannot train on is refused by name,
// with the file and the dataset in the message, when the job is read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseSpec, SpecError } from "../../spec/load.js";

/** A data folder in a temporary directory with one dataset entry `d` and a one-record file. */
function folderWith(entry: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-lf-"));
  writeFileSync(path.join(dir, "d.json"), JSON.stringify([{ instruction: "q", output: "a" }]));
  writeFileSync(path.join(dir, "dataset_info.json"), JSON.stringify({ d: { file_name: "d.json", ...entry } }));
  return dir;
}

function refusal(dir: string, dataset = "d"): string {
  try {
    parseSpec({ model: { init: { config: "c.json" } }, dataset_dir: dir, dataset }, "job.yaml", dir);
  } catch (err) {
    assert.ok(err instanceof SpecError, String(err));
    return err.message;
  }
  assert.fail("the job was accepted");
}

const cases: [string, Record<string, unknown>, RegExp][] = [
  [
    "a chosen column without ranking",
    { columns: { chosen: "c" } },
    /column 'chosen' is for preference data: add 'ranking: true'/,
  ],
  ["a non-boolean ranking", { ranking: "yes" }, /'ranking' must be true or false/],
  ["kto_tag", { columns: { kto_tag: "label" } }, /column 'kto_tag' is not supported: KTO data/],
  ["images", { columns: { images: "images" } }, /column 'images' is not supported: images are not supported/],
  ["videos", { columns: { videos: "v" } }, /column 'videos' is not supported/],
  [
    "hf_hub_url",
    { hf_hub_url: "org/data" },
    /'hf_hub_url' is not supported: datasets on the Hugging Face hub are not fetched/,
  ],
  ["ms_hub_url", { ms_hub_url: "org/data" }, /'ms_hub_url' is not supported/],
  ["script_url", { script_url: "my_script" }, /'script_url' is not supported: dataset loading scripts are not run/],
  ["num_samples", { num_samples: 10 }, /'num_samples' is not supported/],
  ["formatting ranking", { formatting: "ranking" }, /formatting 'ranking' is not supported/],
  ["an unknown key", { colums: {} }, /unknown key 'colums'/],
  ["an unknown column", { columns: { answer: "a" } }, /columns: .*answer/],
  ["tags on alpaca", { tags: { role_tag: "role" } }, /'tags' are for formatting: sharegpt or openai/],
  ["a missing file", { file_name: "nope.json" }, /file_name: .*nope\.json does not exist/],
];

for (const [what, entry, message] of cases) {
  test(`dataset_info.json with ${what} is refused by name`, () => {
    const dir = folderWith(entry);
    const m = refusal(dir);
    assert.match(m, /^job\.yaml: dataset: .*dataset_info\.json: dataset 'd': /);
    assert.match(m, message);
  });
}

test("a dataset name not in dataset_info.json is refused, listing the names it has", () => {
  assert.match(refusal(folderWith({}), "d,e"), /dataset_info\.json: no dataset 'e' \(it has: d\)/);
});

test("LLaMA-Factory's hub dataset_dir values are refused by name", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-lf-"));
  assert.match(refusal(path.join(dir, "ONLINE")), /dataset_dir .*ONLINE: hub datasets are not fetched/);
});

test("text_split: document on a file that is not .txt is refused", () => {
  assert.throws(
    () =>
      parseSpec(
        { model: { init: { config: "c.json" } }, data: [{ path: "d.jsonl", text_split: "document" }] },
        "job.yaml",
        os.tmpdir(),
      ),
    /data\[0\]\.text_split: text_split is for \.txt files/,
  );
});

test("a folder without dataset_info.json is refused naming the file", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-lf-"));
  assert.match(refusal(dir), /dataset_info\.json: ENOENT/);
});

test("an accepted entry becomes a data source with LLaMA-Factory's columns", () => {
  const dir = folderWith({ formatting: "sharegpt", columns: { messages: "msgs" }, tags: { role_tag: "role" } });
  const spec = parseSpec({ model: { init: { config: "c.json" } }, dataset_dir: dir, dataset: "d" }, "job.yaml", dir);
  assert.deepEqual(spec.data, [
    {
      path: path.join(dir, "d.json"),
      format: "sharegpt",
      columns: { messages: "msgs" },
      tags: { role_tag: "role" },
      ranking: false,
      epochs: 1,
      text_split: "line",
    },
  ]);
});

test("a job with neither data nor dataset is refused", () => {
  assert.throws(
    () => parseSpec({ model: { init: { config: "c.json" } } }, "job.yaml", os.tmpdir()),
    /data: give 'data' \(files\) or 'dataset'/,
  );
});

test("a ranking dataset in an SFT job is refused: preference pairs need stage: dpo", () => {
  const dir = folderWith({ ranking: true, columns: { chosen: "c", rejected: "r" } });
  assert.match(
    refusal(dir),
    /^job\.yaml: data\[0\] \(d\.json\): ranking data \(chosen\/rejected pairs\) needs stage: dpo/,
  );
});
