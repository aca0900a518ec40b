// A batch of token rows as it travels to a worker: the native core's NativeBatch in the wire's snake_case,
// plus each position's task index so a worker can sum losses per task_type without knowing segments.
// The two functions below are the only places where a batch's names change between wire and code.
import { z } from "zod";
import type { NativeBatch } from "../native/js/addon.js";

/** Any Int32Array, whatever buffer backs it (decoded arrays may be views into a message). */
export const I32 = z.custom<Int32Array>((v) => v instanceof Int32Array, "expected an Int32Array");

/** Arrays are row-major [row_count, seq_len]; token_task indexes `tasks` per position (-1: none, padding). */
export const TokenBatch = z
  .object({
    row_count: z.number().int().min(0),
    seq_len: z.number().int().min(1),
    input_ids: I32,
    labels: I32,
    position_ids: I32,
    segment_ids: I32,
    token_task: I32,
    tasks: z.array(z.string()),
  })
  .superRefine((b, ctx) => {
    const n = b.row_count * b.seq_len;
    for (const key of ["input_ids", "labels", "position_ids", "segment_ids", "token_task"] as const)
      if (b[key].length !== n)
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `has ${b[key].length} elements, expected row_count * seq_len = ${n}`,
        });
  });
export type TokenBatch = z.infer<typeof TokenBatch>;

export function toTokenBatch(batch: NativeBatch, tokenTask: Int32Array, tasks: string[]): TokenBatch {
  return {
    row_count: batch.rows,
    seq_len: batch.seqLen,
    input_ids: batch.inputIds,
    labels: batch.labels,
    position_ids: batch.positionIds,
    segment_ids: batch.segmentIds,
    token_task: tokenTask,
    tasks,
  };
}

/** Rows [from, to) of a wire batch as a NativeBatch of views (no copies), with their task indices. */
export function sliceTokenBatch(
  b: TokenBatch,
  from: number,
  to: number,
): { batch: NativeBatch; tokenTask: Int32Array } {
  const [start, end] = [from * b.seq_len, to * b.seq_len];
  return {
    batch: {
      rows: to - from,
      seqLen: b.seq_len,
      inputIds: b.input_ids.subarray(start, end),
      labels: b.labels.subarray(start, end),
      positionIds: b.position_ids.subarray(start, end),
      segmentIds: b.segment_ids.subarray(start, end),
    },
    tokenTask: b.token_task.subarray(start, end),
  };
}
