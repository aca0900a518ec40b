#include "grad_staging.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#include "device_scope.h"

namespace rt::cuda {
namespace {

class CudaGradStaging final : public GradStaging<float> {
 public:
  CudaGradStaging(int device, cudaStream_t compute) : device_(device), compute_(compute) {
    use_device(device_);
    // Non-blocking: the copy stream waits only for the event that marks its bucket final on the compute stream,
    // never for the legacy default stream's work.
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    waiter_ = std::thread([this] { deliver(); });
  }
  ~CudaGradStaging() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    queued_.notify_all();
    waiter_.join();
    cudaSetDevice(device_);
    for (const Bucket& b : buckets_) {
      cudaEventDestroy(b.final);
      cudaEventDestroy(b.landed);
    }
    cudaStreamDestroy(copy_);
  }

  void send(float* host, const float* device, size_t n, std::function<void()> landed) override {
    use_device(device_);
    // A bucket's pair of events is reused every step (drain() rewinds): only the first step creates them.
    if (next_ == buckets_.size()) buckets_.push_back(make_bucket());
    const Bucket& b = buckets_[next_++];
    CUDA_CHECK(cudaEventRecord(b.final, compute_));
    CUDA_CHECK(cudaStreamWaitEvent(copy_, b.final, 0));
    if (n) CUDA_CHECK(cudaMemcpyAsync(host, device, sizeof(float) * n, cudaMemcpyDeviceToHost, copy_));
    CUDA_CHECK(cudaEventRecord(b.landed, copy_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back({b.landed, std::move(landed)});
    }
    queued_.notify_all();
  }

  void drain() override {
    std::unique_lock<std::mutex> lock(mu_);
    delivered_.wait(lock, [&] { return pending_.empty(); });
    next_ = 0;
    if (failure_) {
      const std::exception_ptr e = failure_;
      failure_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  void receive(float* device, const float* host, size_t n) override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpyAsync(device, host, sizeof(float) * n, cudaMemcpyHostToDevice, compute_));
  }

 private:
  struct Bucket {
    cudaEvent_t final, landed;
  };
  struct Pending {
    cudaEvent_t landed;
    std::function<void()> fn;
  };
  Bucket make_bucket() {
    Bucket b{};
    CUDA_CHECK(cudaEventCreateWithFlags(&b.final, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&b.landed, cudaEventDisableTiming));
    return b;
  }

  // The staging's thread: hands each bucket over once its copy has landed, in the order of the sends. It polls
  // the event instead of blocking in cudaEventSynchronize, which would count (and on some drivers spin) as a
  // host synchronisation; the step's own thread never waits here.
  void deliver() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      queued_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      if (pending_.empty()) return;
      Pending& p = pending_.front();
      lock.unlock();
      std::exception_ptr error;
      try {
        cudaError_t st;
        while ((st = cudaEventQuery(p.landed)) == cudaErrorNotReady)
          std::this_thread::sleep_for(std::chrono::microseconds(20));
        CUDA_CHECK(st);
        p.fn();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error && !failure_) failure_ = error;
      pending_.pop_front();
      delivered_.notify_all();
    }
  }

  const int device_;
  const cudaStream_t compute_;
  cudaStream_t copy_ = nullptr;
  std::vector<Bucket> buckets_;  // touched by the compute thread only
  size_t next_ = 0;
  std::mutex mu_;
  std::condition_variable queued_, delivered_;
  std::deque<Pending> pending_;  // sent, not yet handed over (the front is being waited for)
  std::exception_ptr failure_;
  bool stop_ = false;
  std::thread waiter_;
};

void free_pinned(float* p, size_t) { cudaFreeHost(p); }

}  // namespace

std::unique_ptr<GradStaging<float>> make_grad_staging(int device, cudaStream_t compute) {
  return std::make_unique<CudaGradStaging>(device, compute);
}

Buffer<float> pinned_host_zeros(size_t n) {
  float* p = nullptr;
  if (n) {
    CUDA_CHECK(cudaMallocHost(&p, sizeof(float) * n));
    std::memset(p, 0, sizeof(float) * n);
  }
  return std::make_shared<Storage<float>>(p, n, n ? &free_pinned : nullptr);
}

}  // namespace rt::cuda
