// The learning-rate schedule and the step plan, as the job spec defines them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { learningRate, warmupSteps, type LrSchedule } from "../../coordinator/train/schedule.js";
import { DataOrder, shardRange } from "../../spec/step_plan.js";

const base: LrSchedule = { lr: 1e-3, minLr: 1e-4, kind: "cosine", warmupSteps: 10, totalSteps: 110 };

test("warmup rises linearly to the peak at the last warmup step", () => {
  assert.equal(learningRate(base, 1), 1e-4);
  assert.equal(learningRate(base, 5), 5e-4);
  assert.equal(learningRate(base, 10), 1e-3);
});

test("cosine decays from the peak to min_lr at the last step, halfway at the midpoint", () => {
  assert.ok(Math.abs(learningRate(base, 60) - (1e-4 + 0.5 * 9e-4)) < 1e-15);
  assert.ok(Math.abs(learningRate(base, 110) - 1e-4) < 1e-15);
  for (let s = 11; s < 110; s++)
    assert.ok(learningRate(base, s + 1) <= learningRate(base, s), `non-increasing at ${s}`);
});

test("linear and constant schedules", () => {
  const linear = { ...base, kind: "linear" as const };
  assert.ok(Math.abs(learningRate(linear, 60) - 5.5e-4) < 1e-15);
  assert.ok(Math.abs(learningRate(linear, 110) - 1e-4) < 1e-15);
  assert.equal(learningRate({ ...base, kind: "constant" }, 100), 1e-3);
});

test("warmup from a ratio or a count, never past the end", () => {
  assert.equal(warmupSteps({ warmup_ratio: 0.01 }, 1000), 10);
  assert.equal(warmupSteps({ warmup_steps: 50 }, 20), 20);
  assert.equal(warmupSteps({}, 100), 0);
});

test("the data order is a function of seed and step: every row once per epoch, reproducible", () => {
  const a = new DataOrder(10, 7);
  const b = new DataOrder(10, 7);
  const epoch0 = [1, 2, 3, 4, 5].flatMap((s) => a.rowsOfStep(s, 2));
  assert.deepEqual(
    [...epoch0].sort((x, y) => x - y),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(b.rowsOfStep(3, 2), epoch0.slice(4, 6), "a fresh order (a resumed run) gives the same rows");
  const epoch1 = [6, 7, 8, 9, 10].flatMap((s) => a.rowsOfStep(s, 2));
  assert.notDeepEqual(epoch1, epoch0, "each epoch is reshuffled");
  assert.notDeepEqual(new DataOrder(10, 8).rowsOfStep(1, 10), epoch0);
});

test("shards cover the rows once, sizes differing by at most one", () => {
  for (const [n, size] of [
    [7, 3],
    [2, 3],
    [0, 2],
    [6, 3],
  ] as const) {
    const parts = Array.from({ length: size }, (_, r) => shardRange(n, r, size));
    assert.equal(parts[0]![0], 0);
    assert.equal(parts.at(-1)![1], n);
    for (let r = 1; r < size; r++) assert.equal(parts[r]![0], parts[r - 1]![1]);
    const lens = parts.map(([a, b]) => b - a);
    assert.ok(Math.max(...lens) - Math.min(...lens) <= 1);
  }
});
