// The native core against an independent float64 implementation (test/fixtures/reference): for every
// case, the dump path's loss, logits and each parameter gradient within what fp32 achieves (TOLERANCE).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../../hf/hf_model.js";
import { checkBatchVocab, readBatch } from "../../hf/batch.js";
import { forwardBackwardDump } from "../../hf/dump.js";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";

// dist/test/native -> repository root: the fixtures are read from the source tree, not copied.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const casesDir = path.join(root, "test/fixtures/reference/cases");

// Tolerance |got - ref| <= abs + rel * |ref| per quantity, set from what fp32 achieves against these float64
// values with a margin of about 6-12x. Measured worst |diff| (all cases, 1 to 7 threads alike): loss 4.8e-7
// (|loss| ~5), logits 3.5e-6, gradients 6.5e-7; as a share of the tolerance below that is 0.08 (loss), 0.16
// (logits) and 0.13 (gradients). The errors are fp32 rounding accumulated over sums, so they scale with a
// tensor's magnitude rather than per element: mostly absolute, with rel covering a few ulps of large values.
// The margin absorbs other summation orders (BLAS kernels differ per CPU); a real bug is far outside it.
interface Tolerance {
  abs: number;
  rel: number;
}
const TOLERANCE: Record<"loss" | "logits" | "grad", Tolerance> = {
  loss: { abs: 1e-6, rel: 1e-6 },
  logits: { abs: 2e-5, rel: 1e-6 },
  grad: { abs: 5e-6, rel: 1e-6 },
};
function toleranceFor(name: string): Tolerance {
  if (name === "loss") return TOLERANCE.loss;
  if (name === "logits") return TOLERANCE.logits;
  if (name.endsWith(".grad")) return TOLERANCE.grad;
  throw new Error(`no tolerance for tensor ${name}: expected loss, logits or <hf name>.grad`);
}

interface Mismatch {
  worst: number; // largest |got - ref| / (abs + rel * |ref|); > 1 fails
  maxDiff: number;
  at: number;
}

function compare(got: Float32Array, ref: Float32Array, tol: Tolerance): Mismatch {
  let worst = 0,
    maxDiff = 0,
    at = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    const ratio = Number.isNaN(d) ? Infinity : d / (tol.abs + tol.rel * Math.abs(ref[i]!));
    if (ratio > worst) [worst, at] = [ratio, i];
    if (!(d <= maxDiff)) maxDiff = d;
  }
  return { worst, maxDiff, at };
}

test("the reference fixtures exist", () => {
  assert.ok(existsSync(casesDir), `${casesDir} is missing: the reference comparison cannot run`);
  assert.ok(readdirSync(casesDir).length > 0, `${casesDir} has no cases`);
});

const cases = existsSync(casesDir) ? readdirSync(casesDir).sort() : [];
for (const name of cases) {
  test(`reference case ${name}: loss, logits and every gradient match`, async (t) => {
    const dir = path.join(casesDir, name);
    const batchFile = path.join(dir, "batch.json");
    const batch = await readBatch(batchFile);
    const { model, config } = await loadModel(path.join(dir, "model"));
    checkBatchVocab(batch, config.native.vocabSize, batchFile);
    const { tensors } = await forwardBackwardDump(model, batch, config.native.vocabSize);

    const expectedHeader = await readSafetensorsHeader(path.join(dir, "expected.safetensors"));
    const expected = await readTensorsF32(expectedHeader);
    const produced = new Set(tensors.map((t) => t.name));
    const missing = [...expected.keys()].filter((n) => !produced.has(n));
    const extra = [...produced].filter((n) => !expected.has(n));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, "dump and fixture name different tensors");

    const report: string[] = [];
    let failed = false;
    let worstGrad = { name: "", maxDiff: 0 };
    for (const got of tensors) {
      const ref = expected.get(got.name)!;
      assert.deepEqual(got.shape, expectedHeader.tensors.get(got.name)!.shape, `${got.name}: shape`);
      const m = compare(got.data, ref, toleranceFor(got.name));
      const ok = m.worst <= 1;
      report.push(
        `${ok ? "ok  " : "FAIL"} ${got.name}: max |diff| ${m.maxDiff.toExponential(2)}, ${m.worst.toFixed(3)} of tolerance` +
          (m.at >= 0 ? ` at [${m.at}] got ${got.data[m.at]} ref ${ref[m.at]}` : ""),
      );
      if (!ok) failed = true;
      if (got.name.endsWith(".grad") && m.maxDiff >= worstGrad.maxDiff)
        worstGrad = { name: got.name, maxDiff: m.maxDiff };
      if (!got.name.endsWith(".grad")) t.diagnostic(`${got.name} max |diff| ${m.maxDiff.toExponential(2)}`);
    }
    t.diagnostic(`largest gradient |diff| ${worstGrad.maxDiff.toExponential(2)} (${worstGrad.name})`);
    const stated = Object.entries(TOLERANCE).map(([q, t]) => `${q} ${t.abs} + ${t.rel}*|ref|`);
    assert.ok(!failed, `case ${name} is outside |diff| <= ${stated.join(", ")}:\n  ${report.join("\n  ")}`);
  });
}
