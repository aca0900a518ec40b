// The token cache on disk: every example's input ids and labels in one file, and which examples make up
// each packed row. Rows are built when a step asks for them, reading only their examples from the files,
// so a dataset of any size costs the coordinator's heap nothing per example or per row.
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import path from "node:path";
import { openCacheFile, openCacheFileSync, readCacheFile } from "../../files/cache_folder.js";
import type { HeldFolder } from "../../files/held_folder.js";
import type { Example } from "../examples/example.js";
import { buildRow } from "./pack.js";
import type { Problem } from "../../text/records/problems.js";
import type { Row } from "./row.js";
import { float64Spill, int32Spill, type Spill, type SpillReader } from "../storage/spill.js";
import type { DataStats } from "../stats.js";

export const TOKENS_FILE = "tokens.bin";
const EXAMPLES_FILE = "examples.bin";
const ROWS_FILE = "rows.bin";
const META_FILE = "meta.json";

/** Rows by index, read on demand; `slice` gives a range as plain rows. */
export interface RowTable {
  readonly length: number;
  get(i: number): Row;
  slice(start?: number, end?: number): Row[];
}

/** Rows already in memory, as a table. */
export function arrayRowTable(rows: Row[]): RowTable {
  return { length: rows.length, get: (i) => rows[i], slice: (a, b) => rows.slice(a, b) };
}

/** Appends examples' ids and labels to the tokens file; writes where each one lies to the index beside it. */
export class TokenWriter {
  private readonly fd: number;
  private position = 0; // in int32 words
  private readonly index: Spill<Float64Array>; // per example: offset in int32 words, length

  constructor(dir: string) {
    this.fd = openSync(path.join(dir, TOKENS_FILE), "wx");
    this.index = float64Spill(path.join(dir, EXAMPLES_FILE), 2);
  }

  get examples(): number {
    return this.index.length;
  }

  /** `tokens`: inputIds then labels of each example, end to end, as `lengths` gives them. */
  append(lengths: Int32Array, tokens: Int32Array): void {
    let off = this.position;
    for (const len of lengths) {
      const at = this.index.slot();
      this.index.buffer[at] = off;
      this.index.buffer[at + 1] = len;
      off += 2 * len;
    }
    if (tokens.byteLength) writeSync(this.fd, tokens, 0, tokens.byteLength);
    this.position += tokens.length;
  }

  /** Reads the index back in example order (the tokens file stays open for appending). */
  reader(): SpillReader<Float64Array> {
    return this.index.reader();
  }

  close(): void {
    closeSync(this.fd);
    this.index.close(true);
  }
}

/** A split's rows appended one at a time: where each starts, its members and their task types. */
class SplitRowsWriter {
  readonly starts: Spill<Int32Array>;
  readonly members: Spill<Int32Array>;
  readonly tasks: Spill<Int32Array>;

  constructor(dir: string, label: string) {
    this.starts = int32Spill(path.join(dir, `${label}-starts.tmp`), 1);
    this.members = int32Spill(path.join(dir, `${label}-members.tmp`), 1);
    this.tasks = int32Spill(path.join(dir, `${label}-tasks.tmp`), 1);
    this.starts.push([0]);
  }

  get rows(): number {
    return this.starts.length - 1;
  }

  /** A row of `count` members: example indices and task type indices, read from `examples`/`tasks`. */
  add(examples: ArrayLike<number>, tasks: ArrayLike<number>, from: number, to: number): void {
    for (let k = from; k < to; k++) {
      this.members.buffer[this.members.slot()] = examples[k];
      this.tasks.buffer[this.tasks.slot()] = tasks[k];
    }
    this.starts.buffer[this.starts.slot()] = this.members.length;
  }
}

/** Rows of both splits, streamed to temporary files and joined into the rows file at the end. */
export class RowsWriter {
  readonly train: SplitRowsWriter;
  readonly val: SplitRowsWriter;

  constructor(private readonly dir: string) {
    this.train = new SplitRowsWriter(dir, "train");
    this.val = new SplitRowsWriter(dir, "val");
  }

  /** Writes the rows file and the metadata (`width` of each split's rows: seq_len, or 0 unpacked). */
  finish(meta: Omit<CacheMeta, "splits">, width: number): void {
    const parts = [this.train, this.val].flatMap((s) => [s.starts, s.members, s.tasks]);
    const out = openSync(path.join(this.dir, ROWS_FILE), "wx");
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (const p of parts) {
        p.flush();
        const fd = openSync(p.file, constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) writeSync(out, chunk, 0, n);
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      closeSync(out);
    }
    const split = (s: SplitRowsWriter) => ({ rows: s.rows, members: s.members.length, width });
    const full: CacheMeta = { ...meta, splits: { train: split(this.train), val: split(this.val) } };
    writeAll(path.join(this.dir, META_FILE), Buffer.from(JSON.stringify(full)));
    this.close();
  }

  close(): void {
    for (const s of [this.train, this.val]) for (const p of [s.starts, s.members, s.tasks]) p.close();
  }
}

function writeAll(file: string, data: ArrayBufferView): void {
  const fd = openSync(file, "wx");
  try {
    writeSync(fd, data as Uint8Array, 0, data.byteLength);
  } finally {
    closeSync(fd);
  }
}

export interface CacheMeta {
  stats: DataStats;
  problems: Problem[];
  taskTypes: string[];
  padId: number;
  splits: Record<"train" | "val", { rows: number; members: number; width: number }>;
}

/** Whether the held entry is whole: its manifest is written last (a link in its place is refused). */
export function hasCompleteCache(entry: HeldFolder): boolean {
  const fd = openCacheFile(entry, META_FILE);
  if (fd === undefined) return false;
  closeSync(fd);
  return true;
}

/** An open cache entry: its statistics and problems, and its rows read from disk on demand (nothing per
 * example or per row is held in memory, so opening a cache of any size costs the same). Its files are opened
 * in the held entry without following links (files/cache_folder.ts). */
export class TokenCache {
  readonly meta: CacheMeta;
  readonly train: RowTable;
  readonly val: RowTable;
  private readonly tokens: number;
  private readonly index: number;
  private readonly rows: number;
  private readonly entry = new Float64Array(2);
  private readonly pair = new Int32Array(2);

  constructor(entry: HeldFolder) {
    this.meta = JSON.parse(readCacheFile(entry, META_FILE).toString("utf8")) as CacheMeta;
    this.tokens = openCacheFileSync(entry, TOKENS_FILE);
    this.index = openCacheFileSync(entry, EXAMPLES_FILE);
    this.rows = openCacheFileSync(entry, ROWS_FILE);
    const train = this.meta.splits.train;
    const trainInts = train.rows + 1 + 2 * train.members;
    this.train = this.table(train, 0);
    this.val = this.table(this.meta.splits.val, trainInts);
  }

  private example(i: number, taskType: string): Example {
    readSync(this.index, this.entry, 0, 16, i * 16);
    const [offset, len] = this.entry;
    const both = new Int32Array(2 * len);
    readSync(this.tokens, both, 0, both.byteLength, offset * 4);
    return { inputIds: both.subarray(0, len), labels: both.subarray(len), taskType, sourceIndex: 0 };
  }

  /** `at`: where the split's section starts in the rows file, in int32 words. */
  private table(split: CacheMeta["splits"]["train"], at: number): RowTable {
    const length = split.rows;
    const membersAt = at + split.rows + 1;
    const tasksAt = membersAt + split.members;
    const get = (r: number): Row => {
      if (!(r >= 0 && r < length)) throw new RangeError(`row ${r} of ${length}`);
      readSync(this.rows, this.pair, 0, 8, (at + r) * 4);
      const [from, to] = this.pair;
      const members = new Int32Array(to - from);
      const tasks = new Int32Array(to - from);
      readSync(this.rows, members, 0, members.byteLength, (membersAt + from) * 4);
      readSync(this.rows, tasks, 0, tasks.byteLength, (tasksAt + from) * 4);
      const segments = Array.from(members, (m, k) => this.example(m, this.meta.taskTypes[tasks[k]]));
      const width = split.width || segments.reduce((a, e) => a + e.inputIds.length, 0);
      return buildRow(segments, width, this.meta.padId);
    };
    return {
      length,
      get,
      slice: (a = 0, b = length) => {
        const out: Row[] = [];
        for (let i = Math.max(0, a); i < Math.min(b, length); i++) out.push(get(i));
        return out;
      },
    };
  }

  close(): void {
    for (const fd of [this.tokens, this.index, this.rows]) closeSync(fd);
  }
}
