// Job keys users set, each shown through a real job (real nats-server, real workers): the NATS transport,
// per-task losses (packed and not), the learning-rate schedule, global_batch_tokens, epochs and grad_clip.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readMetrics, TestCluster, trainingFixture, type MetricLine } from "../helpers/cluster.js";
import { targetsByTask, trainRows } from "../helpers/dataset_targets.js";
import { assertSameLosses, lossesByStep } from "../helpers/losses.js";

let cluster: TestCluster;
const { dir, baseSpec } = trainingFixture();

before(async () => {
  cluster = await TestCluster.start(2);
});
after(async () => {
  await cluster?.stop();
});

/** The training-step lines of a job's metrics.jsonl. */
function stepLines(output: string): MetricLine[] {
  return readMetrics(output).filter((m) => m.loss !== undefined);
}

/** A batch size of 2..6 rows that divides the row count: an epoch is then whole steps, none straddling two. */
function wholeEpochBatch(rows: number): number {
  const perStep = [6, 5, 4, 3, 2].find((r) => rows % r === 0);
  assert.ok(perStep, `no batch size of 2..6 divides the ${rows} training rows`);
  return perStep;
}

function sum(values: Iterable<number>): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

test("transport nats: a 2-worker job sends its gradients over NATS and gives the tcp run's losses", async () => {
  let chunks = 0;
  const sub = cluster.client.subscribe("ringtune.ring.*.edge.*.chunks", {
    callback: () => {
      chunks++;
    },
  });
  try {
    const spec = { ...baseSpec, workers: 2, max_steps: 6 };
    const tcp = await cluster.run({ ...spec, transport: "tcp", output: "tcp" }, dir);
    await cluster.client.flush();
    assert.equal(chunks, 0, "the tcp ring sends no chunk over NATS");
    const nats = await cluster.run({ ...spec, transport: "nats", output: "nats" }, dir);
    await cluster.client.flush();
    assert.ok(chunks >= 2 * 6, `the nats ring's gradient chunks crossed NATS (${chunks} seen)`);
    assertSameLosses(lossesByStep(nats.output), lossesByStep(tcp.output));
  } finally {
    sub.unsubscribe();
  }
});

test("per-task losses: each step's loss is the target-weighted mean of its task losses", async () => {
  const spec = { ...baseSpec, workers: 2, packing: false, epochs: 1 };
  const rows = trainRows(spec, dir);
  const job = await cluster.run({ ...spec, global_batch_rows: wholeEpochBatch(rows.length), output: "tasks" }, dir);
  const lines = stepLines(job.output);
  assert.ok(lines.length > 0);
  let bothTasks = 0;
  for (const m of lines) {
    const tasks = Object.keys(m.targets_by_task!).sort();
    assert.deepEqual(
      Object.keys(m.loss_by_task!).sort(),
      tasks,
      `step ${m.step}: losses and counts name the same tasks`,
    );
    const n = m.targets_by_task!;
    assert.equal(sum(Object.values(n)), m.targets, `step ${m.step}: task target counts add up to the step's`);
    const combined = sum(tasks.map((k) => m.loss_by_task![k]! * n[k]!)) / m.targets!;
    assert.ok(Math.abs(combined - m.loss!) <= 1e-5 * m.loss!, `step ${m.step}: combined ${combined} vs loss ${m.loss}`);
    if (tasks.length === 2) {
      bothTasks++;
      const [a, b] = tasks.map((k) => m.loss_by_task![k]!);
      assert.notEqual(a, b, `step ${m.step}: two tasks, two different losses`);
    }
  }
  assert.ok(bothTasks > 0, "some step mixes both tasks");
  // Over one epoch every row is trained once: the task counts are the data's, counted by the pipeline.
  const want = targetsByTask(rows);
  const got: Record<string, number> = {};
  for (const m of lines) for (const [k, c] of Object.entries(m.targets_by_task!)) got[k] = (got[k] ?? 0) + c;
  assert.deepEqual(got, want);
});

test("per-task losses with packing on (the default): each segment of a packed row counts for its own task", async () => {
  // Rows of 160 positions hold several of the fixture's short chats each.
  const spec = { ...baseSpec, workers: 2, epochs: 1, seq_len: 160 };
  const rows = trainRows(spec, dir);
  assert.ok(
    rows.some((r) => new Set(r.taskTypes).size > 1),
    "some packed row holds segments of both tasks",
  );
  // One step of every row: the step trains each row once, so its task counts are the data's.
  const job = await cluster.run({ ...spec, global_batch_rows: rows.length, output: "tasks-packed" }, dir);
  const [m, ...more] = stepLines(job.output);
  assert.ok(m !== undefined && more.length === 0, "one step");
  // The reference: the same examples one to a row (packing off), where no row can lend its task to another.
  assert.deepEqual(m.targets_by_task, targetsByTask(trainRows({ ...spec, packing: false }, dir)));
  const n = m.targets_by_task!;
  const combined = sum(Object.keys(n).map((k) => m.loss_by_task![k]! * n[k]!)) / m.targets!;
  assert.ok(Math.abs(combined - m.loss!) <= 1e-5 * m.loss!, `combined ${combined} vs loss ${m.loss}`);
});

test("lr in metrics.jsonl is the schedule's at each step: linear warmup from 0, then cosine down to min_lr", async () => {
  const lr = 2e-3;
  const minLr = 2e-4;
  const warmup = 3;
  const total = 8;
  const spec = {
    ...baseSpec,
    workers: 2,
    max_steps: total,
    lr,
    min_lr: minLr,
    warmup_steps: warmup,
    schedule: "cosine",
  };
  const lines = stepLines((await cluster.run({ ...spec, output: "lr-schedule" }, dir)).output);
  assert.deepEqual(
    lines.map((m) => m.step),
    Array.from({ length: total }, (_, i) => i + 1),
  );
  // Written out here from the schedule's definition: step s (from 1) of warmup w trains at lr * s / w,
  // then the cosine goes from lr at step w to min_lr at the last step.
  const want = (s: number) =>
    s <= warmup
      ? (lr * s) / warmup
      : minLr + (lr - minLr) * 0.5 * (1 + Math.cos((Math.PI * (s - warmup)) / (total - warmup)));
  for (const m of lines)
    assert.ok(
      Math.abs(m.lr! - want(m.step)) <= 1e-12,
      `step ${m.step}: lr ${m.lr}, the schedule gives ${want(m.step)}`,
    );
  assert.equal(lines.at(-1)!.lr, minLr, "the last step reaches min_lr");
});

test("global_batch_tokens: rows per step are the tokens over seq_len, rounded to the nearest whole row", async () => {
  // seq_len 64: 230 tokens are 3.6 rows -> 4 (not 3), 282 tokens are 4.4 rows -> 4 (not 5).
  for (const tokens of [230, 282]) {
    const spec: Record<string, unknown> = { ...baseSpec, workers: 2, max_steps: 2, global_batch_tokens: tokens };
    delete spec.global_batch_rows; // the two are exclusive
    const job = await cluster.run({ ...spec, output: `tokens-${tokens}` }, dir);
    const prepared = cluster.coordinatorLog.find((l) => l.msg === "job prepared" && l.job === job.id);
    assert.equal(prepared?.rowsPerStep, 4, `global_batch_tokens ${tokens}: the plan has 4 rows per step`);
    // The packed rows are nearly full, so the real tokens of a step show 4 rows too: more than 3 rows hold.
    for (const m of stepLines(job.output))
      assert.ok(
        m.tokens! > 3 * 64 && m.tokens! <= 4 * 64,
        `global_batch_tokens ${tokens}: step ${m.step} trains ${m.tokens} real tokens, 4 rows of 64 hold them`,
      );
  }
});

test("epochs: steps = epochs x steps-per-epoch, and each epoch trains on every row once", async () => {
  const spec = { ...baseSpec, workers: 2, packing: false, epochs: 2 };
  const rows = trainRows(spec, dir);
  const perStep = wholeEpochBatch(rows.length);
  const stepsPerEpoch = rows.length / perStep;
  const job = await cluster.run({ ...spec, global_batch_rows: perStep, output: "epochs" }, dir);
  const lines = stepLines(job.output);
  assert.deepEqual(
    lines.map((m) => m.step),
    Array.from({ length: 2 * stepsPerEpoch }, (_, i) => i + 1),
    `2 epochs x ${stepsPerEpoch} steps`,
  );
  const want = targetsByTask(rows);
  for (const epoch of [0, 1]) {
    const got: Record<string, number> = {};
    for (const m of lines.slice(epoch * stepsPerEpoch, (epoch + 1) * stepsPerEpoch))
      for (const [k, c] of Object.entries(m.targets_by_task!)) got[k] = (got[k] ?? 0) + c;
    assert.deepEqual(got, want, `epoch ${epoch + 1}: every row's targets once`);
  }
});

test("grad_clip: a tiny clip shrinks the updates, and the reported grad norm is the norm before clipping", async () => {
  // A large eps makes AdamW's step proportional to the gradient, so clipping it shows in the losses.
  const spec = { ...baseSpec, workers: 2, max_steps: 6, warmup_steps: 0, lr: 1e-2, eps: 1e-3, weight_decay: 0 };
  const clip = 1e-3;
  const off = stepLines((await cluster.run({ ...spec, grad_clip: 0, output: "clip-off" }, dir)).output);
  const on = stepLines((await cluster.run({ ...spec, grad_clip: clip, output: "clip-on" }, dir)).output);
  assert.equal(on[0]!.loss, off[0]!.loss, "step 1 runs on the same initial weights");
  assert.equal(on[0]!.grad_norm, off[0]!.grad_norm, "step 1's reported norm is the same: taken before clipping");
  for (const m of on) assert.ok(m.grad_norm! > 100 * clip, `step ${m.step}: norm ${m.grad_norm} is pre-clip`);
  // The same batches through the initial weights (an lr too small to move them): how far each run moved.
  const still = stepLines((await cluster.run({ ...spec, lr: 1e-12, grad_clip: 0, output: "clip-still" }, dir)).output);
  const moved = (lines: MetricLine[]) => Math.abs(lines.at(-1)!.loss! - still.at(-1)!.loss!);
  assert.ok(moved(off) > 0.3, `without clipping, step ${off.length}'s loss moves (by ${moved(off)})`);
  assert.ok(
    moved(on) < moved(off) / 5,
    `with grad_clip ${clip}, step ${on.length}'s loss stays near the initial weights' (${moved(on)} vs ${moved(off)} unclipped)`,
  );
});
