// Real model sizes on this machine: Qwen2.5-0.5B and 1.5B shapes (random init, byte-tokenizer ids, one
// 512-token row), full training and LoRA rank 16 on a bf16 base. Per case: time to initialise the weights
// alone (allocate + random init: the baseline), time until the first step can start (that, plus LoRA's
// switch and the gradients and moments), their ratio, the first and second step times, tokens/s, peak RSS.
// Each case runs in its own process so the peak is its own. 7B is on paper, from the memory report's terms.
// Run: make bench-sizes   (or: node dist/bench/real_sizes.js [--steps N] [--cases 0.5b-full,1.5b-lora])
import { spawnSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { loadAddon, type NativeModelConfig, type NativeModel } from "../native/js/addon.js";
import { LORA_TARGETS } from "../coordinator/job_spec/training_spec.js";

const GiB = 1024 ** 3;
const SEQ = 512;
/** What one worker may hold: the budget for this machine. */
const BUDGET_BYTES = 24 * GiB;

const qwen = (c: Partial<NativeModelConfig>): NativeModelConfig => ({
  vocabSize: 151936,
  hiddenSize: 896,
  intermediateSize: 4864,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  tieWordEmbeddings: true,
  qkvBias: true,
  oBias: false,
  mlpBias: false,
  ropeScaling: null,
  ...c,
});

const SHAPES: Record<string, NativeModelConfig> = {
  "0.5b": qwen({}),
  "1.5b": qwen({ hiddenSize: 1536, intermediateSize: 8960, numLayers: 28, numHeads: 12, headDim: 128 }),
  "7b": qwen({
    vocabSize: 152064,
    hiddenSize: 3584,
    intermediateSize: 18944,
    numLayers: 28,
    numHeads: 28,
    numKvHeads: 4,
    headDim: 128,
    tieWordEmbeddings: false,
  }),
};

/** Parameters of a shape, as the native parameter table lays them out. */
function paramCount(c: NativeModelConfig): number {
  const C = c.hiddenSize,
    Q = c.numHeads * c.headDim,
    KV = c.numKvHeads * c.headDim,
    I = c.intermediateSize;
  const layer = 2 * C + C * Q + 2 * C * KV + Q * C + 3 * C * I + (c.qkvBias ? Q + 2 * KV : 0);
  return c.vocabSize * C * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + C;
}

/** Adapter parameters of LoRA rank r on every linear layer. */
function loraCount(c: NativeModelConfig, r: number): number {
  const C = c.hiddenSize,
    Q = c.numHeads * c.headDim,
    KV = c.numKvHeads * c.headDim,
    I = c.intermediateSize;
  const perLayer = r * (C + Q) * 2 + r * (C + KV) * 2 + r * (C + I) * 2 + r * (I + C);
  return c.numLayers * perLayer;
}

/**
 * Activation bytes of one micro-batch of n tokens (fp32), following the native layout: per layer the
 * residuals, q/k/v, attention output, gate and up kept for the backward; shared scratch; the logits (all at
 * once in full training, in chunks of 128 positions with a frozen head).
 */
function activationBytes(c: NativeModelConfig, n: number, full: boolean, r: number): number {
  const C = c.hiddenSize,
    Q = c.numHeads * c.headDim,
    KV = c.numKvHeads * c.headDim,
    I = c.intermediateSize;
  const perLayer = n * (2 * C + 2 * Q + 2 * KV + 2 * I + 2 + c.numHeads) + (full ? 0 : 7 * n * r);
  const shared = n * (5 * C + 2 * Q + 2 * KV + 3 * I) + n * (3 * C + 1);
  const head = full ? n * c.vocabSize : 128 * c.vocabSize;
  return 4 * (c.numLayers * perLayer + shared + head + n);
}

function onPaper(name: string, full: boolean): Record<string, unknown> {
  const c = SHAPES[name]!;
  const p = paramCount(c);
  const a = full ? 0 : loraCount(c, 16);
  const weights = full ? 4 * p : 2 * p + 4 * a;
  const training = full ? 12 * p : 12 * a;
  const acts = activationBytes(c, SEQ, full, 16);
  const total = weights + training + acts;
  return {
    case: `${name}-${full ? "full" : "lora16"}`,
    params: p,
    bytes: { weights, grads_and_moments: training, activations: acts, total },
    fits_24gib: total <= BUDGET_BYTES,
  };
}

/** One 512-token row of byte ids (the byte tokenizer's range), the next byte as the target. */
function row(): Parameters<NativeModel["forwardBackward"]>[0] {
  const text = Buffer.from("ringtune fine-tunes decoder-only language models on a cluster. ".repeat(20));
  const ids = Int32Array.from({ length: SEQ }, (_, i) => text[i % text.length]!);
  const labels = Int32Array.from({ length: SEQ }, (_, i) => (i + 1 < SEQ ? ids[i + 1]! : -100));
  return {
    rows: 1,
    seqLen: SEQ,
    inputIds: ids,
    labels,
    positionIds: Int32Array.from({ length: SEQ }, (_, i) => i),
    segmentIds: new Int32Array(SEQ),
  };
}

async function runCase(name: string, method: "full" | "lora", steps: number): Promise<Record<string, unknown>> {
  const addon = loadAddon();
  const t0 = performance.now();
  // LoRA's base is created in bf16, as a worker creates it: no fp32 copy of it at any point.
  const model = await addon.createModelAsync(SHAPES[name]!, { baseBf16: method === "lora" });
  await model.initRandom(1, 0.02);
  const initMs = performance.now() - t0;
  if (method === "lora")
    await model.enableLoraAsync({
      rank: 16,
      alpha: 16,
      dropout: 0,
      targets: [...LORA_TARGETS],
      rslora: false,
      seed: 1,
      baseBf16: true,
    });
  await model.prepareTraining();
  const readyMs = performance.now() - t0;
  const batch = row();
  const stepMs: number[] = [];
  let loss = NaN;
  for (let s = 0; s < steps; s++) {
    const b = performance.now();
    loss = (await model.forwardBackward(batch, { backward: true, zeroGrads: true })).loss;
    await model.adamwStep({ lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
    stepMs.push(performance.now() - b);
  }
  const last = stepMs.at(-1)!;
  return {
    case: `${name}-${method === "full" ? "full" : "lora16"}`,
    params: model.params().reduce((n, p) => n + p.size, 0),
    init_ms: Math.round(initMs),
    ready_ms: Math.round(readyMs),
    ready_over_init: +(readyMs / initMs).toFixed(2),
    first_step_ms: Math.round(stepMs[0]!),
    step_ms: Math.round(last),
    tokens_per_s: +((SEQ * 1000) / last).toFixed(1),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    memory: model.memory(),
    loss: +loss.toFixed(4),
  };
}

const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (k: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : undefined);
  const steps = Number(arg("--steps") ?? 2);
  const one = arg("--case");
  if (one) {
    const [name, method] = one.split("-") as [string, "full" | "lora"];
    console.log(JSON.stringify(await runCase(name, method, steps)));
    return;
  }
  console.log(
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${gib(os.totalmem())} RAM, load ${os.loadavg()[0]!.toFixed(1)}, node ${process.version}`,
  );
  // 1.5B full training needs 16 bytes per parameter before activations: more than the budget, so LoRA only.
  const full15 = onPaper("1.5b", true);
  const cases = (arg("--cases") ?? "0.5b-lora,0.5b-full,1.5b-lora").split(",");
  const results: Record<string, unknown>[] = [];
  const me = fileURLToPath(import.meta.url);
  for (const c of cases) {
    const r = spawnSync(process.execPath, [me, "--case", c, "--steps", String(steps)], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    const line = r.stdout.trim().split("\n").at(-1) ?? "";
    if (r.status !== 0 || !line.startsWith("{")) {
      console.log(`${c}: failed (${r.signal ?? r.status}): ${r.stderr.trim().split("\n").at(-1) ?? ""}`);
      results.push({ case: c, failed: r.signal ?? r.status });
      continue;
    }
    const x = JSON.parse(line) as Record<string, number> & { case: string };
    console.log(
      `${x.case}: ${x.params} params; init ${x.init_ms} ms, ready for step 1 after ${x.ready_ms} ms ` +
        `(${x.ready_over_init}x init); first step ${x.first_step_ms} ms, step ${x.step_ms} ms, ` +
        `${x.tokens_per_s} tokens/s; peak RSS ${gib(x.peak_rss_bytes)}`,
    );
    results.push(x);
  }
  console.log(`1.5b-full on paper: ${gib((full15.bytes as { total: number }).total)}: over 24 GiB, so LoRA only`);
  const paper = [onPaper("7b", true), onPaper("7b", false)];
  for (const p of paper)
    console.log(
      `${p.case as string} on paper: ${gib((p.bytes as { total: number }).total)} (${p.params as number} params)`,
    );
  console.log(JSON.stringify({ bench: "real_sizes", seq_len: SEQ, steps, results, on_paper: [full15, ...paper] }));
}

await main();
