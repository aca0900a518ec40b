// --device cpu|cuda|cuda:N on the commands that compute: a machine without a usable GPU refuses
// `--device cuda` at once, naming what is missing (no driver, no device, driver too old), before any model is
// read or any server is contacted; a bad value is a usage error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon } from "../../native/js/addon.js";
import type { CudaLibrary, CudaProbe, NativeAddon } from "../../native/js/addon.js";
import { DeviceFlagError, DeviceUnavailableError, parseDevice, requireDevice } from "../../native/js/compute_device.js";
import { deadPort, runCli } from "../helpers/run_cli.js";

const missing = "/nonexistent/ringtune-device-test";

async function commands(device: string): Promise<[string, string[]][]> {
  const port = await deadPort();
  return [
    ["worker", ["worker", "--nats", `nats://127.0.0.1:${port}`, "--device", device]],
    ["dump", ["dump", "--model", missing, "--batch", `${missing}.json`, "--out", `${missing}.st`, "--device", device]],
    ["generate", ["generate", "--model", missing, "--prompt-ids", "1,2", "--device", device]],
    [
      "export",
      [
        "export",
        "--merge",
        "--model",
        missing,
        "--adapter",
        `${missing}-a`,
        "--out",
        `${missing}-o`,
        "--device",
        device,
      ],
    ],
    ["serve", ["serve", "--model", missing, "--http", "127.0.0.1:0", "--device", device]],
  ];
}

test("--device cuda without a usable GPU fails at once on worker, dump, generate, export and serve, saying why", async (t) => {
  const probe = loadAddon().probeCuda(0);
  if (probe.usable) return t.skip(`this host has a usable GPU (${probe.deviceName})`);
  const expected = probe.message;
  for (const [name, args] of await commands("cuda")) {
    const r = await runCli(args, {}, 60_000);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^ringtune ${name}: --device cuda:0: `), name);
    assert.ok(r.stderr.includes(expected), `${name} should say '${expected}': ${r.stderr}`);
    // refused before the model folder was read or the NATS server was dialled
    assert.ok(!r.stderr.includes(missing), `${name} read its inputs before checking the device: ${r.stderr}`);
    assert.ok(!/ECONNREFUSED|connect/i.test(r.stderr), `${name} dialled NATS first: ${r.stderr}`);
  }
});

test("a --device value that is not cpu, cuda, cuda:N or cuda-emu is a usage error (status 2)", async () => {
  for (const [name, args] of await commands("tpu")) {
    const r = await runCli(args, {}, 60_000);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /--device must be cpu, cuda, cuda:N \(N a device number\) or cuda-emu, got 'tpu'/, name);
  }
});

// The commands that build their model on the emulated device (all of those that compute); any other would
// refuse it by name.
const COMMANDS_ON_CUDA_EMU = new Set(["dump", "worker", "generate", "export", "serve"]);

test("--device cuda-emu is parsed the same way on every command: run where the command and addon run it, else refused by name", async () => {
  const addon = loadAddon();
  const runsEmu = (addon.modelDevices ?? (addon.cudaEmu ? ["cpu", "cuda-emu"] : [])).includes("cuda-emu");
  for (const [name, args] of await commands("cuda-emu")) {
    const r = await runCli(args, {}, 60_000);
    assert.notEqual(r.code, 2, `${name} took cuda-emu for a bad value: ${r.stderr}`);
    if (!runsEmu) assert.match(r.stderr, new RegExp(`^ringtune ${name}: --device cuda-emu: this build runs`), name);
    else if (!COMMANDS_ON_CUDA_EMU.has(name))
      assert.match(r.stderr, new RegExp(`^ringtune ${name}: --device cuda-emu: this command does not run`), name);
    // with the emulated model built, the command gets past the device check to its (missing) inputs
    else assert.ok(!r.stderr.includes("--device cuda-emu:"), `${name}: ${r.stderr}`);
  }
});

test("worker --help lists the CUDA devices (make cluster-up starts GPU workers on that)", async () => {
  const r = await runCli(["worker", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--device cpu\|cuda\|cuda:N\|cuda-emu/);
});

test("parseDevice reads cpu, cuda and cuda:N and rejects anything else", () => {
  assert.deepEqual(parseDevice(undefined), { kind: "cpu" });
  assert.deepEqual(parseDevice("cpu"), { kind: "cpu" });
  assert.deepEqual(parseDevice("cuda"), { kind: "cuda", index: 0 });
  assert.deepEqual(parseDevice("cuda:3"), { kind: "cuda", index: 3 });
  assert.deepEqual(parseDevice("cuda-emu"), { kind: "cuda-emu" });
  for (const bad of ["gpu", "cuda:", "cuda:-1", "cuda:x", "CUDA", "cuda:1:2", "", "cuda-emu:1", "cuda_emu"])
    assert.throws(() => parseDevice(bad), DeviceFlagError, bad);
});

function fakeAddon(probe: Partial<CudaProbe>, modelDevices?: string[], library?: Partial<CudaLibrary>): NativeAddon {
  const full: CudaProbe = {
    usable: false,
    problem: "none",
    message: "",
    deviceName: "",
    devices: 0,
    driverVersion: 0,
    computeCapability: 0,
    memoryBytes: 0,
    builtArchs: [80, 86, 89, 90],
  };
  const cudaLibrary = library && (() => ({ loaded: false, path: "", message: "", build: "", ...library }));
  return { probeCuda: () => ({ ...full, ...probe }), modelDevices, cudaLibrary } as unknown as NativeAddon;
}

test("requireDevice passes the driver's reason on, and lets a usable GPU through only where the GPU library loads", () => {
  assert.doesNotThrow(() => requireDevice({ kind: "cpu" }, fakeAddon({})));
  const cases: [Partial<CudaProbe>, string][] = [
    [{ problem: "no_driver", message: "no NVIDIA driver: libcuda.so.1 cannot be loaded" }, "no_driver"],
    [{ problem: "no_device", message: "no CUDA device: the NVIDIA driver (CUDA 13.0) sees no GPU" }, "no_device"],
    [{ problem: "driver_too_old", message: "the NVIDIA driver is too old: it supports CUDA 12.4" }, "driver_too_old"],
    [{ problem: "no_code_for_arch", message: "cuda:1 (Tesla T4) has compute capability 7.5" }, "no_code_for_arch"],
    [{ usable: true, problem: "none", deviceName: "NVIDIA H200" }, "cuda_model_not_built"],
  ];
  for (const [probe, problem] of cases) {
    assert.throws(
      () => requireDevice({ kind: "cuda", index: 1 }, fakeAddon(probe)),
      (err: unknown) =>
        err instanceof DeviceUnavailableError &&
        err.problem === problem &&
        err.message.startsWith("--device cuda:1: ") &&
        err.message.includes(probe.message || "NVIDIA H200"),
      problem,
    );
  }
  // With the GPU library loaded, a usable GPU (and only a usable one) passes, for the commands that build
  // their model on the device.
  const gpuBuild = ["cpu", "cuda", "cuda-emu"];
  const loaded = { loaded: true, path: "/b/ringtune_cuda_device.so", build: "CUDA 13.0 runtime (static)" };
  const h100 = { usable: true, deviceName: "NVIDIA H100" };
  assert.doesNotThrow(() =>
    requireDevice({ kind: "cuda", index: 0 }, fakeAddon(h100, gpuBuild, loaded), { cudaEmu: true }),
  );
  assert.throws(
    () => requireDevice({ kind: "cuda", index: 0 }, fakeAddon(h100, gpuBuild, loaded)),
    /--device cuda:0: this command does not run on the GPU yet/,
  );
  assert.throws(
    () =>
      requireDevice({ kind: "cuda", index: 0 }, fakeAddon({ problem: "no_device", message: "x" }, gpuBuild, loaded), {
        cudaEmu: true,
      }),
    DeviceUnavailableError,
  );
  // A usable GPU without the library: the library's own reason, naming the file.
  const absent = {
    loaded: false,
    path: "/b/ringtune_cuda_device.so",
    message: "/b/ringtune_cuda_device.so is not there",
  };
  assert.throws(
    () => requireDevice({ kind: "cuda", index: 2 }, fakeAddon(h100, gpuBuild, absent), { cudaEmu: true }),
    (err: unknown) =>
      err instanceof DeviceUnavailableError &&
      err.problem === "cuda_library_missing" &&
      err.message === "--device cuda:2: NVIDIA H100 is usable, but /b/ringtune_cuda_device.so is not there",
  );
  assert.doesNotThrow(() => requireDevice({ kind: "cuda-emu" }, fakeAddon({}, gpuBuild), { cudaEmu: true }));
  assert.throws(() => requireDevice({ kind: "cuda-emu" }, fakeAddon({}, gpuBuild)), /this command does not run/);
  assert.throws(() => requireDevice({ kind: "cuda-emu" }, fakeAddon({})), /--device cuda-emu: this build runs/);
});
