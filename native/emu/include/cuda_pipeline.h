#pragma once
// The CUDA emulator's asynchronous copies into shared memory: the pipeline primitives of CUDA's cuda_pipeline.h
// (cp.async on sm_80 and newer). A copy lands only when the thread that issued it waits for its group, as the
// strictest GPU would have it: __pipeline_commit closes the thread's current group, __pipeline_wait_prior(n)
// performs (in issue order) every copy of the thread's committed groups but the newest n. Until then the
// destination keeps its old bytes (the NaN fill of fresh shared memory, or an earlier tile), so a kernel that
// reads a tile before waiting for it, or waits for one group too few, reads wrong values; a copy never waited
// for never lands. As on the GPU a wait covers the calling thread's copies only: other threads' copies need the
// barrier after their waits, which the shuffled schedule checks as it checks any shared-memory write.
#include <cuda_runtime.h>
#include <cstddef>

namespace ringtune_emu {
// bytes 4, 8 or 16, both pointers aligned to it; dst in the block's dynamic shared memory, src in device memory
// of the current device; the last zfill bytes of the destination are zeroed instead of read.
void async_copy(void* dst, const void* src, size_t bytes, size_t zfill);
void async_commit();
void async_wait_prior(size_t pending_groups);
}  // namespace ringtune_emu

inline void __pipeline_memcpy_async(void* dst, const void* src, size_t size_and_align, size_t zfill = 0) {
  ringtune_emu::async_copy(dst, src, size_and_align, zfill);
}
inline void __pipeline_commit() { ringtune_emu::async_commit(); }
inline void __pipeline_wait_prior(size_t prior) { ringtune_emu::async_wait_prior(prior); }
