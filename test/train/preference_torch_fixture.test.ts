// The preference losses on a packed batch of pairs against PyTorch: test/fixtures/preference_losses/
// make_fixture.py computes DPO (with label smoothing and pref_ftx), IPO, ORPO and SimPO in float64 with
// autograd, from LLaMA-Factory's and TRL's formulas, and stores each pair's loss, rewards and log-probs and
// the gradient of the batch's mean loss by every position's target log-probability. The worker's own
// micro-batch code (pairStep: pairs found by segment, reference log-probs taken in batch order, per-position
// weights for the native backward) must give the same numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pairStep } from "../../worker/preference/pair_step.js";
import { needsReference, type PreferenceSettings, type PrefSums, type TaskSums } from "../../proto/mod.js";
import type { NativeBatch, NativeModel } from "../../native/js/addon.js";

interface FixtureCase {
  settings: PreferenceSettings;
  pair_losses: number[];
  rewards_chosen: number[];
  rewards_rejected: number[];
  logps_chosen: number[];
  logps_rejected: number[];
  mean_loss: number;
  d_mean_loss_d_token_logp: number[];
}

interface Fixture {
  rows: number;
  seq_len: number;
  tasks: string[];
  pairs: number;
  labels: number[];
  segment_ids: number[];
  token_task: number[];
  token_logps: number[];
  ref_logps: number[];
  cases: FixtureCase[];
}

const fixtureFile = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../test/fixtures/preference_losses/preference_losses.json",
);
const fx = JSON.parse(readFileSync(fixtureFile, "utf8")) as Fixture;

/**
 * A model whose forward "computes" the fixture's token losses (minus the target log-probs, float32 as the
 * native core keeps them) and records the per-position weights its backward is given.
 */
function fixtureModel(): { model: NativeModel; weights: () => Float32Array | undefined } {
  const losses = Float32Array.from(fx.token_logps, (l) => -l);
  let weights: Float32Array | undefined;
  const model = {
    loraSettings: () => null,
    tokenLosses: () => losses,
    forwardBackward: (_b: NativeBatch, o: { backward: boolean; labelWeights?: Float32Array }) => {
      if (o.backward) weights = o.labelWeights;
      return Promise.resolve({ lossSum: 0, targets: 0 });
    },
  } as unknown as NativeModel;
  return { model, weights: () => weights };
}

const close = (got: number, want: number, tol: number) => Math.abs(got - want) <= tol * (1 + Math.abs(want));

for (const c of fx.cases) {
  const name = `${c.settings.loss} (beta ${c.settings.beta}, ftx ${c.settings.ftx}, label smoothing ${c.settings.labelSmoothing})`;
  test(`${name}: pair losses, rewards and gradients by the target log-probs match PyTorch's`, async () => {
    const n = fx.rows * fx.seq_len;
    const batch: NativeBatch = {
      rows: fx.rows,
      seqLen: fx.seq_len,
      inputIds: new Int32Array(n),
      labels: Int32Array.from(fx.labels),
      positionIds: new Int32Array(n),
      segmentIds: Int32Array.from(fx.segment_ids),
    };
    const { model, weights } = fixtureModel();
    const taskSums: TaskSums = {};
    const prefSums: PrefSums = {};
    const r = await pairStep(
      model,
      { batch, tokenTask: Int32Array.from(fx.token_task) },
      fx.tasks,
      {
        settings: c.settings,
        lossScale: 1 / fx.pairs,
        backward: true,
        reference: needsReference(c.settings.loss) ? { logps: fx.ref_logps, offset: 0 } : undefined,
      },
      taskSums,
      prefSums,
    );
    assert.equal(r.pairs, fx.pairs);
    // float32 token losses summed in double: the sums agree to float32's precision
    assert.ok(close(r.lossSum / r.pairs, c.mean_loss, 1e-6), `mean loss ${r.lossSum / r.pairs} vs ${c.mean_loss}`);
    // per task: pairs 0 and 3 are task 0, pairs 1 and 2 task 1
    const byTask = (idx: number[], xs: number[]) => idx.reduce((a, i) => a + xs[i]!, 0);
    for (const [task, idx] of [
      ["a/x", [0, 3]],
      ["b/y", [1, 2]],
    ] as const) {
      const s = prefSums[task]!;
      assert.equal(s[0], 2, task);
      assert.ok(close(s[1]!, byTask([...idx], c.pair_losses), 1e-6), `${task} loss`);
      assert.ok(close(s[2]!, byTask([...idx], c.rewards_chosen), 1e-6), `${task} chosen reward`);
      assert.ok(close(s[3]!, byTask([...idx], c.rewards_rejected), 1e-6), `${task} rejected reward`);
      assert.ok(close(s[5]!, byTask([...idx], c.logps_chosen), 1e-6), `${task} chosen log-prob`);
      assert.ok(close(s[6]!, byTask([...idx], c.logps_rejected), 1e-6), `${task} rejected log-prob`);
      assert.ok(close(taskSums[task]![0], byTask([...idx], c.pair_losses), 1e-6), `${task} task loss`);
    }
    // The backward's weight on a position's token loss (= -log-prob) is minus d loss / d log-prob.
    const w = weights();
    assert.ok(w, "the backward ran with per-position weights");
    c.d_mean_loss_d_token_logp.forEach((want, i) => {
      const got = -w[i]!;
      assert.ok(close(got, want, 1e-5), `position ${i}: ${got} vs PyTorch's ${want}`);
    });
    assert.ok(
      c.d_mean_loss_d_token_logp.some((g) => g !== 0),
      "the fixture has gradients to compare",
    );
  });
}

test("the fixture covers every loss with a packed row of two pairs", () => {
  assert.deepEqual([...new Set(fx.cases.map((c) => c.settings.loss))].sort(), ["ipo", "orpo", "sigmoid", "simpo"]);
  assert.equal(Math.max(...fx.segment_ids.slice(0, fx.seq_len)) >= 3, true);
});
