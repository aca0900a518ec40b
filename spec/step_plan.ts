// Which rows each optimizer step trains on, and which of them each rank gets.
//
// Rows are consumed in a sequence of epochs, each a seeded shuffle of the training rows; step s takes the
// next rowsPerStep of that sequence. The data position is therefore a function of (seed, step): a resumed
// run continues exactly where the checkpoint stopped.
import { makeRng, shuffleInPlace, subSeed } from "./rng.js";
import type { JobSpec } from "./job_spec.js";
import { minWorkers } from "./workers_spec.js";

export interface StepPlan {
  rowsPerStep: number;
  stepsPerEpoch: number;
  totalSteps: number;
}

/** Rows of one optimizer step over all workers. */
export function rowsPerStepOf(
  spec: Pick<JobSpec, "global_batch_rows" | "global_batch_tokens" | "seq_len" | "micro_batch_rows" | "workers">,
): number {
  return (
    spec.global_batch_rows ??
    (spec.global_batch_tokens !== undefined
      ? Math.max(1, Math.round(spec.global_batch_tokens / spec.seq_len))
      : spec.micro_batch_rows * minWorkers(spec))
  );
}

export function planSteps(spec: JobSpec, trainRows: number): StepPlan {
  if (trainRows === 0)
    throw new Error("the job has no training rows: every record was dropped (see `ringtune data check`)");
  const rowsPerStep = rowsPerStepOf(spec);
  const stepsPerEpoch = Math.max(1, Math.ceil(trainRows / rowsPerStep));
  const byEpochs = Math.max(1, Math.ceil((spec.epochs ?? 1) * stepsPerEpoch));
  const totalSteps =
    spec.max_steps !== undefined
      ? spec.epochs !== undefined
        ? Math.min(spec.max_steps, byEpochs)
        : spec.max_steps
      : byEpochs;
  return { rowsPerStep, stepsPerEpoch, totalSteps };
}

/** The training-row indices of 1-based step `step`. */
export class DataOrder {
  private readonly epochs = new Map<number, number[]>();
  constructor(
    private readonly rowCount: number,
    private readonly seed: number,
  ) {}

  rowsOfStep(step: number, rowsPerStep: number): number[] {
    const out: number[] = [];
    for (let p = (step - 1) * rowsPerStep; p < step * rowsPerStep; p++) {
      const epoch = Math.floor(p / this.rowCount);
      out.push(this.order(epoch)[p % this.rowCount]!);
    }
    return out;
  }

  private order(epoch: number): number[] {
    let o = this.epochs.get(epoch);
    if (!o) {
      o = Array.from({ length: this.rowCount }, (_, i) => i);
      shuffleInPlace(o, makeRng(subSeed(this.seed, `epoch-${epoch}`)));
      this.epochs.clear(); // only the current epoch is ever needed again
      this.epochs.set(epoch, o);
    }
    return o;
  }
}

/** Rank r's share of n items: a contiguous slice, sizes differing by at most one. */
export function shardRange(n: number, rank: number, size: number): [number, number] {
  return [Math.floor((rank * n) / size), Math.floor(((rank + 1) * n) / size)];
}
