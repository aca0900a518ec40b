// The project's stand-in libnccl.so.2 (native/nccl_standin, built by `make build`): NCCL's C API over local
// sockets and the CUDA emulator's host-addressable device memory. Tests point RINGTUNE_NCCL_LIB at it.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// dist/test/helpers -> repository root
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export const NCCL_STANDIN = path.join(root, "build/native/nccl_standin/libnccl.so.2");

/** Why the NCCL tests cannot run here, or false when they can. */
export function ncclStandinMissing(cudaEmu: boolean): string | false {
  if (!cudaEmu) return "the addon does not link the CUDA emulator";
  if (!existsSync(NCCL_STANDIN)) return `no stand-in NCCL at ${NCCL_STANDIN}: run 'make build'`;
  return false;
}
