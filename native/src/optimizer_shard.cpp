// ZeRO-1: a rank keeps the AdamW moments of its shard of the trainable parameters only. The shard is a
// list of ranges of the trainable buffer (one piece of each gradient bucket, so that each bucket's
// reduce-scatter ends with this rank holding the summed gradient of its pieces); the moments of the pieces
// are packed one after the other. Only the shard's weights are updated here: the caller all-gathers them.
#include <algorithm>
#include <cmath>
#include "error.h"
#include "model.h"
#include "parallel.h"

namespace rt {

template <typename T>
void Model<T>::set_optimizer_shard(const std::vector<std::pair<size_t, size_t>>& ranges) {
  const size_t n = num_trainable();
  for (size_t i = 0; i < ranges.size(); i++) {
    const auto [off, size] = ranges[i];
    if (off > n || size > n - off)
      fail("set_optimizer_shard", "range ", i, " [", off, ", +", size, ") leaves the trainable buffer of ", n);
  }
  shard_ = ranges;
  if (!grads_) return;  // the moments come with the first training use, sized by optimizer_elements()
  m_ = ops_.zeros(optimizer_elements());
  v_ = ops_.zeros(optimizer_elements());
}

template <typename T>
size_t Model<T>::optimizer_elements() const {
  if (shard_.empty()) return num_trainable();
  size_t n = 0;
  for (const auto& r : shard_) n += r.second;
  return n;
}

template <typename T>
double Model<T>::grad_sum_of_squares() const {
  if (!grads_) return 0;
  if (shard_.empty()) return ops_.sum_of_squares(grads_->data(), grads_->size());
  double total = 0;
  for (const auto& [off, size] : shard_) total += ops_.sum_of_squares(grads_->data() + off, size);
  return total;
}

template <typename T>
void Model<T>::adamw_update_shard(const Backend<T>& ops, const OptimizerBuffers& b, const AdamWStep& s) {
  size_t packed = 0;  // where the current range's moments start
  for (const auto& [off, size] : shard_) {
    // A range may cut through parameters: each piece keeps its parameter's weight-decay rule.
    for (const ParamEntry& p : trainable_entries()) {
      const size_t lo = std::max(off, p.offset), hi = std::min(off + size, p.offset + p.size);
      if (lo >= hi) continue;
      const size_t at = packed + (lo - off);
      ops.adamw_update(b.weights + lo, b.grads + lo, b.m + at, b.v + at, hi - lo, s, p.decay);
    }
    packed += size;
  }
}

#define RT_INSTANTIATE(T)                                                                     \
  template void Model<T>::set_optimizer_shard(const std::vector<std::pair<size_t, size_t>>&); \
  template size_t Model<T>::optimizer_elements() const;                                       \
  template double Model<T>::grad_sum_of_squares() const;                                      \
  template void Model<T>::adamw_update_shard(const Backend<T>&, const OptimizerBuffers&, const AdamWStep&);
RT_INSTANTIATE(float)
RT_INSTANTIATE(double)
#undef RT_INSTANTIATE

}  // namespace rt
