// Sequence parallelism through the addon: two models joined by native TCP ring links, each given its
// zigzag share of the rows, together give one model's loss and gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon, type NativeBatch, type NativeModelConfig } from "../../native/js/addon.js";
import { toTokenBatch } from "../../proto/mod.js";
import { zigzagShare } from "../../coordinator/train/zigzag.js";
import { nativeLlama } from "../helpers/tiny_model.js";

const config: NativeModelConfig = nativeLlama(
  {
    vocabSize: 97,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
  },
  { qkvBias: true },
);

/** Rows of packed segments (lengths per row), positions restarting, a segment's first token untargeted. */
function packedRows(rows: number[][], seqLen: number): NativeBatch {
  const n = rows.length * seqLen;
  const b: NativeBatch = {
    rows: rows.length,
    seqLen,
    inputIds: new Int32Array(n),
    labels: new Int32Array(n).fill(-100),
    positionIds: new Int32Array(n),
    segmentIds: new Int32Array(n),
  };
  rows.forEach((segs, r) => {
    let t = 0;
    segs.forEach((len, s) => {
      for (let p = 0; p < len; p++, t++) {
        const i = r * seqLen + t;
        b.inputIds[i] = (i * 7919 + 13) % config.vocabSize;
        if (p > 0) b.labels[i] = (i * 104729 + 5) % config.vocabSize;
        b.positionIds[i] = p;
        b.segmentIds[i] = s + 1;
      }
    });
  });
  return b;
}

function share(b: NativeBatch, size: number, rank: number): NativeBatch {
  const z = zigzagShare(toTokenBatch(b, new Int32Array(b.rows * b.seqLen), []), size, rank, 0);
  return {
    rows: z.row_count,
    seqLen: z.seq_len,
    inputIds: z.input_ids,
    labels: z.labels,
    positionIds: z.position_ids,
    segmentIds: z.segment_ids,
  };
}

test("two ranks joined by TCP ring links give one model's loss and gradients (1e-5 per tensor)", async () => {
  const addon = loadAddon();
  const one = addon.createModel(config);
  await one.initRandom(7, 0.2);
  const ranks = [addon.createModel(config), addon.createModel(config)];
  for (const m of ranks) await m.initRandom(7, 0.2);
  // 2 rows of 512 tokens, chunks of 128: segments cross chunk boundaries; the second row ends in padding.
  const full = packedRows(
    [
      [100, 300, 112],
      [200, 250],
    ],
    512,
  );
  let targets = 0;
  for (const l of full.labels) targets += l !== -100 ? 1 : 0;
  const want = await one.forwardBackward(full, { backward: true, lossScale: 1 / targets, zeroGrads: true });

  const links = ranks.map(() => addon.createRingLink("127.0.0.1", 0));
  await Promise.all(links.map((l, r) => l.join("127.0.0.1", links[(r + 1) % 2]!.port, "test-ring", 20_000)));
  try {
    const got = await Promise.all(
      ranks.map((m, r) =>
        m.forwardBackward(share(full, 2, r), {
          backward: true,
          lossScale: 1 / targets,
          zeroGrads: true,
          sequenceParallel: { link: links[r]!, rank: r, size: 2 },
        }),
      ),
    );
    assert.equal(got[0]!.targets + got[1]!.targets, want.targets);
    const loss = got[0]!.lossSum + got[1]!.lossSum;
    assert.ok(Math.abs(loss - want.lossSum) <= 1e-5 * Math.abs(want.lossSum), `loss ${loss} vs ${want.lossSum}`);
    const g1 = one.gradData();
    const [ga, gb] = ranks.map((m) => m.gradData());
    for (const p of one.params()) {
      let num = 0;
      let den = 0;
      for (let i = p.offset; i < p.offset + p.size; i++) {
        const d = ga![i]! + gb![i]! - g1[i]!;
        num += d * d;
        den += g1[i]! * g1[i]!;
      }
      const rel = Math.sqrt(num) / Math.sqrt(den);
      assert.ok(rel <= 1e-5, `${p.name}: relative gradient difference ${rel}`);
    }
  } finally {
    for (const l of links) l.close();
  }
});

test("a sequence-parallel call names what is wrong with its link", async () => {
  const addon = loadAddon();
  const m = addon.createModel(config);
  const b = share(packedRows([[64]], 64), 2, 0);
  const unjoined = addon.createRingLink("127.0.0.1", 0);
  try {
    assert.throws(
      () => m.forwardBackward(b, { backward: false, sequenceParallel: { link: unjoined, rank: 0, size: 2 } }),
      /sequenceParallel.link is not joined/,
    );
    assert.throws(
      () =>
        m.forwardBackward(b, {
          backward: false,
          sequenceParallel: { link: {} as typeof unjoined, rank: 0, size: 2 },
        }),
      /sequenceParallel.link must come from createRingLink/,
    );
    assert.throws(
      () => m.forwardBackward(b, { backward: false, sequenceParallel: { link: unjoined, rank: 2, size: 2 } }),
      /rank 2 outside a group of 2/,
    );
  } finally {
    unjoined.close();
  }
});
