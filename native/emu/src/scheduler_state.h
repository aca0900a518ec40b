#pragma once
// The state of the block that is running on this host thread, shared by the scheduler and the warp meetings.
#include <cstdint>
#include <string>
#include <vector>
#include "emu_internal.h"
#include "fiber.h"

namespace ringtune_emu {

enum class ThreadState : uint8_t { Runnable, AtBarrier, InWarp, Exited };

// An asynchronous copy into shared memory (cuda_pipeline.h) that has not landed yet: it lands when its thread
// waits for its group.
struct AsyncCopy {
  void* dst;
  const void* src;
  size_t bytes, zfill;
  uint64_t group;
};

struct Thread {
  FiberContext ctx;
  uint3 tid;
  ThreadState state;
  std::vector<AsyncCopy> async_copies;  // in issue order
  uint64_t async_groups = 0;            // groups committed; later copies belong to group async_groups
};

// Lanes meeting in one warp primitive; several may be open at once in a warp when their masks are disjoint
// (groups of lanes reducing separately).
struct Meeting {
  uint32_t mask = 0;
  uint32_t arrived = 0;
  CollectiveOp op = nullptr;
  const char* what = "";
  void* ctx[32] = {};
};

struct Warp {
  uint32_t existing = 0;  // lanes the block has (the last warp may be partial)
  std::vector<Meeting> open;
};

// The block's dynamic shared memory starts at this alignment (its vector holds that much more).
constexpr uintptr_t kDynamicSharedAlign = 128;

struct BlockRun {
  ThreadBody body;
  const void* args;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<unsigned char> dynamic_shared;
  FiberContext scheduler;
  int current = 0, alive = 0, at_barrier = 0;
  bool aborted = false;
  std::string reason;
};

extern thread_local BlockRun* current_run;
BlockRun& run_or_die(const char* what);
// Switches from the current thread's fiber back to the block scheduler.
void yield_to_scheduler(BlockRun& r);

}  // namespace ringtune_emu
