// A preference job's data pipeline off the coordinator's main thread, like an SFT job's: reading and
// tokenizing a few hundred thousand pairs takes a while, and the main thread must keep answering NATS and
// counting heartbeats meanwhile. The thread leaves the rows in the token cache; the main thread opens the
// entry and reads rows from disk as steps need them, so its heap holds nothing per pair. A cancel ends the
// thread, and the memory its pairs held goes with it.
import { isMainThread, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { setupText } from "../../spec/text_setup.js";
import { runCacheThread, serveCacheThread } from "../cache_thread.js";
import { openPrepared } from "../streamed_pipeline.js";
import type { PrepareProgress } from "../first_pass.js";
import { preparePairsCached, type PairCacheSpec, type PreparedPairData } from "./pair_cache.js";

interface ThreadData {
  pairsInThread: PairCacheSpec;
}

/** preparePairsCached in a worker thread; aborting `signal` terminates it. */
export function preparePairsInThread(
  spec: PairCacheSpec,
  onProgress?: (p: PrepareProgress) => void,
  signal?: AbortSignal,
): Promise<PreparedPairData> {
  const open = (dir: string, fromCache: boolean) => openPrepared(spec, setupText(spec), dir, fromCache);
  const data: ThreadData = { pairsInThread: spec };
  return runCacheThread(fileURLToPath(import.meta.url), data, "preference data", open, onProgress, signal);
}

if (!isMainThread && (workerData as ThreadData | undefined)?.pairsInThread) {
  const spec = (workerData as ThreadData).pairsInThread;
  // preparePairsCached is synchronous: a throw inside the async wrapper becomes the rejection posted back
  serveCacheThread(async (onProgress) => preparePairsCached(spec, { onProgress }));
}
