// --device on the commands that compute: parsed (a bad value is a usage error) and checked before any model
// is loaded, so `--device cuda` on a machine without a usable GPU fails at once with the reason.
import { UsageError } from "./args.js";
import { DeviceFlagError, parseDevice, requireDevice } from "../native/js/compute_device.js";
import type { ComputeDevice } from "../native/js/compute_device.js";

/** opts.cudaEmu: the command builds its model on the device it is given, so it takes --device cuda-emu. */
export function deviceFromFlags(values: Record<string, unknown>, opts: { cudaEmu?: boolean } = {}): ComputeDevice {
  let device: ComputeDevice;
  try {
    device = parseDevice(values.device as string | undefined);
  } catch (err) {
    if (err instanceof DeviceFlagError) throw new UsageError(err.message);
    throw err;
  }
  requireDevice(device, undefined, opts);
  return device;
}
