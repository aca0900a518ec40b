// Length-prefixed framing survives any split of the byte stream, and whole frames pass without a copy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FrameReader, framePrefix } from "../../worker/allreduce/frames.js";

function stream(frames: Uint8Array[]): Uint8Array {
  const parts = frames.flatMap((f) => [framePrefix(f.length), f]);
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}

test("frames come out whole and in order however the stream is cut", () => {
  const frames = [
    new Uint8Array(0),
    Uint8Array.from([1]),
    Uint8Array.from({ length: 37 }, (_, i) => i),
    Uint8Array.from([9, 8]),
  ];
  const bytes = stream(frames);
  for (let cut = 1; cut <= bytes.length; cut++) {
    const out: number[][] = [];
    const reader = new FrameReader((f) => out.push(Array.from(f)));
    for (let i = 0; i < bytes.length; i += cut) reader.push(bytes.subarray(i, i + cut));
    assert.deepEqual(
      out,
      frames.map((f) => Array.from(f)),
      `pieces of ${cut} bytes`,
    );
  }
});

test("a frame inside one read is a view of that read; one across reads starts aligned", () => {
  const bytes = stream([Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])]);
  const seen: Uint8Array[] = [];
  new FrameReader((f) => seen.push(f)).push(bytes);
  assert.equal(seen[0]!.buffer, bytes.buffer);
  const split = new FrameReader((f) => seen.push(f));
  split.push(bytes.subarray(0, 7));
  split.push(bytes.subarray(7));
  assert.equal(seen[1]!.byteOffset, 0);
  assert.deepEqual(Array.from(seen[1]!), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test("a frame over the size limit is refused", () => {
  const reader = new FrameReader(() => {});
  assert.throws(() => reader.push(framePrefix(0xffffffff)), RangeError);
});

test("frames are lent from one reused buffer: gathered frames share it, an unaligned frame is realigned", () => {
  const frames = [Uint8Array.from({ length: 12 }, (_, i) => i), Uint8Array.from({ length: 12 }, (_, i) => 100 + i)];
  const bytes = stream(frames);
  const seen: Uint8Array[] = [];
  const copies: number[][] = [];
  const reader = new FrameReader((f) => {
    seen.push(f);
    copies.push(Array.from(f));
  });
  for (let i = 0; i < bytes.length; i += 5) reader.push(bytes.subarray(i, i + 5)); // every frame spans reads
  assert.equal(seen[0]!.buffer, seen[1]!.buffer, "no allocation per frame");
  assert.deepEqual(
    copies,
    frames.map((f) => Array.from(f)),
  );

  const unaligned = new Uint8Array(1 + bytes.length).fill(0);
  unaligned.set(bytes, 1);
  const aligned: number[] = [];
  new FrameReader((f) => aligned.push(f.byteOffset % 4)).push(unaligned.subarray(1));
  assert.deepEqual(aligned, [0, 0]);
});
