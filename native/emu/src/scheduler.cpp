// Kernel execution: each block runs as one fiber per CUDA thread on the calling host thread, blocks one after
// another in a shuffled order. Between barriers the runnable threads of a block take turns in a shuffled
// order (seeded by RINGTUNE_EMU_SEED, default 1), each running until it reaches a barrier, a warp meeting or
// its end; so a read of shared memory that a missing __syncthreads leaves unordered sees a different value
// than on an in-order run, and the op tests fail.
#include <sys/mman.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>
#include "emu_internal.h"
#include "fiber.h"
#include "scheduler_state.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local ringtune_emu_dim blockDim;
thread_local ringtune_emu_dim gridDim;

namespace ringtune_emu {

thread_local BlockRun* current_run = nullptr;

namespace {

constexpr size_t kStackBytes = 64 << 10;
constexpr int kMaxThreads = 1024;

// Fiber stacks, reused by every launch on this host thread; a PROT_NONE page below each catches an overflow.
struct StackPool {
  std::vector<char*> stacks;
  ~StackPool() {
    for (char* s : stacks) munmap(s - 4096, kStackBytes + 4096);
  }
  char* get(int i) {
    while ((int)stacks.size() <= i) {
      const size_t page = 4096;
      void* p =
          mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        std::fprintf(stderr, "ringtune CUDA emulator: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(p, page, PROT_NONE);
      stacks.push_back((char*)p + page);
    }
    return stacks[i];
  }
};
thread_local StackPool stacks;

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t base_seed() {
  static const uint64_t seed = [] {
    const char* s = std::getenv("RINGTUNE_EMU_SEED");
    return s ? std::strtoull(s, nullptr, 10) : 1ull;
  }();
  return seed;
}
thread_local uint64_t launches = 0;

template <typename V>
void shuffle_in_place(V& v, uint64_t& rng) {
  for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[splitmix(rng) % i]);
}

void fiber_entry() {
  BlockRun* r = current_run;
  r->body(r->args);
  r->threads[r->current].state = ThreadState::Exited;
  r->alive--;
  fiber_switch(&r->threads[r->current].ctx, &r->scheduler);
  __builtin_unreachable();
}

std::string lanes_text(uint32_t m) {
  std::ostringstream s;
  bool first = true;
  for (int l = 0; l < 32; l++)
    if (m >> l & 1) s << (first ? "" : ",") << l, first = false;
  return s.str();
}

std::string describe_deadlock(const BlockRun& r) {
  std::ostringstream s;
  s << "deadlock in block (" << blockIdx.x << "," << blockIdx.y << "," << blockIdx.z << "): " << r.at_barrier << " of "
    << r.alive << " live threads wait at __syncthreads";
  for (size_t w = 0; w < r.warps.size(); w++) {
    uint32_t exited = 0;
    for (int l = 0; l < 32; l++) {
      const size_t t = w * 32 + l;
      if (t < r.threads.size() && r.threads[t].state == ThreadState::Exited) exited |= 1u << l;
    }
    for (const Meeting& m : r.warps[w].open) {
      const uint32_t missing = m.mask & r.warps[w].existing & ~m.arrived;
      s << "; warp " << w << ": lanes " << lanes_text(m.arrived) << " wait in " << m.what << " for lanes "
        << lanes_text(missing);
      if (missing & exited) s << " (lanes " << lanes_text(missing & exited) << " have exited)";
    }
  }
  return s.str();
}

void run_block(BlockRun& r, uint3 block, uint64_t& rng) {
  blockIdx = block;
  const int n = (int)r.threads.size();
  for (int i = 0; i < n; i++) {
    r.threads[i].state = ThreadState::Runnable;
    r.threads[i].async_copies.clear();  // a copy never waited for never lands
    r.threads[i].async_groups = 0;
    fiber_prepare(&r.threads[i].ctx, stacks.get(i), kStackBytes, fiber_entry);
  }
  for (Warp& w : r.warps) w.open.clear();
  if (!r.dynamic_shared.empty()) std::memset(r.dynamic_shared.data(), 0xff, r.dynamic_shared.size());
  r.alive = n;
  r.at_barrier = 0;
  std::vector<int> order, warp_order(r.warps.size());
  order.reserve(32);
  for (size_t w = 0; w < warp_order.size(); w++) warp_order[w] = (int)w;
  while (!r.aborted) {
    // Warps in a shuffled order, each running ahead to its next barrier (as a GPU warp may, while others have
    // not started): a read of shared memory another warp writes before the barrier then sees the old bytes,
    // even when warp meetings lie between the write and the read. Inside a warp the runnable lanes take turns
    // in a shuffled order between its meetings.
    shuffle_in_place(warp_order, rng);
    bool ran = false;
    for (int w : warp_order) {
      while (!r.aborted) {
        order.clear();
        for (int l = 0; l < 32; l++) {
          const int i = w * 32 + l;
          if (i < n && r.threads[i].state == ThreadState::Runnable) order.push_back(i);
        }
        if (order.empty()) break;
        ran = true;
        shuffle_in_place(order, rng);
        for (int i : order) {
          r.current = i;
          threadIdx = r.threads[i].tid;
          fiber_switch(&r.scheduler, &r.threads[i].ctx);
          if (r.aborted) break;
        }
      }
    }
    if (r.aborted || ran) continue;
    if (r.alive == 0) break;
    if (r.at_barrier == r.alive) {
      for (Thread& t : r.threads)
        if (t.state == ThreadState::AtBarrier) t.state = ThreadState::Runnable;
      r.at_barrier = 0;
      continue;
    }
    r.aborted = true;
    r.reason = describe_deadlock(r);
  }
}

std::string kernel_name(const char* signature) {
  const std::string s = signature;
  const size_t at = s.find("K = ");
  if (at == std::string::npos) return s;
  const size_t end = s.find_first_of(";]", at);
  return s.substr(at + 4, end == std::string::npos ? std::string::npos : end - at - 4);
}

std::string dims(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

}  // namespace

BlockRun& run_or_die(const char* what) {
  if (!current_run) {
    std::fprintf(stderr, "ringtune CUDA emulator: %s called outside a kernel\n", what);
    std::abort();
  }
  return *current_run;
}

void yield_to_scheduler(BlockRun& r) { fiber_switch(&r.threads[r.current].ctx, &r.scheduler); }

void fail_in_kernel(const char* what) {
  BlockRun& r = run_or_die("fail_in_kernel");
  const uint3 t = r.threads[r.current].tid;
  r.aborted = true;
  r.reason = std::string(what) + " (block " + dims(dim3(blockIdx)) + ", thread " + dims(dim3(t)) + ")";
  yield_to_scheduler(r);
  __builtin_unreachable();
}

void* dynamic_shared() {
  BlockRun& r = run_or_die("dynamic shared memory");
  if (r.dynamic_shared.empty()) return nullptr;
  // 128-byte aligned, as the GPU's shared window: wmma tiles and 128-bit copies placed in it need 32 and 16
  const uintptr_t p = (uintptr_t)r.dynamic_shared.data();
  return (void*)((p + kDynamicSharedAlign - 1) & ~(uintptr_t)(kDynamicSharedAlign - 1));
}

bool capture_launch(cudaStream_t stream, const void* kernel, const char* signature,
                    std::function<void(cudaStream_t)> run) {
  GraphNode node{NodeKind::Kernel, kernel, "kernel " + kernel_name(signature), [run = std::move(run)](cudaStream_t s) {
                   run(s);
                   return cudaGetLastError();  // the launch's own error (cudaGraphLaunch cleared any earlier one)
                 }};
  return capture_node(stream, std::move(node));
}

std::atomic<unsigned long long> kernel_launches{0};

void launch(const LaunchArgs& l, ThreadBody body, const void* args, const PointerArg* ptrs, int n_ptrs) {
  kernel_launches.fetch_add(1, std::memory_order_relaxed);
  const std::string name = kernel_name(l.signature);
  const dim3 g = l.grid, b = l.block;
  const uint64_t threads = (uint64_t)b.x * b.y * b.z;
  if (current_run) {
    set_error(cudaErrorLaunchFailure, "kernel " + name + " launched from inside a kernel (not emulated)");
    return;
  }
  if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > kMaxThreads ||
      g.y > 65535 || g.z > 65535 || g.x > 0x7fffffffu) {
    set_error(cudaErrorInvalidConfiguration, "kernel " + name + ": grid " + dims(g) + " x block " + dims(b) +
                                                 " is not a valid launch (at most 1024 threads per block)");
    return;
  }
  if (l.smem > dynamic_shared_limit(l.kernel)) {
    set_error(cudaErrorInvalidValue, "kernel " + name + ": " + std::to_string(l.smem) +
                                         " bytes of dynamic shared memory exceed its limit of " +
                                         std::to_string(dynamic_shared_limit(l.kernel)) +
                                         " (raise it with cudaFuncSetAttribute)");
    return;
  }
  const int dev = current_device(), sdev = stream_device(l.stream);
  if (sdev != dev) {
    set_error(
        cudaErrorInvalidResourceHandle,
        "kernel " + name + " launched on device " + std::to_string(dev) + " into " +
            (sdev < 0 ? std::string("a destroyed or unknown stream") : "a stream of device " + std::to_string(sdev)));
    return;
  }
  for (int i = 0; i < n_ptrs; i++) {
    Allocation a;
    std::ostringstream why;
    if (find_allocation(ptrs[i].p, &a)) {
      if (a.device == dev) continue;
      why << "points into device " << a.device << "'s allocation #" << a.serial << " but the kernel runs on device "
          << dev;
    } else if (in_pinned(ptrs[i].p)) {
      continue;
    } else if (in_device_arena(ptrs[i].p)) {
      why << "is not in any live device allocation: " << describe_address(ptrs[i].p);
    } else {
      why << "is a host pointer, not device memory from cudaMalloc";
    }
    std::ostringstream m;
    m << "kernel " << name << ": argument #" << ptrs[i].index << " (" << ptrs[i].p << ") " << why.str();
    set_error(cudaErrorIllegalAddress, m.str());
    return;
  }

  BlockRun r;
  r.body = body;
  r.args = args;
  r.threads.resize(threads);
  for (uint32_t z = 0, i = 0; z < b.z; z++)
    for (uint32_t y = 0; y < b.y; y++)
      for (uint32_t x = 0; x < b.x; x++, i++) r.threads[i].tid = uint3{x, y, z};
  r.warps.resize((threads + 31) / 32);
  for (size_t w = 0; w < r.warps.size(); w++) {
    const uint64_t left = threads - w * 32;
    r.warps[w].existing = left >= 32 ? 0xffffffffu : (uint32_t)((1ull << left) - 1);
  }
  r.dynamic_shared.assign(l.smem ? l.smem + kDynamicSharedAlign : 0, 0);
  blockDim = ringtune_emu_dim{b.x, b.y, b.z};
  gridDim = ringtune_emu_dim{g.x, g.y, g.z};

  uint64_t rng = base_seed() * 0x2545f4914f6cdd1dull + ++launches;
  const uint64_t blocks = (uint64_t)g.x * g.y * g.z;
  std::vector<uint64_t> order(blocks);
  for (uint64_t i = 0; i < blocks; i++) order[i] = i;
  shuffle_in_place(order, rng);
  DeviceAccess access;
  current_run = &r;
  for (uint64_t i : order) {
    const uint3 block{(unsigned)(i % g.x), (unsigned)(i / g.x % g.y), (unsigned)(i / ((uint64_t)g.x * g.y))};
    run_block(r, block, rng);
    if (r.aborted) break;
  }
  current_run = nullptr;
  if (r.aborted) {
    set_error(cudaErrorLaunchFailure, "kernel " + name + ": " + r.reason);
    return;
  }
  std::string damage;
  if (!check_guards(&damage)) set_error(cudaErrorIllegalAddress, "after kernel " + name + ": " + damage);
}

}  // namespace ringtune_emu

unsigned long long ringtune_emu_kernel_launches() { return ringtune_emu::kernel_launches.load(); }
