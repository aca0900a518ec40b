// The data pipeline for a job: read and check every source, remove duplicates, split off validation,
// template + tokenize + mask, mix by weight, pack. Cached on disk by a hash of everything it reads.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cacheKey } from "../../data/storage/cache.js";
import { fileHash, readCache, writeCache, type CachedDataset } from "./in_memory_cache.js";
import {
  findNearDuplicates,
  loadSource,
  packRows,
  removeExactDuplicates,
  tokenizeRecords,
  unpackedRows,
} from "./in_memory_steps.js";
import type { Example } from "../../data/examples/example.js";
import { mixSources } from "../../data/sampling/mix.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { isBadRecord, type DataSpec } from "../../data/data_keys.js";
import { Progress } from "../../data/progress.js";
import type { DataRecord } from "../../text/records/records.js";
import { subSeed } from "../../spec/rng.js";
import type { Row } from "../../data/rows/row.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import { stratifiedSplit } from "../../data/sampling/split.js";
import { recordCounts, sortProblems, splitStats, taskStats, type DataStats } from "../../data/stats.js";

export interface BuildOptions {
  quiet?: boolean;
  /** false: always rebuild (and do not write the cache) */
  useCache?: boolean;
  /** how files are named in messages; default: relative to the working directory */
  displayRoot?: string;
}

export interface BuiltDataset extends CachedDataset {
  setup: TextSetup;
  fromCache: boolean;
  /** true when on_bad_record is fail and a record was bad */
  failed: boolean;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export function buildDataset(spec: DataSpec, opts: BuildOptions = {}): BuiltDataset {
  const progress = new Progress(opts.quiet ?? false);
  const setup = setupText(spec);
  const display = (f: string) => path.relative(opts.displayRoot ?? process.cwd(), f) || f;
  // RINGTUNE_CACHE_DIR moves the cache of specs that name no cache_dir out of the checkout (a read-only
  // install, or a test that must leave the repository as it found it).
  const cacheDir = spec.cache_dir ?? process.env.RINGTUNE_CACHE_DIR ?? path.join(repoRoot, ".cache", "data");
  const useCache = opts.useCache ?? true;
  let key = "";
  if (useCache) {
    key = cacheKey({
      files: spec.data.map((d) => ({ ...d, path: display(d.path), hash: fileHash(d.path) })),
      settings: { ...spec, data: undefined, model: undefined, tokenizer: undefined, cache_dir: undefined },
      tokenizer: setup.tokenizer.fingerprint,
      template: setup.templateId,
    });
    const hit = readCache(cacheDir, key);
    if (hit) {
      progress.note(`data: cached (${key.slice(0, 12)}), ${hit.train.length} train rows, ${hit.val.length} val rows`);
      return { ...hit, setup, fromCache: true, failed: failed(spec, hit.problems) };
    }
  }
  const built = build(spec, setup, progress, display);
  if (useCache) writeCache(cacheDir, key, built);
  return { ...built, setup, fromCache: false, failed: failed(spec, built.problems) };
}

function failed(spec: DataSpec, problems: Problem[]): boolean {
  return spec.on_bad_record === "fail" && problems.some(isBadRecord);
}

function build(spec: DataSpec, setup: TextSetup, progress: Progress, display: (f: string) => string): CachedDataset {
  const t0 = Date.now();
  const problems: Problem[] = [];
  const all: DataRecord[] = [];
  const sources = spec.data.map((src, i) => {
    const loaded = loadSource(src, i, display(src.path), progress, spec.max_record_bytes);
    problems.push(...loaded.problems);
    all.push(...loaded.records);
    return { file: display(src.path), read: loaded.read, valid: loaded.records.length, mixed: 0 };
  });
  progress.note(
    `data: read ${all.length + problems.length} records from ${sources.length} file(s), ${problems.length} invalid`,
  );

  const dups = spec.dedup === "none" ? { kept: all, removed: [] } : removeExactDuplicates(all);
  for (const d of dups.removed) {
    problems.push(
      problemAt(d.record.source, "duplicate", `exact duplicate of ${d.firstSeen.file}:${d.firstSeen.line}`),
    );
  }
  const near = findNearDuplicates(dups.kept);
  for (const n of near) {
    problems.push(
      problemAt(
        n.record.source,
        "near-duplicate",
        `response nearly duplicates ${n.similarTo.file}:${n.similarTo.line} (MinHash Jaccard ~${n.jaccard.toFixed(2)}); kept`,
        false,
      ),
    );
  }

  const { train: trainRecords, val: valRecords } = stratifiedSplit(
    dups.kept,
    (r) => r.taskType,
    spec.val_size,
    subSeed(spec.seed, "val"),
  );
  const settings = {
    seqLen: spec.seq_len,
    overlong: spec.overlong,
    trainOnPrompt: spec.train_on_prompt,
    lastTurnOnly: spec.last_turn_only,
    maxRecordTokens: spec.max_record_tokens,
  };
  const tr = tokenizeRecords(trainRecords, setup.tokenizer, setup.template, settings, "tokenizing train", progress);
  const va = tokenizeRecords(valRecords, setup.tokenizer, setup.template, settings, "tokenizing val", progress);
  problems.push(...tr.problems, ...va.problems);

  const bySource: Example[][] = spec.data.map(() => []);
  for (const e of tr.examples) bySource[e.sourceIndex].push(e);
  const mixed = mixSources(
    spec.data.map((d, i) => ({ items: bySource[i], weight: d.weight, epochs: d.epochs })),
    spec.seed,
  );
  for (const e of mixed) sources[e.sourceIndex].mixed++;

  const toRows = (examples: Example[], label: string): Row[] =>
    spec.packing
      ? packRows(examples, spec.seq_len, setup.tokenizer.padId, spec.seed, label)
      : unpackedRows(examples, setup.tokenizer.padId);
  const train = toRows(mixed, "train");
  const val = toRows(va.examples, "val");

  sortProblems(problems);
  const stats: DataStats = {
    sources,
    ...recordCounts(problems, sources),
    nearDuplicates: near.length,
    truncated: tr.truncated + va.truncated,
    split: tr.split + va.split,
    perTask: taskStats(mixed),
    train: splitStats(mixed, train),
    val: splitStats(va.examples, val),
  };
  progress.note(
    `data: built in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${train.length} train rows, ${val.length} val rows`,
  );
  return { train, val, stats, problems };
}
