// Real model sizes on this machine: Qwen2.5-0.5B and 1.5B shapes (random init, byte-tokenizer ids, one
// 512-token row), full training and LoRA rank 16 on a bf16 base. Per case:
//   init_ms            allocate + random init of the weights alone: the baseline
//   ready_ms           until the first step can start (that, plus LoRA's switch and the training state)
//   first_step_ms, step_ms   the first step and a later one (the steady step time of one 512-token row)
//   startup_ms         ready_ms plus what the first step took beyond a steady one: gradients, moments and
//                      activations are fresh pages backed on first write, so part of their cost lands there
//   ready_over_init, startup_over_init   the ratios against the baseline (target: at most 2)
//   tokens_per_s, peak RSS, and the memory estimate the coordinator would make for the same job.
// Each case runs in its own process so the peak is its own. 7B is on paper, from the coordinator's estimate.
// Run: make bench-sizes   (or: node dist/bench/real_sizes.js [--steps N] [--cases 0.5b-full,1.5b-lora])
import { spawnSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { loadAddon, type NativeModel } from "../native/js/addon.js";
import { LORA_TARGETS } from "../spec/training_spec.js";
import { estimateMemory, type MemoryEstimate } from "../spec/memory_estimate.js";
import { qwenShape, type QwenSize } from "./model_shapes.js";

const GiB = 1024 ** 3;
const SEQ = 512;
const RANK = 16;
/** What one worker may hold: the budget for this machine. */
const BUDGET_BYTES = 24 * GiB;

type Method = "full" | "lora";

/** The coordinator's estimate for one rank training one SEQ-token row of a shape. */
function estimate(size: QwenSize, method: Method): MemoryEstimate {
  return estimateMemory(qwenShape(size), {
    method,
    lora: method === "lora" ? { rank: RANK, targets: [...LORA_TARGETS], dropout: 0, basePrecision: "bf16" } : undefined,
    seqLen: SEQ,
    microBatchRows: [1],
    evaluates: false,
    threads: os.cpus().length,
  });
}

function onPaper(size: QwenSize, method: Method): Record<string, unknown> {
  const e = estimate(size, method);
  return {
    case: `${size}-${method === "full" ? "full" : "lora16"}`,
    params: e.baseParams,
    trainable: e.trainableParams,
    bytes: { weights: e.params, grads: e.grads, moments: e.optimizer, activations: e.activations, total: e.total },
    fits_24gib: e.total <= BUDGET_BYTES,
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

async function runCase(size: QwenSize, method: Method, steps: number): Promise<Record<string, unknown>> {
  const addon = loadAddon();
  const t0 = performance.now();
  // LoRA's base is created in bf16, as a worker creates it: no fp32 copy of it at any point.
  const model = await addon.createModelAsync(qwenShape(size), { baseBf16: method === "lora" });
  await model.initRandom(1, 0.02);
  const initMs = performance.now() - t0;
  if (method === "lora")
    await model.enableLoraAsync({
      rank: RANK,
      alpha: RANK,
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
  // With one step there is no steady step to tell the first one's extra cost from: all of it counts.
  const firstExtra = steps > 1 ? Math.max(0, stepMs[0]! - last) : stepMs[0]!;
  const startupMs = readyMs + firstExtra;
  const expected = estimate(size, method);
  return {
    case: `${size}-${method === "full" ? "full" : "lora16"}`,
    params: model.params().reduce((n, p) => n + p.size, 0),
    init_ms: Math.round(initMs),
    ready_ms: Math.round(readyMs),
    ready_over_init: +(readyMs / initMs).toFixed(2),
    first_step_ms: Math.round(stepMs[0]!),
    step_ms: Math.round(last),
    startup_ms: Math.round(startupMs),
    startup_over_init: +(startupMs / initMs).toFixed(2),
    tokens_per_s: +((SEQ * 1000) / last).toFixed(1),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    estimate_bytes: expected.total,
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
    const [size, method] = one.split("-") as [QwenSize, Method];
    console.log(JSON.stringify(await runCase(size, method, steps)));
    return;
  }
  const loadAtStart = os.loadavg()[0]!;
  console.log(
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${gib(os.totalmem())} RAM, load ${loadAtStart.toFixed(1)}, node ${process.version}`,
  );
  // 1.5B full training needs 16 bytes per parameter before activations: more than the budget, so LoRA only.
  const full15 = onPaper("1.5b", "full");
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
        `(${x.ready_over_init}x init), startup with step 1's first touch ${x.startup_ms} ms (${x.startup_over_init}x); ` +
        `first step ${x.first_step_ms} ms, step ${x.step_ms} ms, ${x.tokens_per_s} tokens/s; ` +
        `peak RSS ${gib(x.peak_rss_bytes)} (estimate ${gib(x.estimate_bytes)})`,
    );
    results.push(x);
  }
  console.log(`1.5b-full on paper: ${gib((full15.bytes as { total: number }).total)}: over 24 GiB, so LoRA only`);
  const paper = [onPaper("7b", "full"), onPaper("7b", "lora")];
  for (const p of paper)
    console.log(
      `${p.case as string} on paper: ${gib((p.bytes as { total: number }).total)} (${p.params as number} params)`,
    );
  console.log(
    JSON.stringify({
      bench: "real_sizes",
      seq_len: SEQ,
      steps,
      load_average: { start: +loadAtStart.toFixed(2), end: +os.loadavg()[0]!.toFixed(2) },
      results,
      on_paper: [full15, ...paper],
    }),
  );
}

await main();
