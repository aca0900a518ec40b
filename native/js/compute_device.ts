// The --device flag of the commands that compute (worker, dump, generate, export, serve): cpu, cuda, cuda:N or
// cuda-emu (the CUDA backend on the project's CPU emulator: slow, for tests and for checking a set-up without a
// GPU). A CUDA device is checked with the NVIDIA driver before any model is built, so a machine without a usable
// GPU fails at once with the reason (no driver, driver too old, no device, a GPU this build has no code for)
// instead of partway through a job.
import { loadAddon } from "./addon.js";
import type { CudaProbe, ModelDeviceName, NativeAddon } from "./addon.js";

export type ComputeDevice = { kind: "cpu" } | { kind: "cuda"; index: number } | { kind: "cuda-emu" };

export const DEVICE_FLAG_HELP = "--device cpu|cuda|cuda:N|cuda-emu";

/** A --device value that is not cpu, cuda, cuda:N or cuda-emu. */
export class DeviceFlagError extends Error {
  override name = "DeviceFlagError";
}

/** The device asked for cannot be used here; `problem` says which piece is missing. */
export class DeviceUnavailableError extends Error {
  override name = "DeviceUnavailableError";
  constructor(
    message: string,
    readonly problem: CudaProbe["problem"] | "cuda_model_not_built" | "cuda_library_missing",
  ) {
    super(message);
  }
}

export function parseDevice(text: string | undefined): ComputeDevice {
  if (text === undefined || text === "cpu") return { kind: "cpu" };
  if (text === "cuda") return { kind: "cuda", index: 0 };
  if (text === "cuda-emu") return { kind: "cuda-emu" };
  const m = /^cuda:(\d{1,3})$/.exec(text);
  if (m) return { kind: "cuda", index: Number(m[1]) };
  throw new DeviceFlagError(`--device must be cpu, cuda, cuda:N (N a device number) or cuda-emu, got '${text}'`);
}

/** "cpu", "cuda:1" or "cuda-emu": the device as the flag, the heartbeat and the job record name it. */
export function deviceName(d: ComputeDevice): string {
  return d.kind === "cuda" ? `cuda:${d.index}` : d.kind;
}

/** The native model's device for createModelAsync: GPU N, the CUDA emulator's backend, or the CPU's. */
export function modelDevice(d: ComputeDevice): ModelDeviceName {
  if (d.kind === "cuda") return `cuda:${d.index}`;
  return d.kind === "cuda-emu" ? "cuda-emu" : "cpu";
}

/** Whether this build of the addon builds models on the device (listed in `modelDevices`, or the emulator linked). */
function modelRunsOn(addon: NativeAddon, d: ComputeDevice): boolean {
  const devices = addon.modelDevices ?? (addon.cudaEmu ? ["cpu", "cuda-emu"] : ["cpu"]);
  return devices.includes(d.kind);
}

/**
 * Resolves once the device can run the model; throws DeviceUnavailableError otherwise. The CPU always can.
 * For a GPU: the driver is asked first (the reasons a user can fix: no driver, no device, driver too old, a GPU
 * this build has no code for), then the GPU library the model runs in (ringtune_cuda_device.so, built by
 * `make build` where nvcc is installed) must load beside the addon. opts.cudaEmu: the command builds its model
 * on the device it is given (GPU or emulator); the others refuse both, so no command pretends to compute on a
 * device it does not use. The emulated device needs an addon that links the emulator.
 */
export function requireDevice(
  d: ComputeDevice,
  addon: NativeAddon = loadAddon(),
  opts: { cudaEmu?: boolean } = {},
): void {
  if (d.kind === "cpu") return;
  const flag = `--device ${deviceName(d)}`;
  if (d.kind === "cuda-emu") {
    if (!modelRunsOn(addon, d))
      throw new DeviceUnavailableError(
        `${flag}: this build runs the model on the CPU backend only (the emulated CUDA model is not wired in); ` +
          `use --device cpu`,
        "cuda_model_not_built",
      );
    if (opts.cudaEmu) return;
    throw new DeviceUnavailableError(
      `${flag}: this command does not run on the CUDA emulator yet (\`dump\`, \`worker\`, \`generate\`, \`export\` and \`serve\` do); use --device cpu`,
      "cuda_model_not_built",
    );
  }
  const probe = addon.probeCuda(d.index);
  if (!probe.usable) throw new DeviceUnavailableError(`${flag}: ${probe.message}`, probe.problem);
  const library = addon.cudaLibrary?.();
  if (!library)
    throw new DeviceUnavailableError(
      `${flag}: ${probe.deviceName} is usable, but this addon predates the GPU library; rebuild with \`make build\``,
      "cuda_model_not_built",
    );
  if (!library.loaded)
    throw new DeviceUnavailableError(
      `${flag}: ${probe.deviceName} is usable, but ${library.message}`,
      "cuda_library_missing",
    );
  if (opts.cudaEmu) return;
  throw new DeviceUnavailableError(
    `${flag}: this command does not run on the GPU yet (\`dump\`, \`worker\`, \`generate\`, \`export\` and \`serve\` do); use --device cpu`,
    "cuda_model_not_built",
  );
}
