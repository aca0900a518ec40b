#pragma once
// Token batches the native tests build on the host: packed rows of segments, as the data pipeline packs them.
#include <cstdint>
#include <vector>
#include "model.h"
#include "ops/cross_entropy.h"
#include "random.h"

namespace rt::test {

struct HostBatch {
  int rows, T;
  std::vector<int32_t> ids, labels, pos, seg;
  Batch view() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

// Rows of segments of the given lengths, padded to T. Each segment's positions restart and its first token
// has no target; the other targets are random, and a further `ignored` share of them is dropped (drawn per
// token), so masked prompt tokens inside a segment are covered too. Padding is its own segment (0), without
// targets. `seed` draws tokens, targets and which are ignored.
inline HostBatch packed_batch(const std::vector<std::vector<int>>& rows_segments, int T, int vocab, uint64_t seed,
                              double ignored = 0) {
  HostBatch b{(int)rows_segments.size(), T, {}, {}, {}, {}};
  size_t i = 0;
  for (const auto& segs : rows_segments) {
    int t = 0, sid = 1;
    for (int len : segs) {
      for (int p = 0; p < len; p++, t++, i++) {
        b.ids.push_back((int32_t)(uniform01(seed, 1, i) * vocab));
        const bool no_target = p == 0 || (ignored > 0 && uniform01(seed, 3, i) < ignored);
        b.labels.push_back(no_target ? kIgnoreIndex : (int32_t)(uniform01(seed, 2, i) * vocab));
        b.pos.push_back(p);
        b.seg.push_back(sid);
      }
      sid++;
    }
    for (int p = 0; t < T; t++, p++) {
      b.ids.push_back(0);
      b.labels.push_back(kIgnoreIndex);
      b.pos.push_back(p);
      b.seg.push_back(0);
    }
  }
  return b;
}

}  // namespace rt::test
