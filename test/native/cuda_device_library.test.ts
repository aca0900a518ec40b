// `--device cuda:N` builds the model in ringtune_cuda_device.so, loaded by the addon at run time. Its twin over
// the CUDA emulator (ringtune_cuda_device_emu.so, built on every host) goes through the same loader: a model on
// cuda:1, driven by Node's pool threads (each starts on device 0), equals the CPU model; an absent library is
// refused naming the file, before any GPU is touched.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { loadAddon } from "../../native/js/addon.js";
import type { NativeBatch } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { initModel } from "../../hf/hf_model.js";
import { forwardBackwardDump } from "../../hf/dump.js";
import { tinyLlamaConfig } from "../helpers/native_files.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const EMU_LIBRARY = path.join(root, "build/native/ringtune_cuda_device_emu.so");

function withLibrary<T>(file: string, f: () => Promise<T>): Promise<T> {
  process.env.RINGTUNE_CUDA_LIBRARY = file;
  return f().finally(() => delete process.env.RINGTUNE_CUDA_LIBRARY);
}

// Head dim 32: a size the CUDA attention kernels are built for.
const config = parseHfConfig(
  tinyLlamaConfig({ hidden_size: 64, intermediate_size: 48, num_attention_heads: 2, num_key_value_heads: 1 }),
  "config.json",
);
const batch: NativeBatch = {
  rows: 2,
  seqLen: 6,
  inputIds: Int32Array.from([1, 5, 6, 7, 8, 9, 1, 10, 11, 1, 12, 13]),
  labels: Int32Array.from([5, 6, 7, 8, 9, -100, -100, 11, 2, -100, 13, 2]),
  positionIds: Int32Array.from([0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1, 2]),
  segmentIds: Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]),
};

test("a model on cuda:1 from the GPU library (its emulated twin) equals the CPU model: loss, logits, gradients", async () => {
  assert.ok(existsSync(EMU_LIBRARY), `${EMU_LIBRARY}: make build builds it on every host`);
  const cpu = await forwardBackwardDump(await initModel(config, 7), batch, config.native.vocabSize);
  const gpu = await withLibrary(EMU_LIBRARY, async () => {
    const addon = loadAddon();
    const free = () => [0, 1].map((i) => addon.deviceMemory!(`cuda:${i}`).freeBytes);
    const before = free();
    const model = await initModel(config, 7, { device: "cuda:1" });
    // the weights went to device 1's memory, none to device 0's
    const after = free();
    assert.equal(after[0], before[0], "device 0's memory changed");
    assert.ok(before[1]! - after[1]! >= 4 * model.paramData().length, `device 1: ${before[1]} -> ${after[1]}`);
    return forwardBackwardDump(model, batch, config.native.vocabSize);
  });
  assert.equal(gpu.tensors.length, cpu.tensors.length);
  for (let i = 0; i < cpu.tensors.length; i++) {
    const want = cpu.tensors[i]!.data;
    const got = gpu.tensors[i]!.data;
    const scale = Math.max(1e-30, ...want.map(Math.abs));
    let worst = 0;
    for (let j = 0; j < want.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!) / scale);
    assert.ok(worst <= 1e-5, `${cpu.tensors[i]!.name}: max diff ${worst} of its largest value`);
  }
});

test("an absent GPU library is refused naming the file, by cudaLibrary() and by a model on cuda:0", async () => {
  const absent = path.join(root, "build/no-such-folder/ringtune_cuda_device.so");
  await withLibrary(absent, async () => {
    const lib = loadAddon().cudaLibrary!();
    assert.equal(lib.loaded, false);
    assert.equal(lib.path, absent);
    assert.match(lib.message, /is not there: this build has no GPU code/);
    assert.ok(lib.message.startsWith(absent), lib.message);
    await assert.rejects(initModel(config, 7, { device: "cuda:0" }), (err: Error) => err.message.includes(absent));
  });
  // the emulated twin loads and says what it is
  await withLibrary(EMU_LIBRARY, async () => {
    const lib = loadAddon().cudaLibrary!();
    assert.deepEqual([lib.loaded, lib.message, lib.build], [true, "", "the ringtune CUDA emulator"]);
  });
});
