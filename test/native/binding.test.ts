// The binding's contract with the event loop and with callers: long calls run off the main thread, a
// second call on a busy model is refused, the flat buffers are shared with native code, and bad arguments
// are errors that name the call and the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IGNORE_INDEX, loadAddon, type NativeBatch, type NativeModelConfig } from "../../native/js/addon.js";
import { syntheticBatch } from "../helpers/synthetic_batch.js";
import { nativeLlama } from "../helpers/tiny_model.js";

const config: NativeModelConfig = nativeLlama({
  vocabSize: 4000,
  hiddenSize: 256,
  intermediateSize: 704,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 64,
});

const batch = (rows: number, seqLen: number): NativeBatch => syntheticBatch(rows, seqLen, config.vocabSize);

test("forwardBackward runs off the main thread: timers fire while it computes", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(1, 0.02);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const b = batch(4, 256);
  // Several calls: each takes tens of milliseconds of native work during which the loop must keep turning.
  for (let i = 0; i < 3; i++) await model.forwardBackward(b, { backward: true });
  clearInterval(timer);
  assert.ok(ticks >= 3, `the event loop turned ${ticks} times during native work`);
});

test("a second call on a busy model is refused, not raced", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(2, 0.02);
  const first = model.forwardBackward(batch(2, 128), { backward: true });
  assert.throws(() => model.zeroGrad(), /zeroGrad: the model is busy/);
  assert.throws(() => model.forwardBackward(batch(1, 8), { backward: false }), /forwardBackward: the model is busy/);
  const r = await first;
  assert.ok(r.targets > 0 && Number.isFinite(r.loss));
  await model.zeroGrad(); // free again
});

test("zeroGrad runs off the main thread: it returns a promise, holds the model meanwhile, and clears every gradient", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(6, 0.02);
  await model.forwardBackward(batch(1, 32), { backward: true });
  assert.ok(
    model.gradData().some((g) => g !== 0),
    "the backward left gradients to clear",
  );
  const clearing = model.zeroGrad();
  assert.ok(clearing instanceof Promise);
  assert.throws(() => model.forwardBackward(batch(1, 8), { backward: false }), /forwardBackward: the model is busy/);
  await clearing;
  assert.ok(
    model.gradData().every((g) => g === 0),
    "every gradient is zero once the promise resolves",
  );
});

test("paramData is the native buffer itself: writing it changes the model's output", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(3, 0.02);
  const b = batch(1, 16);
  const before = await model.forwardBackward(b, { backward: false });
  const params = model.paramData();
  assert.equal(params, model.paramData(), "the same view every time");
  const head = model.params().find((p) => p.name === "lm_head.weight")!;
  params.fill(0, head.offset, head.offset + head.size); // zero head: uniform softmax, loss = ln(vocab)
  const after = await model.forwardBackward(b, { backward: false });
  assert.notEqual(before.loss, after.loss);
  assert.ok(Math.abs(after.loss - Math.log(config.vocabSize)) < 1e-5, `loss ${after.loss}`);
});

test("gradients accumulate across calls until zeroGrad, and AdamW reports the global norm", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(4, 0.02);
  const b = batch(1, 32);
  await model.zeroGrad();
  await model.forwardBackward(b, { backward: true });
  const once = Float32Array.from(model.gradData());
  await model.forwardBackward(b, { backward: true });
  const grads = model.gradData();
  let maxRel = 0;
  let sq = 0;
  for (let i = 0; i < once.length; i++) {
    if (once[i] !== 0) maxRel = Math.max(maxRel, Math.abs(grads[i] / (2 * once[i]) - 1));
    sq += grads[i] * grads[i];
  }
  assert.ok(maxRel < 1e-5, `twice the gradient after two calls (max rel diff ${maxRel})`);
  const { gradNorm, step } = await model.adamwStep({
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    maxGradNorm: 0,
  });
  assert.equal(step, 1);
  assert.ok(Math.abs(gradNorm - Math.sqrt(sq)) < 1e-4 * Math.sqrt(sq));
  const mem = model.memory();
  assert.equal(mem.params, model.paramData().byteLength);
  assert.equal(mem.total, mem.params + mem.grads + mem.optimizer + mem.activations);
});

test("bad arguments name the call, the field, the expected and the actual value", async () => {
  const model = loadAddon().createModel(config);
  const b = batch(1, 8);
  assert.throws(
    () => model.forwardBackward({ ...b, labels: new Int32Array(3) }, { backward: true }),
    /forwardBackward: labels must have 8 elements, got 3/,
  );
  assert.throws(
    () => model.forwardBackward({ ...b, inputIds: new Float32Array(8) as unknown as Int32Array }, { backward: true }),
    /forwardBackward: inputIds must be a Int32Array, got a typed array/,
  );
  assert.throws(
    () => loadAddon().createModel({ ...config, numKvHeads: 3 }),
    /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/,
  );
  const bad = { ...b, inputIds: b.inputIds.slice() };
  bad.inputIds[5] = config.vocabSize;
  await assert.rejects(
    model.forwardBackward(bad, { backward: true }),
    /forward_backward: batch \[1 rows x 8 tokens\].*embedding_forward: token id 4000 at position 5/,
  );
});

test("onGradsReady reports every gradient bucket once, head first and embedding last", async () => {
  const model = loadAddon().createModel(config);
  await model.initRandom(5, 0.02);
  const ranges: [number, number][] = [];
  let all: () => void = () => {};
  const done = new Promise<void>((resolve) => (all = resolve));
  await model.zeroGrad();
  const r = await model.forwardBackward(batch(2, 64), {
    backward: true,
    onGradsReady: (offset, size) => {
      ranges.push([offset, size]);
      if (ranges.length === config.numLayers + 2) all();
    },
  });
  await done;
  assert.equal(r.gradBuckets, config.numLayers + 2);
  const params = model.params();
  assert.equal(ranges[0]![0], params.find((p) => p.name === "model.norm.weight")!.offset);
  assert.equal(ranges.at(-1)![0], 0);
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [offset, size] of sorted) {
    assert.equal(offset, next, "buckets tile the buffer without gaps or overlaps");
    next = offset + size;
  }
  assert.equal(next, model.paramData().length);
});

test("TypeScript's IGNORE_INDEX is the native code's own ignored label", () => {
  assert.equal(IGNORE_INDEX, loadAddon().ignoreIndex);
});
