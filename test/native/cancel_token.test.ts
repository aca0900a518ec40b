// A cancel token stops a forwardBackward from the main thread: a cancelled call rejects with "cancelled"
// and frees the model, whose next call runs in full; a token that is not one is refused by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon, type NativeBatch, type NativeModelConfig } from "../../native/js/addon.js";
import { syntheticBatch } from "../helpers/synthetic_batch.js";
import { nativeLlama } from "../helpers/tiny_model.js";

const config: NativeModelConfig = nativeLlama({
  vocabSize: 300,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 6,
  numHeads: 4,
  numKvHeads: 4,
  headDim: 16,
});

const batch = (rows: number, seqLen: number): NativeBatch => syntheticBatch(rows, seqLen, config.vocabSize);

test("a cancelled token rejects forwardBackward with 'cancelled'; the model then runs a whole step", async () => {
  const addon = loadAddon();
  const model = addon.createModel(config);
  await model.initRandom(4, 0.05);
  const reference = addon.createModel(config);
  await reference.initRandom(4, 0.05);
  const token = addon.createCancelToken();
  assert.equal(token.cancelled, false);
  token.cancel();
  assert.equal(token.cancelled, true);
  const b = batch(2, 32);
  await assert.rejects(model.forwardBackward(b, { backward: true, cancel: token }), /^Error: cancelled$/);
  // Free again, and a step without the token gives the untouched model's loss and gradients.
  const got = await model.forwardBackward(b, { backward: true, zeroGrads: true });
  const want = await reference.forwardBackward(b, { backward: true, zeroGrads: true });
  assert.ok(Math.abs(got.lossSum - want.lossSum) <= 1e-6 * Math.abs(want.lossSum), `${got.lossSum} vs ${want.lossSum}`);
  const g = model.gradData();
  const r = reference.gradData();
  let worst = 0;
  for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - r[i]!) - 1e-5 * Math.abs(r[i]!));
  assert.ok(worst <= 1e-7, `gradients differ by up to ${worst} beyond the tolerance`);
});

test("forwardBackward refuses a cancel option that is not a token, naming it", async () => {
  const model = loadAddon().createModel(config);
  assert.throws(
    () => model.forwardBackward(batch(1, 8), { backward: false, cancel: {} as never }),
    /forwardBackward: cancel must come from createCancelToken/,
  );
});
