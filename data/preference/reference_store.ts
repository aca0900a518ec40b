// The reference log-probabilities of a preference job trained without adapters to switch off (full or
// hybrid): the initial model's summed log-probabilities of every pair's chosen and rejected answer,
// computed once before the first step and stored in the job's data cache entry, beside the rows they
// belong to. The file's name covers the model the reference was computed from, so a changed model never
// reuses another's; the entry's own name covers the data. A resume, a second epoch or the next job on the
// same data and model read it instead of computing it again.
import { closeSync, fstatSync, readFileSync } from "node:fs";
import { openCacheFile } from "../../files/cache_folder.js";
import type { HeldFolder } from "../../files/held_folder.js";
import { createHash } from "node:crypto";
import path from "node:path";
import { writeOutputFileAtomically } from "../../files/output_files.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { hashOpenFile } from "../streamed_pipeline.js";
import { InputFileError, listInputFolder, openInputSync } from "../../files/input_files.js";

/** Per row of a split: the log-probabilities of its pairs, chosen then rejected per pair. */
export class SplitReference {
  /**
   * `starts[r]`: the index of row r's first pair (rows + 1 entries); `logps`: 2 per pair, pairs in row order
   * and, within a row, in segment order.
   */
  constructor(
    readonly starts: Float64Array,
    readonly logps: Float64Array,
  ) {
    if (starts.length < 1 || starts[starts.length - 1] !== logps.length / 2)
      throw new Error(`a reference of ${logps.length} log-probabilities does not match its rows' pairs`);
  }

  get rows(): number {
    return this.starts.length - 1;
  }

  /** The log-probabilities of the given rows' pairs, the rows in the order given. */
  ofRows(rows: Iterable<number>): number[] {
    const out: number[] = [];
    for (const r of rows) {
      if (!(r >= 0 && r < this.rows)) throw new RangeError(`row ${r} of a reference of ${this.rows} rows`);
      for (let i = 2 * this.starts[r]!; i < 2 * this.starts[r + 1]!; i++) out.push(this.logps[i]!);
    }
    return out;
  }
}

export interface PairReference {
  train: SplitReference;
  val: SplitReference;
}

/** Builds a split's reference row by row (the pass over the data appends each chunk as its replies come). */
export class SplitReferenceBuilder {
  private readonly starts: number[] = [0];
  private readonly logps: number[] = [];

  get rows(): number {
    return this.starts.length - 1;
  }

  /** `pairs[k]`: the pairs of the k-th row added; `logps`: theirs, 2 per pair. */
  add(pairs: readonly number[], logps: readonly number[]): void {
    const total = pairs.reduce((a, b) => a + b, 0);
    if (logps.length !== 2 * total)
      throw new Error(`the reference pass returned ${logps.length} log-probabilities for ${total} pairs (2 a pair)`);
    for (const n of pairs) this.starts.push(this.starts.at(-1)! + n);
    this.logps.push(...logps);
  }

  build(): SplitReference {
    return new SplitReference(Float64Array.from(this.starts), Float64Array.from(this.logps));
  }
}

const MAGIC = 0x52454631; // "REF1"

/** The name of the reference computed from `modelKey`'s weights, in its data cache entry. */
export function referenceName(modelKey: string): string {
  return `reference-${modelKey}.bin`;
}

/** Layout (float64s): magic, train rows, val rows, train starts, val starts, train logps, val logps. */
export async function writeReference(file: string, ref: PairReference): Promise<void> {
  const { train, val } = ref;
  const words = new Float64Array(3 + train.starts.length + val.starts.length + train.logps.length + val.logps.length);
  let at = 0;
  for (const part of [[MAGIC, train.rows, val.rows], train.starts, val.starts, train.logps, val.logps]) {
    words.set(part, at);
    at += part.length;
  }
  await writeOutputFileAtomically(file, new Uint8Array(words.buffer));
}

/**
 * The reference stored as `name` in the held cache entry for rows of these sizes, or undefined when there is
 * none or it does not fit them (another layout, or a file cut short): it is then computed again. A link or a
 * FIFO in its place is refused (files/cache_folder.ts), never read.
 */
export function readReference(
  entry: HeldFolder,
  name: string,
  trainRows: number,
  valRows: number,
): PairReference | undefined {
  const fd = openCacheFile(entry, name);
  if (fd === undefined) return undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  if (bytes.byteLength % 8 !== 0 || bytes.byteLength < 24) return undefined;
  const words = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (words[0] !== MAGIC || words[1] !== trainRows || words[2] !== valRows) return undefined;
  let at = 3;
  const take = (n: number) => words.subarray(at, (at += n));
  const trainStarts = take(trainRows + 1);
  const valStarts = take(valRows + 1);
  const trainLogps = take(2 * trainStarts[trainRows]!);
  const valLogps = take(2 * valStarts[valRows]!);
  if (at !== words.length) return undefined;
  return { train: new SplitReference(trainStarts, trainLogps), val: new SplitReference(valStarts, valLogps) };
}

/** Files at most this large are hashed whole; larger ones (model weights) by name, size and modification time. */
const HASHED_BYTES = 64 << 20;

/**
 * A name for the weights a job starts from: the model folder's or init config's files (small ones by
 * content, weight shards by size and modification time: hashing many gigabytes at every start would take
 * minutes), the init seed, and a starting adapter's files the same way.
 */
export function referenceModelKey(model: JobSpec["model"]): string {
  const h = createHash("sha256").update("reference-1\0");
  // Each file is opened once, as every input is (files/input_files.ts), and hashed through that descriptor.
  const file = (f: string, fd = openInputSync(f)) => {
    try {
      const st = fstatSync(fd);
      h.update(`${path.basename(f)}\0${st.size}\0`);
      if (st.size <= HASHED_BYTES) h.update(hashOpenFile(fd));
      else h.update(`${st.mtimeMs}\0`);
    } finally {
      closeSync(fd);
    }
  };
  const folder = (dir: string) => {
    for (const e of listInputFolder(dir)) {
      if (e.isFolder) continue;
      const f = path.join(dir, e.name);
      let fd: number;
      try {
        fd = openInputSync(f);
      } catch (err) {
        // a link to a folder beside the files, as a folder itself, is not part of the model
        if (err instanceof InputFileError && err.found === "a folder") continue;
        throw err;
      }
      file(f, fd);
    }
  };
  if (model.path) folder(model.path);
  if (model.init) {
    file(model.init.config);
    h.update(`seed ${model.init.seed}\0`);
  }
  if (model.adapter) folder(model.adapter);
  return h.digest("hex").slice(0, 32);
}
