// Where a job's data cache entries go, and that folder held for reading and writing them
// (files/cache_folder.ts): a spec's cache_dir is reached from the process's roots, as its outputs are; the
// operator's own folder (RINGTUNE_CACHE_DIR, else the checkout's .cache/data) is a root of its own.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { holdCacheFolder, holdCacheEntry } from "../../files/cache_folder.js";
import type { HeldFolder } from "../../files/held_folder.js";
import { inputRoots } from "../../files/input_files.js";
import type { DataSpec } from "../data_keys.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export function dataCacheDir(spec: DataSpec): string {
  // RINGTUNE_CACHE_DIR moves the cache of specs that name no cache_dir out of the checkout.
  return spec.cache_dir ?? process.env.RINGTUNE_CACHE_DIR ?? path.join(repoRoot, ".cache", "data");
}

/** The spec's cache folder, held (made when missing); the caller closes it. */
export function holdDataCache(spec: DataSpec): HeldFolder {
  return holdCacheFolder(dataCacheDir(spec), spec.cache_dir === undefined ? undefined : inputRoots());
}

/** The spec's cache entry `dir` (a folder of dataCacheDir(spec)), held; it must be there. */
export function holdDataCacheEntry(spec: DataSpec, dir: string): HeldFolder {
  const cache = holdDataCache(spec);
  try {
    const entry = holdCacheEntry(cache, path.basename(dir));
    if (!entry) throw new Error(`${dir}: the data cache entry is gone`);
    return entry;
  } finally {
    cache.close();
  }
}
