// The safetensors container: an 8-byte little-endian header length, a JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}), then the raw data.
// Reading validates the whole header against the file before any byte of data is touched, so a bad
// file fails here with its name instead of as garbage weights; bytes are moved by the addon.
import { closeSync, fstatSync, readSync } from "node:fs";
import { openInputSync, withInputPath } from "../files/input_files.js";
import { loadAddon } from "../native/js/addon.js";
import type { ReadTensorItem, TensorDtype } from "../native/js/addon.js";
import { CorruptFileError, TruncatedFileError, UnsupportedDtypeError } from "./errors.js";

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** What the native reader converts to float32. */
export const READABLE_DTYPES: readonly TensorDtype[] = ["F32", "BF16", "F16"];

// The reference implementation refuses headers over 100 MB; a larger length means a file that is not
// safetensors at all (or a corrupt first 8 bytes), and we should not try to allocate it.
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** absolute byte offset of the first element in the file */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  /** size of the prefix (8 + header JSON); data_offsets count from here */
  dataStart: number;
  metadata: Record<string, string>;
  /** in file order */
  tensors: Map<string, TensorEntry>;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/**
 * Reads and validates the header of `file`. `dtypes` lists the dtypes the caller can use; any other
 * dtype is an UnsupportedDtypeError naming the tensor (tests reading fp64 fixtures pass "F64").
 */
export async function readSafetensorsHeader(
  file: string,
  dtypes: readonly string[] = READABLE_DTYPES,
): Promise<SafetensorsHeader> {
  const fd = openInputSync(file);
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new TruncatedFileError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new CorruptFileError(file, `header length ${headerLen} is not plausible: not a safetensors file`);
    }
    const n = Number(headerLen);
    if (8 + n > size) {
      throw new TruncatedFileError(
        file,
        `header length ${n} runs beyond the end of the file (${size} bytes): truncated`,
      );
    }
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    return parseHeaderJson(file, json.toString("utf8"), 8 + n, size, dtypes);
  } finally {
    closeSync(fd);
  }
}

/** Validates a header's JSON against a file of `fileSize` bytes whose data begins at `dataStart`. */
export function parseHeaderJson(
  file: string,
  text: string,
  dataStart: number,
  fileSize: number,
  dtypes: readonly string[] = READABLE_DTYPES,
): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CorruptFileError(file, `header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CorruptFileError(file, "header is not a JSON object");
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new CorruptFileError(file, "__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw new CorruptFileError(file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const bad = (what: string) => new CorruptFileError(file, `tensor ${name}: ${what}`);
    if (typeof value !== "object" || value === null) throw bad("entry is not an object");
    const { dtype, shape, data_offsets } = value as Record<string, unknown>;
    if (typeof dtype !== "string") throw bad("missing dtype");
    if (!dtypes.includes(dtype)) throw new UnsupportedDtypeError(file, `unsupported dtype ${dtype} for tensor ${name}`);
    if (!Array.isArray(shape) || !shape.every(isCount))
      throw bad(`shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isCount)) {
      throw bad(`data_offsets ${JSON.stringify(data_offsets)} is not [begin, end]`);
    }
    const [begin, end] = data_offsets as [number, number];
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
    const byteLength = numel(shape) * DTYPE_BYTES[dtype]!;
    if (end - begin !== byteLength) {
      throw bad(
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${byteLength}`,
      );
    }
    tensors.set(name, { name, dtype, shape, fileOffset: dataStart + begin, byteLength });
    spans.push({ name, begin, end });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.begin < prev.end) {
      throw new CorruptFileError(
        file,
        `tensors ${prev.name} [${prev.begin}, ${prev.end}) and ${cur.name} [${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
  const last = spans[spans.length - 1];
  if (last && dataStart + last.end > fileSize) {
    throw new TruncatedFileError(
      file,
      `truncated: tensor ${last.name} ends at byte ${dataStart + last.end}, but the file has ${fileSize} bytes`,
    );
  }
  return { file, dataStart, metadata, tensors };
}

export interface HeaderTensor {
  name: string;
  dtype: string;
  shape: readonly number[];
}

/**
 * The full prefix of a safetensors file (8-byte length + JSON) for tensors laid out back to back in
 * the given order. The JSON is padded with spaces to a multiple of 8 bytes so every tensor's data
 * starts 8-byte aligned, as the reference writer does.
 */
export function buildSafetensorsHeader(
  tensors: readonly HeaderTensor[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const obj: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = DTYPE_BYTES[t.dtype];
    if (bytes === undefined) throw new Error(`buildSafetensorsHeader: unknown dtype ${t.dtype} for tensor ${t.name}`);
    if (t.name === "__metadata__" || t.name in obj)
      throw new Error(`buildSafetensorsHeader: duplicate tensor name ${t.name}`);
    const end = offset + numel(t.shape) * bytes;
    obj[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  let json = Buffer.from(JSON.stringify(obj), "utf8");
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

export interface WriteTensor {
  name: string;
  shape: readonly number[];
  dtype: "F32" | "BF16";
  /** fp32 values, or the bits of bf16 values (a frozen bf16 base), written as `dtype` */
  data: Float32Array | Uint16Array;
}

/** Transformers refuses safetensors files whose metadata lacks a known "format". */
export const DEFAULT_METADATA: Readonly<Record<string, string>> = { format: "pt" };

/** Writes a safetensors file atomically (temp name, fsync, rename: done by the addon). */
export async function writeSafetensors(
  file: string,
  tensors: readonly WriteTensor[],
  metadata: Record<string, string> = { ...DEFAULT_METADATA },
): Promise<void> {
  for (const t of tensors) {
    if (t.data.length !== numel(t.shape)) {
      throw new Error(
        `writeSafetensors ${file}: tensor ${t.name} has ${t.data.length} values, shape [${t.shape.join(",")}] needs ${numel(t.shape)}`,
      );
    }
  }
  const header = buildSafetensorsHeader(tensors, metadata);
  await loadAddon().writeSafetensors(
    file,
    header,
    tensors.map((t) => ({ src: t.data, dtype: t.dtype })),
  );
}

/** Reads the named tensors of an already validated header into float32 arrays (F32/BF16/F16 only). */
export async function readTensorsF32(
  header: SafetensorsHeader,
  names?: readonly string[],
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const items: ReadTensorItem[] = [];
  for (const name of names ?? [...header.tensors.keys()]) {
    const t = header.tensors.get(name);
    if (!t) throw new CorruptFileError(header.file, `no tensor ${name}`);
    if (!(READABLE_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new UnsupportedDtypeError(header.file, `unsupported dtype ${t.dtype} for tensor ${name}`);
    }
    const dst = new Float32Array(numel(t.shape));
    out.set(name, dst);
    items.push({ fileOffset: t.fileOffset, dtype: t.dtype as TensorDtype, count: dst.length, dst, name });
  }
  if (items.length > 0) await withInputPath(header.file, (opened) => loadAddon().readTensors(opened, items));
  return out;
}
