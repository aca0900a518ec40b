// The final outputs of a job (paths from proto's finalLayoutAt): the model for full training; for LoRA and
// hybrid the adapter, the base it names, and later the merged model. They are written into a folder that
// becomes final/ only once complete (final_swap.ts). Every one of those folders gets the
// job's text setup (ringtune.json: template, template_options, tokenizer) and, unless the tokenizer is the
// built-in byte one, the tokenizer's files, so whatever serves a folder renders chats as training did.
import path from "node:path";
import { writeOutputFile } from "../../files/output_files.js";
import type { finalLayoutAt } from "../../proto/mod.js";
import { tokenizerLocation } from "../../spec/text_setup.js";
import { trainedTextJson, trainedTextOf, writeTrainedText } from "../../hf/trained_text.js";
import type { Job } from "../jobs/store.js";
import type { JobSpec } from "../../spec/job_spec.js";
import type { Ring } from "./ring.js";

type SaveWhat = "model" | "adapter" | "merged";
type FinalLayout = ReturnType<typeof finalLayoutAt>;

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

/**
 * Where a save writes: `named` for the workers (reached from their output roots), `local` for this process (a
 * path through the output folder it holds), `published` where the outputs will be once renamed into place.
 */
export interface FinalPaths {
  named: FinalLayout;
  local: FinalLayout;
  published: FinalLayout;
}

/** Saves the model, or the adapter and its base; returns the folders as they will be published. */
export async function saveFinalModel(ring: Ring, job: Job, spec: JobSpec, at: FinalPaths): Promise<string[]> {
  const { named, local, published } = at;
  const outputs: string[] = [];
  if (spec.method === "full") {
    await save(ring, job, spec, "model", named.model);
    await recordText(job, spec, local.model);
    outputs.push(published.model);
  } else {
    // The adapter names its base: the input model for plain LoRA on a folder, else the weights it was
    // trained on (the random init, or for hybrid the weights at the switch), saved beside it and named where
    // it will be once published.
    let base = spec.method === "lora" ? spec.model.path : undefined;
    if (!base) {
      await save(ring, job, spec, "model", named.base);
      await recordText(job, spec, local.base);
      outputs.push(published.base);
      base = published.base;
    }
    await save(ring, job, spec, "adapter", named.adapter, base);
    await recordText(job, spec, local.adapter);
    outputs.push(published.adapter);
    // final/ itself holds the same record, as it always has (older readers look there for the adapter's),
    // its tokenizer the adapter's copy.
    const where = tokenizerLocation(spec);
    const text = trainedTextOf(spec, where === "byte" ? "byte" : path.relative(published.dir, published.adapter));
    await writeOutputFile(local.info, trainedTextJson({ id: job.id, method: spec.method }, text));
  }
  return outputs;
}

/** Base plus adapter as one HF model. Merging changes the weights in memory: call it last. */
export async function saveMergedModel(ring: Ring, job: Job, spec: JobSpec, at: FinalPaths): Promise<string> {
  await save(ring, job, spec, "merged", at.named.merged);
  await recordText(job, spec, at.local.merged);
  return at.published.merged;
}
