// `ringtune export --merge` and `ringtune generate --adapter` end to end, as a user runs them: a base
// from `model init`, an adapter with nonzero B saved by this process, the merged model's `dump` logits
// against the adapter's, generation with the adapter against generation from the merged model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadModel } from "../../hf/hf_model.js";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";
import { saveAdapter } from "../../hf/peft_adapter.js";
import { runCli } from "../helpers/run_cli.js";
import {
  ALL_TARGETS,
  logitsOf,
  maxAbsDiff,
  randomizeAdapters,
  tempDir,
  tinyBatch,
  tinyLlamaConfig,
  writeJson,
} from "../helpers/lora_adapters.js";

const work = tempDir("ringtune-export-");
const baseDir = path.join(work, "base");
const adapterDir = path.join(work, "adapter");
const mergedDir = path.join(work, "merged");
const batch = tinyBatch();

function rowsOf(a: Int32Array): number[][] {
  return Array.from({ length: batch.rows }, (_, r) => Array.from(a.subarray(r * batch.seqLen, (r + 1) * batch.seqLen)));
}

/** The adapter model's logits, computed in this process before any export. */
let adapterLogits: Float32Array;

test("model init, then an adapter with nonzero B saved as a PEFT folder", async () => {
  const configFile = path.join(work, "config.json");
  // initializer_range 0.2: logits vary enough that the adapter's effect is far above rounding
  writeJson(configFile, tinyLlamaConfig({ initializer_range: 0.2 }));
  const init = await runCli(["model", "init", "--config", configFile, "--seed", "5", "--out", baseDir]);
  assert.equal(init.code, 0, init.stderr);
  writeFileSync(path.join(baseDir, "tokenizer.json"), JSON.stringify({ version: "1.0", model: { type: "BPE" } }));

  const { model } = await loadModel(baseDir);
  const baseLogits = await logitsOf(model, batch);
  model.enableLora({ rank: 4, alpha: 8, dropout: 0, targets: ALL_TARGETS, rslora: false, seed: 1 });
  randomizeAdapters(model);
  adapterLogits = await logitsOf(model, batch);
  assert.ok(maxAbsDiff(adapterLogits, baseLogits) > 0.05, "the adapter must change the logits");
  await saveAdapter(model, adapterDir, { baseModel: baseDir });
});

test("export --merge writes one HF model whose dump logits equal the adapter model's", async () => {
  const r = await runCli(["export", "--merge", "--model", baseDir, "--adapter", adapterDir, "--out", mergedDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .*merged: .*r 4, scale 2/);
  for (const f of ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]) {
    assert.ok(existsSync(path.join(mergedDir, f)), `no ${f}`);
  }
  // the base's tensors, no adapter tensors: a plain HF model
  const merged = await readSafetensorsHeader(path.join(mergedDir, "model.safetensors"));
  const base = await readSafetensorsHeader(path.join(baseDir, "model.safetensors"));
  assert.deepEqual([...merged.tensors.keys()].sort(), [...base.tensors.keys()].sort());
  assert.deepEqual(JSON.parse(readFileSync(path.join(mergedDir, "config.json"), "utf8")).hidden_size, 16);

  const batchFile = path.join(work, "batch.json");
  writeJson(batchFile, {
    input_ids: rowsOf(batch.inputIds),
    labels: rowsOf(batch.labels),
    position_ids: rowsOf(batch.positionIds),
    segment_ids: rowsOf(batch.segmentIds),
  });
  const dumpFile = path.join(work, "merged_dump.safetensors");
  const dump = await runCli(["dump", "--model", mergedDir, "--batch", batchFile, "--out", dumpFile]);
  assert.equal(dump.code, 0, dump.stderr);
  const logits = (await readTensorsF32(await readSafetensorsHeader(dumpFile), ["logits"])).get("logits")!;
  const diff = maxAbsDiff(logits, adapterLogits);
  assert.ok(diff < 2e-5, `merged logits differ from the adapter's by ${diff}`);
});

test("export --merge --dtype BF16 writes BF16 weights close to the F32 merge", async () => {
  const out = path.join(work, "merged_bf16");
  const r = await runCli([
    "export",
    "--merge",
    "--model",
    baseDir,
    "--adapter",
    adapterDir,
    "--out",
    out,
    "--dtype",
    "BF16",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const header = await readSafetensorsHeader(path.join(out, "model.safetensors"));
  assert.ok([...header.tensors.values()].every((t) => t.dtype === "BF16"));
  const { model } = await loadModel(out);
  const diff = maxAbsDiff(await logitsOf(model, batch), adapterLogits);
  assert.ok(diff < 0.1, `BF16 merged logits differ by ${diff}`);
});

test("generate --adapter produces what generate on the merged model produces", async () => {
  const args = ["--prompt-ids", "1,5,6,7", "--max-new", "8"];
  const withAdapter = await runCli(["generate", "--model", baseDir, "--adapter", adapterDir, ...args]);
  assert.equal(withAdapter.code, 0, withAdapter.stderr);
  const merged = await runCli(["generate", "--model", mergedDir, ...args]);
  assert.equal(merged.code, 0, merged.stderr);
  const plain = await runCli(["generate", "--model", baseDir, ...args]);
  assert.match(withAdapter.stdout.trim(), /^\d+(,\d+)*$/);
  assert.equal(withAdapter.stdout, merged.stdout);
  assert.notEqual(withAdapter.stdout, plain.stdout, "the adapter should change greedy output on this model");
});

test("export refuses bad usage with status 2 and a bad adapter with status 1 naming the file", async () => {
  const noMerge = await runCli(["export", "--model", baseDir, "--adapter", adapterDir, "--out", path.join(work, "x")]);
  assert.equal(noMerge.code, 2);
  assert.match(noMerge.stderr, /--merge is required[\s\S]*usage: ringtune export --merge/);
  const noAdapter = await runCli(["export", "--merge", "--model", baseDir, "--out", path.join(work, "x")]);
  assert.equal(noAdapter.code, 2);
  assert.match(noAdapter.stderr, /--adapter is required/);
  const overBase = await runCli(["export", "--merge", "--model", baseDir, "--adapter", adapterDir, "--out", baseDir]);
  assert.equal(overBase.code, 2);
  assert.match(overBase.stderr, /is the base model folder/);
  const badDtype = await runCli([
    "export",
    "--merge",
    "--model",
    baseDir,
    "--adapter",
    adapterDir,
    "--out",
    path.join(work, "x"),
    "--dtype",
    "F16",
  ]);
  assert.equal(badDtype.code, 2);

  const notAdapter = await runCli([
    "export",
    "--merge",
    "--model",
    baseDir,
    "--adapter",
    work,
    "--out",
    path.join(work, "x"),
  ]);
  assert.equal(notAdapter.code, 1);
  assert.match(
    notAdapter.stderr,
    new RegExp(`ringtune export: ${work.replaceAll(".", "\\.")}: no adapter_config\\.json: not a PEFT adapter folder`),
  );
  assert.ok(!existsSync(path.join(work, "x")), "nothing is written when the adapter is refused");

  const wrongBase = path.join(work, "other_base");
  writeJson(path.join(work, "wide.json"), tinyLlamaConfig({ hidden_size: 32 }));
  assert.equal(
    (await runCli(["model", "init", "--config", path.join(work, "wide.json"), "--seed", "1", "--out", wrongBase])).code,
    0,
  );
  const mismatch = await runCli([
    "export",
    "--merge",
    "--model",
    wrongBase,
    "--adapter",
    adapterDir,
    "--out",
    path.join(work, "y"),
  ]);
  assert.equal(mismatch.code, 1);
  assert.match(
    mismatch.stderr,
    /adapter_model\.safetensors: tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \[4,16\], expected \[4,32\]/,
  );
});

test("generate --adapter refuses a bad adapter naming it", async () => {
  const r = await runCli(["generate", "--model", baseDir, "--adapter", path.join(work, "nope"), "--prompt-ids", "1,2"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nope: no adapter_config\.json/);
});
