// The data pipeline off the coordinator's main thread: tokenizing a large dataset takes minutes, and the
// main thread must keep answering NATS (submissions, status) and counting heartbeats meanwhile. The thread
// leaves its result in the token cache on disk; the main thread opens it and reads rows as steps need them.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import type { DataSpec } from "./data_keys.js";
import { setupText } from "../spec/text_setup.js";
import { openPrepared, prepareDataset, type PrepareProgress, type PreparedDataset } from "./streamed_pipeline.js";

type ThreadMessage =
  | { kind: "progress"; progress: PrepareProgress }
  | { kind: "done"; dir: string; fromCache: boolean }
  | { kind: "error"; error: string };

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
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { buildInThread: spec } });
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
      if (code !== 0) reject(new Error(`the data pipeline thread exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as ThreadData | undefined)?.buildInThread) {
  const port = parentPort;
  const spec = (workerData as ThreadData).buildInThread;
  prepareDataset(spec, {
    quiet: true,
    onProgress: (progress) => port.postMessage({ kind: "progress", progress } satisfies ThreadMessage),
  }).then(
    (d) => {
      d.close();
      port.postMessage({ kind: "done", dir: d.cacheDir, fromCache: d.fromCache } satisfies ThreadMessage);
    },
    (err: Error) => port.postMessage({ kind: "error", error: err.message } satisfies ThreadMessage),
  );
}
