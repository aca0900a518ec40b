// Templating, tokenizing and masking spread over worker threads, one per core: records go out in batches,
// results come back in the order the batches were sent, so the output does not depend on which thread
// finished first. At most two batches per thread are in flight, which bounds the memory they hold.
import os from "node:os";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { minhash, responseText } from "./dedupe.js";
import type { Problem } from "./problems.js";
import type { DataRecord } from "./records.js";
import { setupText } from "./setup.js";
import { tokenizeRecord, type TokenizeOutcome, type TokenizeSettings } from "./tokenize_records.js";
import type { DataSpec } from "./pipeline.js";

/** Minhash signature length (dedupe.ts's BANDS * ROWS). */
export const SIGNATURE_WORDS = 32;

export interface RecordOutcome {
  problem?: Problem;
  truncated: boolean;
  split: boolean;
  /** examples the record became (text longer than a row is split into several) */
  examples: number;
  /** whether signatures holds a minhash for this record (too short a response has none) */
  hasSignature: boolean;
}

/** One batch's results; examples' arrays laid end to end in `tokens`: inputIds then labels of each. */
export interface BatchResult {
  outcomes: RecordOutcome[];
  /** length of each example, in order */
  lengths: Int32Array;
  tokens: Int32Array;
  /** SIGNATURE_WORDS words per record, in order */
  signatures: Uint32Array;
}

interface PoolData {
  spec: DataSpec;
  settings: TokenizeSettings;
  nearDuplicates: boolean;
}

export function threadCount(): number {
  const env = Number(process.env.RINGTUNE_DATA_THREADS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(1, os.availableParallelism());
}

export class TokenPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { seq: number; records: DataRecord[] }[] = [];
  private readonly done = new Map<number, BatchResult>();
  private nextSeq = 0;
  private nextDelivered = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(
    data: PoolData,
    private readonly onResult: (records: DataRecord[], result: BatchResult) => void,
    threads = threadCount(),
  ) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(fileURLToPath(import.meta.url), { workerData: data });
      w.on("message", (m: { seq: number; result?: BatchResult; error?: string }) => {
        if (m.error !== undefined) this.fail(new Error(m.error));
        else this.done.set(m.seq, m.result!);
        this.idle.push(w);
        this.pump();
      });
      w.on("error", (err) => this.fail(err));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private readonly sent = new Map<number, DataRecord[]>();

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
      const records = this.sent.get(this.nextDelivered)!;
      this.sent.delete(this.nextDelivered);
      this.nextDelivered++;
      try {
        this.onResult(records, result);
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
  async submit(records: DataRecord[]): Promise<void> {
    await this.waitUntil(() => this.inFlight() < 2 * this.workers.length);
    const seq = this.nextSeq++;
    this.sent.set(seq, records);
    this.queue.push({ seq, records });
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

function tokenizeBatch(records: DataRecord[], run: (r: DataRecord, out: TokenizeOutcome) => void, near: boolean) {
  const outcomes: RecordOutcome[] = [];
  const lengths: number[] = [];
  const parts: Int32Array[] = [];
  let total = 0;
  const signatures = new Uint32Array(records.length * SIGNATURE_WORDS);
  records.forEach((r, i) => {
    const out: TokenizeOutcome = { examples: [], problems: [], truncated: 0, split: 0 };
    run(r, out);
    const sig = near ? minhash(responseText(r)) : null;
    if (sig) signatures.set(sig, i * SIGNATURE_WORDS);
    outcomes.push({
      problem: out.problems[0],
      truncated: out.truncated > 0,
      split: out.split > 0,
      examples: out.examples.length,
      hasSignature: sig !== null,
    });
    for (const e of out.examples) {
      lengths.push(e.inputIds.length);
      parts.push(e.inputIds, e.labels);
      total += 2 * e.inputIds.length;
    }
  });
  const tokens = new Int32Array(total);
  let off = 0;
  for (const p of parts) {
    tokens.set(p, off);
    off += p.length;
  }
  return { outcomes, lengths: Int32Array.from(lengths), tokens, signatures } satisfies BatchResult;
}

if (!isMainThread && parentPort && (workerData as PoolData | undefined)?.settings) {
  const data = workerData as PoolData;
  const port = parentPort;
  try {
    const setup = setupText(data.spec);
    const run = (r: DataRecord, out: TokenizeOutcome) =>
      tokenizeRecord(r, setup.tokenizer, setup.template, data.settings, out);
    port.on("message", (m: { seq: number; records: DataRecord[] }) => {
      try {
        const result = tokenizeBatch(m.records, run, data.nearDuplicates);
        port.postMessage({ seq: m.seq, result }, [
          result.tokens.buffer,
          result.signatures.buffer,
          result.lengths.buffer,
        ]);
      } catch (err) {
        port.postMessage({ seq: m.seq, error: (err as Error).message });
      }
    });
  } catch (err) {
    port.on("message", (m: { seq: number }) => port.postMessage({ seq: m.seq, error: (err as Error).message }));
  }
}
