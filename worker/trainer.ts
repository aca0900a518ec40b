// One job on one worker: the micro-batch loop of a training step with the gradient all-reduce overlapped
// with the backward, the AdamW step, and forward-only evaluation.
import { loadAddon, type AdamWOptions, type NativeBatch, type NativeModel } from "../native/js/addon.js";
import {
  addTokenLosses,
  sliceTokenBatch,
  type PreferenceSettings,
  type PrefSums,
  type TaskSums,
  type TokenBatch,
} from "../proto/mod.js";
import { pairLogps, pairStep } from "./preference/pair_step.js";
import { allReduceTag, ringAllReduce, ringReduceScatter, type NcclDataPlane, type Transport } from "./allreduce/mod.js";
import { trainingStateChecksum } from "./checksum.js";
import type { SequenceGroup } from "./sequence_parallel/group_link.js";
import { allGatherBuckets, applyZeroShard, globalGradNorm } from "./zero_shard.js";

/** AdamW's settings for the whole job; the learning rate comes with each step. */
export type OptimizerSettings = Omit<AdamWOptions, "lr">;

export interface StepRequest {
  step: number;
  lr: number;
  lossScale: number;
  microBatchRows: number;
  batch: TokenBatch;
  checksum: boolean;
  /** preference training without adapters to switch off: the reference's log-probabilities of the batch's pairs */
  refLogps?: number[];
}

export interface StepOutcome {
  /** SFT: the target tokens' loss sum and count; preference training: the pairs' loss sum and count */
  lossSum: number;
  targets: number;
  taskSums: TaskSums;
  /** preference training: the pairs' metrics by task */
  prefSums?: PrefSums;
  gradNorm: number;
  checksum?: string;
  computeMs: number;
  /** time spent after the last backward waiting for all-reduces to finish */
  commWaitMs: number;
  /** gradient bytes this rank sent around the ring: a ring all-reduce sends 2(n-1)/n of the buffer */
  allReduceBytes: number;
}

/** SFT: target tokens' loss sum and count; preference training: the pairs' (and their metrics). */
export interface Evaluation {
  lossSum: number;
  targets: number;
  taskSums: TaskSums;
  prefSums?: PrefSums;
}

interface MicroBatch {
  batch: NativeBatch;
  tokenTask: Int32Array;
}

/** The batch split into micro-batches of at most `per` rows, as views (no copies). */
export function microBatches(batch: TokenBatch, per: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  for (let from = 0; from < batch.row_count; from += per)
    out.push(sliceTokenBatch(batch, from, Math.min(from + per, batch.row_count)));
  return out;
}

export interface TrainerOptions {
  /** ZeRO stage 1: AdamW moments sharded over the ring (effective with more than one rank) */
  zero?: number;
  /** preference training (stage dpo): batches hold pairs, the step's loss is the preference loss */
  preference?: PreferenceSettings;
  /**
   * The data plane of an all-GPU ring: the step hands each final gradient bucket to NCCL on the device. Absent:
   * each bucket is staged in host memory and summed over `transport` (the TCP or NATS ring).
   */
  nccl?: NcclDataPlane;
}

function ringAllReduceBytes(buckets: readonly (readonly [number, number])[], ranks: number): number {
  const floats = buckets.reduce((n, [, size]) => n + size, 0);
  return Math.round((floats * Float32Array.BYTES_PER_ELEMENT * 2 * (ranks - 1)) / ranks);
}

/** A reference that names more pairs than the batch holds was sent for other rows: never train on it. */
function checkAllUsed(reference: { logps: ArrayLike<number>; offset: number } | undefined): void {
  if (reference && reference.offset !== reference.logps.length)
    throw new Error(
      `the reference has ${reference.logps.length} log-probabilities; the batch's pairs used ${reference.offset}`,
    );
}

export class Trainer {
  /** whether this rank keeps only its shard of the AdamW moments */
  readonly sharded: boolean;
  /** stops the native step at its next layer (see interrupt) */
  private readonly cancelToken = loadAddon().createCancelToken();
  /** why the trainer was interrupted: the error every later call fails with */
  private interruption: Error | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly model: NativeModel,
    private readonly transport: Transport,
    private readonly opt: OptimizerSettings,
    /** sequence parallelism: batches hold this rank's zigzag share of each row of its group */
    private readonly group?: SequenceGroup,
    options: TrainerOptions = {},
  ) {
    this.sharded = (options.zero ?? 0) >= 1 && transport.size > 1;
    this.preference = options.preference;
    // Preference steps run two forwards per pair and hand buckets over through pairStep: host staging there.
    this.nccl = transport.size > 1 && !options.preference ? options.nccl : undefined;
  }

  private readonly nccl: NcclDataPlane | undefined;

  /** which data plane the gradients use: "nccl", or the ring's transport with host staging */
  get dataPlane(): string {
    return this.nccl ? "nccl" : `${this.transport.kind} (host staging)`;
  }

  private readonly preference: PreferenceSettings | undefined;

  get rank(): number {
    return this.transport.rank;
  }

  /** The ring, for collectives outside a step (a ZeRO-1 checkpoint gathers the moments over it). */
  get ring(): Transport {
    return this.transport;
  }

  private get sequenceParallel() {
    return this.group?.option;
  }

  /** how the sequence-parallel group's blocks travel ("nccl" or "tcp"); undefined without a group */
  get sequenceDataPlane(): string | undefined {
    return this.group?.dataPlane;
  }

  /**
   * Stops the work in progress as soon as it can: the native step at its next layer, every all-reduce wait at
   * once (the ring is closed). The trainer is spent afterwards: a closed ring does not reopen. The call in
   * progress still settles only once its native work has ended: await it before starting other native work.
   */
  interrupt(why: Error): Promise<void> {
    this.interruption ??= why;
    this.cancelToken.cancel();
    return this.close();
  }

  /** A step or evaluation; once the trainer is interrupted, fails with the interruption's reason. */
  private async interruptible<T>(work: () => Promise<T>): Promise<T> {
    if (this.interruption) throw this.interruption;
    try {
      return await work();
    } catch (err) {
      // The native "cancelled" or a closed transport are consequences: the reason is what the caller needs.
      throw this.interruption ?? err;
    }
  }

  trainStep(req: StepRequest): Promise<StepOutcome> {
    return this.interruptible(() => this.runStep(req));
  }

  private async runStep(req: StepRequest): Promise<StepOutcome> {
    const t0 = performance.now();
    const model = this.model;
    // Both change when LoRA is switched on (hybrid), so they are read per step; so does the ZeRO-1 shard.
    if (this.sharded) applyZeroShard(model, this.transport.rank, this.transport.size);
    const grads = model.gradData();
    const buckets = model.gradBucketRanges();
    const reductions: Promise<void>[] = [];
    let reported = 0;
    let allReported: () => void = () => {};
    const everyBucket = new Promise<void>((resolve) => (allReported = resolve));
    const reduce = (offset: number, size: number) => {
      // ZeRO-1 needs only this rank's piece of each bucket summed: half the traffic of an all-reduce.
      const collective = this.sharded ? ringReduceScatter : ringAllReduce;
      const p = collective(this.transport, grads.subarray(offset, offset + size), allReduceTag(req.step, reported));
      // Observed below through Promise.all; meanwhile a failed all-reduce (a silent peer) stops the backward
      // too, rather than letting it compute gradients nobody will sum.
      p.catch((err: Error) => this.interrupt(err).catch(() => {}));
      reductions.push(p);
      if (++reported === buckets.length) allReported();
    };
    const parts = microBatches(req.batch, req.microBatchRows);
    const distributed = this.transport.size > 1;
    const taskSums: TaskSums = {};
    let lossSum = 0;
    let targets = 0;
    if (parts.length === 0) await model.zeroGrad(); // a rank without rows this step: nothing else clears them
    const nccl = this.nccl;
    if (parts.length === 0 && distributed) {
      // no rows: zero gradients
      if (nccl) await nccl.reduceBuckets(model, buckets, this.sharded);
      else for (const [o, n] of buckets) reduce(o, n);
    }
    const prefSums: PrefSums | undefined = this.preference && {};
    const reference = req.refLogps && { logps: req.refLogps, offset: 0 };
    for (const [i, mb] of parts.entries()) {
      // Only the last micro-batch's backward completes the gradient, so only it overlaps the all-reduce.
      const overlap = distributed && i === parts.length - 1;
      const ncclBuckets = overlap && nccl ? nccl.bucketsOption(this.sharded) : undefined;
      if (this.preference && prefSums) {
        const r = await pairStep(
          model,
          mb,
          req.batch.tasks,
          {
            settings: this.preference,
            lossScale: req.lossScale,
            backward: true,
            zeroGrads: i === 0,
            onGradsReady: overlap && !nccl ? reduce : undefined,
            cancel: this.cancelToken,
            reference,
          },
          taskSums,
          prefSums,
        );
        if (reference) reference.offset += 2 * r.pairs;
        lossSum += r.lossSum;
        targets += r.pairs;
        continue;
      }
      const r = await model.forwardBackward(mb.batch, {
        backward: true,
        lossScale: req.lossScale,
        onGradsReady: overlap && !nccl ? reduce : undefined,
        ncclBuckets,
        zeroGrads: i === 0,
        sequenceParallel: this.sequenceParallel,
        cancel: this.cancelToken,
      });
      lossSum += r.lossSum;
      targets += r.targets;
      addTokenLosses(taskSums, model.tokenLosses(), mb.batch.labels, mb.tokenTask, req.batch.tasks);
    }
    checkAllUsed(reference);
    const computeDone = performance.now();
    if (distributed && !nccl) {
      await everyBucket;
      await Promise.all(reductions);
    }
    let commDone = performance.now();
    let gradNorm: number;
    if (this.sharded) {
      const norm = await globalGradNorm(this.transport, model.gradSumOfSquares(), `s${req.step}-norm`);
      commDone = performance.now();
      ({ gradNorm } = await model.adamwStep({ ...this.opt, lr: req.lr, gradNorm: norm }));
      if (nccl) {
        await nccl.allGatherWeights(model, buckets);
      } else {
        const weights = model.loraSettings() ? model.loraData() : model.paramData();
        await allGatherBuckets(this.transport, weights, buckets, (i) => `s${req.step}-w${i}`);
      }
    } else {
      ({ gradNorm } = await model.adamwStep({ ...this.opt, lr: req.lr }));
    }
    return {
      lossSum,
      targets,
      taskSums,
      prefSums,
      gradNorm,
      checksum: req.checksum ? await trainingStateChecksum(model) : undefined,
      computeMs: computeDone - t0,
      commWaitMs: commDone - computeDone,
      allReduceBytes: distributed ? ringAllReduceBytes(buckets, this.transport.size) : 0,
    };
  }

  evaluate(batch: TokenBatch, microBatchRows: number, refLogps?: number[]): Promise<Evaluation> {
    return this.interruptible(() => this.runEvaluation(batch, microBatchRows, refLogps));
  }

  /** The model's own log-probabilities of the batch's pairs, in batch order: the reference pass of a job. */
  pairLogps(batch: TokenBatch, microBatchRows: number): Promise<number[]> {
    return this.interruptible(async () => {
      const out: number[] = [];
      for (const mb of microBatches(batch, microBatchRows))
        out.push(...(await pairLogps(this.model, mb, this.cancelToken)));
      return out;
    });
  }

  private async runEvaluation(batch: TokenBatch, microBatchRows: number, refLogps?: number[]): Promise<Evaluation> {
    const taskSums: TaskSums = {};
    let lossSum = 0;
    let targets = 0;
    if (this.preference) {
      const prefSums: PrefSums = {};
      const reference = refLogps && { logps: refLogps, offset: 0 };
      for (const mb of microBatches(batch, microBatchRows)) {
        const r = await pairStep(
          this.model,
          mb,
          batch.tasks,
          { settings: this.preference, lossScale: 0, backward: false, cancel: this.cancelToken, reference },
          taskSums,
          prefSums,
        );
        if (reference) reference.offset += 2 * r.pairs;
        lossSum += r.lossSum;
        targets += r.pairs;
      }
      checkAllUsed(reference);
      return { lossSum, targets, taskSums, prefSums };
    }
    for (const mb of microBatches(batch, microBatchRows)) {
      const r = await this.model.forwardBackward(mb.batch, {
        backward: false,
        sequenceParallel: this.sequenceParallel,
        cancel: this.cancelToken,
      });
      lossSum += r.lossSum;
      targets += r.targets;
      addTokenLosses(taskSums, this.model.tokenLosses(), mb.batch.labels, mb.tokenTask, batch.tasks);
    }
    return { lossSum, targets, taskSums };
  }

  /** Closes the ring's links (once): waits on them fail, the sequence-parallel link's transfers too. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // First: a collective blocked on a dead or silent peer ends now, failing the step that waits on it.
      this.nccl?.abort();
      this.group?.close();
      await this.transport.close();
    })();
    return this.closing;
  }
}
