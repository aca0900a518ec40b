// The final outputs of a job (paths from proto's finalLayout): the model for full training; for LoRA and
// hybrid the adapter, the base it names, and later the merged model. Every one of those folders gets the
// job's text setup (ringtune.json: template, template_options, tokenizer) and, unless the tokenizer is the
// built-in byte one, the tokenizer's files, so whatever serves a folder renders chats as training did.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { writeOutputFile, writeOutputFileAtomically } from "../../native/js/output_files.js";
import { TOKENIZER_FILES } from "../../native/js/hf_model.js";
import { finalLayout } from "../../proto/mod.js";
import { tokenizerLocation } from "../data/setup.js";
import { TRAINED_TEXT_FILE, trainedTextJson, trainedTextOf } from "../data/trained_text.js";
import type { Job } from "../jobs/store.js";
import type { JobSpec } from "../job_spec/job_spec.js";
import type { Ring } from "./ring.js";

type SaveWhat = "model" | "adapter" | "merged";

function save(ring: Ring, job: Job, spec: JobSpec, what: SaveWhat, dir: string, baseModel?: string): Promise<unknown> {
  return ring.send(0, "save", {
    job: job.id,
    dir,
    what,
    dtype: spec.save_dtype,
    with_optimizer: false,
    base_model: baseModel,
  });
}

/**
 * Writes ringtune.json into `dir` and, for a tokenizer folder, copies its files there (the job's
 * tokenizer may be a folder other than the model's, whose files the save copied).
 */
async function recordText(job: Job, spec: JobSpec, dir: string, tokenizerFilesIn = "."): Promise<void> {
  const where = tokenizerLocation(spec);
  if (where !== "byte" && tokenizerFilesIn === "." && path.resolve(where) !== path.resolve(dir)) {
    for (const f of TOKENIZER_FILES) {
      const src = path.join(where, f);
      if (existsSync(src)) await writeOutputFileAtomically(path.join(dir, f), await readFile(src));
    }
  }
  // A relative folder is read relative to dir ("." the folder itself): the tokenizer travels with it.
  const text = trainedTextOf(spec, where === "byte" ? "byte" : tokenizerFilesIn);
  await writeOutputFile(path.join(dir, TRAINED_TEXT_FILE), trainedTextJson({ id: job.id, method: spec.method }, text));
}

/** Saves the model, or the adapter and its base; returns the folders written. */
export async function saveFinalModel(ring: Ring, job: Job, spec: JobSpec): Promise<string[]> {
  const final = finalLayout(job.output);
  const outputs: string[] = [];
  if (spec.method === "full") {
    await save(ring, job, spec, "model", final.model);
    await recordText(job, spec, final.model);
    outputs.push(final.model);
  } else {
    // The adapter names its base: the input model for plain LoRA on a folder, else the weights it was
    // trained on (the random init, or for hybrid the weights at the switch), saved beside it.
    let base = spec.method === "lora" ? spec.model.path : undefined;
    if (!base) {
      base = final.base;
      await save(ring, job, spec, "model", base);
      await recordText(job, spec, base);
      outputs.push(base);
    }
    await save(ring, job, spec, "adapter", final.adapter, base);
    await recordText(job, spec, final.adapter);
    outputs.push(final.adapter);
    // final/ itself holds the same record, as it always has (older readers look there for the adapter's).
    await recordText(job, spec, final.dir, path.relative(final.dir, final.adapter));
  }
  return outputs;
}

/** Base plus adapter as one HF model. Merging changes the weights in memory: call it last. */
export async function saveMergedModel(ring: Ring, job: Job, spec: JobSpec): Promise<string> {
  const dir = finalLayout(job.output).merged;
  await save(ring, job, spec, "merged", dir);
  await recordText(job, spec, dir);
  return dir;
}
