// metrics.jsonl across restarts: a fresh run starts it empty, a resumed run keeps exactly the lines up to
// its checkpoint's step, and a damaged line is named rather than silently dropped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { MetricsFile } from "../../coordinator/train/metrics_file.js";

const lines = (file: string) => readFileSync(file, "utf8").split("\n").filter(Boolean);

function fileWithSteps(steps: number[]): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "ringtune-metrics-")), "metrics.jsonl");
  writeFileSync(file, steps.map((step) => JSON.stringify({ step, loss: 1 / step }) + "\n").join(""));
  return file;
}

test("a run from step 0 starts an empty file, then appends one line per record", async () => {
  const file = fileWithSteps([1, 2, 3]);
  const metrics = new MetricsFile(file);
  await metrics.startAt(0);
  assert.equal(readFileSync(file, "utf8"), "");
  await metrics.append({ step: 1, loss: 2.5 });
  await metrics.append({ step: 1, val_loss: 2.75 });
  assert.deepEqual(
    lines(file).map((l) => JSON.parse(l) as unknown),
    [
      { step: 1, loss: 2.5 },
      { step: 1, val_loss: 2.75 },
    ],
  );
});

test("a resumed run keeps the lines up to its step, unchanged, and drops the later ones", async () => {
  const file = fileWithSteps([1, 2, 3, 4, 5]);
  const before = lines(file);
  await new MetricsFile(file).startAt(3);
  assert.deepEqual(lines(file), before.slice(0, 3));
});

test("a line that is not a metric record is named with its file and line number", async () => {
  const file = fileWithSteps([1, 2]);
  writeFileSync(file, readFileSync(file, "utf8") + "{not json\n");
  await assert.rejects(
    new MetricsFile(file).startAt(2),
    (err: Error) => err.message === `${file}:3: not a metric line (a JSON object with a numeric 'step')`,
  );
});
