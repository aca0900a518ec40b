#!/usr/bin/env bash
# The CUDA devices `make cluster-up` starts one worker on each of, one per line ("cuda:0", "cuda:1", ...): every
# GPU of this node that `ringtune worker --device cuda:N` can use, by the check the worker itself makes first
# (the driver and its version, the GPU's compute capability against the code built, the GPU library beside the
# addon). Nothing on stdout when no GPU is usable (cluster-up then starts CPU workers); each GPU left out is
# named on stderr with the reason. WORKER_DEVICE=cpu: none.
# The GPUs are counted by the driver, which honours CUDA_VISIBLE_DEVICES as --device cuda:N does (nvidia-smi
# lists every GPU of the node regardless); nvidia-smi is only asked whether there is a GPU at all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ "${WORKER_DEVICE:-}" = cpu ] && exit 0
command -v nvidia-smi > /dev/null 2>&1 || exit 0
listed=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ' || true)
[ "${listed:-0}" -gt 0 ] || exit 0
exec node --input-type=module -e '
  const [js, listed] = process.argv.slice(1);
  const { loadAddon } = await import(`${js}/addon.js`);
  const { requireDevice } = await import(`${js}/compute_device.js`);
  const addon = loadAddon();
  const count = addon.probeCuda(0).devices || Number(listed);
  for (let index = 0; index < count; index++) {
    try {
      requireDevice({ kind: "cuda", index }, addon, { cudaEmu: true });
      console.log(`cuda:${index}`);
    } catch (err) {
      console.error(`cluster-up: GPU ${index} left out: ${err.message}`);
    }
  }
' "$ROOT/dist/native/js" "$listed"
