#pragma once
// Flat host buffers for parameters, gradients and optimizer state. A std::vector value-initialises its
// elements on one thread; for a model of billions of parameters that single-threaded pass dominates the
// time to build it. These vectors leave elements uninitialised on allocation and are zeroed by all
// threads instead (which also places each page near the thread that first touches it).
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace rt {

template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <typename U>
  UninitAllocator(const UninitAllocator<U>&) {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialisation: no write for arithmetic types
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using FlatVector = std::vector<T, UninitAllocator<T>>;

template <typename T>
using Buffer = std::shared_ptr<FlatVector<T>>;

template <typename T>
void parallel_fill(T* p, size_t n, T value) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) p[i] = value;
}

// n zeros, written by every thread.
template <typename T>
Buffer<T> parallel_zeros(size_t n) {
  auto b = std::make_shared<FlatVector<T>>(n);
  parallel_fill(b->data(), n, T(0));
  return b;
}

}  // namespace rt
