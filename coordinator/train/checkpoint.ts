// Checkpoints: rank 0 writes weights (HF format) and AdamW state into a temporary folder, the coordinator
// adds trainer_state.json (step, data position, seed), then the folder is renamed into place: a
// checkpoint either exists whole or not at all.
import { existsSync, readFileSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import path from "node:path";
import { writeJsonAtomic } from "../../native/js/hf_config.js";
import { checkpointTempDir, TRAINER_STATE_FILE } from "../../proto/mod.js";

export interface TrainerState {
  job: string;
  step: number;
  total_steps: number;
  rows_per_step: number;
  /** training rows consumed so far: the data order is a function of (seed, position) */
  data_position: number;
  seed: number;
  train_loss_first?: number;
}

/** Runs `writeModel(tmpDir)` then completes and publishes the checkpoint. */
export async function writeCheckpoint(
  dir: string,
  state: TrainerState,
  writeModel: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = checkpointTempDir(dir);
  await rm(tmp, { recursive: true, force: true });
  await writeModel(tmp);
  await writeJsonAtomic(path.join(tmp, TRAINER_STATE_FILE), state);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE_FILE);
  if (!existsSync(file)) throw new Error(`${dir} is not a ringtune checkpoint: ${TRAINER_STATE_FILE} is missing`);
  const s = JSON.parse(readFileSync(file, "utf8")) as TrainerState;
  if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`${file}: 'step' must be a non-negative integer`);
  return s;
}
