// A data pipeline run in a worker thread that leaves its result in the token cache: the main thread hears
// progress, then opens the cache entry the thread wrote. Shared by the SFT and the preference pipelines.
import { Worker, parentPort } from "node:worker_threads";
import type { PrepareProgress } from "./first_pass.js";

type ThreadMessage =
  | { kind: "progress"; progress: PrepareProgress }
  | { kind: "done"; dir: string; fromCache: boolean }
  | { kind: "error"; error: string };

/** What a pipeline thread built: its cache entry, closed (the main thread opens it again). */
interface BuiltEntry {
  cacheDir: string;
  fromCache: boolean;
  close(): void;
}

/**
 * Starts the thread `file` with `workerData`; resolves with `open(dir, fromCache)` of the entry it wrote.
 * Aborting `signal` terminates the thread (and the reader threads it started). `what` names it in errors.
 */
export function runCacheThread<T>(
  file: string,
  workerData: unknown,
  what: string,
  open: (dir: string, fromCache: boolean) => T,
  onProgress?: (p: PrepareProgress) => void,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const worker = new Worker(file, { workerData });
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
        resolve(open(m.dir, m.fromCache));
      } catch (err) {
        reject(err);
      }
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`the ${what} thread exited with code ${code}`));
    });
  });
}

/** The thread's side: runs `build` with progress posted to the main thread, then posts its entry or error. */
export function serveCacheThread(build: (onProgress: (p: PrepareProgress) => void) => Promise<BuiltEntry>): void {
  const port = parentPort!;
  build((progress) => port.postMessage({ kind: "progress", progress } satisfies ThreadMessage)).then(
    (d) => {
      d.close();
      port.postMessage({ kind: "done", dir: d.cacheDir, fromCache: d.fromCache } satisfies ThreadMessage);
    },
    (err: Error) => port.postMessage({ kind: "error", error: err.message } satisfies ThreadMessage),
  );
}
