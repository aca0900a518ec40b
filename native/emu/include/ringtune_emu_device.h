#pragma once
// The device side of the CUDA emulator: kernel qualifiers, the built-in index variables, warp shuffles and
// votes, atomics, math intrinsics and the kernel launch. A block runs as one fiber per CUDA thread on the
// calling host thread; between barriers its warps run in a seeded shuffled order, each ahead to its next
// barrier before the next warp starts, and the lanes of a warp in a shuffled order between its warp meetings,
// so a missing __syncthreads or a race on shared memory changes results. A warp-synchronous primitive (shuffle, vote,
// wmma) is a meeting point of the lanes its mask names: each lane waits there until all have arrived.
#include <math.h>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared memory: one instance per kernel, shared by the fibers of the block that runs (blocks run one
// at a time on each host thread).
#define __shared__ static thread_local
#define __constant__

// The index variables of the thread the calling fiber stands for; set by the scheduler at each switch.
struct ringtune_emu_dim {
  unsigned int x, y, z;
  operator dim3() const { return dim3(x, y, z); }  // NOLINT
};
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local ringtune_emu_dim blockDim;
extern thread_local ringtune_emu_dim gridDim;
constexpr int warpSize = 32;

namespace ringtune_emu {

// A warp-level meeting: every lane of `mask` calls it with its own context; when the last arrives, op runs
// once over all the lanes' contexts (lane_ctx[lane], null for lanes not in the meeting), then each lane
// continues. `what` names the primitive in error messages; all lanes must call the same one.
using CollectiveOp = void (*)(void* const* lane_ctx, uint32_t lanes);
void warp_collective(uint32_t mask, CollectiveOp op, void* ctx, const char* what);
void syncthreads();
unsigned lane_id();
uint32_t active_lanes();
// The block's dynamic shared memory (the launch's smem bytes, filled with a NaN pattern at block start).
void* dynamic_shared();
// Stops the launch with cudaErrorLaunchFailure and this message (called from kernel code).
[[noreturn]] void fail_in_kernel(const char* what);

struct LaunchArgs {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const void* kernel;
  const char* signature;  // the launching template's __PRETTY_FUNCTION__: names the kernel
};
struct PointerArg {
  int index;
  const void* p;
};
using ThreadBody = void (*)(const void* args);
// Runs body(args) as every thread of every block; the launch's error (configuration, a bad pointer argument,
// a guard byte overwritten, a deadlock) becomes the calling thread's last error.
void launch(const LaunchArgs& l, ThreadBody body, const void* args, const PointerArg* ptrs, int n_ptrs);
// When `stream` is capturing, keeps run (the launch, on the stream a graph is later launched into) as a node of
// its graph and returns true; otherwise returns false and the caller launches now.
bool capture_launch(cudaStream_t stream, const void* kernel, const char* signature,
                    std::function<void(cudaStream_t)> run);

template <typename F>
struct KernelSignature;
template <typename... P>
struct KernelSignature<void (*)(P...)> {
  using Args = std::tuple<std::decay_t<P>...>;
};

template <typename T>
void collect_pointer(int index, const T& v, PointerArg* out, int& n) {
  if constexpr (std::is_pointer_v<T>)
    if (v) out[n++] = PointerArg{index, (const void*)v};
}
template <typename Tuple, size_t... I>
int collect_pointers(const Tuple& t, PointerArg* out, std::index_sequence<I...>) {
  int n = 0;
  (collect_pointer((int)I, std::get<I>(t), out, n), ...);
  return n;
}

// K<<<grid, block, smem, stream>>>(args...): the arguments are converted to the kernel's parameter types
// (as a launch does) and each thread gets its own copy.
template <auto K, typename... A>
void launch_kernel(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... a) {
  using Args = typename KernelSignature<decltype(K)>::Args;
  const ThreadBody body = [](const void* p) {
    Args mine = *static_cast<const Args*>(p);
    std::apply(K, mine);
  };
  const char* signature = __PRETTY_FUNCTION__;
  auto run = [grid, block, smem, body, signature](cudaStream_t s, const Args& args) {
    PointerArg ptrs[std::tuple_size_v<Args> + 1];
    const int n = collect_pointers(args, ptrs, std::make_index_sequence<std::tuple_size_v<Args>>{});
    launch(LaunchArgs{grid, block, smem, s, (const void*)K, signature}, body, &args, ptrs, n);
  };
  if (stream) {  // a capture keeps its own copy of the arguments, as a graph's kernel node does
    auto held = std::make_shared<const Args>(std::forward<A>(a)...);
    if (capture_launch(stream, (const void*)K, signature, [run, held](cudaStream_t s) { run(s, *held); })) return;
    run(stream, *held);
    return;
  }
  run(stream, Args(std::forward<A>(a)...));
}

// Shuffles: each lane names its source lane; a source outside the meeting is an error.
struct ShuffleLane {
  uint64_t value, result;
  int src;
};
void shuffle_op(void* const* lane_ctx, uint32_t lanes);
template <typename T>
T shuffle(uint32_t mask, T v, int src, const char* what) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
  ShuffleLane l{0, 0, src};
  std::memcpy(&l.value, &v, sizeof(T));
  warp_collective(mask, shuffle_op, &l, what);
  T r;
  std::memcpy(&r, &l.result, sizeof(T));
  return r;
}
struct VoteLane {
  int pred;
  uint32_t ballot;
};
void vote_op(void* const* lane_ctx, uint32_t lanes);
inline uint32_t ballot(uint32_t mask, int pred, const char* what) {
  VoteLane l{pred, 0};
  warp_collective(mask, vote_op, &l, what);
  return l.ballot;
}
void no_op(void* const*, uint32_t);

template <typename T, typename F>
T atomic_update(T* p, F f) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, f(old), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T, typename F>
T atomic_update_float(T* p, F f) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits* b = reinterpret_cast<Bits*>(p);
  Bits old = __atomic_load_n(b, __ATOMIC_RELAXED), next;
  T o;
  do {
    std::memcpy(&o, &old, sizeof(T));
    const T n = f(o);
    std::memcpy(&next, &n, sizeof(T));
  } while (!__atomic_compare_exchange_n(b, &old, next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return o;
}

}  // namespace ringtune_emu

inline void __syncthreads() { ringtune_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ringtune_emu::warp_collective(mask, ringtune_emu::no_op, nullptr, "__syncwarp");
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned __activemask() { return ringtune_emu::active_lanes(); }

template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = (int)ringtune_emu::lane_id(), base = lane & ~(width - 1);
  return ringtune_emu::shuffle(mask, v, base + (src_lane & (width - 1)), "__shfl_sync");
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = (int)ringtune_emu::lane_id(), end = (lane & ~(width - 1)) + width;
  const int src = lane ^ lane_mask;
  return ringtune_emu::shuffle(mask, v, src >= end ? lane : src, "__shfl_xor_sync");
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = (int)ringtune_emu::lane_id(), base = lane & ~(width - 1), src = lane - (int)delta;
  return ringtune_emu::shuffle(mask, v, src < base ? lane : src, "__shfl_up_sync");
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = (int)ringtune_emu::lane_id(), end = (lane & ~(width - 1)) + width, src = lane + (int)delta;
  return ringtune_emu::shuffle(mask, v, src >= end ? lane : src, "__shfl_down_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ringtune_emu::ballot(mask, pred, "__ballot_sync"); }
inline int __any_sync(unsigned mask, int pred) { return ringtune_emu::ballot(mask, pred, "__any_sync") != 0; }
inline int __all_sync(unsigned mask, int pred) {
  return ringtune_emu::ballot(mask, pred, "__all_sync") == (mask & ringtune_emu::active_lanes());
}

// Atomics: real atomic read-modify-writes (blocks may run on several host threads).
inline float atomicAdd(float* p, float v) {
  return ringtune_emu::atomic_update_float(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double* p, double v) {
  return ringtune_emu::atomic_update_float(p, [v](double o) { return o + v; });
}
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
inline int atomicMax(int* p, int v) {
  return ringtune_emu::atomic_update(p, [v](int o) { return o > v ? o : v; });
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  return ringtune_emu::atomic_update(p, [v](unsigned o) { return o > v ? o : v; });
}
inline int atomicMin(int* p, int v) {
  return ringtune_emu::atomic_update(p, [v](int o) { return o < v ? o : v; });
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
  return ringtune_emu::atomic_update(p, [v](unsigned o) { return o < v ? o : v; });
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline float atomicExch(float* p, float v) {
  return ringtune_emu::atomic_update_float(p, [v](float) { return v; });
}
template <typename T>
T ringtune_emu_cas(T* p, T compare, T v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline int atomicCAS(int* p, int compare, int v) { return ringtune_emu_cas(p, compare, v); }
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) { return ringtune_emu_cas(p, compare, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
  return ringtune_emu_cas(p, compare, v);
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// Math intrinsics (host libm; results may differ from the GPU's in the last bits, within the op tolerances).
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __float_as_int(float x) {
  int i;
  std::memcpy(&i, &x, 4);
  return i;
}
inline float __int_as_float(int i) {
  float x;
  std::memcpy(&x, &i, 4);
  return x;
}
inline unsigned __float_as_uint(float x) { return (unsigned)__float_as_int(x); }
inline float __uint_as_float(unsigned u) { return __int_as_float((int)u); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
