#pragma once
// Large buffers straight from the kernel: an anonymous private mapping reads as zero and takes no memory
// until a page is first written, so a buffer that must start at zero needs no zeroing pass, and one that is
// written before it is read (activations) needs none either. Transparent huge pages are asked for: one
// fault then backs 2 MiB instead of 4 KiB, and faults are most of what first touch of gigabytes costs.
#include <sys/mman.h>
#include <cstddef>
#include <new>

namespace rt {

// Buffers of at least this many bytes are mapped; smaller ones come from the heap.
constexpr size_t kFreshPagesMinBytes = size_t(1) << 20;

inline bool maps_fresh_pages(size_t bytes) { return bytes >= kFreshPagesMinBytes; }

// Zeroed pages, backed on first write. Throws std::bad_alloc when the kernel refuses the mapping.
inline void* map_fresh_pages(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  // Advice only: where huge pages are off or unavailable the mapping works with small pages.
  ::madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

inline void unmap_fresh_pages(void* p, size_t bytes) noexcept { ::munmap(p, bytes); }

}  // namespace rt
