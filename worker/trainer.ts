// One job on one worker: the micro-batch loop of a training step with the gradient all-reduce overlapped
// with the backward, the AdamW step, and forward-only evaluation.
import type { NativeBatch, NativeModel } from "../native/js/addon.js";
import type { Rows } from "../proto/mod.js";
import { allReduceTag, ringAllReduce, type Transport } from "./allreduce/mod.js";
import { trainingStateChecksum } from "./checksum.js";
import { addTaskSums } from "./task_sums.js";

export type TaskSums = Record<string, [number, number]>;

export interface OptimizerSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number;
}

export interface StepRequest {
  step: number;
  lr: number;
  lossScale: number;
  microBatchRows: number;
  rows: Rows;
  checksum: boolean;
}

export interface StepOutcome {
  lossSum: number;
  targets: number;
  taskSums: TaskSums;
  gradNorm: number;
  checksum?: string;
  computeMs: number;
  /** time spent after the last backward waiting for all-reduces to finish */
  commWaitMs: number;
}

interface MicroBatch {
  batch: NativeBatch;
  tokenTask: Int32Array;
}

/** Rows split into micro-batches of at most `per` rows, as views (no copies). */
export function microBatches(rows: Rows, per: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  const T = rows.seq_len;
  for (let r0 = 0; r0 < rows.rows; r0 += per) {
    const n = Math.min(per, rows.rows - r0);
    const a = r0 * T,
      b = (r0 + n) * T;
    out.push({
      batch: {
        rows: n,
        seqLen: T,
        inputIds: rows.input_ids.subarray(a, b),
        labels: rows.labels.subarray(a, b),
        positionIds: rows.position_ids.subarray(a, b),
        segmentIds: rows.segment_ids.subarray(a, b),
      },
      tokenTask: rows.token_task.subarray(a, b),
    });
  }
  return out;
}

export class Trainer {
  constructor(
    readonly model: NativeModel,
    private readonly transport: Transport,
    private readonly opt: OptimizerSettings,
  ) {}

  async trainStep(req: StepRequest): Promise<StepOutcome> {
    const t0 = performance.now();
    const model = this.model;
    // Both change when LoRA is switched on (hybrid), so they are read per step.
    const grads = model.gradData();
    const buckets = model.gradBucketRanges();
    model.zeroGrad();
    const reductions: Promise<void>[] = [];
    let reported = 0;
    let allReported: () => void = () => {};
    const everyBucket = new Promise<void>((resolve) => (allReported = resolve));
    const reduce = (offset: number, size: number) => {
      const p = ringAllReduce(this.transport, grads.subarray(offset, offset + size), allReduceTag(req.step, reported));
      p.catch(() => {}); // observed below through Promise.all; this keeps an early failure from going unhandled
      reductions.push(p);
      if (++reported === buckets.length) allReported();
    };
    const parts = microBatches(req.rows, req.microBatchRows);
    const distributed = this.transport.size > 1;
    const taskSums: TaskSums = {};
    let lossSum = 0;
    let targets = 0;
    if (parts.length === 0 && distributed) for (const [o, n] of buckets) reduce(o, n); // no rows: zero gradients
    for (const [i, mb] of parts.entries()) {
      // Only the last micro-batch's backward completes the gradient, so only it overlaps the all-reduce.
      const overlap = distributed && i === parts.length - 1;
      const r = await model.forwardBackward(mb.batch, {
        backward: true,
        lossScale: req.lossScale,
        onGradsReady: overlap ? reduce : undefined,
      });
      lossSum += r.lossSum;
      targets += r.targets;
      addTaskSums(taskSums, model.tokenLosses(), mb.batch.labels, mb.tokenTask, req.rows.tasks);
    }
    const computeDone = performance.now();
    if (distributed) {
      await everyBucket;
      await Promise.all(reductions);
    }
    const commDone = performance.now();
    const { gradNorm } = await model.adamwStep({
      lr: req.lr,
      beta1: this.opt.beta1,
      beta2: this.opt.beta2,
      eps: this.opt.eps,
      weightDecay: this.opt.weightDecay,
      maxGradNorm: this.opt.gradClip,
    });
    return {
      lossSum,
      targets,
      taskSums,
      gradNorm,
      checksum: req.checksum ? trainingStateChecksum(model) : undefined,
      computeMs: computeDone - t0,
      commWaitMs: commDone - computeDone,
    };
  }

  async evaluate(
    rows: Rows,
    microBatchRows: number,
  ): Promise<{ lossSum: number; targets: number; taskSums: TaskSums }> {
    const taskSums: TaskSums = {};
    let lossSum = 0;
    let targets = 0;
    for (const mb of microBatches(rows, microBatchRows)) {
      const r = await this.model.forwardBackward(mb.batch, { backward: false });
      lossSum += r.lossSum;
      targets += r.targets;
      addTaskSums(taskSums, this.model.tokenLosses(), mb.batch.labels, mb.tokenTask, rows.tasks);
    }
    return { lossSum, targets, taskSums };
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
