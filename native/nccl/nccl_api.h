#pragma once
// The part of NCCL's C API (nccl.h, NCCL 2.14 and later) that ringtune calls, declared by hand so that the
// build needs no NCCL headers: libnccl.so.2 is found at run time with dlopen (nccl_library.h). Both the
// loader and the project's stand-in library (native/nccl_standin) include this one declaration, so the two
// cannot drift apart. Only values that nccl.h documents as stable are used; ncclConfig_t is versioned and
// append-only, so this prefix (the 2.14 layout, with its size and version filled in) is what every later
// NCCL reads.
#include <climits>
#include <cstddef>
#include <cstdint>

struct CUstream_st;  // cudaStream_t, as both the CUDA runtime and the emulator declare it
struct ncclComm;     // the library's communicator (opaque here; the stand-in defines it)

namespace rt::nccl {

using Comm = ::ncclComm*;     // ncclComm_t
using Stream = CUstream_st*;  // cudaStream_t

constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct UniqueId {                       // ncclUniqueId
  char internal[kUniqueIdBytes];
};

enum Result : int {  // ncclResult_t
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
  kInProgress = 7,
};

constexpr int kFloat32 = 7;  // ncclFloat32 (ncclDataType_t)
constexpr int kSum = 0;      // ncclSum (ncclRedOp_t)

constexpr unsigned kConfigMagic = 0xcafebeef;  // NCCL_API_MAGIC
constexpr unsigned kConfigVersion = 21400;     // NCCL_VERSION(2, 14, 0): the layout below
constexpr int kConfigUndefInt = INT_MIN;       // NCCL_CONFIG_UNDEF_INT

struct Config {  // ncclConfig_t, the 2.14 prefix
  size_t size = sizeof(Config);
  unsigned magic = kConfigMagic;
  unsigned version = kConfigVersion;
  int blocking = kConfigUndefInt;
  int cga_cluster_size = kConfigUndefInt;
  int min_ctas = kConfigUndefInt;
  int max_ctas = kConfigUndefInt;
  const char* net_name = nullptr;
};

// Function pointer types, signatures as in nccl.h.
using GetVersionFn = Result (*)(int* version);
using GetUniqueIdFn = Result (*)(UniqueId* id);
using CommInitRankConfigFn = Result (*)(Comm* comm, int nranks, UniqueId id, int rank, Config* config);
using CommGetAsyncErrorFn = Result (*)(Comm comm, Result* async_error);
using CommAbortFn = Result (*)(Comm comm);
using CommDestroyFn = Result (*)(Comm comm);
using GetErrorStringFn = const char* (*)(Result result);
using GetLastErrorFn = const char* (*)(Comm comm);
using AllReduceFn = Result (*)(const void* send, void* recv, size_t count, int dtype, int op, Comm comm, Stream s);
using ReduceScatterFn = Result (*)(const void* send, void* recv, size_t recv_count, int dtype, int op, Comm comm,
                                   Stream s);
using AllGatherFn = Result (*)(const void* send, void* recv, size_t send_count, int dtype, Comm comm, Stream s);
using ReduceFn = Result (*)(const void* send, void* recv, size_t count, int dtype, int op, int root, Comm comm,
                            Stream s);
using BroadcastFn = Result (*)(const void* send, void* recv, size_t count, int dtype, int root, Comm comm, Stream s);
using SendFn = Result (*)(const void* send, size_t count, int dtype, int peer, Comm comm, Stream s);
using RecvFn = Result (*)(void* recv, size_t count, int dtype, int peer, Comm comm, Stream s);
using GroupFn = Result (*)();

// Not NCCL's: an entry point only the project's stand-in library (native/nccl_standin) has. Real NCCL moves
// device memory with its own kernels; the stand-in runs on the host, so it is handed the CUDA runtime's copy
// (the emulator's, which checks every device range it touches) to read and write device buffers with.
// `copy` returns 0 on success.
using DeviceCopyFn = int (*)(void* dst, const void* src, size_t bytes);
using StandinAttachFn = void (*)(DeviceCopyFn copy);
constexpr const char* kStandinAttachSymbol = "ringtuneNcclStandinAttach";

}  // namespace rt::nccl
