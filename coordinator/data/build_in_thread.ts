// The data pipeline off the coordinator's main thread: tokenizing a large dataset takes minutes, and the
// main thread must keep answering NATS (submissions, status) and counting heartbeats meanwhile.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import type { CachedDataset } from "./cache.js";
import { buildDataset, type BuiltDataset, type DataSpec } from "./pipeline.js";
import type { Row } from "./row.js";
import { setupText } from "./setup.js";

type ThreadResult =
  { ok: true; data: CachedDataset & { failed: boolean; fromCache: boolean } } | { ok: false; error: string };

/** buildDataset in a worker thread; the tokenizer and template are set up again here (cheap, not cloneable). */
export function buildDatasetInThread(spec: DataSpec): Promise<BuiltDataset> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: spec });
    worker.once("message", (r: ThreadResult) => {
      if (!r.ok) return reject(new Error(r.error));
      try {
        resolve({ ...r.data, setup: setupText(spec) });
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

function rowBuffers(rows: Row[]): ArrayBuffer[] {
  return rows.flatMap((r) => [r.inputIds, r.labels, r.positionIds, r.segmentIds].map((a) => a.buffer as ArrayBuffer));
}

if (!isMainThread && parentPort) {
  try {
    const { setup: _setup, ...data } = buildDataset(workerData as DataSpec, { quiet: true });
    // Rows' arrays move to the main thread without a copy (each row owns its buffers).
    const buffers = [...new Set([...rowBuffers(data.train), ...rowBuffers(data.val)])];
    parentPort.postMessage({ ok: true, data } satisfies ThreadResult, buffers);
  } catch (err) {
    parentPort.postMessage({ ok: false, error: (err as Error).message } satisfies ThreadResult);
  }
}
