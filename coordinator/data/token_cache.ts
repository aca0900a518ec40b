// The token cache on disk: every example's input ids and labels in one file, and which examples make up
// each packed row. Rows are built when a step asks for them, reading only their examples from the file,
// so a dataset of any size costs the coordinator's heap a few numbers per example, not its tokens.
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import path from "node:path";
import type { Example } from "./example.js";
import { growingFloat64s, growingInt32s } from "./growable.js";
import { buildRow } from "./pack.js";
import type { Problem } from "./problems.js";
import type { Row } from "./row.js";
import type { DataStats } from "./stats.js";

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

/** Appends examples' ids and labels to the tokens file; remembers where each one lies. */
export class TokenWriter {
  private readonly fd: number;
  private position = 0; // in int32 words
  private readonly offsets = growingFloat64s();
  private readonly lengths = growingInt32s();

  constructor(dir: string) {
    this.fd = openSync(path.join(dir, TOKENS_FILE), "w");
  }

  get examples(): number {
    return this.lengths.length;
  }

  /** `tokens`: inputIds then labels of each example, end to end, as `lengths` gives them. */
  append(lengths: Int32Array, tokens: Int32Array): void {
    let off = this.position;
    for (const len of lengths) {
      this.offsets.push(off);
      this.lengths.push(len);
      off += 2 * len;
    }
    if (tokens.byteLength) writeSync(this.fd, tokens, 0, tokens.byteLength);
    this.position += tokens.length;
  }

  lengthOf(example: number): number {
    return this.lengths.at(example);
  }

  /** Closes the tokens file and writes the example index beside it. */
  close(dir: string): void {
    closeSync(this.fd);
    const index = new Float64Array(2 * this.lengths.length);
    for (let i = 0; i < this.lengths.length; i++) {
      index[2 * i] = this.offsets.at(i);
      index[2 * i + 1] = this.lengths.at(i);
    }
    writeAll(path.join(dir, EXAMPLES_FILE), index);
  }
}

function writeAll(file: string, data: ArrayBufferView): void {
  const fd = openSync(file, "w");
  try {
    writeSync(fd, data as Uint8Array, 0, data.byteLength);
  } finally {
    closeSync(fd);
  }
}

/** Rows as lists of example indices: `starts` has rows + 1 entries into `members`. */
export interface RowPlan {
  starts: Int32Array;
  members: Int32Array;
  /** task type of each member, by index into `taskTypes` of the cache */
  memberTasks: Int32Array;
  /** row width: seq_len when packed, 0 when each row is its one example's own length */
  width: number;
}

export interface CacheMeta {
  stats: DataStats;
  problems: Problem[];
  taskTypes: string[];
  padId: number;
  splits: Record<"train" | "val", { rows: number; members: number; width: number }>;
}

export function writeRowsAndMeta(dir: string, meta: Omit<CacheMeta, "splits">, train: RowPlan, val: RowPlan): void {
  const parts = [train.starts, train.members, train.memberTasks, val.starts, val.members, val.memberTasks];
  const all = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  writeAll(path.join(dir, ROWS_FILE), all);
  const split = (p: RowPlan) => ({ rows: p.starts.length - 1, members: p.members.length, width: p.width });
  const full: CacheMeta = { ...meta, splits: { train: split(train), val: split(val) } };
  writeAll(path.join(dir, META_FILE), Buffer.from(JSON.stringify(full)));
}

export function hasCompleteCache(dir: string): boolean {
  return existsSync(path.join(dir, META_FILE));
}

function int32s(file: string): Int32Array {
  const b = readFileSync(file);
  return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** An open cache entry: its statistics and problems, and its rows read from disk on demand. */
export class TokenCache {
  readonly meta: CacheMeta;
  readonly train: RowTable;
  readonly val: RowTable;
  private readonly fd: number;
  private readonly index: Float64Array;

  constructor(readonly dir: string) {
    this.meta = JSON.parse(readFileSync(path.join(dir, META_FILE), "utf8")) as CacheMeta;
    const b = readFileSync(path.join(dir, EXAMPLES_FILE));
    this.index = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const rows = int32s(path.join(dir, ROWS_FILE));
    let off = 0;
    const take = (n: number) => rows.subarray(off, (off += n));
    const plan = (s: CacheMeta["splits"]["train"]): RowPlan => ({
      starts: take(s.rows + 1),
      members: take(s.members),
      memberTasks: take(s.members),
      width: s.width,
    });
    const trainPlan = plan(this.meta.splits.train);
    const valPlan = plan(this.meta.splits.val);
    this.fd = openSync(path.join(dir, TOKENS_FILE), "r");
    this.train = this.table(trainPlan);
    this.val = this.table(valPlan);
  }

  private example(i: number, taskType: string): Example {
    const offset = this.index[2 * i];
    const len = this.index[2 * i + 1];
    const both = new Int32Array(2 * len);
    readSync(this.fd, both, 0, both.byteLength, offset * 4);
    return { inputIds: both.subarray(0, len), labels: both.subarray(len), taskType, sourceIndex: 0 };
  }

  private table(plan: RowPlan): RowTable {
    const get = (r: number): Row => {
      if (!(r >= 0 && r < plan.starts.length - 1)) throw new RangeError(`row ${r} of ${plan.starts.length - 1}`);
      const segments: Example[] = [];
      for (let k = plan.starts[r]; k < plan.starts[r + 1]; k++)
        segments.push(this.example(plan.members[k], this.meta.taskTypes[plan.memberTasks[k]]));
      const width = plan.width || segments.reduce((a, e) => a + e.inputIds.length, 0);
      return buildRow(segments, width, this.meta.padId);
    };
    const length = plan.starts.length - 1;
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
    closeSync(this.fd);
  }
}
