#pragma once
// One flat array in a backend's memory, for structs of many buffers that are sized once and reused
// (activations): allocate() takes zeros from the backend; data() is the backend's pointer.
#include <cstddef>
#include "backend.h"

namespace rt {

template <typename T>
class BackendArray {
 public:
  void allocate(size_t n, const Backend<T>& ops) {
    if (n != size()) buf_ = ops.zeros(n);
  }
  void release() { buf_.reset(); }
  T* data() { return buf_ ? buf_->data() : nullptr; }
  const T* data() const { return buf_ ? buf_->data() : nullptr; }
  size_t size() const { return buf_ ? buf_->size() : 0; }
  bool empty() const { return size() == 0; }

 private:
  Buffer<T> buf_;
};

}  // namespace rt
