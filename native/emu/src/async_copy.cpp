// Asynchronous copies into shared memory (cuda_pipeline.h): each thread's copies wait in its own queue, tagged
// with the group they belong to, until the thread waits for that group.
#include <cuda_pipeline.h>
#include <cstring>
#include <string>
#include "scheduler_state.h"

namespace ringtune_emu {
namespace {

Thread& issuing_thread(const char* what) {
  BlockRun& r = run_or_die(what);
  return r.threads[r.current];
}

bool inside_dynamic_shared(const void* p, size_t bytes) {
  BlockRun& r = run_or_die("__pipeline_memcpy_async");
  const auto* base = static_cast<const unsigned char*>(dynamic_shared());
  const auto* at = static_cast<const unsigned char*>(p);
  return base && at >= base && at + bytes <= r.dynamic_shared.data() + r.dynamic_shared.size();
}

}  // namespace

void async_copy(void* dst, const void* src, size_t bytes, size_t zfill) {
  Thread& t = issuing_thread("__pipeline_memcpy_async");
  if (bytes != 4 && bytes != 8 && bytes != 16)
    fail_in_kernel(("__pipeline_memcpy_async of " + std::to_string(bytes) + " bytes (4, 8 or 16)").c_str());
  if (zfill > bytes) fail_in_kernel("__pipeline_memcpy_async: zero fill larger than the copy");
  if ((uintptr_t)dst % bytes != 0 || (uintptr_t)src % bytes != 0)
    fail_in_kernel("__pipeline_memcpy_async: a pointer not aligned to the copy's size");
  if (!inside_dynamic_shared(dst, bytes))
    fail_in_kernel("__pipeline_memcpy_async: the destination is not in the block's dynamic shared memory");
  Allocation a;
  const size_t read = bytes - zfill;
  if (read > 0 &&
      (!find_allocation(src, &a) || a.device != current_device() || (uintptr_t)src + read > a.base + a.size))
    fail_in_kernel("__pipeline_memcpy_async: the source is not in device memory of the current device");
  t.async_copies.push_back({dst, src, bytes, zfill, t.async_groups});
}

void async_commit() { issuing_thread("__pipeline_commit").async_groups++; }

void async_wait_prior(size_t pending_groups) {
  Thread& t = issuing_thread("__pipeline_wait_prior");
  // groups [0, async_groups) are committed; all but the newest pending_groups land now
  const uint64_t below = t.async_groups > pending_groups ? t.async_groups - pending_groups : 0;
  size_t kept = 0;
  for (size_t i = 0; i < t.async_copies.size(); i++) {
    const AsyncCopy& c = t.async_copies[i];
    if (c.group < below) {
      std::memcpy(c.dst, c.src, c.bytes - c.zfill);
      std::memset(static_cast<unsigned char*>(c.dst) + (c.bytes - c.zfill), 0, c.zfill);
    } else {
      t.async_copies[kept++] = c;
    }
  }
  t.async_copies.resize(kept);
}

}  // namespace ringtune_emu
