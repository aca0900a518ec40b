// The streamed pipeline's first pass: what the worker threads make of each batch of records, taken in file
// order. Everything that grows with the dataset goes to disk as it arrives: per valid record its numbers,
// its MinHash signature and its content key; per example its tokens, where they lie and its target count.
// Which records are exact duplicates is decided once all keys are in (a duplicate's tokens stay unused in
// the token cache); the second pass (rows/streamed_rows.ts) reads all of it back in order.
import path from "node:path";
import { IGNORE_INDEX } from "../native/js/addon.js";
import { problemAt, type Problem } from "../text/records/problems.js";
import type { DataSpec } from "./data_keys.js";
import { DuplicatePartitions } from "./dedupe/duplicate_partitions.js";
import { NearDuplicateIndex } from "./dedupe/near_duplicate_index.js";
import { SIGNATURE_WORDS } from "./dedupe/dedupe.js";
import { SIGNED, type BatchResult } from "./examples/record_batch.js";
import type { SentJob } from "./examples/token_pool.js";
import type { Progress } from "./progress.js";
import { VALID, type FirstPassOutput, type NearProblem } from "./rows/streamed_rows.js";
import { TokenWriter } from "./rows/token_cache.js";
import type { DataStats } from "./stats.js";
import { int32Spill } from "./storage/spill.js";

/** Counts while preparing: for a progress bar and the job record. */
export interface PrepareProgress {
  records: number;
  tokens: number;
  targets: number;
  seconds: number;
}

export class FirstPass {
  readonly taskTypes: string[] = [];
  private readonly taskIndex = new Map<string, number>();
  readonly valid;
  // Near-duplicates are found here, overlapping the threads' work, among all valid records: an exact
  // duplicate has its original's signature, so it finds that record and takes no band from anyone; the
  // second pass only drops the reports of records that turn out to be exact duplicates.
  private readonly near: NearDuplicateIndex;
  private readonly nearProblems: NearProblem[] = [];
  private readonly targets;
  private readonly keys: DuplicatePartitions | null;
  private readonly writer: TokenWriter;
  private readonly recordProblems = new Map<number, Problem>();
  readonly readProblems: Problem[] = [];
  readonly counts: PrepareProgress = { records: 0, tokens: 0, targets: 0, seconds: 0 };
  readonly sources: DataStats["sources"];
  private lineBase = 0; // lines of the current file before the range being delivered
  private lastReport = 0;
  private readonly began = Date.now();

  constructor(
    spec: DataSpec,
    dir: string,
    private readonly files: string[],
    private readonly progress: Progress,
    private readonly onProgress?: (p: PrepareProgress) => void,
  ) {
    this.valid = int32Spill(path.join(dir, "valid.tmp"), VALID.width);
    this.near = new NearDuplicateIndex(path.join(dir, "signatures.tmp"));
    this.targets = int32Spill(path.join(dir, "targets.tmp"), 1);
    this.keys = spec.dedup === "none" ? null : new DuplicatePartitions(dir);
    this.writer = new TokenWriter(dir);
    this.sources = spec.data.map((_, i) => ({ file: files[i]!, read: 0, valid: 0, mixed: 0 }));
  }

  /** Seconds since the pass began. */
  seconds(): number {
    return (Date.now() - this.began) / 1000;
  }

  /** One batch's results, in file order: its valid records and their examples kept, its problems noted. */
  add(job: SentJob, r: BatchResult): void {
    const src = job.sourceIndex;
    if (job.kind === "range" && job.range.start === 0) this.lineBase = 0;
    const base = job.kind === "range" ? this.lineBase : 0;
    const at = (p: Problem): Problem => (base ? { ...p, line: p.line + base } : p);
    let problemNext = 0;
    let ex = this.writer.examples; // the next example's index in the cache
    let tokOff = 0; // where that example's tokens start in the batch
    for (let i = 0; i < r.lines.length; i++) {
      const problem = r.problems[problemNext]?.at === i ? at(r.problems[problemNext++]!.problem) : undefined;
      this.sources[src]!.read++;
      this.counts.records++;
      if (!r.valid[i]) {
        this.readProblems.push(problem!);
        continue;
      }
      this.addValidRecord(r, i, src, base, ex, problem);
      for (let e = 0; e < r.examples[i]!; e++, ex++) tokOff = this.countExample(r, ex, tokOff);
    }
    this.writer.append(r.lengths, r.tokens);
    this.lineBase += r.lineCount;
    if (Date.now() - this.lastReport > 250) {
      this.lastReport = Date.now();
      this.report();
    }
  }

  /** A valid record's numbers, content key and signature, and the near-duplicate it may be of. */
  private addValidRecord(r: BatchResult, i: number, src: number, base: number, ex: number, problem?: Problem): void {
    this.sources[src]!.valid++;
    const v = this.valid.length;
    this.keys?.add(r.keys[2 * i]!, r.keys[2 * i + 1]!, v, r.robust[i] === 1);
    if (problem) this.recordProblems.set(v, problem);
    const slot = this.valid.slot();
    const rec = this.valid.buffer;
    rec[slot + VALID.task] = this.taskOf(r.taskNames[r.task[i]!]!);
    rec[slot + VALID.source] = src;
    rec[slot + VALID.line] = r.lines[i]! + base;
    rec[slot + VALID.firstExample] = ex;
    rec[slot + VALID.examples] = r.examples[i]!;
    rec[slot + VALID.flags] = r.flags[i]!;
    const sig = r.flags[i]! & SIGNED ? r.signatures.subarray(i * SIGNATURE_WORDS, (i + 1) * SIGNATURE_WORDS) : null;
    const hit = this.near.add(v, sig);
    if (hit && !r.robust[i]) {
      const similar = this.valid.read(hit.similarTo);
      const message =
        `response nearly duplicates ${this.files[similar[VALID.source]!]}:${similar[VALID.line]} ` +
        `(MinHash Jaccard ~${hit.jaccard.toFixed(2)}); kept`;
      this.nearProblems.push({
        ordinal: v,
        problem: problemAt({ file: this.files[src]!, line: r.lines[i]! + base }, "near-duplicate", message, false),
      });
    }
  }

  /** Example `ex`'s target count, spilled; returns where the next example's tokens start in the batch. */
  private countExample(r: BatchResult, ex: number, tokOff: number): number {
    const len = r.lengths[ex - this.writer.examples]!;
    let n = 0;
    for (let t = tokOff + len; t < tokOff + 2 * len; t++) if (r.tokens[t] !== IGNORE_INDEX) n++;
    this.targets.buffer[this.targets.slot()] = n;
    this.counts.tokens += len;
    this.counts.targets += n;
    return tokOff + 2 * len;
  }

  private taskOf(t: string): number {
    let i = this.taskIndex.get(t);
    if (i === undefined) this.taskIndex.set(t, (i = this.taskTypes.push(t) - 1));
    return i;
  }

  report(): void {
    this.counts.seconds = this.seconds();
    const rate = this.counts.seconds > 0 ? this.counts.tokens / this.counts.seconds : 0;
    this.progress.line(
      `data: ${this.counts.records} records, ${this.counts.tokens} tokens, ${this.counts.targets} targets, ` +
        `${(rate / 1e6).toFixed(2)} M tokens/s`,
    );
    this.onProgress?.({ ...this.counts });
  }

  /** What the second pass reads: every record read, with the exact duplicates now resolved. */
  output(): FirstPassOutput {
    const duplicates = this.keys ? this.keys.resolve() : { ordinals: new Int32Array(0), firsts: new Int32Array(0) };
    return {
      valid: this.valid,
      nearProblems: this.nearProblems,
      targets: this.targets,
      writer: this.writer,
      duplicates,
      recordProblems: this.recordProblems,
      readProblems: this.readProblems,
    };
  }

  close(): void {
    for (const s of [this.valid, this.near, this.targets, this.keys, this.writer]) s?.close();
  }
}
