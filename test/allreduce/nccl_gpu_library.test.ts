// A `cuda:N` model lives in the GPU library (ringtune_cuda_device.so, its CUDA runtime linked statically), so its
// ring's NCCL data plane must be the library's own build, over that runtime: the addon asks the library's table
// for it by the model's device, and the library opens libnccl.so.2 by the same rules (RINGTUNE_NCCL_LIB here,
// pointed at the project's stand-in). Without a GPU the join stops in the CUDA runtime, which proves the call
// reached it; the sums on a GPU are the native op tests' (cuda_test/nccl_plane_tests.cpp).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { loadAddon } from "../../native/js/addon.js";
import { NCCL_STANDIN, ncclStandinMissing } from "../helpers/nccl_standin.js";

process.env.RINGTUNE_NCCL_LIB = NCCL_STANDIN;
const addon = loadAddon();
const library = addon.cudaLibrary?.();
const noLibrary =
  ncclStandinMissing(addon.cudaEmu) ||
  (library?.loaded ? false : `no GPU library here (${library?.message ?? "addon without cudaLibrary"})`);

test("a cuda:N ring's data plane is the GPU library's, over the CUDA runtime", { skip: noLibrary }, async () => {
  const gpu = addon.ncclProbe!("cuda:0");
  assert.equal(gpu.available, true, gpu.reason);
  assert.equal(gpu.runtime, "the CUDA runtime");
  assert.equal(gpu.path, NCCL_STANDIN);
  // the addon's own plane serves the emulator's models, beside it
  assert.equal(addon.ncclProbe!("cuda-emu").runtime, "the ringtune CUDA emulator");
  assert.equal(addon.ncclProbe!().runtime, "the ringtune CUDA emulator");

  const id = addon.ncclUniqueId!("cuda:0");
  assert.equal(id.length, 128);
  if (!addon.probeCuda(0).usable) {
    // No GPU: the library's runtime refuses the device before NCCL is asked to join.
    await assert.rejects(addon.ncclConnect!(id, 0, 1, 2000, "cuda:0"), /the CUDA runtime\): cudaSetDevice\(0\)/);
  }
  assert.throws(() => addon.ncclProbe!("cuda:x" as "cuda:0"), /device must be "cuda-emu" or "cuda:N", got "cuda:x"/);
});

test("a GPU library that does not load is the reason a cuda:N worker gives for no NCCL", () => {
  // a fresh process: the library is looked for once per process
  const script = `import("${new URL("../../worker/allreduce/nccl_plane.js", import.meta.url).href}")
    .then((m) => console.log(JSON.stringify([m.ncclUnavailableReason("cuda:1"), m.ncclUnavailableReason("cpu")])))`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, RINGTUNE_CUDA_LIBRARY: "/nonexistent/ringtune_cuda_device.so" },
  });
  const [gpu, cpu] = JSON.parse(out.toString()) as [string, string];
  assert.match(gpu, /ncclProbe: .*\/nonexistent\/ringtune_cuda_device\.so is not there/);
  assert.equal(cpu, "the worker computes on cpu");
});
