#pragma once
// A request to stop a long native call early, set from another thread (the Node main thread, while the
// call runs on a worker thread). The model reads it between layers and between head tiles: a step that is
// cancelled stops within one layer's compute and throws Cancelled, leaving gradients partial (the caller
// discards the step).
#include <atomic>
#include "error.h"

namespace rt {

struct CancelToken {
  std::atomic<bool> requested{false};
  void cancel() { requested.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return requested.load(std::memory_order_relaxed); }
};

// Thrown by a cancelled call; its message is what the caller sees.
struct Cancelled : Error {
  Cancelled() : Error("cancelled") {}
};

inline void throw_if_cancelled(const CancelToken* token) {
  if (token && token->cancelled()) throw Cancelled();
}

}  // namespace rt
