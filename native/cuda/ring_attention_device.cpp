#include "ring_attention_device.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include "add.cuh"
#include "bias.cuh"
#include "device_scope.h"
#include "ring_block.cuh"
#include "ring_exchange.h"
#include "ring_flash.cuh"
#include "ring_link.h"

namespace rt::cuda {

using ring::Exchange;
using ring::Piece;

namespace {

RingBlockShape block_shape(const RingShape& s, const SequenceParallel& sp, int src) {
  return {s.rows, s.chunk, s.H, s.KVH, s.D, sp.rank, src, sp.size};
}

template <typename P>
void free_device(P*& p) {
  if (p) cudaFree(p);
  p = nullptr;
}
template <typename P>
void free_pinned(P*& p) {
  if (p) cudaFreeHost(p);
  p = nullptr;
}

}  // namespace

DeviceRingAttention::DeviceRingAttention(int device, cudaStream_t stream, bool tensor_cores)
    : device_(device), stream_(stream), tensor_cores_(tensor_cores) {}

DeviceRingAttention::~DeviceRingAttention() {
  cudaSetDevice(device_);
  release();
}

void DeviceRingAttention::release() {
  free_device(block_), free_device(block_next_), free_device(acc_send_), free_device(seg_), free_device(acc_),
      free_device(acc_in_), free_device(delta_);
  free_pinned(cur_), free_pinned(next_), free_pinned(acc_send_host_), free_pinned(acc_in_host_), free_pinned(seg_host_);
}

// Sizes the buffers once per shape (no allocation afterwards) and uploads the segment ids when they changed
// (once per batch: every layer, forward and backward, sees the same ones).
void DeviceRingAttention::prepare(const int32_t* seg, const RingShape& s, const SequenceParallel& sp) {
  if (sp.size < 2 || (!sp.link && !sp.device_link))
    fail("ring attention", "needs a group of at least 2 ranks with a link");
  if (sp.rank < 0 || sp.rank >= sp.size) fail("ring attention", "rank ", sp.rank, " outside group of ", sp.size);
  const size_t tokens = (size_t)s.tokens(), kv = tokens * s.KVH * s.D;
  const size_t bytes = 2 * kv * sizeof(float) + tokens * sizeof(int32_t);
  bool fresh = false;
  if (bytes != block_bytes_ || tokens != tokens_ || tokens * s.H != delta_n_) {
    release();
    CUDA_CHECK(cudaMalloc(&block_, bytes));
    CUDA_CHECK(cudaMalloc(&block_next_, bytes));
    CUDA_CHECK(cudaMalloc(&acc_send_, 2 * kv * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&seg_, tokens * sizeof(int32_t) + 4));
    CUDA_CHECK(cudaMalloc(&acc_, 2 * kv * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&acc_in_, 2 * kv * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&delta_, tokens * s.H * sizeof(float) + 4));
    CUDA_CHECK(cudaMallocHost(&cur_, bytes));
    CUDA_CHECK(cudaMallocHost(&next_, bytes));
    CUDA_CHECK(cudaMallocHost(&acc_send_host_, 2 * kv * sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&acc_in_host_, 2 * kv * sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&seg_host_, tokens * sizeof(int32_t) + 4));
    block_bytes_ = bytes, tokens_ = tokens, kv_ = kv, delta_n_ = tokens * s.H;
    fresh = true;
  }
  if (fresh || std::memcmp(seg_host_, seg, tokens * sizeof(int32_t)) != 0) {
    // The pinned copy is read by the device when the stream gets there: wait for any earlier reader first.
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(seg_host_, seg, tokens * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(seg_, seg_host_, tokens * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  }
}

RingFlashBlocks* DeviceRingAttention::tensor_core_blocks(int D) {
  if (!tensor_cores_ || !RingFlashBlocks::supported(D)) return nullptr;
  if (!flash_blocks_) flash_blocks_ = std::make_unique<RingFlashBlocks>(stream_);
  return flash_blocks_.get();
}

void DeviceRingAttention::begin_forward(const float* q, const RingShape& s, const SequenceParallel& sp) {
  flash_ = tensor_core_blocks(s.D);
  if (flash_) flash_->begin_forward(q, block_shape(s, sp, sp.rank));
}

void DeviceRingAttention::begin_backward(const float* dout, const float* q, const float* out, const float* lse,
                                         const RingShape& s, const SequenceParallel& sp) {
  flash_ = tensor_core_blocks(s.D);
  if (flash_) flash_->begin_backward(dout, q, out, lse, block_shape(s, sp, sp.rank));
  else ring_block_delta(delta_, dout, out, block_shape(s, sp, sp.rank), stream_);
}

void DeviceRingAttention::block_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                        const int32_t* kseg, const RingBlockShape& b) {
  if (flash_) flash_->forward(out, lse, seg_, k, v, kseg, b);
  else ring_block_forward(out, lse, q, seg_, k, v, kseg, b, stream_);
}

void DeviceRingAttention::block_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                         const float* lse, const float* k, const float* v, const int32_t* kseg,
                                         const RingBlockShape& b) {
  if (flash_) flash_->backward(dq, dk, dv, seg_, k, v, kseg, b);
  else ring_block_backward(dq, dk, dv, dout, q, seg_, lse, delta_, k, v, kseg, b, stream_);
}

void DeviceRingAttention::own_block_to_host(const float* k, const float* v, const int32_t* seg) {
  const size_t kvb = kv_ * sizeof(float);
  CUDA_CHECK(cudaMemcpyAsync(cur_, k, kvb, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaMemcpyAsync(cur_ + kvb, v, kvb, cudaMemcpyDeviceToHost, stream_));
  std::memcpy(cur_ + 2 * kvb, seg, tokens_ * sizeof(int32_t));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void DeviceRingAttention::received_block_to_device() {
  std::swap(cur_, next_);  // what came in is what goes out next
  CUDA_CHECK(cudaMemcpyAsync(block_, cur_, block_bytes_, cudaMemcpyHostToDevice, stream_));
}

void DeviceRingAttention::forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                  const int32_t* seg, const RingShape& s, const SequenceParallel& sp) {
  use_device(device_);
  prepare(seg, s, sp);
  begin_forward(q, s, sp);
  if (sp.device_link) return forward_direct(out, lse, q, k, v, s, sp);
  const size_t kvb = kv_ * sizeof(float);
  fill(out, tokens_ * s.H * s.D, 0.f, stream_);
  fill(lse, tokens_ * s.H, -INFINITY, stream_);
  own_block_to_host(k, v, seg);
  for (int step = 0; step < sp.size; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    const bool more = step + 1 < sp.size;
    // The pinned buffer the link receives into was last read by the previous step's upload.
    if (step > 0) CUDA_CHECK(cudaStreamSynchronize(stream_));
    Exchange x(sp, more ? std::vector<Piece>{{cur_, block_bytes_}} : std::vector<Piece>{},
               more ? std::vector<Piece>{{next_, block_bytes_}} : std::vector<Piece>{});
    const float* bk = step == 0 ? k : reinterpret_cast<const float*>(block_);
    const float* bv = step == 0 ? v : reinterpret_cast<const float*>(block_ + kvb);
    const int32_t* bseg = step == 0 ? seg_ : reinterpret_cast<const int32_t*>(block_ + 2 * kvb);
    block_forward(out, lse, q, bk, bv, bseg, block_shape(s, sp, src));
    x.wait();
    if (more) received_block_to_device();
  }
}

void DeviceRingAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                   const float* v, const float* out, const float* lse, const int32_t* seg,
                                   const RingShape& s, const SequenceParallel& sp) {
  use_device(device_);
  prepare(seg, s, sp);
  begin_backward(dout, q, out, lse, s, sp);
  if (sp.device_link) return backward_direct(dq, dk, dv, dout, q, k, v, lse, s, sp);
  const size_t kvb = kv_ * sizeof(float), acc_bytes = 2 * kvb;
  fill(dq, tokens_ * s.H * s.D, 0.f, stream_);
  fill(dk, kv_, 0.f, stream_);
  fill(dv, kv_, 0.f, stream_);
  own_block_to_host(k, v, seg);
  const int last = sp.size - 1;
  // Step 0: this rank's own block, straight into dk/dv, while it leaves for the next rank.
  {
    Exchange x(sp, {{cur_, block_bytes_}}, {{next_, block_bytes_}});
    block_backward(dq, dk, dv, dout, q, lse, k, v, seg_, block_shape(s, sp, sp.rank));
    x.wait();
    received_block_to_device();
  }
  // Step t: the block of rank rank - t; its dK/dV accumulator comes from the previous rank (unless this is its
  // first visit), gains this rank's share and goes on, with the block itself unless this is its last visit.
  for (int step = 1; step <= last; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    std::vector<Piece> sends, recvs;
    if (step > 1) {
      sends.push_back({acc_send_host_, acc_bytes});
      recvs.push_back({acc_in_host_, acc_bytes});
    }
    if (step < last) {
      sends.push_back({cur_, block_bytes_});
      recvs.push_back({next_, block_bytes_});
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the accumulator sent is on the host; the buffers are free
    Exchange x(sp, sends, recvs);
    fill(acc_, 2 * kv_, 0.f, stream_);
    const float* bk = reinterpret_cast<const float*>(block_);
    const float* bv = reinterpret_cast<const float*>(block_ + kvb);
    const int32_t* bseg = reinterpret_cast<const int32_t*>(block_ + 2 * kvb);
    block_backward(dq, acc_, acc_ + kv_, dout, q, lse, bk, bv, bseg, block_shape(s, sp, src));
    x.wait();
    if (step > 1) {
      CUDA_CHECK(cudaMemcpyAsync(acc_in_, acc_in_host_, acc_bytes, cudaMemcpyHostToDevice, stream_));
      add_inplace(acc_, acc_in_, 2 * kv_, stream_);
    }
    CUDA_CHECK(cudaMemcpyAsync(acc_send_host_, acc_, acc_bytes, cudaMemcpyDeviceToHost, stream_));
    if (step < last) received_block_to_device();
  }
  // Last: the finished accumulator goes to the next rank, whose block it is, and ours comes back.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  Exchange x(sp, {{acc_send_host_, acc_bytes}}, {{acc_in_host_, acc_bytes}});
  x.wait();
  CUDA_CHECK(cudaMemcpyAsync(acc_in_, acc_in_host_, acc_bytes, cudaMemcpyHostToDevice, stream_));
  add_inplace(dk, acc_in_, kv_, stream_);
  add_inplace(dv, acc_in_ + kv_, kv_, stream_);
}

// ---- over a device link: the same steps and transfers, between device buffers -------------------------------

void DeviceRingAttention::own_block_on_device(const float* k, const float* v) {
  const size_t kvb = kv_ * sizeof(float);
  CUDA_CHECK(cudaMemcpyAsync(block_, k, kvb, cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(block_ + kvb, v, kvb, cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(block_ + 2 * kvb, seg_, tokens_ * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_));
}

void DeviceRingAttention::forward_direct(float* out, float* lse, const float* q, const float* k, const float* v,
                                         const RingShape& s, const SequenceParallel& sp) {
  using P = DeviceRingLink::Piece;
  const size_t kvb = kv_ * sizeof(float);
  fill(out, tokens_ * s.H * s.D, 0.f, stream_);
  fill(lse, tokens_ * s.H, -INFINITY, stream_);
  own_block_on_device(k, v);
  for (int step = 0; step < sp.size; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    const bool more = step + 1 < sp.size;
    if (more) sp.device_link->start({P{block_, block_bytes_}}, {P{block_next_, block_bytes_}}, stream_);
    block_forward(out, lse, q, reinterpret_cast<const float*>(block_), reinterpret_cast<const float*>(block_ + kvb),
                  reinterpret_cast<const int32_t*>(block_ + 2 * kvb), block_shape(s, sp, src));
    if (!more) break;
    sp.device_link->wait(stream_);
    std::swap(block_, block_next_);
  }
}

void DeviceRingAttention::backward_direct(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                          const float* k, const float* v, const float* lse, const RingShape& s,
                                          const SequenceParallel& sp) {
  using P = DeviceRingLink::Piece;
  const size_t kvb = kv_ * sizeof(float), acc_bytes = 2 * kvb;
  fill(dq, tokens_ * s.H * s.D, 0.f, stream_);
  fill(dk, kv_, 0.f, stream_);
  fill(dv, kv_, 0.f, stream_);
  own_block_on_device(k, v);
  const int last = sp.size - 1;
  sp.device_link->start({P{block_, block_bytes_}}, {P{block_next_, block_bytes_}}, stream_);
  block_backward(dq, dk, dv, dout, q, lse, k, v, seg_, block_shape(s, sp, sp.rank));
  sp.device_link->wait(stream_);
  std::swap(block_, block_next_);
  for (int step = 1; step <= last; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    std::vector<P> sends, recvs;
    if (step > 1) {
      sends.push_back({acc_send_, acc_bytes});
      recvs.push_back({acc_in_, acc_bytes});
    }
    if (step < last) {
      sends.push_back({block_, block_bytes_});
      recvs.push_back({block_next_, block_bytes_});
    }
    if (!sends.empty()) sp.device_link->start(sends, recvs, stream_);
    fill(acc_, 2 * kv_, 0.f, stream_);
    block_backward(dq, acc_, acc_ + kv_, dout, q, lse, reinterpret_cast<const float*>(block_),
                   reinterpret_cast<const float*>(block_ + kvb), reinterpret_cast<const int32_t*>(block_ + 2 * kvb),
                   block_shape(s, sp, src));
    if (!sends.empty()) sp.device_link->wait(stream_);
    if (step > 1) add_inplace(acc_, acc_in_, 2 * kv_, stream_);
    std::swap(acc_, acc_send_);  // the accumulator goes on; the next step starts a fresh one
    if (step < last) std::swap(block_, block_next_);
  }
  sp.device_link->start({P{acc_send_, acc_bytes}}, {P{acc_in_, acc_bytes}}, stream_);
  sp.device_link->wait(stream_);
  add_inplace(dk, acc_in_, kv_, stream_);
  add_inplace(dv, acc_in_ + kv_, kv_, stream_);
}

}  // namespace rt::cuda
