// Float32Array and Int32Array travel as msgpack extension types (binary with a type tag), so they decode
// as the same typed array. Decoding is zero-copy when the bytes are 4-byte aligned in the received
// buffer (a typed-array view needs that); otherwise they are copied once into an aligned array.
import { ExtensionCodec } from "@msgpack/msgpack";

export const EXT_FLOAT32 = 1;
export const EXT_INT32 = 2;

/** A little-endian host is assumed on the wire (x86, ARM); checked once rather than swapped per element. */
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
if (!littleEndian) throw new Error("ringtune's wire format needs a little-endian host");

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function viewOrCopy<T>(data: Uint8Array, make: (buf: ArrayBuffer, offset: number, length: number) => T): T {
  if (data.byteLength % 4 !== 0)
    throw new RangeError(`typed array payload of ${data.byteLength} bytes is not a multiple of 4`);
  if (data.byteOffset % 4 === 0) return make(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength / 4);
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return make(copy.buffer, 0, data.byteLength / 4);
}

export const typedArrayCodec = new ExtensionCodec();
typedArrayCodec.register({
  type: EXT_FLOAT32,
  encode: (v: unknown) => (v instanceof Float32Array ? bytesOf(v) : null),
  decode: (data: Uint8Array) => viewOrCopy(data, (b, o, n) => new Float32Array(b, o, n)),
});
typedArrayCodec.register({
  type: EXT_INT32,
  encode: (v: unknown) => (v instanceof Int32Array ? bytesOf(v) : null),
  decode: (data: Uint8Array) => viewOrCopy(data, (b, o, n) => new Int32Array(b, o, n)),
});
