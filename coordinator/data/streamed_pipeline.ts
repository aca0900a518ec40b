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
import { recordKey } from "./dedupe.js";
import { loadRecord } from "./load_records.js";
import { mixSources } from "./mix.js";
import { DuplicateKeys } from "./duplicate_keys.js";
import { NearDuplicateIndex } from "./near_duplicate_index.js";
import { firstFitDecreasing } from "./pack.js";
import { isBadRecord, type DataSpec } from "./pipeline.js";
import { problemAt, type Problem } from "./problems.js";
import { Progress } from "./progress.js";
import { ROBUSTNESS_TAG, type DataRecord } from "./records.js";
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
import { SIGNATURE_WORDS, TokenPool, type BatchResult } from "./token_pool.js";

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

/**
 * JSON and JSONL files are streamed; any other kind (.txt, .parquet) is read whole by readDataFile, which
 * knows the file kinds that are not line- or element-oriented JSON.
 */
function recordsOf(src: DataSource): Iterable<RawRecord> {
  return /\.(jsonl|json|ndjson)$/i.test(src.path) ? streamRecords(src.path) : readDataFile(src.path, src.text_split);
}

/** Per kept record (valid and not an exact duplicate), in file order. */
class KeptRecords {
  readonly task: number[] = [];
  readonly source: number[] = [];
  readonly line: number[] = [];
  readonly firstExample: number[] = [];
  readonly exampleCount: number[] = [];
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
  const exampleTargets: number[] = [];
  let truncated = 0;
  let split = 0;
  const counts = { records: 0, tokens: 0, targets: 0, seconds: 0 };
  let delivered = 0;

  const report = () => {
    counts.seconds = (Date.now() - t0) / 1000;
    const rate = counts.seconds > 0 ? counts.tokens / counts.seconds : 0;
    progress.line(
      `data: ${counts.records} records read, ${delivered} tokenized, ${counts.tokens} tokens, ` +
        `${counts.targets} targets, ${(rate / 1e6).toFixed(2)} M tokens/s`,
    );
    opts.onProgress?.({ ...counts });
  };

  const onResult = (records: DataRecord[], r: BatchResult) => {
    let ex = 0;
    let tokOff = 0;
    records.forEach((rec, j) => {
      const k = delivered + j;
      const o = r.outcomes[j];
      kept.firstExample[k] = writer.examples + ex;
      kept.exampleCount[k] = o.examples;
      if (o.problem) kept.problems.set(k, o.problem);
      if (o.truncated) truncated++;
      if (o.split) split++;
      for (let e = 0; e < o.examples; e++) {
        const len = r.lengths[ex + e];
        let targets = 0;
        for (let t = tokOff + len; t < tokOff + 2 * len; t++) if (r.tokens[t] !== IGNORE_INDEX) targets++;
        exampleTargets.push(targets);
        counts.tokens += len;
        counts.targets += targets;
        tokOff += 2 * len;
      }
      ex += o.examples;
      const sig = o.hasSignature ? r.signatures.subarray(j * SIGNATURE_WORDS, (j + 1) * SIGNATURE_WORDS) : null;
      const hit = near.add(k, sig);
      if (hit && !rec.tags.includes(ROBUSTNESS_TAG)) {
        const similar = `${files[kept.source[hit.similarTo]]}:${kept.line[hit.similarTo]}`;
        nearProblems.push(
          problemAt(
            rec.source,
            "near-duplicate",
            `response nearly duplicates ${similar} (MinHash Jaccard ~${hit.jaccard.toFixed(2)}); kept`,
            false,
          ),
        );
      }
    });
    writer.append(r.lengths, r.tokens);
    delivered += records.length;
  };

  const settings = {
    seqLen: spec.seq_len,
    overlong: spec.overlong,
    trainOnPrompt: spec.train_on_prompt,
    lastTurnOnly: spec.last_turn_only,
  };
  const pool = new TokenPool({ spec, settings, nearDuplicates: true }, onResult, opts.threads);
  const sources: DataStats["sources"] = [];
  let lastReport = 0;
  try {
    for (const [i, src] of spec.data.entries()) {
      const stat = { file: files[i], read: 0, valid: 0, mixed: 0 };
      sources.push(stat);
      let batch: DataRecord[] = [];
      for (const raw of recordsOf(src)) {
        stat.read++;
        counts.records++;
        const loaded = loadRecord(raw, src, i, files[i]);
        if ("problem" in loaded) {
          readProblems.push(loaded.problem);
          continue;
        }
        stat.valid++;
        const rec = loaded.record;
        // dedup: none keeps repeats on purpose; the near-duplicate report runs either way.
        const key = spec.dedup === "none" ? undefined : recordKey(rec);
        const first = key === undefined ? undefined : seen.get(key);
        if (first !== undefined && !rec.tags.includes(ROBUSTNESS_TAG)) {
          const firstSeen = `${files[Math.floor(first / 2 ** 32)]}:${first % 2 ** 32}`;
          dupProblems.push(problemAt(rec.source, "duplicate", `exact duplicate of ${firstSeen}`));
          continue;
        }
        if (key !== undefined && first === undefined) seen.set(key, i * 2 ** 32 + raw.line);
        kept.task.push(taskOf(rec.taskType));
        kept.source.push(i);
        kept.line.push(raw.line);
        batch.push(rec);
        if (batch.length === BATCH_RECORDS) {
          await pool.submit(batch);
          batch = [];
          if (Date.now() - lastReport > 250) {
            lastReport = Date.now();
            report();
          }
        }
      }
      if (batch.length) await pool.submit(batch);
    }
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
  const keptIds = Array.from({ length: kept.length }, (_, k) => k);
  const { train: trainRecs, val: valRecs } = stratifiedSplit(
    keptIds,
    (k) => taskTypes[kept.task[k]],
    spec.val_size,
    subSeed(spec.seed, "val"),
  );
  const examplesOf = (recs: number[]) => {
    const out: number[] = [];
    for (const k of recs) for (let e = 0; e < kept.exampleCount[k]; e++) out.push(kept.firstExample[k] + e);
    return out;
  };
  const exampleRecord = new Int32Array(writer.examples);
  for (let k = 0; k < kept.length; k++)
    for (let e = 0; e < kept.exampleCount[k]; e++) exampleRecord[kept.firstExample[k] + e] = k;
  const trainExamples = examplesOf(trainRecs);
  const valExamples = examplesOf(valRecs);
  const bySource: number[][] = spec.data.map(() => []);
  for (const e of trainExamples) bySource[kept.source[exampleRecord[e]]].push(e);
  const mixed = mixSources(
    spec.data.map((d, i) => ({ items: bySource[i], weight: d.weight, epochs: d.epochs })),
    spec.seed,
  );
  for (const e of mixed) sources[kept.source[exampleRecord[e]]].mixed++;

  const lengthOf = (e: number) => writer.lengthOf(e);
  const toRows = (examples: number[], label: string): RowPlan => {
    let rowMembers: number[][];
    if (spec.packing) {
      const { rowOf, rows } = firstFitDecreasing(examples.map(lengthOf), spec.seq_len);
      rowMembers = Array.from({ length: rows }, () => []);
      examples.forEach((e, i) => rowMembers[rowOf[i]].push(e));
      // Packing sorts by length; shuffled rows keep long and short examples spread over the steps.
      shuffleInPlace(rowMembers, makeRng(subSeed(spec.seed, `rows:${label}`)));
    } else rowMembers = examples.map((e) => [e]);
    const starts = new Int32Array(rowMembers.length + 1);
    rowMembers.forEach((m, r) => (starts[r + 1] = starts[r] + m.length));
    const members = Int32Array.from(rowMembers.flat());
    const memberTasks = members.map((e) => kept.task[exampleRecord[e]]);
    return { starts, members, memberTasks, width: spec.packing ? spec.seq_len : 0 };
  };
  const trainPlan = toRows(mixed, "train");
  const valPlan = toRows(valExamples, "val");

  const splitStats = (examples: number[], plan: RowPlan): SplitStats => {
    let tokens = 0;
    let targets = 0;
    for (const e of examples) {
      tokens += lengthOf(e);
      targets += exampleTargets[e];
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
    const t = (perTask[taskTypes[kept.task[exampleRecord[e]]]] ??= { examples: 0, tokens: 0, targets: 0 });
    t.examples++;
    t.tokens += lengthOf(e);
    t.targets += exampleTargets[e];
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
