#pragma once
// The label of a position that has no target (PyTorch's ignore_index): it adds no loss and no gradient,
// and is not counted among the targets. Declared once for the CPU and CUDA code; the addon exports it, and
// a test holds TypeScript's IGNORE_INDEX to it.
#include <cstdint>

namespace rt {

constexpr int32_t kIgnoreIndex = -100;

}  // namespace rt
