// The data pipeline for datasets of any size: records streamed from the files, templated and tokenized on
// worker threads (one per core), examples written to a token cache on disk as they come. What grows with
// the dataset (per record and per example numbers, content keys, MinHash signatures) is spilled to disk
// too, and the second half (streamed_rows.ts) reads it back in order, so memory stays the same whatever the
// dataset's size; the rows are read from the cache when a step needs them. It makes the same rows,
// statistics and problems as the tests' in-memory reference (test/helpers/in_memory_pipeline.ts) for the same
// spec and seed: records keep their file order through the threads, and split, mix, pack and row order
// use the same seeded functions.
import type { DataSource } from "../spec/job_spec.js";
import { createHash } from "node:crypto";
import { closeSync, readSync } from "node:fs";
import { openInputSync } from "../files/input_files.js";
import path from "node:path";
import { CacheBuild, holdCacheEntry } from "../files/cache_folder.js";
import type { HeldFolder } from "../files/held_folder.js";
import { dataCacheDir, holdDataCache, holdDataCacheEntry } from "./storage/cache_root.js";
import { cacheKey } from "./storage/cache.js";
import { isBadRecord, type DataSpec } from "./data_keys.js";
import type { Problem } from "../text/records/problems.js";
import { Progress } from "./progress.js";
import { setupText, type TextSetup } from "../spec/text_setup.js";
import type { DataStats } from "./stats.js";
import { readDataFile, type RawRecord } from "../text/readers/read.js";
import { streamRecords } from "../text/readers/stream_records.js";
import { hasCompleteCache, TokenCache, type RowTable } from "./rows/token_cache.js";
import { TokenPool, type PoolJob } from "./examples/token_pool.js";
import { lineAlignedRanges, startsWithArray } from "../text/readers/file_ranges.js";
import { DEFAULT_MAX_RECORD_BYTES } from "../text/records/record_limits.js";
import { planStreamedRows } from "./rows/streamed_rows.js";
import { FirstPass, type PrepareProgress } from "./first_pass.js";

const BATCH_RECORDS = 256;

export type { PrepareProgress };
export { dataCacheDir };

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
  /** the cache entry the rows are read from, as named */
  cacheDir: string;
  /** that entry, held: files stored beside the rows are reached through it, never through a link */
  entry: HeldFolder;
  close(): void;
}

/** sha256 of what is left to read on `fd`, read in chunks (bounded memory for any size). */
export function hashOpenFile(fd: number): string {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  return h.digest("hex");
}

/** sha256 of an input file (opened as every input is: files/input_files.ts), read in chunks. */
export function streamedFileHash(file: string): string {
  const fd = openInputSync(file);
  try {
    return hashOpenFile(fd);
  } finally {
    closeSync(fd);
  }
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

/** The cache entry `dir` (a folder of the spec's cache) opened; `entry`: already held (it is then kept). */
export function openPrepared(
  spec: DataSpec,
  setup: TextSetup,
  dir: string,
  fromCache: boolean,
  entry: HeldFolder = holdDataCacheEntry(spec, dir),
): PreparedDataset {
  let cache: TokenCache;
  try {
    cache = new TokenCache(entry);
  } catch (err) {
    entry.close();
    throw err;
  }
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
    entry,
    close: () => {
      cache.close();
      entry.close();
    },
  };
}

export async function prepareDataset(spec: DataSpec, opts: PrepareOptions = {}): Promise<PreparedDataset> {
  const progress = new Progress(opts.quiet ?? false);
  const setup = setupText(spec);
  const display = (f: string) => path.relative(opts.displayRoot ?? process.cwd(), f) || f;
  const key = streamedCacheKey(spec, setup, display);
  const cache = holdDataCache(spec);
  try {
    const dir = path.join(cache.dir, key);
    const found = (opts.useCache ?? true) ? holdCacheEntry(cache, key) : undefined;
    if (found && hasCompleteCache(found)) {
      const d = openPrepared(spec, setup, dir, true, found);
      progress.note(`data: cached (${key.slice(0, 12)}), ${d.train.length} train rows, ${d.val.length} val rows`);
      return d;
    }
    found?.close();
    // Built in a new folder and renamed, so a crash never leaves half an entry that looks whole.
    const building = new CacheBuild(cache, key);
    try {
      await build(spec, setup, building.dir, display, progress, opts);
    } catch (err) {
      building.abort();
      throw building.named(err);
    }
    building.commit();
    return openPrepared(spec, setup, dir, false, holdCacheEntry(cache, key));
  } finally {
    cache.close();
  }
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

/** The first pass over every source on the worker threads, then the second pass to rows. */
async function build(
  spec: DataSpec,
  setup: TextSetup,
  dir: string,
  display: (f: string) => string,
  progress: Progress,
  opts: PrepareOptions,
): Promise<void> {
  const files = spec.data.map((d) => display(d.path));
  const pass = new FirstPass(spec, dir, files, progress, opts.onProgress);
  try {
    await readSources(spec, files, pass, opts);
    pass.report();
    const { counts, sources } = pass;
    progress.note(
      `data: read ${counts.records} records from ${sources.length} file(s), ${pass.readProblems.length} invalid; ` +
        `${counts.tokens} tokens, ${counts.targets} targets`,
    );
    const ctx = { spec, dir, files, taskTypes: pass.taskTypes, sources, padId: setup.tokenizer.padId, progress };
    const planned = planStreamedRows(ctx, pass.output());
    // The last progress counts what was kept: duplicates' tokens are not part of the dataset.
    opts.onProgress?.({ ...counts, tokens: planned.tokens, targets: planned.targets, seconds: pass.seconds() });
    const { stats } = planned;
    progress.note(
      `data: built in ${pass.seconds().toFixed(1)}s: ${stats.train.rows} train rows, ${stats.val.rows} val rows`,
    );
  } finally {
    pass.close();
  }
}

/** Every source's records through the worker threads, their results into the first pass in file order. */
async function readSources(spec: DataSpec, files: string[], pass: FirstPass, opts: PrepareOptions): Promise<void> {
  const settings = {
    seqLen: spec.seq_len,
    overlong: spec.overlong,
    trainOnPrompt: spec.train_on_prompt,
    lastTurnOnly: spec.last_turn_only,
    maxRecordTokens: spec.max_record_tokens,
  };
  const maxRecordBytes = spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
  const pool = new TokenPool({ spec, settings, nearDuplicates: true }, (job, r) => pass.add(job, r), opts.threads);
  try {
    for (const [i, src] of spec.data.entries())
      for (const job of jobsOf(src, i, files[i]!, maxRecordBytes, opts.rangeBytes)) await pool.submit(job);
    await pool.finish();
  } catch (err) {
    await pool.close();
    throw err;
  }
}
