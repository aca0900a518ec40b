// The reference of a preference job trained without adapters to switch off (full or hybrid; sigmoid or
// ipo): before the first step, the ring's workers, holding the initial weights, compute every pair's
// summed log-probabilities of both answers, train and validation rows alike, a chunk of rows at a time
// shared out like a step's. The result is stored with the data cache entry; a later start (a resume, a
// requeue, another job on the same data and model) reads it back and skips the pass.
import path from "node:path";
import { countPairs } from "../../data/preference/pack_pairs.js";
import type { RowTable } from "../../data/rows/token_cache.js";
import {
  readReference,
  referenceName,
  referenceModelKey,
  SplitReferenceBuilder,
  type PairReference,
} from "../../data/preference/reference_store.js";
import type { PreparedDataset } from "../../data/streamed_pipeline.js";
import { needsReference } from "../../proto/mod.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { preferenceSettings } from "../../spec/preference_spec.js";
import { shardRange } from "../../spec/step_plan.js";
import { rankBatch } from "./rank_batch.js";
import type { Ring } from "./ring.js";

/** Whether the job's loss needs a reference that adapters switched off cannot give. */
export function needsStoredReference(spec: JobSpec): boolean {
  return spec.stage === "dpo" && needsReference(preferenceSettings(spec).loss) && spec.method !== "lora";
}

/**
 * Where the job's reference is stored: its data cache entry, named by the model it starts from; the path
 * reaches the file through the held entry (a link swapped in for a folder on the way cannot redirect it).
 */
export function storedReferenceFile(spec: JobSpec, data: PreparedDataset): string {
  return data.entry.path(referenceName(referenceModelKey(spec.model)));
}

export function loadStoredReference(file: string, data: PreparedDataset): PairReference | undefined {
  return readReference(data.entry, path.basename(file), data.train.length, data.val.length);
}

export interface ReferencePassOptions {
  ring: Ring;
  job: string;
  spec: JobSpec;
  data: PreparedDataset;
  /** rows per chunk sent to the ring at once */
  chunkRows: number;
  /** after each chunk: pairs done of all (0: unknown); throws to stop the pass (a cancel) */
  onChunk(done: number, total: number): Promise<void>;
}

/** The pass over both splits on the ring (its workers must hold the initial weights). */
export async function computeReference(o: ReferencePassOptions): Promise<PairReference> {
  const counts = (o.data.stats as { pairs?: { train: number; val: number } }).pairs;
  const total = counts ? counts.train + counts.val : 0;
  let done = 0;
  const split = async (rows: RowTable): Promise<SplitReferenceBuilder> => {
    const built = new SplitReferenceBuilder();
    for (let from = 0; from < rows.length; from += o.chunkRows) {
      const chunk = rows.slice(from, Math.min(from + o.chunkRows, rows.length));
      const replies = await o.ring.all((rank) =>
        o.ring.send(rank, "eval", {
          job: o.job,
          batch: rankBatch(chunk, rank, {
            ringSize: o.ring.size,
            sequenceParallel: 1,
            padId: o.data.setup.tokenizer.padId,
            seqLen: o.spec.seq_len,
          }),
          micro_batch_rows: o.spec.micro_batch_rows,
          pair_logps: true,
        }),
      );
      const pairs = chunk.map((r) => countPairs([r]));
      built.add(
        pairs,
        replies.flatMap((r) => r.pair_logps ?? []),
      );
      done += pairs.reduce((a, b) => a + b, 0);
      await o.onChunk(done, total);
    }
    return built;
  };
  const train = await split(o.data.train);
  const val = await split(o.data.val);
  return { train: train.build(), val: val.build() };
}

/** A rank's share of `rows` (the indices of a step's rows, or of all validation rows) as reference log-probs. */
export function rankReference(
  ref: PairReference["train"],
  rows: readonly number[],
  rank: number,
  ringSize: number,
): number[] {
  const [a, b] = shardRange(rows.length, rank, ringSize);
  return ref.ofRows(rows.slice(a, b));
}
