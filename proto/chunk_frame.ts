// Zero-copy encoding of Chunk messages, the only large messages on the wire. The result is an ordinary
// msgpack Chunk (decodeMessage(Chunk, ...) reads it) split in two parts: a small head, and the payload
// bytes as a view of the caller's Float32Array, so a transport can write both without copying the data.
// The head is padded to a multiple of 4 bytes so that, in a buffer starting at an aligned offset, the
// payload is aligned too and decodes as a Float32Array view without a copy.
import { Encoder } from "@msgpack/msgpack";
import { EXT_FLOAT32 } from "./typed_arrays.js";
import { PROTOCOL_VERSION } from "./version.js";

export interface ChunkParts {
  head: Uint8Array;
  /** A view of the caller's array: it must not change until the transport has sent it. */
  payload: Uint8Array;
}

const encoder = new Encoder();
const DATA_KEY = [0xa4, 0x64, 0x61, 0x74, 0x61]; // fixstr "data"
const EXT32_HEADER_BYTES = 6; // 0xc9, u32 length, i8 type

function encodeHead(tag: string, seq: number, padBytes: number): Uint8Array {
  // Key order is fixed; "pad" is a bin whose length only serves alignment.
  const map = encoder.encode({ v: PROTOCOL_VERSION, tag, seq, pad: new Uint8Array(padBytes) });
  if (map[0] !== 0x84) throw new Error("chunk head: expected a fixmap of 4 entries");
  return map;
}

export function encodeChunkParts(tag: string, seq: number, data: Float32Array): ChunkParts {
  const unpadded = encodeHead(tag, seq, 0).length + DATA_KEY.length + EXT32_HEADER_BYTES;
  const map = encodeHead(tag, seq, (4 - (unpadded % 4)) % 4);
  const head = new Uint8Array(map.length + DATA_KEY.length + EXT32_HEADER_BYTES);
  head.set(map);
  head[0] = 0x85; // one more entry: data
  head.set(DATA_KEY, map.length);
  const ext = new DataView(head.buffer, map.length + DATA_KEY.length, EXT32_HEADER_BYTES);
  ext.setUint8(0, 0xc9);
  ext.setUint32(1, data.byteLength); // msgpack lengths are big-endian
  ext.setInt8(5, EXT_FLOAT32);
  return { head, payload: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** The chunk as one buffer, for transports that send a single message (NATS): one copy. */
export function encodeChunk(tag: string, seq: number, data: Float32Array): Uint8Array {
  const { head, payload } = encodeChunkParts(tag, seq, data);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}
