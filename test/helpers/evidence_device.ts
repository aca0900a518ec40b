// The device the CUDA evidence tests run on: the CUDA emulator in `make test` (any host), or a real GPU when the
// device proof (deploy/gpu/e2e_checks.sh) runs the same tests with RINGTUNE_TEST_DEVICE=cuda (or cuda:N), so a
// lent GPU confirms exactly what the emulator showed.
import { loadAddon } from "../../native/js/addon.js";

/** The --device of the evidence tests: cuda-emu unless RINGTUNE_TEST_DEVICE names a GPU. */
export const EVIDENCE_DEVICE: string = process.env.RINGTUNE_TEST_DEVICE ?? "cuda-emu";

/** Why the evidence tests cannot run in this build (a skip reason), or false when they can. */
export function evidenceSkip(): string | false {
  if (EVIDENCE_DEVICE !== "cuda-emu") return false; // on a GPU a missing piece is a failure, not a skip
  return !loadAddon().cudaEmu && "the addon does not link the CUDA emulator";
}
