// Where a job's outputs go under its output folder. The coordinator writes metrics, trainer state and the
// final layout; rank 0 writes weights, adapters and AdamW state into folders the coordinator names; a
// resuming worker reads a checkpoint back. Both sides take every path from here.
//
//   OUTPUT/ringtune_job.json                    which job writes here ({"job": id}): a later job is refused
//   OUTPUT/metrics.jsonl                        one JSON line per step, eval and event
//   OUTPUT/generation_eval.jsonl                the generation eval's answers after training, one per chat
//   OUTPUT/checkpoints/step-000005/             weights (HF), optimizer.safetensors, trainer_state.json,
//                                               adapter/ when taken under LoRA
//   OUTPUT/final/                               full training: the HF model; LoRA and hybrid: base/,
//                                               adapter/, merged/; ringtune.json in every case
//   OUTPUT/final.saving/                        the final outputs while they are written, renamed to final/
//                                               when complete (an earlier final/ moved to final.replaced/
//                                               for that moment, then removed)
import path from "node:path";

const METRICS_FILE = "metrics.jsonl";
const OWNER_FILE = "ringtune_job.json";

/** Every entry a job makes in its output folder: what is another job's when a later one finds it. */
export const JOB_OUTPUT_ENTRIES = [
  OWNER_FILE,
  METRICS_FILE,
  "checkpoints",
  "final",
  "final.saving",
  "final.replaced",
  "loss.png",
  "loss.svg",
] as const;

/** The job whose outputs a folder holds. */
export function outputOwnerFile(output: string): string {
  return path.join(output, OWNER_FILE);
}
/** The coordinator's part of a checkpoint: step, data position, seed. */
export const TRAINER_STATE_FILE = "trainer_state.json";
/** Both AdamW moments of every trainable parameter, and the optimizer step. */
export const OPTIMIZER_FILE = "optimizer.safetensors";
/** Inside a checkpoint taken under LoRA: the adapter, beside the frozen base it belongs to. */
const CHECKPOINT_ADAPTER_DIR = "adapter";

export function metricsFile(output: string): string {
  return path.join(output, METRICS_FILE);
}

/** The generation eval's answers after training, in full: the chats to ask a server of the model. */
export function evalAnswersFile(output: string): string {
  return path.join(output, "generation_eval.jsonl");
}

export function checkpointDir(output: string, step: number): string {
  return path.join(output, "checkpoints", `step-${String(step).padStart(6, "0")}`);
}

/** Where a checkpoint is written before it is renamed into place, so it exists whole or not at all. */
export function checkpointTempDir(checkpoint: string): string {
  return `${checkpoint}.tmp`;
}

export function checkpointAdapterDir(checkpoint: string): string {
  return path.join(checkpoint, CHECKPOINT_ADAPTER_DIR);
}

/** The final outputs: `model` for full training, `base`, `adapter` and `merged` for LoRA and hybrid. */
export function finalLayout(output: string) {
  return finalLayoutAt(path.join(output, "final"));
}

/** Where the final outputs are written, complete or not, before they become final/. */
export function finalStagingDir(output: string): string {
  return path.join(output, "final.saving");
}

/** Where an earlier final/ waits while the new one is renamed into place. */
export function finalReplacedDir(output: string): string {
  return path.join(output, "final.replaced");
}

/** The final layout in the folder `dir` (final/, or the folder it is written in first). */
export function finalLayoutAt(dir: string) {
  return {
    dir,
    model: dir,
    base: path.join(dir, "base"),
    adapter: path.join(dir, "adapter"),
    merged: path.join(dir, "merged"),
    /** how the model was trained: job, method, template and tokenizer */
    info: path.join(dir, "ringtune.json"),
  };
}
