// Which GPUs `make cluster-up` starts a worker on (deploy/scripts/gpu_workers.sh): each GPU the worker's own
// device check accepts, the others named with the reason; none without nvidia-smi or with WORKER_DEVICE=cpu.
// The node's GPUs are faked: an nvidia-smi on PATH, and an addon (RINGTUNE_NATIVE) whose driver probe and GPU
// library answer as the test says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { RINGTUNE } from "../helpers/run_cli.js";

const ROOT = path.resolve(path.dirname(RINGTUNE), "../..");
const SCRIPT = path.join(ROOT, "deploy/scripts/gpu_workers.sh");

interface FakeGpu {
  name: string;
  /** why the driver refuses it (a CudaProbe problem), or undefined when usable */
  problem?: string;
}

function run(gpus: FakeGpu[] | undefined, libraryLoaded: boolean, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "ringtune-gpus-"));
  try {
    const bin = path.join(dir, "bin");
    spawnSync("mkdir", [bin]);
    if (gpus) {
      const lines = gpus.map((g, i) => `GPU ${i}: ${g.name} (UUID: GPU-${i})`).join("\n");
      writeFileSync(path.join(bin, "nvidia-smi"), `#!/bin/sh\n[ "$1" = -L ] && printf '%s\\n' '${lines}'\n`);
      chmodSync(path.join(bin, "nvidia-smi"), 0o755);
    }
    const addon = path.join(dir, "fake_addon.cjs");
    writeFileSync(
      addon,
      `const gpus = ${JSON.stringify(gpus ?? [])};
       exports.probeCuda = (i) => ({
         usable: i < gpus.length && !gpus[i].problem, problem: i < gpus.length ? gpus[i].problem ?? "none" : "no_such_device",
         message: i < gpus.length ? \`cuda:\${i} (\${gpus[i].name}): \${gpus[i].problem}\` : "no such device",
         deviceName: gpus[i]?.name ?? "", devices: gpus.length, driverVersion: 13000, computeCapability: 90,
         memoryBytes: 80e9, builtArchs: [80, 86, 89, 90] });
       exports.cudaLibrary = () => ({ loaded: ${libraryLoaded}, path: "/b/ringtune_cuda_device.so",
         message: ${libraryLoaded} ? "" : "/b/ringtune_cuda_device.so is not there", build: "" });`,
    );
    // PATH: the fake nvidia-smi first, then only what runs node and the shell tools (no real nvidia-smi)
    const PATH = `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`;
    return spawnSync("bash", [SCRIPT], {
      encoding: "utf8",
      env: { ...process.env, PATH, RINGTUNE_NATIVE: addon, ...env },
      timeout: 60_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("one worker device per usable GPU; a GPU the build has no code for is left out with the reason", () => {
  const r = run(
    [{ name: "NVIDIA H100" }, { name: "Tesla T4", problem: "no_code_for_arch" }, { name: "NVIDIA H100" }],
    true,
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "cuda:0\ncuda:2\n");
  assert.match(r.stderr, /^cluster-up: GPU 1 left out: --device cuda:1: cuda:1 \(Tesla T4\): no_code_for_arch$/m);
});

test("no GPU worker without the GPU library, without nvidia-smi, or with WORKER_DEVICE=cpu", () => {
  const gpus = [{ name: "NVIDIA A100" }, { name: "NVIDIA A100" }];
  const noLibrary = run(gpus, false);
  assert.equal(noLibrary.stdout, "");
  assert.match(
    noLibrary.stderr,
    /GPU 0 left out: .*NVIDIA A100 is usable, but \/b\/ringtune_cuda_device\.so is not there/,
  );
  assert.match(noLibrary.stderr, /GPU 1 left out/);
  const noSmi = run(undefined, true);
  assert.deepEqual([noSmi.status, noSmi.stdout, noSmi.stderr], [0, "", ""]);
  const cpu = run(gpus, true, { WORKER_DEVICE: "cpu" });
  assert.deepEqual([cpu.status, cpu.stdout], [0, ""]);
});
