// The final outputs of a job (paths from proto's finalLayout): the model for full training; for LoRA and
// hybrid the adapter, the base it names, and later the merged model; ringtune.json in every case.
import { writeOutputFile } from "../../files/output_files.js";
import { finalLayout } from "../../proto/mod.js";
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

/** Saves the model, or the adapter and its base; returns the folders written. */
export async function saveFinalModel(ring: Ring, job: Job, spec: JobSpec): Promise<string[]> {
  const final = finalLayout(job.output);
  const outputs: string[] = [];
  if (spec.method === "full") {
    await save(ring, job, spec, "model", final.model);
    outputs.push(final.model);
  } else {
    // The adapter names its base: the input model for plain LoRA on a folder, else the weights it was
    // trained on (the random init, or for hybrid the weights at the switch), saved beside it.
    let base = spec.method === "lora" ? spec.model.path : undefined;
    if (!base) {
      base = final.base;
      await save(ring, job, spec, "model", base);
      outputs.push(base);
    }
    await save(ring, job, spec, "adapter", final.adapter, base);
    outputs.push(final.adapter);
  }
  const info = { job: job.id, method: spec.method, template: spec.template, tokenizer: spec.tokenizer ?? "model" };
  await writeOutputFile(final.info, JSON.stringify(info, null, 2) + "\n");
  return outputs;
}

/** Base plus adapter as one HF model. Merging changes the weights in memory: call it last. */
export async function saveMergedModel(ring: Ring, job: Job, spec: JobSpec): Promise<string> {
  const dir = finalLayout(job.output).merged;
  await save(ring, job, spec, "merged", dir);
  return dir;
}
