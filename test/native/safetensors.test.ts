// The safetensors container: headers built 8-byte aligned, every malformed file refused with its name
// and the reason, and values written by the addon read back exactly (F32) or rounded to nearest even (BF16).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  buildSafetensorsHeader,
  readSafetensorsHeader,
  readTensorsF32,
  writeSafetensors,
} from "../../hf/safetensors.js";
import { CorruptFileError, TruncatedFileError, UnsupportedDtypeError } from "../../hf/errors.js";
import { bf16ToF32, f32Bytes, rawSafetensors, tempDir, toBf16Bits, toF16Bits } from "../helpers/native_files.js";

const dir = tempDir();

function rejects(name: string, bytes: Buffer, kind: new (...a: never[]) => Error, message: RegExp) {
  test(`a file with ${name} is refused`, async () => {
    const file = path.join(dir, `${name.replace(/\W+/g, "_")}.safetensors`);
    writeFileSync(file, bytes);
    await assert.rejects(readSafetensorsHeader(file), (e: Error) => {
      assert.ok(e instanceof kind, `expected ${kind.name}, got ${e.name}: ${e.message}`);
      assert.ok(e.message.startsWith(file + ": "), `message does not name the file: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
  });
}

/** A header whose JSON is given verbatim, followed by `data` bytes. */
function withHeader(json: string, dataBytes: number): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataBytes)]);
}

test("the header is padded with spaces so the data starts 8-byte aligned", () => {
  for (const name of ["a", "ab", "abc", "a_longer_name"]) {
    const h = buildSafetensorsHeader(
      [
        { name, dtype: "F32", shape: [3] },
        { name: `${name}2`, dtype: "BF16", shape: [1, 3] },
      ],
      { format: "pt" },
    );
    assert.equal(h.length % 8, 0);
    const n = Number(new DataView(h.buffer).getBigUint64(0, true));
    assert.equal(n, h.length - 8);
    const text = Buffer.from(h.subarray(8)).toString("utf8");
    assert.match(text, /^\{.*\} *$/);
    const json = JSON.parse(text);
    assert.deepEqual(json.__metadata__, { format: "pt" });
    assert.deepEqual(json[name].data_offsets, [0, 12]);
    assert.deepEqual(json[`${name}2`].data_offsets, [12, 18]);
  }
});

test("a valid file's header is parsed with absolute file offsets", async () => {
  const file = path.join(dir, "valid.safetensors");
  const a = Float32Array.of(1, 2, 3, 4, 5, 6);
  const b = Uint16Array.of(toF16Bits(0.5), toF16Bits(-2));
  writeFileSync(
    file,
    rawSafetensors([
      { name: "a", dtype: "F32", shape: [2, 3], bytes: f32Bytes(a) },
      { name: "b", dtype: "F16", shape: [2], bytes: new Uint8Array(b.buffer) },
    ]),
  );
  const h = await readSafetensorsHeader(file);
  assert.deepEqual(h.metadata, { format: "pt" });
  assert.deepEqual([...h.tensors.keys()], ["a", "b"]);
  assert.equal(h.tensors.get("a")!.fileOffset, h.dataStart);
  assert.equal(h.tensors.get("b")!.fileOffset, h.dataStart + 24);
  assert.deepEqual(h.tensors.get("b")!.shape, [2]);
});

rejects("fewer than 8 bytes", Buffer.alloc(5), TruncatedFileError, /shorter than the 8-byte header length/);
rejects(
  "a header length beyond the file",
  withHeader("{}", 0).subarray(0, 9),
  TruncatedFileError,
  /header length 2 runs beyond the end of the file/,
);
rejects(
  "an absurd header length",
  Buffer.from("this is a text file, not safetensors"),
  CorruptFileError,
  /not a safetensors file/,
);
rejects(
  "corrupt header JSON",
  withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', 4),
  CorruptFileError,
  /header is not valid JSON/,
);
rejects("a header that is not an object", withHeader("[1,2]", 0), CorruptFileError, /not a JSON object/);
rejects(
  "a missing dtype",
  withHeader('{"w": {"shape": [1], "data_offsets": [0, 4]}}', 4),
  CorruptFileError,
  /tensor w: missing dtype/,
);
rejects(
  "an unsupported dtype I64",
  withHeader('{"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}', 16),
  UnsupportedDtypeError,
  /unsupported dtype I64 for tensor ids/,
);
rejects(
  "an unknown dtype",
  withHeader('{"w": {"dtype": "F7", "shape": [2], "data_offsets": [0, 14]}}', 14),
  UnsupportedDtypeError,
  /unsupported dtype F7 for tensor w/,
);
rejects(
  "a bad shape",
  withHeader('{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', 4),
  CorruptFileError,
  /tensor w: shape \[-1\]/,
);
rejects(
  "data_offsets out of order",
  withHeader('{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}', 8),
  CorruptFileError,
  /end before they begin/,
);
rejects(
  "data_offsets inconsistent with the shape",
  withHeader('{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}', 12),
  CorruptFileError,
  /hold 12 bytes, but F32 \[2,2\] needs 16/,
);
rejects(
  "overlapping tensors",
  withHeader(
    '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}',
    12,
  ),
  CorruptFileError,
  /tensors a \[0, 8\) and b \[4, 12\) overlap/,
);
rejects(
  "data cut short",
  withHeader('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', 10),
  TruncatedFileError,
  /truncated: tensor a ends at byte \d+, but the file has \d+ bytes/,
);

// Values chosen on and around BF16 rounding ties: bf16 keeps 7 fraction bits, so 2^-8 is half an ulp at 1.
const TIES: [number, number][] = [
  [1 + 2 ** -8, 1], // tie, 1.0 has an even last bit: stays
  [1 + 3 * 2 ** -8, 1 + 2 ** -6], // tie, 1+2^-7 has an odd last bit: rounds up to even
  [-(1 + 2 ** -8), -1], // sign does not change the rule
  [-(1 + 3 * 2 ** -8), -(1 + 2 ** -6)],
  [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // just above the tie: up
  [1 + 2 ** -8 - 2 ** -20, 1], // just below the tie: down
  [1 - 2 ** -24, 1], // the carry runs into the exponent
  [3, 3], // exact
  [-0.15625, -0.15625], // exact
];

test("BF16 writes round to nearest even; F32 writes are exact", async () => {
  const ties = Float32Array.from(TIES.map(([x]) => x));
  // and a spread of ordinary values checked against the reference rounding (no subnormals)
  const spread = Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i * 12.9898) * 2 ** ((i % 40) - 20));
  const file = path.join(dir, "written.safetensors");
  await writeSafetensors(file, [
    { name: "ties", shape: [ties.length], dtype: "BF16", data: ties },
    { name: "spread", shape: [64, 64], dtype: "BF16", data: spread },
    { name: "exact", shape: [4096], dtype: "F32", data: spread },
  ]);
  const h = await readSafetensorsHeader(file);
  assert.deepEqual(h.metadata, { format: "pt" });
  assert.equal(h.dataStart % 8, 0);
  const bytes = readFileSync(file);
  const bits = (name: string, i: number) => bytes.readUInt16LE(h.tensors.get(name)!.fileOffset + 2 * i);
  TIES.forEach(([x, want], i) => {
    assert.equal(bf16ToF32(bits("ties", i)), want, `bf16(${x}) stored as 0x${bits("ties", i).toString(16)}`);
  });
  for (let i = 0; i < spread.length; i++) {
    assert.equal(bits("spread", i), toBf16Bits(spread[i]!), `bf16 bits of ${spread[i]} (element ${i})`);
  }
  const back = await readTensorsF32(h);
  assert.deepEqual(
    [...back.get("ties")!],
    TIES.map(([, want]) => want),
  );
  assert.deepEqual(back.get("exact"), spread);
  assert.deepEqual(
    [...back.get("spread")!],
    [...spread].map((x) => bf16ToF32(toBf16Bits(x))),
  );
});

test("F16 tensors are read as float32", async () => {
  const values = [0.5, -2, 1 + 2 ** -10, 0, -0.00390625, 65504 / 256];
  const file = path.join(dir, "half.safetensors");
  writeFileSync(
    file,
    rawSafetensors([
      {
        name: "h",
        dtype: "F16",
        shape: [values.length],
        bytes: new Uint8Array(Uint16Array.from(values.map(toF16Bits)).buffer),
      },
    ]),
  );
  const back = await readTensorsF32(await readSafetensorsHeader(file));
  assert.deepEqual([...back.get("h")!], values);
});

test("writing data that does not fill the shape is refused before anything is written", async () => {
  await assert.rejects(
    writeSafetensors(path.join(dir, "bad.safetensors"), [
      { name: "w", shape: [2, 3], dtype: "F32", data: new Float32Array(5) },
    ]),
    /tensor w has 5 values, shape \[2,3\] needs 6/,
  );
});
