// BATCH.json -> NativeBatch: {"input_ids": [[..]], "labels": [[..]], "position_ids"?: [[..]],
// "segment_ids"?: [[..]]}, all [rows, T]. This is the format `ringtune dump` reads, so a user can feed
// the same batch to another implementation; every error names the file and the field.
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { IGNORE_INDEX, type NativeBatch } from "../native/js/addon.js";
import { CorruptFileError } from "./errors.js";

const INT32_MAX = 2 ** 31 - 1;
const grid = z
  .array(
    z
      .array(
        z
          .number()
          .int()
          .min(-(2 ** 31))
          .max(INT32_MAX),
      )
      .min(1),
  )
  .min(1);
const batchSchema = z.strictObject({
  input_ids: grid,
  labels: grid,
  position_ids: grid.optional(),
  segment_ids: grid.optional(),
});

function flatten(file: string, field: string, rows: number[][], seqLen: number): Int32Array {
  const out = new Int32Array(rows.length * seqLen);
  rows.forEach((row, r) => {
    if (row.length !== seqLen) {
      throw new CorruptFileError(
        file,
        `${field}[${r}] has ${row.length} tokens, expected ${seqLen} (the length of input_ids[0])`,
      );
    }
    out.set(row, r * seqLen);
  });
  return out;
}

/** Validates a parsed batch (`file` names it in errors). */
export function parseBatch(json: unknown, file: string): NativeBatch {
  const r = batchSchema.safeParse(json);
  if (!r.success) {
    throw new CorruptFileError(
      file,
      r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; "),
    );
  }
  const b = r.data;
  const rows = b.input_ids.length;
  const seqLen = b.input_ids[0]!.length;
  for (const field of ["labels", "position_ids", "segment_ids"] as const) {
    const v = b[field];
    if (v && v.length !== rows)
      throw new CorruptFileError(file, `${field} has ${v.length} rows, input_ids has ${rows}`);
  }
  const inputIds = flatten(file, "input_ids", b.input_ids, seqLen);
  const labels = flatten(file, "labels", b.labels, seqLen);
  for (let i = 0; i < inputIds.length; i++) {
    if (inputIds[i]! < 0)
      throw new CorruptFileError(
        file,
        `input_ids[${Math.floor(i / seqLen)}][${i % seqLen}] is negative (${inputIds[i]})`,
      );
    if (labels[i]! < 0 && labels[i] !== IGNORE_INDEX) {
      throw new CorruptFileError(
        file,
        `labels[${Math.floor(i / seqLen)}][${i % seqLen}] is ${labels[i]}: a token id or ${IGNORE_INDEX}`,
      );
    }
  }
  // Defaults: each row one example, positions counting from 0.
  const positionIds = b.position_ids
    ? flatten(file, "position_ids", b.position_ids, seqLen)
    : Int32Array.from({ length: rows * seqLen }, (_, i) => i % seqLen);
  const segmentIds = b.segment_ids
    ? flatten(file, "segment_ids", b.segment_ids, seqLen)
    : new Int32Array(rows * seqLen);
  for (let i = 0; i < positionIds.length; i++) {
    if (positionIds[i]! < 0)
      throw new CorruptFileError(
        file,
        `position_ids[${Math.floor(i / seqLen)}][${i % seqLen}] is negative (${positionIds[i]})`,
      );
  }
  checkSegmentsContiguous(file, segmentIds, rows, seqLen);
  return { rows, seqLen, inputIds, labels, positionIds, segmentIds };
}

/** The core treats a segment as one contiguous run; an id that comes back later in a row is a mistake. */
function checkSegmentsContiguous(file: string, seg: Int32Array, rows: number, seqLen: number): void {
  for (let r = 0; r < rows; r++) {
    const closed = new Set<number>();
    for (let t = 1; t < seqLen; t++) {
      const prev = seg[r * seqLen + t - 1]!;
      const cur = seg[r * seqLen + t]!;
      if (cur === prev) continue;
      closed.add(prev);
      if (closed.has(cur))
        throw new CorruptFileError(file, `segment_ids[${r}]: segment ${cur} resumes at position ${t} after it ended`);
    }
  }
}

/** Token ids and labels must index the vocabulary; the native core would read out of bounds otherwise. */
export function checkBatchVocab(batch: NativeBatch, vocabSize: number, file: string): void {
  const { inputIds, labels, seqLen } = batch;
  for (let i = 0; i < inputIds.length; i++) {
    const at = `[${Math.floor(i / seqLen)}][${i % seqLen}]`;
    if (inputIds[i]! >= vocabSize)
      throw new CorruptFileError(file, `input_ids${at} = ${inputIds[i]} is not below vocab_size ${vocabSize}`);
    if (labels[i]! >= vocabSize)
      throw new CorruptFileError(file, `labels${at} = ${labels[i]} is not below vocab_size ${vocabSize}`);
  }
}

export async function readBatch(file: string): Promise<NativeBatch> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new CorruptFileError(file, `cannot read a JSON batch (${(err as Error).message})`, { cause: err });
  }
  return parseBatch(json, file);
}
