// The native batched decoder on its own: sequences that join a running batch, adapters removed while a
// sequence still uses them, and refusals that name what is wrong.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { loadAddon, type BatchedDecoder, type NativeModel } from "../../native/js/addon.js";
import { loadModel } from "../../hf/hf_model.js";
import { loadAdapter } from "../../hf/peft_adapter.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { writeServeAdapters, writeServeBase } from "../helpers/serve_fixtures.js";

let base: NativeModel;
let adapters: Record<string, string>;

before(async () => {
  const dir = await writeServeBase(path.join(tempDir("ringtune-decoder-"), "base"));
  base = (await loadModel(dir)).model;
  adapters = writeServeAdapters();
});

async function decoderWith(names: string[]): Promise<BatchedDecoder> {
  const d = loadAddon().createBatchedDecoder(base);
  for (const [id, name] of names.entries()) {
    const a = await loadAdapter(adapters[name]!, base.params());
    const { params, data } = d.addAdapter(id, a.settings);
    for (const p of params) data.set(a.tensors.get(p.name)!.data, p.offset);
  }
  return d;
}

/** Greedy decoding of one sequence alone: its first step feeds the prompt, each later one the last token. */
async function alone(d: BatchedDecoder, seq: number, adapter: number, prompt: number[], n: number): Promise<number[]> {
  d.open(seq, adapter, prompt.length + n);
  const out: number[] = [];
  let tokens = Int32Array.from(prompt);
  for (let i = 0; i < n; i++) {
    const [next] = await d.step([{ sequence: seq, tokens, temperature: 0, topP: 1, seed: 0, draw: i }]);
    out.push(next!);
    tokens = Int32Array.of(next!);
  }
  d.close(seq);
  return out;
}

test("a sequence joining a batch mid-way, on another adapter, decodes what it decodes alone", async () => {
  const d = await decoderWith(["r2", "r8"]);
  const pa = [10, 20, 30, 40, 50];
  const pb = [7, 8, 9];
  const expectA = await alone(d, 100, 0, pa, 10);
  const expectB = await alone(d, 101, 1, pb, 6);
  d.open(1, 0, pa.length + 10);
  const gotA: number[] = [];
  const gotB: number[] = [];
  let ta = Int32Array.from(pa);
  for (let i = 0; i < 4; i++) {
    const [a] = await d.step([{ sequence: 1, tokens: ta, temperature: 0, topP: 1, seed: 0, draw: i }]);
    gotA.push(a!);
    ta = Int32Array.of(a!);
  }
  // B joins with its whole prompt in the same step as A's single token.
  d.open(2, 1, pb.length + 6);
  let tb = Int32Array.from(pb);
  for (let i = 0; i < 6; i++) {
    const [a, b] = await d.step([
      { sequence: 1, tokens: ta, temperature: 0, topP: 1, seed: 0, draw: 4 + i },
      { sequence: 2, tokens: tb, temperature: 0, topP: 1, seed: 0, draw: i },
    ]);
    gotA.push(a!);
    gotB.push(b!);
    ta = Int32Array.of(a!);
    tb = Int32Array.of(b!);
  }
  assert.deepEqual(gotA, expectA);
  assert.deepEqual(gotB, expectB);
});

test("an adapter removed while a sequence uses it stays until that sequence closes", async () => {
  const d = await decoderWith(["r4"]);
  const expected = await alone(d, 5, 0, [1, 2, 3], 5);
  d.open(6, 0, 8);
  const [first] = await d.step([
    { sequence: 6, tokens: Int32Array.of(1, 2, 3), temperature: 0, topP: 1, seed: 0, draw: 0 },
  ]);
  d.removeAdapter(0);
  assert.throws(() => d.open(7, 0, 8), /no adapter with id 0/);
  const rest: number[] = [first!];
  for (let i = 1; i < 5; i++) {
    const [t] = await d.step([
      { sequence: 6, tokens: Int32Array.of(rest[i - 1]!), temperature: 0, topP: 1, seed: 0, draw: i },
    ]);
    rest.push(t!);
  }
  assert.deepEqual(rest, expected);
  assert.equal(d.memory().adapters, 0);
});

test("sampling with a seed repeats itself, and differs from greedy", async () => {
  const d = await decoderWith([]);
  const run = async (seq: number, temperature: number, seed: number) => {
    d.open(seq, -1, 20);
    const out: number[] = [];
    let tokens = Int32Array.of(5, 6, 7);
    for (let i = 0; i < 12; i++) {
      const [t] = await d.step([{ sequence: seq, tokens, temperature, topP: 0.95, seed, draw: i }]);
      out.push(t!);
      tokens = Int32Array.of(t!);
    }
    d.close(seq);
    return out;
  };
  const a = await run(1, 1.5, 11);
  assert.deepEqual(await run(2, 1.5, 11), a);
  assert.notDeepEqual(await run(3, 0, 0), a);
});

test("refusals name the sequence, the capacity and the vocabulary", async () => {
  const d = await decoderWith([]);
  d.open(1, -1, 3);
  await assert.rejects(
    d.step([{ sequence: 1, tokens: Int32Array.of(1, 2, 3, 4), temperature: 0, topP: 1, seed: 0, draw: 0 }]),
    /sequence 1 would hold 4 positions, more than its capacity 3/,
  );
  await assert.rejects(
    d.step([{ sequence: 9, tokens: Int32Array.of(1), temperature: 0, topP: 1, seed: 0, draw: 0 }]),
    /no open sequence 9/,
  );
  assert.throws(
    () => d.step([{ sequence: 1, tokens: Int32Array.of(9999), temperature: 0, topP: 1, seed: 0, draw: 0 }]),
    /token 9999 outside vocab/,
  );
  assert.throws(() => d.open(2, 4, 8), /no adapter with id 4/);
});
