// Durable state on disk: checkpoints whole or absent (no temp folder left by a failed write, none removed
// under a writer still at it, none started on a full disk), older checkpoints pruned to `keep_checkpoints`, JSON written atomically without leftovers,
// and a metrics.jsonl whose last line a crash cut short still lets the job resume.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeJsonAtomic } from "../../hf/hf_config.js";
import {
  InsufficientDiskError,
  pruneCheckpoints,
  readTrainerState,
  writeCheckpoint,
  type TrainerState,
} from "../../coordinator/train/checkpoint.js";
import { MetricsFile } from "../../coordinator/train/metrics_file.js";
import { checkpointDir } from "../../proto/mod.js";

const state = (step: number): TrainerState => ({
  job: "job-x",
  step,
  total_steps: 10,
  rows_per_step: 2,
  data_position: step * 2,
  seed: 0,
});

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), "ringtune-durable-"));
}

test("a checkpoint whose model write fails leaves neither its temp folder nor a partial checkpoint", async () => {
  const out = tempDir();
  const dir = checkpointDir(out, 5);
  await assert.rejects(
    writeCheckpoint(dir, state(5), async (tmp) => {
      mkdirSync(tmp, { recursive: true });
      writeFileSync(path.join(tmp, "model.safetensors"), "half a file");
      throw new Error("worker lost while saving");
    }),
    /worker lost while saving/,
  );
  assert.deepEqual(readdirSync(path.dirname(dir)), [], "nothing left in checkpoints/");
});

test("a checkpoint whose wait ends while rank 0 still writes is left to its caller, not removed under the writer", async () => {
  // A cancel ends the coordinator's wait on the save, not the worker's save: removing the folder now would
  // leave whatever the writer creates next (a LoRA checkpoint's adapter folder is made with mkdir -p).
  const out = tempDir();
  const dir = checkpointDir(out, 5);
  const later: string[] = [];
  let writer: Promise<void> = Promise.resolve();
  await assert.rejects(
    writeCheckpoint(
      dir,
      state(5),
      async (tmp) => {
        mkdirSync(tmp, { recursive: true });
        writeFileSync(path.join(tmp, "model.safetensors"), "half a file");
        writer = new Promise<void>((resolve) =>
          setTimeout(() => {
            mkdirSync(path.join(tmp, "adapter"), { recursive: true });
            writeFileSync(path.join(tmp, "adapter", "adapter_model.safetensors"), "adapter");
            resolve();
          }, 50),
        );
        throw new Error("canceled by request");
      },
      { removeLater: (tmp) => later.push(tmp) },
    ),
    /canceled by request/,
  );
  assert.deepEqual(later.length, 1, "the unfinished checkpoint is handed to the caller");
  assert.ok(existsSync(path.join(later[0]!, "model.safetensors")), "removed under the writer");
  await writer;
  // the caller removes it once the writer has stopped: nothing is left, and nothing was ever published
  rmSync(later[0]!, { recursive: true, force: true });
  assert.deepEqual(readdirSync(path.dirname(dir)), []);
});

test("a checkpoint that does not fit on the disk is refused before anything is written, with both sizes", async () => {
  const out = tempDir();
  const dir = checkpointDir(out, 5);
  let wrote = false;
  await assert.rejects(
    writeCheckpoint(
      dir,
      state(5),
      async () => {
        wrote = true;
      },
      { needBytes: 3 * 2 ** 30, freeBytes: async () => 2 ** 30 },
    ),
    (err: Error) =>
      err instanceof InsufficientDiskError &&
      /step 5/.test(err.message) &&
      /needs about 3\.00 GiB, 1\.00 GiB are free/.test(err.message),
  );
  assert.equal(wrote, false);
  assert.equal(existsSync(dir), false);
});

test("a checkpoint that fits is published whole, with its trainer state", async () => {
  const out = tempDir();
  const dir = checkpointDir(out, 7);
  await writeCheckpoint(
    dir,
    state(7),
    async (tmp) => {
      mkdirSync(tmp, { recursive: true });
      writeFileSync(path.join(tmp, "model.safetensors"), "weights");
    },
    { needBytes: 100, freeBytes: async () => 10_000 },
  );
  assert.equal(readTrainerState(dir).step, 7);
  assert.deepEqual(readdirSync(path.dirname(dir)), [path.basename(dir)], "no temp folder beside it");
});

test("keep_checkpoints: only the newest N checkpoints stay, the latest always among them", async () => {
  const out = tempDir();
  for (const step of [5, 10, 15, 20]) mkdirSync(checkpointDir(out, step), { recursive: true });
  mkdirSync(path.join(out, "checkpoints", "notes"));
  const removed = await pruneCheckpoints(checkpointDir(out, 20), 2);
  assert.deepEqual(removed, [checkpointDir(out, 5), checkpointDir(out, 10)]);
  assert.deepEqual(readdirSync(path.join(out, "checkpoints")).sort(), ["notes", "step-000015", "step-000020"]);
});

test("a trainer_state.json that is not JSON is refused naming the file", () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, "trainer_state.json"), "{ step: ");
  assert.throws(
    () => readTrainerState(dir),
    (e: Error) => e.message.includes(path.join(dir, "trainer_state.json")),
  );
});

test("an atomic JSON write that cannot be renamed into place leaves no temp file behind", async () => {
  const dir = tempDir();
  const target = path.join(dir, "config.json");
  mkdirSync(target); // a folder where the file should go: the rename fails
  await assert.rejects(writeJsonAtomic(target, { a: 1 }));
  assert.deepEqual(readdirSync(dir), ["config.json"]);
});

test("metrics.jsonl with a torn last line resumes: the torn line is dropped, lines past the checkpoint too", async () => {
  const dir = tempDir();
  const file = path.join(dir, "metrics.jsonl");
  const lines = [1, 2, 3, 4].map((step) => JSON.stringify({ step, loss: 5 - step / 10 }));
  writeFileSync(file, lines.join("\n") + '\n{"step": 5, "lo');
  const metrics = new MetricsFile(file);
  await metrics.startAt(3);
  await metrics.append({ step: 4, loss: 4.6 });
  const steps = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { step: number }).step);
  assert.deepEqual(steps, [1, 2, 3, 4]);
});

test("metrics.jsonl with a bad line in the middle is an error naming file and line: that is not a torn write", async () => {
  const dir = tempDir();
  const file = path.join(dir, "metrics.jsonl");
  writeFileSync(file, '{"step": 1}\nnot json\n{"step": 3}\n');
  await assert.rejects(new MetricsFile(file).startAt(2), (e: Error) => e.message.startsWith(`${file}:2:`));
});
