// An output folder, or a folder above it, exchanged for a symbolic link mid-job: the coordinator keeps writing
// metrics.jsonl into the folder it checked (now under its new name), a worker's save keeps writing into the
// folder it reached from the output root, and nothing at all appears where the link points.
import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { holdFolderBeneath, OutsideRootsError } from "../../files/folder_beneath.js";
import { makeOutputDir, OutputLinkError, writeOutputFile } from "../../files/output_files.js";
import { pino } from "pino";
import { Worker } from "../../worker/main.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";

const stepLines = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => /"loss"/.test(l)).length;

test(
  "an output folder swapped for a link mid-job gets no metrics.jsonl written through the link",
  { timeout: 120_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const outside = mkdtempSync(path.join(tmpdir(), "ringtune-outside-"));
    const cluster = await TestCluster.start(1);
    try {
      const reply = await cluster.submit({ ...baseSpec, workers: 1, max_steps: 100_000, output: "swap" }, dir);
      assert.ok(reply.ok, reply.error);
      await cluster.waitFor(async () => ((await cluster.record(reply.id!))?.step ?? 0) >= 2, "step 2");
      const moved = path.join(dir, "swap-moved");
      renameSync(path.join(dir, "swap"), moved);
      symlinkSync(outside, path.join(dir, "swap"));
      const before = stepLines(path.join(moved, "metrics.jsonl"));
      await cluster.waitFor(
        async () => stepLines(path.join(moved, "metrics.jsonl")) >= before + 5,
        "5 more steps",
        30_000,
      );
      assert.ok((await cluster.cancel(reply.id!)).ok);
      await cluster.finished(reply.id!);
      assert.deepEqual(readdirSync(outside), [], "nothing was written through the link");
    } finally {
      await cluster.stop();
      rmSync(outside, { recursive: true, force: true });
    }
  },
);

// The worker's saves: the folder is reached from the output root one component at a time, never through a
// link, and held while its files are written (files/folder_beneath.ts).
test("a save folder held beneath the output root keeps every file when a parent is swapped for a link mid-save", async () => {
  const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-beneath-")));
  try {
    const outputs = path.join(top, "outputs");
    const outside = path.join(top, "elsewhere");
    const named = path.join(outputs, "runs", "job", "checkpoints", "step-000002.tmp");
    mkdirSync(outputs);
    const held = holdFolderBeneath(named, [outputs], { create: true });
    try {
      // the writers a save uses, given the held folder as the model writers are
      await makeOutputDir(held.self);
      await writeOutputFile(path.join(held.self, "model.safetensors"), "weights");
      // mid-save, runs/ is renamed and a link to a prepared folder outside takes its name
      mkdirSync(path.join(outside, "job", "checkpoints", "step-000002.tmp"), { recursive: true });
      renameSync(path.join(outputs, "runs"), path.join(outputs, "runs-moved"));
      symlinkSync(outside, path.join(outputs, "runs"));
      assert.ok(realpathSync(named).startsWith(outside), "the control: the name now leads outside");
      await writeOutputFile(path.join(held.self, "config.json"), "{}");
      await makeOutputDir(path.join(held.self, "adapter"));
      await writeOutputFile(path.join(held.self, "adapter", "adapter_model.safetensors"), "adapter");
    } finally {
      held.close();
    }
    assert.deepEqual(readdirSync(path.join(outside, "job", "checkpoints", "step-000002.tmp")), []);
    const moved = path.join(outputs, "runs-moved", "job", "checkpoints", "step-000002.tmp");
    assert.deepEqual(readdirSync(moved).sort(), ["adapter", "config.json", "model.safetensors"]);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test("a save folder is never reached through a link below the output root, even one that stays inside", () => {
  const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-beneath-")));
  try {
    const outputs = path.join(top, "outputs");
    mkdirSync(path.join(outputs, "real"), { recursive: true });
    symlinkSync(path.join(outputs, "real"), path.join(outputs, "alias"));
    assert.throws(
      () => holdFolderBeneath(path.join(outputs, "alias", "job", "final"), [outputs], { create: true }),
      (err: Error) => err instanceof OutputLinkError && err.message.startsWith(`${path.join(outputs, "alias")}: `),
    );
    assert.deepEqual(readdirSync(path.join(outputs, "real")), [], "nothing made through the link");
    assert.throws(() => holdFolderBeneath(path.join(top, "elsewhere"), [outputs]), OutsideRootsError);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test(
  "a worker with roots saves through the folder it reached, never through a link below its output root",
  { timeout: 120_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    mkdirSync(path.join(dir, "real"));
    symlinkSync(path.join(dir, "real"), path.join(dir, "alias"));
    const cluster = await TestCluster.start(0);
    try {
      const roots = { data: [dir], output: [dir] };
      cluster.workers.push(
        await Worker.start({ natsUrl: cluster.server.url, id: "w0", log: pino({ level: "silent" }), roots }),
      );
      await cluster.waitFor(async () => (await cluster.idleWorkers()) === 1, "the worker to register");
      // the link stays inside the root, so the spec passes; the worker's walk to its save folder refuses it
      const reply = await cluster.submit({ ...baseSpec, workers: 1, max_steps: 2, output: "alias/job" }, dir);
      assert.ok(reply.ok, reply.error);
      const rec = await cluster.finished(reply.id!);
      assert.equal(rec.status, "failed");
      assert.match(rec.message ?? "", /alias: is a symbolic link; outputs are never written through links/);
      assert.ok(!readdirSync(path.join(dir, "real", "job")).includes("final"), "the model was saved through the link");
      // the same worker saves a job whose folder it reaches without links
      const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "plain" }, dir);
      assert.equal(next.status, "completed");
    } finally {
      await cluster.stop();
    }
  },
);

test(
  "checkpoints/ swapped for a link mid-job: no checkpoint is written, and none removed, through it",
  { timeout: 120_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const outside = mkdtempSync(path.join(tmpdir(), "ringtune-outside-"));
    // what pruning would delete if it followed the link: a folder named like an old checkpoint
    mkdirSync(path.join(outside, "step-000001"));
    const cluster = await TestCluster.start(0);
    try {
      const roots = { data: [dir], output: [dir] };
      cluster.workers.push(
        await Worker.start({ natsUrl: cluster.server.url, id: "w0", log: pino({ level: "silent" }), roots }),
      );
      await cluster.waitFor(async () => (await cluster.idleWorkers()) === 1, "the worker to register");
      const spec = { ...baseSpec, workers: 1, max_steps: 100_000, save_every: 2, keep_checkpoints: 1, output: "ck" };
      const reply = await cluster.submit(spec, dir);
      assert.ok(reply.ok, reply.error);
      await cluster.waitFor(async () => !!(await cluster.record(reply.id!))?.last_checkpoint, "a first checkpoint");
      renameSync(path.join(dir, "ck", "checkpoints"), path.join(dir, "ck", "checkpoints-moved"));
      symlinkSync(outside, path.join(dir, "ck", "checkpoints"));
      const rec = await cluster.finished(reply.id!, 60_000);
      assert.equal(rec.status, "failed", rec.message);
      assert.match(rec.message ?? "", /checkpoints: is a symbolic link/);
      assert.deepEqual(readdirSync(outside), ["step-000001"], "written or removed through the link");
    } finally {
      await cluster.stop();
      rmSync(outside, { recursive: true, force: true });
    }
  },
);
