// A preference job's data pipeline off the coordinator's main thread, like an SFT job's: reading and
// tokenizing a few hundred thousand pairs takes a while, and the main thread must keep answering NATS and
// counting heartbeats meanwhile. The thread leaves the rows in the token cache; the main thread opens the
// entry and reads rows from disk as steps need them, so its heap holds nothing per pair. A cancel ends the
// thread, and the memory its pairs held goes with it.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { setupText } from "../../spec/text_setup.js";
import { openPrepared } from "../streamed_pipeline.js";
import type { PrepareProgress } from "../first_pass.js";
import { preparePairsCached, type PairCacheSpec, type PreparedPairData } from "./pair_cache.js";

type ThreadMessage =
  | { kind: "progress"; progress: PrepareProgress }
  | { kind: "done"; dir: string; fromCache: boolean }
  | { kind: "error"; error: string };

interface ThreadData {
  pairsInThread: PairCacheSpec;
}

/** preparePairsCached in a worker thread; aborting `signal` terminates it. */
export function preparePairsInThread(
  spec: PairCacheSpec,
  onProgress?: (p: PrepareProgress) => void,
  signal?: AbortSignal,
): Promise<PreparedPairData> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { pairsInThread: spec } });
    const abort = () => {
      reject(signal!.reason as Error);
      void worker.terminate();
    };
    signal?.addEventListener("abort", abort, { once: true });
    worker.once("exit", () => signal?.removeEventListener("abort", abort));
    worker.on("message", (m: ThreadMessage) => {
      if (m.kind === "progress") return onProgress?.(m.progress);
      if (m.kind === "error") return reject(new Error(m.error));
      try {
        resolve(openPrepared(spec, setupText(spec), m.dir, m.fromCache));
      } catch (err) {
        reject(err);
      }
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`the preference data thread exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as ThreadData | undefined)?.pairsInThread) {
  const port = parentPort;
  const spec = (workerData as ThreadData).pairsInThread;
  try {
    const d = preparePairsCached(spec, {
      onProgress: (progress) => port.postMessage({ kind: "progress", progress } satisfies ThreadMessage),
    });
    d.close();
    port.postMessage({ kind: "done", dir: d.cacheDir, fromCache: d.fromCache } satisfies ThreadMessage);
  } catch (err) {
    port.postMessage({ kind: "error", error: (err as Error).message } satisfies ThreadMessage);
  }
}
