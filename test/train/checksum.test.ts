// The ranks' periodic consistency checksum covers what is trained: the adapters under LoRA (the base is
// frozen there, so a checksum of it alone could never fail), all weights in full training, and the AdamW
// moments of either.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon, type NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { trainingStateChecksum } from "../../worker/checksum.js";
import { SETTINGS, randomizeAdapters, tinyBatch, tinyLlamaConfig } from "../helpers/lora_adapters.js";

const config = parseHfConfig(tinyLlamaConfig(), "config.json");

/** Two models with the same bits everywhere: weights, adapters when `lora`, and moments after one step. */
async function identicalPair(lora: boolean): Promise<[NativeModel, NativeModel]> {
  const pair: NativeModel[] = [];
  for (let i = 0; i < 2; i++) {
    const model = loadAddon().createModel(config.native);
    await model.initRandom(5, 0.2);
    if (lora) {
      model.enableLora(SETTINGS);
      randomizeAdapters(model);
    }
    // One real step so the moments hold nonzero values like a rank's mid-job.
    await model.forwardBackward(tinyBatch(), { backward: true });
    await model.adamwStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
    pair.push(model);
  }
  assert.equal(await trainingStateChecksum(pair[0]!), await trainingStateChecksum(pair[1]!), "identical models agree");
  return pair as [NativeModel, NativeModel];
}

/** Changes the lowest bit of one float: the smallest difference a rank could drift by. */
function flipLowestBit(buf: Float32Array, index: number): void {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length);
  words[index]! ^= 1;
}

const bitsEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

test("LoRA: two ranks whose adapters differ in one bit of one weight get different checksums", async () => {
  const [a, b] = await identicalPair(true);
  const adapter = b.loraParams().find((p) => p.name.endsWith("lora_B.weight"))!;
  flipLowestBit(b.loraData(), adapter.offset + 3);
  assert.ok(bitsEqual(a.paramData(), b.paramData()), "the frozen base weights are the same");
  assert.ok(bitsEqual(a.optimizerData().m, b.optimizerData().m) && bitsEqual(a.optimizerData().v, b.optimizerData().v));
  assert.notEqual(await trainingStateChecksum(a), await trainingStateChecksum(b), `${adapter.name} differs`);
});

test("LoRA: two ranks whose adapters' AdamW moments differ get different checksums", async () => {
  for (const moment of ["m", "v"] as const) {
    const [a, b] = await identicalPair(true);
    flipLowestBit(b.optimizerData()[moment], 1);
    assert.notEqual(await trainingStateChecksum(a), await trainingStateChecksum(b), `adapter moment ${moment} differs`);
  }
});

test("full training: a difference in one weight or in one moment changes the checksum", async () => {
  const [a, b] = await identicalPair(false);
  flipLowestBit(b.paramData(), b.params().at(-1)!.offset);
  assert.notEqual(await trainingStateChecksum(a), await trainingStateChecksum(b), "a base weight differs");
  const [c, d] = await identicalPair(false);
  flipLowestBit(d.optimizerData().v, 0);
  assert.notEqual(await trainingStateChecksum(c), await trainingStateChecksum(d), "a second moment differs");
});
