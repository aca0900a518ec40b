// The final outputs of a job (paths from proto's finalLayout): the model for full training; for LoRA and
// hybrid the adapter, the base it names, and later the merged model. Every one of those folders gets the
// job's text setup (ringtune.json: template, template_options, tokenizer) and, unless the tokenizer is the
// built-in byte one, the tokenizer's files, so whatever serves a folder renders chats as training did.
import path from "node:path";
import { writeOutputFile } from "../../files/output_files.js";
import { finalLayout } from "../../proto/mod.js";
import { tokenizerLocation } from "../../spec/text_setup.js";
import { trainedTextJson, trainedTextOf, writeTrainedText } from "../../hf/trained_text.js";
import type { Job } from "../jobs/store.js";
import type { JobSpec } from "../../spec/job_spec.js";
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
 * Writes ringtune.json into `dir`, with the tokenizer's files unless it is the byte one (their
 * chat_template the job's). Final outputs and checkpoints alike, so any of them serves as training rendered.
 */
export async function recordText(job: Job, spec: JobSpec, dir: string): Promise<void> {
  const where = tokenizerLocation(spec);
  await writeTrainedText(dir, trainedTextOf(spec, where === "byte" ? "byte" : path.resolve(where)), {
    id: job.id,
    method: spec.method,
  });
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
    // final/ itself holds the same record, as it always has (older readers look there for the adapter's),
    // its tokenizer the adapter's copy.
    const where = tokenizerLocation(spec);
    const text = trainedTextOf(spec, where === "byte" ? "byte" : path.relative(final.dir, final.adapter));
    await writeOutputFile(final.info, trainedTextJson({ id: job.id, method: spec.method }, text));
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
