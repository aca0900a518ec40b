#pragma once
// libnccl.so.2, found and opened at run time: RINGTUNE_NCCL_LIB when set (and then only it), else the pip
// wheel's copy (site-packages/nvidia/nccl/lib of the active virtual environment, PYTHONPATH, the user's and the
// system's Python), else the system's (the dynamic loader's search path). A node without NCCL is not an
// error here: load() says why, and the ring uses host staging over TCP instead.
#include <string>
#include <vector>
#include "nccl_api.h"

namespace rt::nccl {

struct Library {
  std::string path;  // the file that was opened
  int version = 0;   // NCCL_VERSION_CODE of the library
  GetVersionFn get_version;
  GetUniqueIdFn get_unique_id;
  CommInitRankConfigFn comm_init_rank_config;
  CommGetAsyncErrorFn comm_get_async_error;
  CommAbortFn comm_abort;
  CommDestroyFn comm_destroy;
  GetErrorStringFn get_error_string;
  GetLastErrorFn get_last_error;  // may be null (NCCL before 2.13)
  AllReduceFn all_reduce;
  ReduceScatterFn reduce_scatter;
  AllGatherFn all_gather;
  ReduceFn reduce;
  BroadcastFn broadcast;
  SendFn send;
  RecvFn recv;
  GroupFn group_start;
  GroupFn group_end;
  StandinAttachFn standin_attach;  // the project's stand-in only; null for NCCL itself

  // "ncclAllReduce: remote process exited or there was a network error (last error: ...)"
  std::string describe(const char* call, Result r, Comm comm) const;
};

// The library, opened once per process; null with *why set when none can be opened.
const Library* load_library(std::string* why);

// The files tried, in order, before the system's own search ("libnccl.so.2"): for messages and tests.
std::vector<std::string> candidate_paths();

}  // namespace rt::nccl
