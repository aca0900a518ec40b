// The data pipeline off the coordinator's main thread: tokenizing a large dataset takes minutes, and the
// main thread must keep answering NATS (submissions, status) and counting heartbeats meanwhile. The thread
// leaves its result in the token cache on disk; the main thread opens it and reads rows as steps need them.
import { isMainThread, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import type { DataSpec } from "./data_keys.js";
import { setupText } from "../spec/text_setup.js";
import { runCacheThread, serveCacheThread } from "./cache_thread.js";
import { openPrepared, prepareDataset, type PrepareProgress, type PreparedDataset } from "./streamed_pipeline.js";

interface ThreadData {
  buildInThread: DataSpec;
}

/**
 * prepareDataset in a worker thread; `onProgress` hears its counts while it runs. Aborting `signal` (a
 * cancel) terminates the thread and the reader threads it started: reading stops and their memory goes.
 */
export function buildDatasetInThread(
  spec: DataSpec,
  onProgress?: (p: PrepareProgress) => void,
  signal?: AbortSignal,
): Promise<PreparedDataset> {
  const open = (dir: string, fromCache: boolean) => openPrepared(spec, setupText(spec), dir, fromCache);
  const data: ThreadData = { buildInThread: spec };
  return runCacheThread(fileURLToPath(import.meta.url), data, "data pipeline", open, onProgress, signal);
}

if (!isMainThread && (workerData as ThreadData | undefined)?.buildInThread) {
  const spec = (workerData as ThreadData).buildInThread;
  serveCacheThread((onProgress) => prepareDataset(spec, { quiet: true, onProgress }));
}
