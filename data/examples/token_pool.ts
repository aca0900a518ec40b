// Reading, parsing, templating, tokenizing and masking spread over worker threads, one per core: work goes
// out in batches (byte ranges of JSONL files, which the threads read themselves, or records read by the
// main thread), results come back as typed arrays in the order the batches were sent, so the output does
// not depend on which thread finished first. At most two batches per thread are in flight, which bounds
// the memory they hold.
import os from "node:os";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { ByteRange } from "../../text/readers/file_ranges.js";
import type { DataSpec } from "../data_keys.js";
import { readRangeRecords } from "../../text/readers/range_records.js";
import type { RawRecord } from "../../text/readers/read.js";
import { processBatch, transferList, type BatchContext, type BatchResult } from "./record_batch.js";
import { DEFAULT_MAX_RECORD_BYTES } from "../../text/records/record_limits.js";
import { setupText } from "../../spec/text_setup.js";
import { tokenizeRecord, type TokenizeOutcome, type TokenizeSettings } from "./tokenize_records.js";
import type { DataRecord } from "../../text/records/records.js";

/**
 * A batch of work: a byte range of a JSONL file the thread reads and parses itself, or records the main
 * thread read (JSON arrays, .txt, .parquet), both of the data source `sourceIndex`.
 */
export type PoolJob =
  | { kind: "range"; sourceIndex: number; display: string; range: ByteRange }
  | { kind: "records"; sourceIndex: number; display: string; raws: RawRecord[] };

/** What the main thread keeps of a job until its result arrives (the records themselves are not kept). */
export type SentJob = Exclude<PoolJob, { kind: "records" }> | Omit<Extract<PoolJob, { kind: "records" }>, "raws">;

interface PoolData {
  spec: DataSpec;
  settings: TokenizeSettings;
  nearDuplicates: boolean;
}

/**
 * Each thread's heap ceilings. V8 lets a heap grow in proportion to its ceiling: under Node's default one
 * a busy thread's heap floats hundreds of MiB above what it holds, and a run's peak memory then depends on
 * when each thread happened to collect, growing with the run's length. A ceiling a few times the live set
 * (the tokenizer, the word cache, a batch) keeps the peak flat however much data goes through. It grows
 * with max_record_bytes: one record's text, its parse and its rendering must fit beside the rest.
 */
export function threadHeapLimits(maxRecordBytes: number): {
  maxOldGenerationSizeMb: number;
  maxYoungGenerationSizeMb: number;
} {
  return { maxOldGenerationSizeMb: 256 + Math.ceil((16 * maxRecordBytes) / 2 ** 20), maxYoungGenerationSizeMb: 16 };
}

export function threadCount(): number {
  const env = Number(process.env.RINGTUNE_DATA_THREADS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(1, os.availableParallelism());
}

export class TokenPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { seq: number; job: PoolJob }[] = [];
  private readonly done = new Map<number, BatchResult>();
  private nextSeq = 0;
  private nextDelivered = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(
    data: PoolData,
    private readonly onResult: (job: SentJob, result: BatchResult) => void,
    threads = threadCount(),
  ) {
    const resourceLimits = threadHeapLimits(data.spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(fileURLToPath(import.meta.url), { workerData: data, resourceLimits });
      w.on("message", (m: { seq: number; result?: BatchResult; error?: string }) => {
        if (m.error !== undefined) this.fail(new Error(m.error));
        else this.done.set(m.seq, m.result!);
        this.idle.push(w);
        this.pump();
      });
      w.on("error", (err: NodeJS.ErrnoException) =>
        this.fail(
          err.code === "ERR_WORKER_OUT_OF_MEMORY"
            ? new Error(
                `a data thread ran out of its ${resourceLimits.maxOldGenerationSizeMb} MiB heap ` +
                  `(sized for records of up to max_record_bytes): ${err.message}`,
              )
            : err,
        ),
      );
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private readonly sent = new Map<number, SentJob>();

  private fail(err: Error): void {
    this.failure ??= err;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private pump(): void {
    while (this.done.has(this.nextDelivered)) {
      const result = this.done.get(this.nextDelivered)!;
      this.done.delete(this.nextDelivered);
      const job = this.sent.get(this.nextDelivered)!;
      this.sent.delete(this.nextDelivered);
      this.nextDelivered++;
      try {
        this.onResult(job, result);
      } catch (err) {
        this.fail(err as Error);
      }
    }
    while (this.idle.length && this.queue.length) {
      const job = this.queue.shift()!;
      this.idle.pop()!.postMessage(job);
    }
    this.notify();
  }

  private inFlight(): number {
    return this.nextSeq - this.nextDelivered;
  }

  private async waitUntil(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Queues a batch; waits first while the threads are busy with two batches each. */
  async submit(job: PoolJob): Promise<void> {
    await this.waitUntil(() => this.inFlight() < 2 * this.workers.length);
    const seq = this.nextSeq++;
    this.sent.set(
      seq,
      job.kind === "range" ? job : { kind: job.kind, sourceIndex: job.sourceIndex, display: job.display },
    );
    this.queue.push({ seq, job });
    this.pump();
  }

  /** Waits for every batch's result, then stops the threads. */
  async finish(): Promise<void> {
    try {
      await this.waitUntil(() => this.inFlight() === 0);
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && parentPort && (workerData as PoolData | undefined)?.settings) {
  const data = workerData as PoolData;
  const port = parentPort;
  try {
    const setup = setupText(data.spec);
    const tokenize = (r: DataRecord, out: TokenizeOutcome) =>
      tokenizeRecord(r, setup.tokenizer, setup.template, data.settings, out);
    const maxRecordBytes = data.spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
    port.on("message", (m: { seq: number; job: PoolJob }) => {
      try {
        const job = m.job;
        const src = data.spec.data[job.sourceIndex];
        const read =
          job.kind === "range"
            ? readRangeRecords(src.path, job.range, maxRecordBytes)
            : { records: job.raws, lines: 0 };
        const ctx: BatchContext = {
          src,
          sourceIndex: job.sourceIndex,
          display: job.display,
          dedup: data.spec.dedup !== "none",
          nearDuplicates: data.nearDuplicates,
          tokenize,
        };
        const result = processBatch(read.records, read.lines, ctx);
        port.postMessage({ seq: m.seq, result }, transferList(result));
      } catch (err) {
        port.postMessage({ seq: m.seq, error: (err as Error).message });
      }
    });
  } catch (err) {
    port.on("message", (m: { seq: number }) => port.postMessage({ seq: m.seq, error: (err as Error).message }));
  }
}
