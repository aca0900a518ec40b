#pragma once
// Flat host buffers for parameters, gradients, optimizer state and activations. A std::vector
// value-initialises its elements on one thread; for a model of billions of parameters that single-threaded
// pass dominates the time to build it. These vectors leave elements uninitialised on allocation. Large ones
// are mapped straight from the kernel (fresh_pages.h): their pages read as zero and are only backed by
// memory when a thread first writes them, so zeros cost nothing until they are used, and the first touch
// happens in whichever parallel loop writes the buffer first (also placing each page near its thread).
#include <cstddef>
#include <memory>
#include <new>
#include <vector>
#include "fresh_pages.h"

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
  T* allocate(size_t n) {
    if (maps_fresh_pages(n * sizeof(T))) return static_cast<T*>(map_fresh_pages(n * sizeof(T)));
    return std::allocator<T>::allocate(n);
  }
  // std::vector hands back the capacity it allocated, so the size picks the same path as allocate().
  void deallocate(T* p, size_t n) {
    if (maps_fresh_pages(n * sizeof(T))) return unmap_fresh_pages(p, n * sizeof(T));
    std::allocator<T>::deallocate(p, n);
  }
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

// A flat array in some backend's memory (host pages, or a device's), released by the function its backend
// gave. The model's flat buffers are these, so a backend places them where its ops read them; only host
// buffers may be read or written by the caller directly (Backend::host_memory()).
template <typename T>
class Storage {
 public:
  using Release = void (*)(T* p, size_t n);
  Storage(T* p, size_t n, Release release) : p_(p), n_(n), release_(release) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (release_) release_(p_, n_);
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_;
  size_t n_;
  Release release_;
};

template <typename T>
using Buffer = std::shared_ptr<Storage<T>>;

template <typename T>
void parallel_fill(T* p, size_t n, T value) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) p[i] = value;
}

// n host elements, uninitialised (to be written whole by the caller).
template <typename T>
Buffer<T> host_buffer(size_t n) {
  T* p = UninitAllocator<T>().allocate(n);
  return std::make_shared<Storage<T>>(p, n, [](T* q, size_t m) { UninitAllocator<T>().deallocate(q, m); });
}

// n zeros. A large buffer is fresh pages, zero already: nothing is written now, and nothing backs it until
// it is used (a model that never trains never pays for its gradients' pages). A small one is written by
// every thread.
template <typename T>
Buffer<T> parallel_zeros(size_t n) {
  Buffer<T> b = host_buffer<T>(n);
  if (!maps_fresh_pages(n * sizeof(T))) parallel_fill(b->data(), n, T(0));
  return b;
}

}  // namespace rt
