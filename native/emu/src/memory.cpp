// Device memory of the CUDA emulator. Every cudaMalloc gets its own pages in one reserved arena: 256 guard
// bytes before it, guard bytes from its last byte to the end of its pages, then an inaccessible page; the
// bytes themselves start as 0xff (NaN in fp32 and bf16), as a GPU's fresh memory holds garbage, not zeros.
// Guards are checked after every launch; a freed allocation's pages become inaccessible and are never reused,
// so a late access faults. Copies check that each side is the kind of memory their direction names.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include "emu_internal.h"

namespace ringtune_emu {
namespace {

constexpr size_t kFront = 256, kMinRear = 256;
constexpr unsigned char kGuard = 0xfd;

struct Block {
  Allocation a;
  uintptr_t region, region_end;
};

struct Registry {
  std::mutex mu;
  uintptr_t arena = 0, arena_end = 0, next = 0;
  size_t page = 4096;
  uint64_t serial = 0;
  std::map<uintptr_t, Block> live;     // by the pointer handed out
  std::map<uintptr_t, Block> freed;    // the same, after cudaFree
  std::map<uintptr_t, size_t> pinned;  // cudaMallocHost
  std::map<int, size_t> used;          // bytes per device
};

void install_fault_handler();

Registry& reg() {
  static Registry* r = [] {
    Registry* g = new Registry;
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    // Address space only: pages are committed allocation by allocation.
    for (size_t gib : {1024, 256, 64, 16}) {
      void* p = mmap(nullptr, gib << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p != MAP_FAILED) {
        g->arena = g->next = (uintptr_t)p;
        g->arena_end = g->arena + (gib << 30);
        break;
      }
    }
    install_fault_handler();
    return g;
  }();
  return *r;
}

bool strict_host_access() {
  static const bool strict = [] {
    const char* s = std::getenv("RINGTUNE_EMU_HOST_ACCESS");
    return !(s && std::strcmp(s, "allow") == 0);
  }();
  return strict;
}
std::recursive_mutex access_mu;  // held while device memory is open
thread_local int open_depth = 0;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

const Block* find_in(const std::map<uintptr_t, Block>& m, uintptr_t p) {
  auto it = m.upper_bound(p);
  if (it == m.begin()) return nullptr;
  --it;
  return p >= it->second.region && p < it->second.region_end + 1 ? &it->second : nullptr;
}

bool guards_intact(const Block& b, std::string* report) {
  const unsigned char* front = (const unsigned char*)b.region;
  const unsigned char* rear = (const unsigned char*)(b.a.base + b.a.size);
  const size_t rear_len = b.region_end - (b.a.base + b.a.size);
  for (size_t i = 0; i < kFront; i++)
    if (front[i] != kGuard) {
      std::ostringstream s;
      s << "a write " << kFront - i << " bytes before the start of device allocation #" << b.a.serial << " ("
        << b.a.size << " bytes at " << (void*)b.a.base << ", device " << b.a.device << ")";
      *report = s.str();
      return false;
    }
  for (size_t i = 0; i < rear_len; i++)
    if (rear[i] != kGuard) {
      std::ostringstream s;
      s << "a write " << i << " bytes past the end of device allocation #" << b.a.serial << " (" << b.a.size
        << " bytes at " << (void*)b.a.base << ", device " << b.a.device << "; first damaged byte at offset "
        << b.a.size + i << ")";
      *report = s.str();
      return false;
    }
  return true;
}

void restore_guards(const Block& b) {
  std::memset((void*)b.region, kGuard, kFront);
  std::memset((void*)(b.a.base + b.a.size), kGuard, b.region_end - (b.a.base + b.a.size));
}

std::string describe_locked(Registry& r, uintptr_t p) {
  std::ostringstream s;
  s << (void*)p;
  for (const auto* m : {&r.live, &r.freed}) {
    const Block* b = find_in(*m, p);
    if (!b) continue;
    const char* state = m == &r.live ? "" : "freed ";
    if (p < b->a.base)
      s << " is " << b->a.base - p << " bytes before " << state << "device allocation #" << b->a.serial;
    else if (p >= b->a.base + b->a.size)
      s << " is " << p - b->a.base - b->a.size << " bytes past the end of " << state << "device allocation #"
        << b->a.serial;
    else s << " is at offset " << p - b->a.base << " of " << state << "device allocation #" << b->a.serial;
    s << " (" << b->a.size << " bytes at " << (void*)b->a.base << ")";
    return s.str();
  }
  s << (p >= r.arena && p < r.arena_end ? " is in no device allocation" : " is host memory");
  return s.str();
}

struct sigaction previous_fault_action;

// A fault in the arena is a kernel (or host code) touching device memory it does not own: say which
// allocation, then let the default action end the process. Any other fault goes to the handler that was
// installed before ours (V8's, in the Node addon).
void on_fault(int sig, siginfo_t* info, void* uctx) {
  Registry& r = reg();
  const uintptr_t p = (uintptr_t)info->si_addr;
  if (p >= r.arena && p < r.arena_end) {
    char buf[768];
    // Not async-signal-safe, but the process is about to die and this says why.
    const std::string d = describe_locked(r, p);
    const Block* live = find_in(r.live, p);
    const bool host = open_depth == 0 && live && p >= live->a.base && p < live->a.base + live->a.size;
    const int n = std::snprintf(
        buf, sizeof buf, "ringtune CUDA emulator: invalid device memory access: %s%s\n", d.c_str(),
        host ? " -- host code touched device memory outside a kernel (a GPU faults there too: copy it with "
               "cudaMemcpy; RINGTUNE_EMU_HOST_ACCESS=allow permits it)"
             : "");
    if (n > 0) (void)!write(2, buf, (size_t)n);
    signal(sig, SIG_DFL);  // the faulting access repeats and ends the process with the usual signal
    return;
  }
  const struct sigaction& prev = previous_fault_action;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
    prev.sa_sigaction(sig, info, uctx);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) {
    prev.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);
  }
}

void install_fault_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous_fault_action);
}

// [p, p + n) inside one live allocation: true; otherwise false with the reason.
bool device_range(const void* p, size_t n, Allocation* a, std::string* why) {
  if (!find_allocation(p, a)) {
    *why = describe_address(p);
    return false;
  }
  if ((uintptr_t)p + n > a->base + a->size) {
    std::ostringstream s;
    s << (void*)p << " + " << n << " bytes runs " << (uintptr_t)p + n - (a->base + a->size)
      << " bytes past the end of device allocation #" << a->serial << " (" << a->size << " bytes)";
    *why = s.str();
    return false;
  }
  return true;
}

void protect(uintptr_t region, size_t len, bool open) {
  mprotect((void*)region, len, open ? PROT_READ | PROT_WRITE : PROT_NONE);
}

}  // namespace

DeviceAccess::DeviceAccess() : lock_(access_mu) {
  open_depth++;
  if (!strict_host_access() || open_depth > 1) return;
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [p, b] : r.live) {
    protect(b.region, b.region_end - b.region, true);
    opened_.emplace_back(b.region, b.region_end - b.region);
  }
}

DeviceAccess::DeviceAccess(const void* a, const void* b) : lock_(access_mu) {
  open_depth++;
  if (!strict_host_access() || open_depth > 1) return;
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const void* p : {a, b}) {
    const Block* blk = p ? find_in(r.live, (uintptr_t)p) : nullptr;
    if (!blk) continue;
    protect(blk->region, blk->region_end - blk->region, true);
    opened_.emplace_back(blk->region, blk->region_end - blk->region);
  }
}

DeviceAccess::~DeviceAccess() {
  open_depth--;
  for (const auto& [region, len] : opened_) protect(region, len, false);
}

bool find_allocation(const void* p, Allocation* out) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  const Block* b = find_in(r.live, (uintptr_t)p);
  if (!b || (uintptr_t)p < b->a.base || (uintptr_t)p > b->a.base + b->a.size) return false;
  *out = b->a;
  return true;
}

bool in_device_arena(const void* p) {
  Registry& r = reg();
  return (uintptr_t)p >= r.arena && (uintptr_t)p < r.arena_end;
}

bool in_pinned(const void* p) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.pinned.upper_bound((uintptr_t)p);
  if (it == r.pinned.begin()) return false;
  --it;
  return (uintptr_t)p <= it->first + it->second;
}

bool check_guards(std::string* report) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [p, b] : r.live)
    if (!guards_intact(b, report)) {
      restore_guards(b);
      return false;
    }
  return true;
}

std::string describe_address(const void* p) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return describe_locked(r, (uintptr_t)p);
}

namespace {
std::atomic<unsigned long long> allocations{0}, host_syncs{0};
std::atomic<unsigned long long> copies_to_host{0}, bytes_to_host{0}, copies_to_device{0}, bytes_to_device{0};
}  // namespace
void count_allocation() { allocations.fetch_add(1, std::memory_order_relaxed); }
void count_host_sync() { host_syncs.fetch_add(1, std::memory_order_relaxed); }

}  // namespace ringtune_emu

using namespace ringtune_emu;

ringtune_emu_counters ringtune_emu_read_counters() {
  return {allocations.load(),     host_syncs.load(),       copies_to_host.load(),
          bytes_to_host.load(),   copies_to_device.load(), bytes_to_device.load(),
          count_graph_launches(), count_graph_kernels(),   count_captured_kernels()};
}

cudaError_t cudaMalloc(void** out, size_t bytes) {
  count_allocation();
  if (const cudaError_t e = refuse_during_capture("cudaMalloc")) return e;
  if (!out) return set_error(cudaErrorInvalidValue, "cudaMalloc: null output pointer");
  Registry& r = reg();
  const int dev = current_device();
  const std::lock_guard<std::recursive_mutex> access(access_mu);  // not while a launch checks the guards
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.used[dev] + bytes > device_memory_bytes()) {
    std::ostringstream s;
    s << "cudaMalloc of " << bytes << " bytes: device " << dev << " has " << device_memory_bytes() - r.used[dev]
      << " of " << device_memory_bytes() << " bytes free (RINGTUNE_EMU_MEMORY_MB sets the size)";
    return set_error(cudaErrorMemoryAllocation, s.str());
  }
  const size_t region = round_up(kFront + bytes + kMinRear, r.page);
  if (r.next + region + r.page > r.arena_end)
    return set_error(cudaErrorMemoryAllocation, "cudaMalloc: the emulator's address space is used up");
  Block b;
  b.region = r.next;
  b.region_end = r.next + region;
  r.next += region + r.page;  // the page after stays inaccessible
  if (mprotect((void*)b.region, region, PROT_READ | PROT_WRITE) != 0)
    return set_error(cudaErrorMemoryAllocation, "cudaMalloc: the host refused memory");
  b.a = Allocation{b.region + kFront, bytes, ++r.serial, dev};
  restore_guards(b);
  std::memset((void*)b.a.base, 0xff, bytes);
  if (strict_host_access() && open_depth == 0) protect(b.region, region, false);
  r.live[b.a.base] = b;
  r.used[dev] += bytes;
  *out = (void*)b.a.base;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  if (const cudaError_t e = refuse_during_capture("cudaFree")) return e;
  Registry& r = reg();
  const std::lock_guard<std::recursive_mutex> access(access_mu);
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.live.find((uintptr_t)p);
  if (it == r.live.end())
    return set_error(cudaErrorInvalidDevicePointer,
                     "cudaFree(" + describe_locked(r, (uintptr_t)p) + "): not a pointer cudaMalloc returned");
  const Block b = it->second;
  r.live.erase(it);
  r.used[b.a.device] -= b.a.size;
  mprotect((void*)b.region, b.region_end - b.region, PROT_NONE);
  madvise((void*)b.region, b.region_end - b.region, MADV_DONTNEED);
  r.freed[b.a.base] = b;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* p) {
  if (!attr) return set_error(cudaErrorInvalidValue, "cudaPointerGetAttributes: null output pointer");
  *attr = cudaPointerAttributes{cudaMemoryTypeUnregistered, -1, nullptr, nullptr};
  Allocation a{};
  if (find_allocation(p, &a)) {
    *attr = cudaPointerAttributes{cudaMemoryTypeDevice, a.device, const_cast<void*>(p), nullptr};
  } else if (in_pinned(p)) {
    *attr = cudaPointerAttributes{cudaMemoryTypeHost, current_device(), const_cast<void*>(p), const_cast<void*>(p)};
  }
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (!p) return set_error(cudaErrorInvalidValue, "cudaMallocHost: null output pointer");
  count_allocation();
  if (const cudaError_t e = refuse_during_capture("cudaMallocHost")) return e;
  void* m = std::aligned_alloc(4096, round_up(bytes ? bytes : 1, 4096));
  if (!m) return set_error(cudaErrorMemoryAllocation, "cudaMallocHost: out of host memory");
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.pinned[(uintptr_t)m] = bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) { return cudaMallocHost(p, bytes); }

cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  if (const cudaError_t e = refuse_during_capture("cudaFreeHost")) return e;
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.pinned.erase((uintptr_t)p))
    return set_error(cudaErrorInvalidValue, "cudaFreeHost: not a pointer cudaMallocHost returned");
  std::free(p);
  return cudaSuccess;
}

namespace {
const char* kind_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault: return "cudaMemcpyDefault";
  }
  return "an unknown cudaMemcpyKind";
}
}  // namespace

namespace {
// The copy itself, checked; cudaMemcpy and cudaMemcpyAsync differ in what they cost the host.
cudaError_t checked_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault)
    kind = in_device_arena(src) ? (in_device_arena(dst) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                                : (in_device_arena(dst) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  if ((int)kind < 0 || (int)kind > 3)
    return set_error(cudaErrorInvalidMemcpyDirection, "cudaMemcpy with an unknown direction");
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  Allocation a;
  std::string why;
  for (int side = 0; side < 2; side++) {
    const void* p = side ? src : dst;
    const bool dev = side ? src_dev : dst_dev;
    const char* role = side ? "source" : "destination";
    if (dev && !device_range(p, bytes, &a, &why))
      return set_error(cudaErrorInvalidValue, std::string(kind_name(kind)) + " of " + std::to_string(bytes) +
                                                  " bytes: the " + role + " " + why);
    if (!dev && in_device_arena(p))
      return set_error(cudaErrorInvalidValue, std::string(kind_name(kind)) + ": the " + role + " " +
                                                  describe_address(p) + ", but the direction says host memory");
  }
  const DeviceAccess access(dst_dev ? dst : nullptr, src_dev ? src : nullptr);
  std::memmove(dst, src, bytes);
  if (kind == cudaMemcpyDeviceToHost) copies_to_host.fetch_add(1), bytes_to_host.fetch_add(bytes);
  if (kind == cudaMemcpyHostToDevice) copies_to_device.fetch_add(1), bytes_to_device.fetch_add(bytes);
  return cudaSuccess;
}

cudaError_t checked_set(void* p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  Allocation a;
  std::string why;
  if (!device_range(p, bytes, &a, &why))
    return set_error(cudaErrorInvalidValue, "cudaMemset of " + std::to_string(bytes) + " bytes: " + why);
  const DeviceAccess access(p);
  std::memset(p, value, bytes);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = refuse_during_capture("cudaMemcpy")) return e;
  if (bytes) count_host_sync();
  return checked_copy(dst, src, bytes, kind);
}

// On a GPU an asynchronous copy between the device and pageable host memory waits for the stream: only pinned
// host memory (cudaMallocHost) lets the host run ahead.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (stream_device(s) < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream");
  const void* host = kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
  if (bytes && host && !in_pinned(host)) {
    if (const cudaError_t e = refuse_during_capture("cudaMemcpyAsync of pageable host memory")) return e;
    count_host_sync();
  }
  // A capture keeps the copy's addresses; the bytes move when the graph runs.
  if (capture_node(s, GraphNode{NodeKind::Memcpy, nullptr, std::string(kind_name(kind)) + " copy",
                                [=](cudaStream_t) { return checked_copy(dst, src, bytes, kind); }}))
    return cudaSuccess;
  return checked_copy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (const cudaError_t e = refuse_during_capture("cudaMemset")) return e;
  if (bytes) count_host_sync();
  return checked_set(p, value, bytes);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (stream_device(s) < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream");
  if (capture_node(s, GraphNode{NodeKind::Memset, nullptr, "memset",
                                [=](cudaStream_t) { return checked_set(p, value, bytes); }}))
    return cudaSuccess;
  return checked_set(p, value, bytes);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  const size_t total = device_memory_bytes(), used = r.used[current_device()];
  if (free_bytes) *free_bytes = total - used;
  if (total_bytes) *total_bytes = total;
  return cudaSuccess;
}
