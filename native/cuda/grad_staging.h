#pragma once
// The CUDA backend's gradient staging (backend.h's GradStaging): each bucket leaves the device on a copy stream
// of its own, into pinned host memory, as soon as the compute stream has finished it, so the host's all-reduce
// of the first buckets overlaps the backward of the rest.
#include <memory>
#include "backend.h"
#include "common.cuh"

namespace rt::cuda {

// Copies ordered after the work issued so far on `compute` (a stream of `device`).
std::unique_ptr<GradStaging<float>> make_grad_staging(int device, cudaStream_t compute);

// n zeros in pinned (page-locked) host memory: the only host memory a copy to or from the device does not wait
// for. Freed with the last reference.
Buffer<float> pinned_host_zeros(size_t n);

}  // namespace rt::cuda
