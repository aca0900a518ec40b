// Checkpoints: rank 0 writes weights (HF format) and AdamW state into a temporary folder, the coordinator
// adds trainer_state.json (step, data position, seed), then the folder is renamed into place and its parent
// synced: a checkpoint either exists whole or not at all, also after a power cut. A failed write leaves no
// temporary folder behind (removed at once, or by the caller once the writer has surely stopped); a disk
// without room for it is found before anything is written.
import { existsSync } from "node:fs";
import { inputPresent, readRegularFile } from "../../files/input_files.js";
import { readdir, rm, statfs } from "node:fs/promises";
import path from "node:path";
import { renameDurably } from "../../files/durable_fs.js";
import { writeJsonAtomic } from "../../hf/hf_config.js";
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

export class InsufficientDiskError extends Error {
  override name = "InsufficientDiskError";
}

export interface CheckpointOptions {
  /** bytes the checkpoint will take (weights and optimizer state); checked against the free space first */
  needBytes?: number;
  /** free bytes for unprivileged writers on the file system holding `folder` */
  freeBytes?: (folder: string) => Promise<number>;
  /**
   * When the write fails, the temporary folder is handed here instead of being removed now. A write that
   * failed because the job was canceled (or a peer was lost) ended the wait, not the worker's save: rank 0 may
   * still be writing into the folder, and removing it under the writer leaves whatever it writes next (its
   * save recreates the folder). The caller removes it once the writer has stopped (its ring released).
   */
  removeLater?: (tmp: string) => void;
  /**
   * The checkpoint's folder as this process should touch it (a path through a folder it holds open), where
   * `dir` is its name for the writers: trainer_state.json, the removal of an older copy and the rename go
   * there, so a parent swapped for a link cannot move them elsewhere.
   */
  localDir?: string;
}

async function freeBytesOnDisk(folder: string): Promise<number> {
  const s = await statfs(folder);
  return s.bavail * s.bsize;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** Runs `writeModel(tmpDir)` then completes and publishes the checkpoint. */
export async function writeCheckpoint(
  dir: string,
  state: TrainerState,
  writeModel: (tmp: string) => Promise<void>,
  opts: CheckpointOptions = {},
): Promise<void> {
  const parent = path.dirname(dir);
  if (opts.needBytes) {
    const free = await (opts.freeBytes ?? freeBytesOnDisk)(existsSync(parent) ? parent : path.dirname(parent));
    if (free < opts.needBytes)
      throw new InsufficientDiskError(
        `not enough free disk for the checkpoint at step ${state.step} in ${parent}: ` +
          `it needs about ${gib(opts.needBytes)}, ${gib(free)} are free`,
      );
  }
  const tmp = checkpointTempDir(dir);
  const localDir = opts.localDir ?? dir;
  const localTmp = checkpointTempDir(localDir);
  await rm(localTmp, { recursive: true, force: true });
  try {
    await writeModel(tmp);
    await writeJsonAtomic(path.join(localTmp, TRAINER_STATE_FILE), state);
    await rm(localDir, { recursive: true, force: true });
    await renameDurably(localTmp, localDir);
  } catch (err) {
    if (opts.removeLater) opts.removeLater(tmp);
    else await rm(localTmp, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** `step-NNNNNN` folders (published checkpoints) in `folder`, oldest first. */
async function publishedCheckpoints(folder: string): Promise<{ step: number; dir: string }[]> {
  const names = existsSync(folder) ? await readdir(folder) : [];
  return names
    .map((name) => ({ m: /^step-(\d+)$/.exec(name), name }))
    .filter((e) => e.m)
    .map((e) => ({ step: Number(e.m![1]), dir: path.join(folder, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Deletes all but the newest `keep` checkpoints beside `latest` (which is always kept); returns what went. */
export async function pruneCheckpoints(latest: string, keep: number): Promise<string[]> {
  const all = await publishedCheckpoints(path.dirname(latest));
  const doomed = all.slice(0, Math.max(0, all.length - keep)).filter((c) => c.dir !== latest);
  for (const c of doomed) await rm(c.dir, { recursive: true, force: true });
  return doomed.map((c) => c.dir);
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE_FILE);
  if (!inputPresent(file)) throw new Error(`${dir} is not a ringtune checkpoint: ${TRAINER_STATE_FILE} is missing`);
  let s: TrainerState;
  try {
    s = JSON.parse(readRegularFile(file)) as TrainerState;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof s !== "object" || s === null || !Number.isInteger(s.step) || s.step < 0)
    throw new Error(`${file}: 'step' must be a non-negative integer`);
  return s;
}
