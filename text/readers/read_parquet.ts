// Parquet files, read with hyparquet. Its reader is asynchronous and the data pipeline is not, so the
// file is read in a worker thread while this thread waits on a shared flag; the rows come back through
// `receiveMessageOnPort`, which needs no event-loop turn. Each row is one record; its "line" in
// messages is the row number, counted from 1.
import { MessageChannel, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { RawRecord } from "./raw_record.js";

export interface ParquetReply {
  rows?: unknown[];
  error?: string;
}

export function readParquetFile(file: string): RawRecord[] {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL("./parquet_worker.js", import.meta.url), {
    workerData: { file, done, port: port2 },
    transferList: [port2],
  });
  try {
    Atomics.wait(done, 0, 0);
    const reply = receiveMessageOnPort(port1)?.message as ParquetReply | undefined;
    if (!reply || reply.error !== undefined || !reply.rows)
      throw new Error(`${file}: cannot read parquet: ${reply?.error ?? "the reader stopped without an answer"}`);
    return reply.rows.map((value, i) => ({ line: i + 1, value }));
  } finally {
    void worker.terminate();
    port1.close();
  }
}
