// Worker thread of read_parquet.ts: reads one parquet file and posts its rows as plain JSON values.
import { workerData, type MessagePort } from "node:worker_threads";
import { parquetReadObjects, toJson } from "hyparquet";
import type { ParquetReply } from "./read_parquet.js";
import { readInputBytes } from "../../files/input_files.js";

const { file, done, port } = workerData as { file: string; done: Int32Array; port: MessagePort };

async function read(): Promise<ParquetReply> {
  try {
    const buf = readInputBytes(file);
    const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    // toJson: 64-bit integers become numbers and byte arrays lists, so rows hash and print like JSON rows
    return { rows: toJson(await parquetReadObjects({ file: bytes })) as unknown[] };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const reply = await read();
port.postMessage(reply);
Atomics.store(done, 0, 1);
Atomics.notify(done, 0);
