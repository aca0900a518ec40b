// A single-process trainer for the `make demo` job (examples/demo/job.yaml): the same data, model,
// schedule and generation eval as the cluster, in one process. Used to tune the demo and as a local
// baseline for the cluster's numbers.
//
//   OMP_NUM_THREADS=1 node dist/bench/demo_tune.js [--spec examples/demo/job.yaml] [--steps N] [--lr X]
//       [--rows N] [--share F] [--eval-limit N] [--no-eval] [--quiet]
//
// --share 0.5 computes only half of each step's rows (one of two workers: its step time, not the
// update's quality). With OMP_NUM_THREADS=1 that is about one CPU worker's compute per step.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildDataset } from "../coordinator/data/pipeline.js";
import { rowsToBatch, type Row } from "../coordinator/data/row.js";
import type { TextSetup } from "../coordinator/data/setup.js";
import { formatGenerationEval } from "../cli/format_generation_eval.js";
import { evalStopIds, loadEvalPrompts, scoreGenerations } from "../coordinator/eval/generation_eval.js";
import type { GenerationEvalReport } from "../proto/mod.js";
import { loadSpec } from "../coordinator/job_spec/load.js";
import type { JobSpec } from "../coordinator/job_spec/job_spec.js";
import type { NativeModel } from "../native/js/addon.js";
import { generateGreedy } from "../native/js/greedy_generation.js";
import { readHfConfig } from "../native/js/hf_config.js";
import { initModel } from "../native/js/hf_model.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface TuneOptions {
  spec: JobSpec;
  /** overrides of the spec's training keys */
  steps?: number;
  lr?: number;
  rows?: number;
  /** share of each step's rows actually computed (timing one of several workers) */
  share?: number;
  /** use only the first N training rows (tests) */
  trainRows?: number;
  /** 0: no generation eval */
  evalLimit?: number;
  eval?: boolean;
  log?: (line: string) => void;
}

export interface TuneResult {
  losses: number[];
  valLoss: number | null;
  stepMs: number[];
  before: GenerationEvalReport | null;
  after: GenerationEvalReport | null;
  evalMs: { before: number; after: number };
}

/** lr at step s (0-based) of n: linear warmup from 0, then cosine/linear decay to min_lr, or constant. */
export function lrAt(spec: JobSpec, s: number, n: number): number {
  const warm = spec.warmup_steps ?? Math.round((spec.warmup_ratio ?? 0) * n);
  if (s < warm) return (spec.lr * (s + 1)) / warm;
  if (spec.schedule === "constant") return spec.lr;
  const t = n - warm <= 1 ? 1 : (s - warm) / (n - warm - 1);
  const f = spec.schedule === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * t)) : 1 - t;
  return spec.min_lr + (spec.lr - spec.min_lr) * f;
}

const countTargets = (rows: Row[]) =>
  rows.reduce((a, r) => a + r.labels.reduce((k, l) => k + (l !== -100 ? 1 : 0), 0), 0);

async function meanLoss(model: NativeModel, rows: Row[], micro: number, padId: number): Promise<number> {
  let sum = 0,
    n = 0;
  for (let i = 0; i < rows.length; i += micro) {
    const r = await model.forwardBackward(rowsToBatch(rows.slice(i, i + micro), padId), { backward: false });
    sum += r.lossSum;
    n += r.targets;
  }
  return n ? sum / n : NaN;
}

async function generationEval(
  model: NativeModel,
  spec: JobSpec,
  setup: TextSetup,
  limit?: number,
): Promise<GenerationEvalReport> {
  const ge = spec.generation_eval!;
  const prompts = loadEvalPrompts({ generation_eval: { ...ge, limit: limit ?? ge.limit } }, setup);
  const outputs = await generateGreedy(
    model,
    prompts.map((p) => p.ids),
    ge.max_new_tokens,
    evalStopIds(setup),
  );
  return scoreGenerations(prompts, outputs, setup, { maxNewTokens: ge.max_new_tokens });
}

export async function tune(o: TuneOptions): Promise<TuneResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const spec = o.spec;
  if (!spec.model.init) throw new Error("demo_tune trains from an init config (model.init)");
  const data = buildDataset(spec, { quiet: true });
  const setup = data.setup;
  const train = o.trainRows ? data.train.slice(0, o.trainRows) : data.train;
  const config = await readHfConfig(spec.model.init.config);
  const model = await initModel(config, spec.model.init.seed);
  const rowsPerStep =
    o.rows ??
    spec.global_batch_rows ??
    Math.max(1, Math.round((spec.global_batch_tokens ?? 8 * spec.seq_len) / spec.seq_len));
  const epochSteps = Math.floor(train.length / rowsPerStep);
  const steps = o.steps ?? spec.max_steps ?? Math.ceil((spec.epochs ?? 1) * epochSteps);
  const micro = spec.micro_batch_rows;
  const computed = Math.max(1, Math.round(rowsPerStep * (o.share ?? 1)));
  const doEval = (o.eval ?? true) && spec.generation_eval !== undefined && o.evalLimit !== 0;
  log(
    `demo_tune: ${train.length} train rows, ${data.val.length} val rows, ${rowsPerStep} rows/step (${computed} computed), ${steps} steps (${(steps / Math.max(1, epochSteps)).toFixed(2)} epochs), micro ${micro}, lr ${spec.lr}, threads ${process.env.OMP_NUM_THREADS ?? "default"}`,
  );
  const res: TuneResult = {
    losses: [],
    valLoss: null,
    stepMs: [],
    before: null,
    after: null,
    evalMs: { before: 0, after: 0 },
  };

  if (doEval) {
    const t = Date.now();
    res.before = await generationEval(model, spec, setup, o.evalLimit);
    res.evalMs.before = Date.now() - t;
    log(`generation eval before: ${res.evalMs.before} ms`);
  }
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    const start = (s * rowsPerStep) % Math.max(1, train.length - rowsPerStep + 1);
    const rows = train.slice(start, start + rowsPerStep);
    const targets = countTargets(rows);
    model.zeroGrad();
    let lossSum = 0;
    const mine = rows.slice(0, computed);
    for (let i = 0; i < mine.length; i += micro) {
      const r = await model.forwardBackward(rowsToBatch(mine.slice(i, i + micro), setup.tokenizer.padId), {
        backward: true,
        lossScale: 1 / targets,
      });
      lossSum += r.lossSum;
    }
    const lr = lrAt(spec, s, steps);
    const { gradNorm } = await model.adamwStep({
      lr,
      beta1: spec.betas[0],
      beta2: spec.betas[1],
      eps: spec.eps,
      weightDecay: spec.weight_decay,
      maxGradNorm: spec.grad_clip,
    });
    const loss = lossSum / countTargets(mine);
    res.losses.push(loss);
    res.stepMs.push(performance.now() - t0);
    if (s % 20 === 0 || s === steps - 1)
      log(
        `step ${s + 1}/${steps} loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} gnorm ${gradNorm.toFixed(3)} ${res.stepMs[s].toFixed(0)} ms`,
      );
    if (spec.eval_every > 0 && (s + 1) % spec.eval_every === 0 && data.val.length && s !== steps - 1) {
      log(`  val loss ${(await meanLoss(model, data.val, micro, setup.tokenizer.padId)).toFixed(4)}`);
    }
  }
  if (data.val.length) {
    res.valLoss = await meanLoss(model, data.val, micro, setup.tokenizer.padId);
    log(`val loss ${res.valLoss.toFixed(4)}`);
  }
  if (doEval) {
    const t = Date.now();
    res.after = await generationEval(model, spec, setup, o.evalLimit);
    res.evalMs.after = Date.now() - t;
    log(`generation eval after: ${res.evalMs.after} ms`);
    log(formatGenerationEval({ before: res.before ?? undefined, after: res.after ?? undefined }));
  }
  const ms = res.stepMs.slice(Math.min(3, res.stepMs.length - 1));
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  log(
    `step time: mean ${mean.toFixed(0)} ms (after 3 warm-up steps), train total ${(res.stepMs.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s`,
  );
  return res;
}

async function main(argv: string[]): Promise<void> {
  let specFile = path.join(repoRoot, "examples/demo/job.yaml");
  const o: Partial<TuneOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === "--spec") specFile = path.resolve(argv[++i]);
    else if (a === "--steps") o.steps = num();
    else if (a === "--lr") o.lr = num();
    else if (a === "--rows") o.rows = num();
    else if (a === "--share") o.share = num();
    else if (a === "--eval-limit") o.evalLimit = num();
    else if (a === "--no-eval") o.eval = false;
    else throw new Error(`unknown argument ${a}`);
  }
  const spec = loadSpec(specFile);
  await tune({ ...o, spec: o.lr ? { ...spec, lr: o.lr, min_lr: Math.min(spec.min_lr, o.lr) } : spec });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
