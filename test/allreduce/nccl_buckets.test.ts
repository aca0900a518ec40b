// A step's gradient buckets on the NCCL data plane (the stand-in libnccl.so.2 under the CUDA emulator): two
// cuda-emu models, each with its own batch, hand every bucket to NCCL as their backward makes it final, and
// end with the fp32 sum of the gradients each computes alone; the ZeRO-1 collectives on the model's device
// buffers leave each rank the TCP ring's shard of the gradients, and give every rank every shard's weights.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon, type NativeBatch, type NativeModel, type NcclComm } from "../../native/js/addon.js";
import { ownedSpan } from "../../worker/allreduce/ring_allreduce.js";
import { ncclRankOf } from "../../worker/allreduce/nccl_plane.js";
import { NCCL_STANDIN, ncclStandinMissing } from "../helpers/nccl_standin.js";
import { syntheticBatch } from "../helpers/synthetic_batch.js";
import { nativeLlama } from "../helpers/tiny_model.js";

process.env.RINGTUNE_NCCL_LIB = NCCL_STANDIN; // before the library's first use in this process
const addon = loadAddon();
const skip = ncclStandinMissing(addon.cudaEmu);
const TIMEOUT_MS = 20_000;

const config = nativeLlama({
  vocabSize: 64,
  hiddenSize: 64,
  intermediateSize: 64,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 32,
});

async function emuModel(): Promise<NativeModel> {
  const m = await addon.createModelAsync(config, { device: "cuda-emu" });
  await m.initRandom(7, 0.05);
  return m;
}

async function ring(size: number): Promise<NcclComm[]> {
  const id = addon.ncclUniqueId!();
  return Promise.all(
    Array.from({ length: size }, (_, r) => addon.ncclConnect!(id, ncclRankOf(r, size), size, TIMEOUT_MS)),
  );
}

// A different batch per rank: the same rows shifted by the rank.
const batchOf = (rank: number) => {
  const b = syntheticBatch(2, 12, config.vocabSize);
  b.inputIds = b.inputIds.map((t) => (t + rank * 5) % config.vocabSize);
  return b;
};

test(
  "each bucket is all-reduced on the device as the backward finishes it: both ranks end with the sum",
  { skip },
  async () => {
    const models = [await emuModel(), await emuModel()];
    // Alone: each rank's own gradients (host staging would sum these).
    const own: Float32Array[] = [];
    for (const [r, m] of models.entries()) {
      await m.forwardBackward(batchOf(r), { backward: true, zeroGrads: true, lossScale: 0.01 });
      own.push(m.gradData().slice());
    }
    const comms = await ring(2);
    try {
      const buckets = models[0]!.gradBucketRanges();
      const told: number[][] = [[], []];
      const results = await Promise.all(
        models.map((m, r) =>
          m.forwardBackward(batchOf(r), {
            backward: true,
            zeroGrads: true,
            lossScale: 0.01,
            ncclBuckets: { comm: comms[r]!, op: "all-reduce", timeoutMs: TIMEOUT_MS },
            onGradsReady: (offset) => told[r]!.push(offset),
          }),
        ),
      );
      assert.equal(results[0]!.gradBuckets, buckets.length);
      const n = own[0]!.length;
      const sum = Float32Array.from({ length: n }, (_, i) => own[0]![i]! + own[1]![i]!);
      for (const [r, m] of models.entries()) assert.deepEqual(m.gradData(), sum, `rank ${r}'s gradients`);
      // JavaScript is still told of each bucket (in the backward's order), though it moves none of them.
      await new Promise((resolve) => setImmediate(resolve));
      for (const r of [0, 1])
        assert.deepEqual(
          told[r]!.slice().sort((a, b) => a - b),
          buckets.map(([o]) => o).sort((a, b) => a - b),
        );
      // The sums feed the AdamW step: both ranks take the same one.
      const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 };
      await Promise.all(models.map((m) => m.adamwStep(opts)));
      assert.deepEqual(models[1]!.paramData(), models[0]!.paramData());
    } finally {
      for (const c of comms) c.abort();
    }
  },
);

test(
  "ZeRO-1 on the model's device buffers: reduce-scatter leaves each rank its shard, all-gather spreads the weights",
  { skip },
  async () => {
    const models = [await emuModel(), await emuModel()];
    const comms = await ring(2);
    try {
      const own: Float32Array[] = [];
      for (const [r, m] of models.entries()) {
        await m.forwardBackward(batchOf(r), { backward: true, zeroGrads: true, lossScale: 0.01 });
        own.push(m.gradData().slice());
      }
      const buckets = models[0]!.gradBucketRanges();
      await Promise.all(
        models.map((m, r) =>
          m.ncclCollective!(comms[r]!, {
            op: "reduce-scatter",
            buffer: "grads",
            ranges: buckets,
            timeoutMs: TIMEOUT_MS,
          }),
        ),
      );
      for (const [r, m] of models.entries()) {
        const g = m.gradData();
        for (const [o, len] of buckets) {
          const { start, end } = ownedSpan(len, r, 2);
          for (let i = o + start; i < o + end; i++)
            assert.equal(g[i], Math.fround(own[0]![i]! + own[1]![i]!), `rank ${r} element ${i}`);
        }
      }
      // Each rank writes its shard of the weights (as its AdamW would); the all-gather gives both all of them.
      const want = new Float32Array(models[0]!.paramData().length);
      for (const [r, m] of models.entries()) {
        const p = m.paramData();
        for (const [o, len] of buckets) {
          const { start, end } = ownedSpan(len, r, 2);
          for (let i = o + start; i < o + end; i++) p[i] = want[i] = r + 1 + i * 1e-3;
        }
      }
      await Promise.all(
        models.map((m, r) =>
          m.ncclCollective!(comms[r]!, { op: "all-gather", buffer: "weights", ranges: buckets, timeoutMs: TIMEOUT_MS }),
        ),
      );
      for (const [r, m] of models.entries())
        assert.deepEqual(m.paramData(), Float32Array.from(want), `rank ${r}'s weights`);
    } finally {
      for (const c of comms) c.abort();
    }
  },
);

// Rank r's zigzag share (chunks r and 3 - r of 4) of every row, as the coordinator cuts a sequence-parallel batch.
function zigzagShareOf(b: NativeBatch, rank: number): NativeBatch {
  const c = b.seqLen / 4;
  const pick = (a: Int32Array) => {
    const out = new Int32Array(b.rows * 2 * c);
    for (let row = 0; row < b.rows; row++)
      [rank, 3 - rank].forEach((chunk, w) =>
        out.set(a.subarray(row * b.seqLen + chunk * c, row * b.seqLen + (chunk + 1) * c), (row * 2 + w) * c),
      );
    return out;
  };
  return {
    rows: b.rows,
    seqLen: 2 * c,
    inputIds: pick(b.inputIds),
    labels: pick(b.labels),
    positionIds: pick(b.positionIds),
    segmentIds: pick(b.segmentIds),
  };
}

test(
  "sequence-parallel blocks by NCCL send/recv between device buffers: the TCP ring link's losses and gradients",
  { skip },
  async () => {
    const full = syntheticBatch(2, 16, config.vocabSize);
    full.segmentIds = full.segmentIds.map((_, i) => (i % 16 < 6 ? 1 : 2)); // a segment crossing the chunks
    full.positionIds = full.positionIds.map((_, i) => (i % 16 < 6 ? i % 16 : (i % 16) - 6));
    type Sp = NonNullable<Parameters<NativeModel["forwardBackward"]>[1]["sequenceParallel"]>;
    const step = async (sp: (r: number) => Sp) => {
      const models = [await emuModel(), await emuModel()];
      const got = await Promise.all(
        models.map((m, r) =>
          m.forwardBackward(zigzagShareOf(full, r), {
            backward: true,
            zeroGrads: true,
            lossScale: 0.01,
            sequenceParallel: sp(r),
          }),
        ),
      );
      return { losses: got.map((g) => g.lossSum), grads: models.map((m) => m.gradData().slice()) };
    };
    const links = [0, 1].map(() => addon.createRingLink("127.0.0.1", 0));
    const comms = await ring(2);
    try {
      await Promise.all(links.map((l, r) => l.join("127.0.0.1", links[(r + 1) % 2]!.port, "sp-test", TIMEOUT_MS)));
      const tcp = await step((r) => ({ link: links[r]!, rank: r, size: 2 }));
      const nccl = await step((r) => ({ ncclComm: comms[r]!, timeoutMs: TIMEOUT_MS, rank: r, size: 2 }));
      assert.deepEqual(nccl.losses, tcp.losses);
      for (const r of [0, 1]) assert.deepEqual(nccl.grads[r], tcp.grads[r], `rank ${r}'s gradients`);
      assert.ok(tcp.losses.every((l) => Number.isFinite(l) && l > 0));
    } finally {
      for (const c of comms) c.abort();
      for (const l of links) l.close();
    }
  },
);
