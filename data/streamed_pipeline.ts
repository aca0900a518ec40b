// The data pipeline for datasets of any size: records streamed from the files, templated and tokenized on
// worker threads (one per core), examples written to a token cache on disk as they come. What grows with
// the dataset (per record and per example numbers, content keys, MinHash signatures) is spilled to disk
// too, and the second half (streamed_rows.ts) reads it back in order, so memory stays the same whatever the
// dataset's size; the rows are read from the cache when a step needs them. It makes the same rows,
// statistics and problems as buildDataset (pipeline.ts), which holds everything in memory, for the same
// spec and seed: records keep their file order through the threads, and split, mix, pack and row order
// use the same seeded functions.
import type { DataSource } from "../spec/job_spec.js";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { IGNORE_INDEX } from "../native/js/addon.js";
import { cacheKey } from "./storage/cache.js";
import { DuplicatePartitions } from "./dedupe/duplicate_partitions.js";
import { isBadRecord, type DataSpec } from "./data_spec.js";
import { problemAt, type Problem } from "../text/records/problems.js";
import { Progress } from "./progress.js";
import { setupText, type TextSetup } from "../spec/text_setup.js";
import type { DataStats } from "./stats.js";
import { readDataFile, type RawRecord } from "../text/readers/read.js";
import { streamRecords } from "../text/readers/stream_records.js";
import { hasCompleteCache, TokenCache, TokenWriter, type RowTable } from "./rows/token_cache.js";
import { TokenPool, type PoolJob, type SentJob } from "./examples/token_pool.js";
import { SIGNATURE_WORDS, SIGNED, type BatchResult } from "./examples/record_batch.js";
import { lineAlignedRanges, startsWithArray } from "../text/readers/file_ranges.js";
import { DEFAULT_MAX_RECORD_BYTES } from "../text/records/record_limits.js";
import { int32Spill } from "./storage/spill.js";
import { planStreamedRows, VALID, type NearProblem } from "./rows/streamed_rows.js";
import { NearDuplicateIndex } from "./dedupe/near_duplicate_index.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BATCH_RECORDS = 256;

/** Counts while preparing: for a progress bar and the job record. */
export interface PrepareProgress {
  records: number;
  tokens: number;
  targets: number;
  seconds: number;
}

export interface PrepareOptions {
  quiet?: boolean;
  /** false: ignore a cached entry and build again (the new entry replaces it) */
  useCache?: boolean;
  displayRoot?: string;
  onProgress?: (p: PrepareProgress) => void;
  threads?: number;
  /** bytes of a JSONL file per batch the threads read (default RANGE_BYTES) */
  rangeBytes?: number;
}

export interface PreparedDataset {
  train: RowTable;
  val: RowTable;
  stats: DataStats;
  problems: Problem[];
  setup: TextSetup;
  fromCache: boolean;
  failed: boolean;
  /** the cache entry the rows are read from */
  cacheDir: string;
  close(): void;
}

export function dataCacheDir(spec: DataSpec): string {
  // RINGTUNE_CACHE_DIR moves the cache of specs that name no cache_dir out of the checkout.
  return spec.cache_dir ?? process.env.RINGTUNE_CACHE_DIR ?? path.join(repoRoot, ".cache", "data");
}

/** sha256 of a file read in chunks (bounded memory for any size). */
export function streamedFileHash(file: string): string {
  const h = createHash("sha256");
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** The cache entry's name: data contents, every setting, the tokenizer, the template and this code. */
export function streamedCacheKey(spec: DataSpec, setup: TextSetup, display: (f: string) => string): string {
  return cacheKey({
    layout: "token-cache-2",
    files: spec.data.map((d) => ({ ...d, path: display(d.path), hash: streamedFileHash(d.path) })),
    settings: { ...spec, data: undefined, model: undefined, tokenizer: undefined, cache_dir: undefined },
    tokenizer: setup.tokenizer.fingerprint,
    template: setup.templateId,
  });
}

export function openPrepared(spec: DataSpec, setup: TextSetup, dir: string, fromCache: boolean): PreparedDataset {
  const cache = new TokenCache(dir);
  const { stats, problems } = cache.meta;
  const failed = spec.on_bad_record === "fail" && problems.some(isBadRecord);
  return {
    train: cache.train,
    val: cache.val,
    stats,
    problems,
    setup,
    fromCache,
    failed,
    cacheDir: dir,
    close: () => cache.close(),
  };
}

export async function prepareDataset(spec: DataSpec, opts: PrepareOptions = {}): Promise<PreparedDataset> {
  const progress = new Progress(opts.quiet ?? false);
  const setup = setupText(spec);
  const display = (f: string) => path.relative(opts.displayRoot ?? process.cwd(), f) || f;
  const root = dataCacheDir(spec);
  const key = streamedCacheKey(spec, setup, display);
  const dir = path.join(root, key);
  if ((opts.useCache ?? true) && hasCompleteCache(dir)) {
    const d = openPrepared(spec, setup, dir, true);
    progress.note(`data: cached (${key.slice(0, 12)}), ${d.train.length} train rows, ${d.val.length} val rows`);
    return d;
  }
  mkdirSync(root, { recursive: true });
  // Built in a temporary folder and renamed, so a crash never leaves half an entry that looks whole.
  const tmp = path.join(root, `${key}.tmp-${process.pid}-${Date.now()}`);
  // Not recursive: a folder or link already at that name is an error, not a place to write into.
  mkdirSync(tmp);
  try {
    await build(spec, setup, tmp, display, progress, opts);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return openPrepared(spec, setup, dir, false);
}

/** JSONL files go to the threads as byte ranges; other files are read here and go as records. */
function* jobsOf(
  src: DataSource,
  sourceIndex: number,
  display: string,
  maxRecordBytes: number,
  rangeBytes: number | undefined,
): Generator<PoolJob> {
  const lower = src.path.toLowerCase();
  const other = lower.endsWith(".txt") || lower.endsWith(".parquet");
  if (!other && !startsWithArray(src.path)) {
    for (const range of lineAlignedRanges(src.path, rangeBytes)) yield { kind: "range", sourceIndex, display, range };
    return;
  }
  const raws = other
    ? readDataFile(src.path, src.text_split, maxRecordBytes)
    : streamRecords(src.path, undefined, maxRecordBytes);
  let batch: RawRecord[] = [];
  for (const raw of raws) {
    batch.push(raw);
    if (batch.length === BATCH_RECORDS) {
      yield { kind: "records", sourceIndex, display, raws: batch };
      batch = [];
    }
  }
  if (batch.length) yield { kind: "records", sourceIndex, display, raws: batch };
}

async function build(
  spec: DataSpec,
  setup: TextSetup,
  dir: string,
  display: (f: string) => string,
  progress: Progress,
  opts: PrepareOptions,
): Promise<void> {
  const t0 = Date.now();
  const files = spec.data.map((d) => display(d.path));
  const taskTypes: string[] = [];
  const taskIndex = new Map<string, number>();
  const taskOf = (t: string) => {
    let i = taskIndex.get(t);
    if (i === undefined) taskIndex.set(t, (i = taskTypes.push(t) - 1));
    return i;
  };
  // Everything that grows with the dataset goes to disk as it arrives: per valid record its numbers, its
  // MinHash signature and its content key; per example its tokens, where they lie and its target count.
  const valid = int32Spill(path.join(dir, "valid.tmp"), VALID.width);
  // Near-duplicates are found here, overlapping the threads' work, among all valid records: an exact
  // duplicate has its original's signature, so it finds that record and takes no band from anyone; the
  // second half only drops the reports of records that turn out to be exact duplicates.
  const near = new NearDuplicateIndex(path.join(dir, "signatures.tmp"));
  const nearProblems: NearProblem[] = [];
  const targets = int32Spill(path.join(dir, "targets.tmp"), 1);
  const keys = spec.dedup === "none" ? null : new DuplicatePartitions(dir);
  const writer = new TokenWriter(dir);
  const recordProblems = new Map<number, Problem>();
  const readProblems: Problem[] = [];
  const counts = { records: 0, tokens: 0, targets: 0, seconds: 0 };
  const sources: DataStats["sources"] = spec.data.map((_, i) => ({ file: files[i], read: 0, valid: 0, mixed: 0 }));
  let lineBase = 0; // lines of the current file before the range being delivered
  let lastReport = 0;

  const report = () => {
    counts.seconds = (Date.now() - t0) / 1000;
    const rate = counts.seconds > 0 ? counts.tokens / counts.seconds : 0;
    progress.line(
      `data: ${counts.records} records, ${counts.tokens} tokens, ${counts.targets} targets, ` +
        `${(rate / 1e6).toFixed(2)} M tokens/s`,
    );
    opts.onProgress?.({ ...counts });
  };

  // Results arrive in file order. Every valid record's examples go to the token cache; which of them are
  // exact duplicates is decided once all keys are in (a duplicate's tokens stay unused in the file).
  const onResult = (job: SentJob, r: BatchResult) => {
    const src = job.sourceIndex;
    const stat = sources[src];
    if (job.kind === "range" && job.range.start === 0) lineBase = 0;
    const base = job.kind === "range" ? lineBase : 0;
    const at = (p: Problem): Problem => (base ? { ...p, line: p.line + base } : p);
    let problemNext = 0;
    let ex = writer.examples; // the next example's index in the cache
    let tokOff = 0; // where that example's tokens start in the batch
    for (let i = 0; i < r.lines.length; i++) {
      const problem = r.problems[problemNext]?.at === i ? at(r.problems[problemNext++].problem) : undefined;
      stat.read++;
      counts.records++;
      if (!r.valid[i]) {
        readProblems.push(problem!);
        continue;
      }
      stat.valid++;
      const v = valid.length;
      keys?.add(r.keys[2 * i], r.keys[2 * i + 1], v, r.robust[i] === 1);
      if (problem) recordProblems.set(v, problem);
      const examples = r.examples[i];
      const slot = valid.slot();
      const rec = valid.buffer;
      rec[slot + VALID.task] = taskOf(r.taskNames[r.task[i]]);
      rec[slot + VALID.source] = src;
      rec[slot + VALID.line] = r.lines[i] + base;
      rec[slot + VALID.firstExample] = ex;
      rec[slot + VALID.examples] = examples;
      rec[slot + VALID.flags] = r.flags[i];
      const sig = r.flags[i] & SIGNED ? r.signatures.subarray(i * SIGNATURE_WORDS, (i + 1) * SIGNATURE_WORDS) : null;
      const hit = near.add(v, sig);
      if (hit && !r.robust[i]) {
        const similar = valid.read(hit.similarTo);
        const message =
          `response nearly duplicates ${files[similar[VALID.source]]}:${similar[VALID.line]} ` +
          `(MinHash Jaccard ~${hit.jaccard.toFixed(2)}); kept`;
        nearProblems.push({
          ordinal: v,
          problem: problemAt({ file: files[src], line: r.lines[i] + base }, "near-duplicate", message, false),
        });
      }
      for (let e = 0; e < examples; e++, ex++) {
        const len = r.lengths[ex - writer.examples];
        let n = 0;
        for (let t = tokOff + len; t < tokOff + 2 * len; t++) if (r.tokens[t] !== IGNORE_INDEX) n++;
        targets.buffer[targets.slot()] = n;
        counts.tokens += len;
        counts.targets += n;
        tokOff += 2 * len;
      }
    }
    writer.append(r.lengths, r.tokens);
    lineBase += r.lineCount;
    if (Date.now() - lastReport > 250) {
      lastReport = Date.now();
      report();
    }
  };

  const settings = {
    seqLen: spec.seq_len,
    overlong: spec.overlong,
    trainOnPrompt: spec.train_on_prompt,
    lastTurnOnly: spec.last_turn_only,
    maxRecordTokens: spec.max_record_tokens,
  };
  const maxRecordBytes = spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
  const pool = new TokenPool({ spec, settings, nearDuplicates: true }, onResult, opts.threads);
  try {
    try {
      for (const [i, src] of spec.data.entries())
        for (const job of jobsOf(src, i, files[i], maxRecordBytes, opts.rangeBytes)) await pool.submit(job);
      await pool.finish();
    } catch (err) {
      await pool.close();
      throw err;
    }
    report();
    progress.note(
      `data: read ${counts.records} records from ${sources.length} file(s), ${readProblems.length} invalid; ` +
        `${counts.tokens} tokens, ${counts.targets} targets`,
    );
    const duplicates = keys ? keys.resolve() : { ordinals: new Int32Array(0), firsts: new Int32Array(0) };
    const ctx = { spec, dir, files, taskTypes, sources, padId: setup.tokenizer.padId, progress };
    const planned = planStreamedRows(ctx, {
      valid,
      nearProblems,
      targets,
      writer,
      duplicates,
      recordProblems,
      readProblems,
    });
    // The last progress counts what was kept: duplicates' tokens are not part of the dataset.
    counts.tokens = planned.tokens;
    counts.targets = planned.targets;
    opts.onProgress?.({ ...counts, seconds: (Date.now() - t0) / 1000 });
    const { stats } = planned;
    progress.note(
      `data: built in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${stats.train.rows} train rows, ${stats.val.rows} val rows`,
    );
  } finally {
    for (const s of [valid, near, targets, keys, writer]) s?.close();
  }
}
