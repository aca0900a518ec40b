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
import { hasCompleteCache } from "../rows/token_cache.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import type { PairStats } from "./pair_spec.js";
import type { PairSpec } from "./pair_spec.js";
import { streamPairsToCache } from "./stream_pairs.js";
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
    layout: "pair-cache-2",
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
  mkdirSync(root, { recursive: true });
  // Built in a temporary folder and renamed, so a crash never leaves half an entry that looks whole.
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp);
  try {
    streamPairsToCache(tmp, spec, setup, display, opts.onProgress);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return openPrepared(spec, setup, dir, false);
}
