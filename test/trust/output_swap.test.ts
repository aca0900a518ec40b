// An output folder exchanged for a symbolic link mid-job: the coordinator keeps writing metrics.jsonl into
// the folder it checked (now under its new name), and nothing at all appears where the link points.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
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
