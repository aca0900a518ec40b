// A preference job's rows in the token cache on disk, like an SFT job's: each pair's chosen and rejected
// sequences are two examples, each row lists its pairs' examples in order. The entry's name covers the data
// files' contents, the data settings, the tokenizer, the template and the pipeline's code, so a restart (or
// a resume, or the next job on the same data) opens the rows without reading the files again, and the
// reference log-probabilities stored beside them (reference_store.ts) are found again.
import { closeSync, mkdirSync, readSync, renameSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { openInputSync } from "../../files/input_files.js";
import path from "node:path";
import { cacheKey } from "../storage/cache.js";
import { dataCacheDir, openPrepared, type PreparedDataset } from "../streamed_pipeline.js";
import { hasCompleteCache, RowsWriter, TokenWriter } from "../rows/token_cache.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import type { PairStats } from "./prepare_pairs.js";
import { preparePairs, type PairSpec, type PreparedPairs } from "./prepare_pairs.js";
import type { PairExample } from "./pair_examples.js";
import type { DataSpec } from "../data_keys.js";
import type { PrepareProgress } from "../first_pass.js";

export type PairCacheSpec = PairSpec & DataSpec;

export type PreparedPairData = PreparedDataset & { stats: { pairs?: PairStats } };

// The keys that make the rows (the files, tokenizer and template are keyed on their own): a job that changes
// only its training keys (lr, steps, the loss) opens the same entry, and the reference stored with it.
const ROW_KEYS = [
  "val_size",
  "seq_len",
  "packing",
  "seed",
  "dedup",
  "template_options",
  "max_record_bytes",
  "max_record_tokens",
] as const;

/** The cache entry's name for a preference job's data. */
export function pairCacheKey(spec: PairCacheSpec, setup: TextSetup, display: (f: string) => string): string {
  const settings = Object.fromEntries(ROW_KEYS.map((k) => [k, spec[k] ?? null]));
  return cacheKey({
    layout: "pair-cache-1",
    files: spec.data.map((d) => ({ ...d, path: display(d.path), hash: inputFileHash(d.path) })),
    settings,
    tokenizer: setup.tokenizer.fingerprint,
    template: setup.templateId,
  });
}

/**
 * sha256 of a data file, read through the confined reader like the records themselves: a link out of the
 * input roots or a FIFO is refused here already, before anything waits on it.
 */
function inputFileHash(file: string): string {
  const h = createHash("sha256");
  const fd = openInputSync(file);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** The job's pairs from the token cache, built there first when the entry is missing. */
export function preparePairsCached(
  spec: PairCacheSpec,
  opts: { displayRoot?: string; useCache?: boolean; onProgress?: (p: PrepareProgress) => void } = {},
): PreparedPairData {
  const setup = setupText(spec);
  const display = (f: string) => path.relative(opts.displayRoot ?? process.cwd(), f) || f;
  const root = dataCacheDir(spec);
  const dir = path.join(root, pairCacheKey(spec, setup, display));
  if ((opts.useCache ?? true) && hasCompleteCache(dir)) return openPrepared(spec, setup, dir, true);
  const built = preparePairs(spec, opts);
  mkdirSync(root, { recursive: true });
  // Built in a temporary folder and renamed, so a crash never leaves half an entry that looks whole.
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp);
  try {
    writePairCache(tmp, built, spec);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return openPrepared(spec, setup, dir, false);
}

function writePairCache(dir: string, built: PreparedPairs, spec: PairCacheSpec): void {
  const tokens = new TokenWriter(dir);
  const rows = new RowsWriter(dir);
  const taskIndex = new Map<string, number>();
  const taskOf = (t: string) => {
    let k = taskIndex.get(t);
    if (k === undefined) taskIndex.set(t, (k = taskIndex.size));
    return k;
  };
  try {
    const write = (groups: PairExample[][], split: RowsWriter["train"]) => {
      for (const group of groups) {
        const members: number[] = [];
        const tasks: number[] = [];
        for (const p of group)
          for (const e of [p.chosen, p.rejected]) {
            members.push(tokens.examples);
            tasks.push(taskOf(e.taskType));
            const both = new Int32Array(2 * e.inputIds.length);
            both.set(e.inputIds);
            both.set(e.labels, e.inputIds.length);
            tokens.append(Int32Array.of(e.inputIds.length), both);
          }
        split.add(members, tasks, 0, members.length);
      }
    };
    write(built.groups.train, rows.train);
    write(built.groups.val, rows.val);
    tokens.close();
    rows.finish(
      {
        stats: built.stats,
        problems: built.problems,
        taskTypes: [...taskIndex.keys()],
        padId: built.setup.tokenizer.padId,
      },
      spec.packing ? spec.seq_len : 0,
    );
  } catch (err) {
    rows.close();
    throw err;
  }
}
