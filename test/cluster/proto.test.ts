// The wire protocol: round trips, typed arrays without copies, and refusal of other protocol versions.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { typedArrayCodec } from "../../proto/typed_arrays.js";
import {
  Chunk,
  PeerAddress,
  PROTOCOL_VERSION,
  ProtocolDecodeError,
  ProtocolVersionError,
  WorkerHeartbeat,
  decodeMessage,
  encodeChunk,
  encodeChunkParts,
  encodeMessage,
  subjects,
} from "../../proto/mod.js";

test("a message round-trips and carries the protocol version", () => {
  const bytes = encodeMessage(PeerAddress, { ring: "job1-r0", rank: 2, host: "10.0.0.7", port: 40123 });
  const m = decodeMessage(PeerAddress, bytes);
  assert.deepEqual(m, { ring: "job1-r0", rank: 2, host: "10.0.0.7", port: 40123, v: PROTOCOL_VERSION });
});

test("a message from another protocol version is refused with ProtocolVersionError", () => {
  const bytes = encode({ v: PROTOCOL_VERSION + 1, ring: "r", rank: 0, host: "h", port: 1 });
  assert.throws(
    () => decodeMessage(PeerAddress, bytes),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolVersionError);
      assert.match(err.message, /PeerAddress: protocol version mismatch/);
      assert.equal(err.actual, PROTOCOL_VERSION + 1);
      return true;
    },
  );
  assert.throws(() => decodeMessage(PeerAddress, encode({ ring: "r" })), ProtocolVersionError);
});

test("a schema violation names the key", () => {
  const bytes = encode({ v: PROTOCOL_VERSION, ring: "r", rank: -1, host: "h", port: 1 });
  assert.throws(
    () => decodeMessage(PeerAddress, bytes),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolDecodeError);
      assert.match(err.message, /^PeerAddress: rank: /);
      return true;
    },
  );
  assert.throws(() => decodeMessage(PeerAddress, new Uint8Array([0xc1])), ProtocolDecodeError);
});

test("encoding refuses a body that breaks its schema", () => {
  assert.throws(
    () => encodeMessage(WorkerHeartbeat, { worker_id: "a.b", seq: 0, sent_at_ms: 0, state: "idle" }),
    /worker_id/,
  );
});

test("a zero-copy chunk frame decodes as a Chunk whose data is a view of the frame", () => {
  for (const n of [0, 1, 3, 1000]) {
    const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
    for (const tag of ["t", "s12-b3", "x".repeat(37)]) {
      const parts = encodeChunkParts(tag, 7, data);
      assert.equal(parts.head.length % 4, 0, "payload is 4-byte aligned after the head");
      assert.equal(parts.payload.buffer, data.buffer, "payload is the caller's memory, not a copy");
      const frame = encodeChunk(tag, 7, data);
      const m = decodeMessage(Chunk, frame);
      assert.equal(m.tag, tag);
      assert.equal(m.seq, 7);
      assert.deepEqual(Array.from(m.data), Array.from(data));
      assert.equal(m.data.buffer, frame.buffer, "decoded data is a view of the received bytes");
    }
  }
});

test("a misaligned chunk still decodes (by copying)", () => {
  const data = Float32Array.from([1, 2, 3]);
  const frame = encodeChunk("t", 0, data);
  const shifted = new Uint8Array(frame.length + 1).subarray(1);
  shifted.set(frame);
  assert.deepEqual(Array.from(decodeMessage(Chunk, shifted).data), [1, 2, 3]);
});

test("Int32Array and Float32Array survive the codec as themselves", () => {
  const value = { tokens: new Int32Array([5, -1, 2 ** 31 - 1]), grads: new Float32Array([1.5, -2]) };
  const back = decode(encode(value, { extensionCodec: typedArrayCodec }), {
    extensionCodec: typedArrayCodec,
  }) as typeof value;
  assert.ok(back.tokens instanceof Int32Array);
  assert.ok(back.grads instanceof Float32Array);
  assert.deepEqual(Array.from(back.tokens), [5, -1, 2 ** 31 - 1]);
  assert.deepEqual(Array.from(back.grads), [1.5, -2]);
});

test("subject ids must be single tokens", () => {
  assert.equal(subjects.edgeChunks("job1-r0", 2, 3), "ringtune.ring.job1-r0.edge.2-3.chunks");
  assert.throws(() => subjects.peerAddress("a.>", 0), /ring id 'a.>'/);
});
