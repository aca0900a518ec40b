// A preference job's rows in the token cache on disk, like an SFT job's: each pair's chosen and rejected
// sequences are two examples, each row lists its pairs' examples in order. The entry's name covers the data
// files' contents, the data settings, the tokenizer, the template and the pipeline's code, so a restart (or
// a resume, or the next job on the same data) opens the rows without reading the files again, and the
// reference log-probabilities stored beside them (reference_store.ts) are found again.
import { closeSync, readSync } from "node:fs";
import { createHash } from "node:crypto";
import { openInputSync } from "../../files/input_files.js";
import path from "node:path";
import { cacheKey } from "../storage/cache.js";
import { openPrepared, type PreparedDataset } from "../streamed_pipeline.js";
import { CacheBuild, holdCacheEntry } from "../../files/cache_folder.js";
import { holdDataCache } from "../storage/cache_root.js";
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
  const key = pairCacheKey(spec, setup, display);
  const cache = holdDataCache(spec);
  try {
    const dir = path.join(cache.dir, key);
    const found = (opts.useCache ?? true) ? holdCacheEntry(cache, key) : undefined;
    if (found && hasCompleteCache(found)) return openPrepared(spec, setup, dir, true, found);
    found?.close();
    // Built in a new folder and renamed, so a crash never leaves half an entry that looks whole.
    const building = new CacheBuild(cache, key);
    try {
      streamPairsToCache(building.dir, spec, setup, display, opts.onProgress);
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
