// The data pipeline for datasets of any size: records streamed from the files, templated and tokenized on
// worker threads (one per core), examples written to a token cache on disk as they come. Only a few
// numbers per record stay in memory (task, source, line, lengths, duplicate keys and MinHash signatures);
// the rows are read back from the cache when a step needs them. It makes the same rows, statistics and
// problems as buildDataset (pipeline.ts), which holds everything in memory, for the same spec and seed:
// records keep their file order through the threads, and split, mix, pack and row order run on example
// indices with the same seeded functions.
import type { DataSource } from "../job_spec/job_spec.js";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { cacheKey } from "./cache.js";
import { mixSources } from "./mix.js";
import { DuplicateKeys } from "./duplicate_keys.js";
import { NearDuplicateIndex } from "./near_duplicate_index.js";
import { firstFitDecreasing } from "./pack.js";
import { isBadRecord, type DataSpec } from "./pipeline.js";
import { problemAt, type Problem } from "./problems.js";
import { Progress } from "./progress.js";
import { makeRng, shuffleInPlace, subSeed } from "./rng.js";
import { setupText, type TextSetup } from "./setup.js";
import { stratifiedSplit } from "./split.js";
import { recordCounts, sortProblems, type DataStats, type SplitStats, type TaskStats } from "./stats.js";
import { readDataFile, type RawRecord } from "./read.js";
import { streamRecords } from "./stream_records.js";
import {
  hasCompleteCache,
  TokenCache,
  TokenWriter,
  writeRowsAndMeta,
  type RowPlan,
  type RowTable,
} from "./token_cache.js";
import { TokenPool, type PoolJob, type SentJob } from "./token_pool.js";
import { SIGNATURE_WORDS, SIGNED, SPLIT, TRUNCATED, type BatchResult } from "./record_batch.js";
import { lineAlignedRanges, startsWithArray } from "./file_ranges.js";
import { growingInt32s } from "./growable.js";
import { DEFAULT_MAX_RECORD_BYTES } from "./record_limits.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
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
    layout: "token-cache-1",
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

/** Per kept record (valid and not an exact duplicate), in file order. */
class KeptRecords {
  readonly task = growingInt32s();
  readonly source = growingInt32s();
  readonly line = growingInt32s();
  readonly firstExample = growingInt32s();
  readonly exampleCount = growingInt32s();
  readonly problems = new Map<number, Problem>();
  get length(): number {
    return this.task.length;
  }
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
  const kept = new KeptRecords();
  const readProblems: Problem[] = [];
  const dupProblems: Problem[] = [];
  const nearProblems: Problem[] = [];
  const seen = new DuplicateKeys(); // record key -> first kept record's source index * 2^32 + line
  const near = new NearDuplicateIndex(path.join(dir, "signatures.tmp"));
  const writer = new TokenWriter(dir);
  const exampleTargets = growingInt32s();
  let truncated = 0;
  let split = 0;
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

  // Results arrive in file order; here the exact duplicates are decided and the kept records' examples
  // appended to the token cache (a duplicate's tokens are dropped by closing the gap they leave).
  const onResult = (job: SentJob, r: BatchResult) => {
    const src = job.sourceIndex;
    const stat = sources[src];
    if (job.kind === "range" && job.range.start === 0) lineBase = 0;
    const base = job.kind === "range" ? lineBase : 0;
    const at = (p: Problem): Problem => (base ? { ...p, line: p.line + base } : p);
    let problemNext = 0;
    let ex = 0; // the batch's example index
    let tokOff = 0; // where that example's tokens start
    let keptExamples = 0;
    let keptTokens = 0;
    for (let i = 0; i < r.lines.length; i++) {
      const line = r.lines[i] + base;
      const problem = r.problems[problemNext]?.at === i ? at(r.problems[problemNext++].problem) : undefined;
      const examples = r.examples[i];
      let span = 0;
      for (let e = ex; e < ex + examples; e++) span += 2 * r.lengths[e];
      stat.read++;
      counts.records++;
      if (!r.valid[i]) {
        readProblems.push(problem!);
        continue;
      }
      stat.valid++;
      // dedup: none keeps repeats on purpose; the near-duplicate report runs either way.
      const hi = r.keys[2 * i];
      const lo = r.keys[2 * i + 1];
      const first = spec.dedup === "none" ? undefined : seen.getWords(hi, lo);
      if (first !== undefined && !r.robust[i]) {
        const firstSeen = `${files[Math.floor(first / 2 ** 32)]}:${first % 2 ** 32}`;
        dupProblems.push(problemAt({ file: files[src], line }, "duplicate", `exact duplicate of ${firstSeen}`));
        ex += examples;
        tokOff += span;
        continue;
      }
      if (spec.dedup !== "none" && first === undefined) seen.setWords(hi, lo, src * 2 ** 32 + line);
      const k = kept.length;
      kept.task.push(taskOf(r.taskNames[r.task[i]]));
      kept.source.push(src);
      kept.line.push(line);
      kept.firstExample.push(writer.examples + keptExamples);
      kept.exampleCount.push(examples);
      if (problem) kept.problems.set(k, problem);
      if (r.flags[i] & TRUNCATED) truncated++;
      if (r.flags[i] & SPLIT) split++;
      for (let e = ex; e < ex + examples; e++) {
        const len = r.lengths[e];
        let targets = 0;
        for (let t = tokOff + len; t < tokOff + 2 * len; t++) if (r.tokens[t] !== IGNORE_INDEX) targets++;
        exampleTargets.push(targets);
        counts.tokens += len;
        counts.targets += targets;
        r.lengths[keptExamples++] = len;
        if (keptTokens !== tokOff) r.tokens.copyWithin(keptTokens, tokOff, tokOff + 2 * len);
        keptTokens += 2 * len;
        tokOff += 2 * len;
      }
      ex += examples;
      const sig = r.flags[i] & SIGNED ? r.signatures.subarray(i * SIGNATURE_WORDS, (i + 1) * SIGNATURE_WORDS) : null;
      const hit = near.add(k, sig);
      if (hit && !r.robust[i]) {
        const similar = `${files[kept.source.at(hit.similarTo)]}:${kept.line.at(hit.similarTo)}`;
        nearProblems.push(
          problemAt(
            { file: files[src], line },
            "near-duplicate",
            `response nearly duplicates ${similar} (MinHash Jaccard ~${hit.jaccard.toFixed(2)}); kept`,
            false,
          ),
        );
      }
    }
    writer.append(r.lengths.subarray(0, keptExamples), r.tokens.subarray(0, keptTokens));
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
    for (const [i, src] of spec.data.entries())
      for (const job of jobsOf(src, i, files[i], maxRecordBytes, opts.rangeBytes)) await pool.submit(job);
    await pool.finish();
  } catch (err) {
    await pool.close();
    throw err;
  } finally {
    near.close();
  }
  seen.clear();
  report();
  writer.close(dir);
  progress.note(
    `data: read ${counts.records} records from ${sources.length} file(s), ${readProblems.length} invalid; ` +
      `${counts.tokens} tokens, ${counts.targets} targets`,
  );

  // Split, mix and pack on indices, with the seeded functions and labels the in-memory pipeline uses.
  const keptTask = kept.task.view();
  const keptSource = kept.source.view();
  const firstExample = kept.firstExample.view();
  const exampleCount = kept.exampleCount.view();
  const targetsOf = exampleTargets.view();
  const keptIds = Array.from({ length: kept.length }, (_, k) => k);
  const { train: trainRecs, val: valRecs } = stratifiedSplit(
    keptIds,
    (k) => taskTypes[keptTask[k]],
    spec.val_size,
    subSeed(spec.seed, "val"),
  );
  const examplesOf = (recs: number[]) => {
    const out: number[] = [];
    for (const k of recs) for (let e = 0; e < exampleCount[k]; e++) out.push(firstExample[k] + e);
    return out;
  };
  const exampleRecord = new Int32Array(writer.examples);
  for (let k = 0; k < kept.length; k++)
    for (let e = 0; e < exampleCount[k]; e++) exampleRecord[firstExample[k] + e] = k;
  const trainExamples = examplesOf(trainRecs);
  const valExamples = examplesOf(valRecs);
  const bySource: number[][] = spec.data.map(() => []);
  for (const e of trainExamples) bySource[keptSource[exampleRecord[e]]].push(e);
  const mixed = mixSources(
    spec.data.map((d, i) => ({ items: bySource[i], weight: d.weight, epochs: d.epochs })),
    spec.seed,
  );
  for (const e of mixed) sources[keptSource[exampleRecord[e]]].mixed++;

  const lengthOf = (e: number) => writer.lengthOf(e);
  // Rows as flat typed arrays (a row's members in input order, as packing placed them), never an array
  // per row: a few bytes per example however many rows there are.
  const toRows = (examples: number[], label: string): RowPlan => {
    const n = examples.length;
    if (!spec.packing) {
      const starts = Int32Array.from({ length: n + 1 }, (_, r) => r);
      const members = Int32Array.from(examples);
      return { starts, members, memberTasks: members.map((e) => keptTask[exampleRecord[e]]), width: 0 };
    }
    const lengths = new Int32Array(n);
    for (let i = 0; i < n; i++) lengths[i] = lengthOf(examples[i]);
    const { rowOf, rows } = firstFitDecreasing(lengths, spec.seq_len);
    const filled = new Int32Array(rows + 1); // members per row, then where each row starts
    for (let i = 0; i < n; i++) filled[rowOf[i] + 1]++;
    for (let r = 0; r < rows; r++) filled[r + 1] += filled[r];
    const packed = new Int32Array(n);
    const next = filled.slice(0, rows);
    for (let i = 0; i < n; i++) packed[next[rowOf[i]]++] = examples[i];
    // Packing sorts by length; shuffled rows keep long and short examples spread over the steps. The
    // shuffle's swaps depend only on the row count and the seed, so shuffling row numbers orders the rows
    // as shuffling the rows themselves would.
    const order = shuffleInPlace(
      Array.from({ length: rows }, (_, r) => r),
      makeRng(subSeed(spec.seed, `rows:${label}`)),
    );
    const starts = new Int32Array(rows + 1);
    const members = new Int32Array(n);
    order.forEach((r, k) => {
      members.set(packed.subarray(filled[r], filled[r + 1]), starts[k]);
      starts[k + 1] = starts[k] + filled[r + 1] - filled[r];
    });
    const memberTasks = members.map((e) => keptTask[exampleRecord[e]]);
    return { starts, members, memberTasks, width: spec.seq_len };
  };
  const trainPlan = toRows(mixed, "train");
  const valPlan = toRows(valExamples, "val");

  const splitStats = (examples: number[], plan: RowPlan): SplitStats => {
    let tokens = 0;
    let targets = 0;
    for (const e of examples) {
      tokens += lengthOf(e);
      targets += targetsOf[e];
    }
    const rows = plan.starts.length - 1;
    const rowTokens = plan.width ? rows * plan.width : tokens;
    return {
      examples: examples.length,
      rows,
      tokens,
      targets,
      rowTokens,
      efficiency: rowTokens ? tokens / rowTokens : 0,
    };
  };
  const perTask: Record<string, TaskStats> = {};
  for (const e of mixed) {
    const t = (perTask[taskTypes[keptTask[exampleRecord[e]]]] ??= { examples: 0, tokens: 0, targets: 0 });
    t.examples++;
    t.tokens += lengthOf(e);
    t.targets += targetsOf[e];
  }

  const tokenizeProblems = (recs: number[]) =>
    recs.filter((k) => kept.problems.has(k)).map((k) => kept.problems.get(k)!);
  const problems = [
    ...readProblems,
    ...dupProblems,
    ...nearProblems,
    ...tokenizeProblems(trainRecs),
    ...tokenizeProblems(valRecs),
  ];
  sortProblems(problems);
  const stats: DataStats = {
    sources,
    ...recordCounts(problems, sources),
    nearDuplicates: nearProblems.length,
    truncated,
    split,
    perTask,
    train: splitStats(mixed, trainPlan),
    val: splitStats(valExamples, valPlan),
  };
  writeRowsAndMeta(dir, { stats, problems, taskTypes, padId: setup.tokenizer.padId }, trainPlan, valPlan);
  progress.note(
    `data: built in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${stats.train.rows} train rows, ${stats.val.rows} val rows`,
  );
}
