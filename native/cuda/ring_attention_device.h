#pragma once
// Ring attention (ring_attention.h) with the blocks in device memory: this rank's q, k, v, the travelling
// key/value block, the outputs and the dK/dV accumulators stay on the device, and each block's share is computed
// there (ring_block.cuh). Only what crosses the ring goes through pinned host buffers: the link is the host's
// (TCP), and the bytes and their order are the host ring attention's, so a ring may mix CPU and device ranks.
// With a device link (sp.device_link: NCCL send/recv) the blocks go from device buffer to device buffer.
// tensor_cores (the backend's precision bf16): each block on the tensor-core kernels (ring_flash.cuh) at head
// dims 64 and 128; otherwise, and in fp32, the SIMT kernels of ring_block.cuh.
#include <cstdint>
#include <memory>
#include "common.cuh"
#include "ring_attention.h"
#include "ring_block.cuh"

namespace rt::cuda {

class RingFlashBlocks;

class DeviceRingAttention {
 public:
  DeviceRingAttention(int device, cudaStream_t stream, bool tensor_cores = false);
  ~DeviceRingAttention();
  DeviceRingAttention(const DeviceRingAttention&) = delete;
  DeviceRingAttention& operator=(const DeviceRingAttention&) = delete;

  // As ring_attention_forward/backward, with every tensor in device memory except seg (the batch's local
  // segment ids, on the host), and lse in fp32.
  void forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* seg,
               const RingShape& s, const SequenceParallel& sp);
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, const int32_t* seg, const RingShape& s, const SequenceParallel& sp);

 private:
  void prepare(const int32_t* seg, const RingShape& s, const SequenceParallel& sp);
  // The same over sp.device_link, no host buffer involved.
  void forward_direct(float* out, float* lse, const float* q, const float* k, const float* v, const RingShape& s,
                      const SequenceParallel& sp);
  void backward_direct(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                       const float* v, const float* lse, const RingShape& s, const SequenceParallel& sp);
  // This rank's block (k, v and the uploaded segment ids) into the device block buffer.
  void own_block_on_device(const float* k, const float* v);
  void release();
  // The tensor-core blocks when this ring uses them and they take head size D, else null (the SIMT kernels).
  RingFlashBlocks* tensor_core_blocks(int D);
  // Picks the blocks' kernels for this shape (flash_ when tensor cores serve it) and starts a pass with them.
  void begin_forward(const float* q, const RingShape& s, const SequenceParallel& sp);
  void begin_backward(const float* dout, const float* q, const float* out, const float* lse, const RingShape& s,
                      const SequenceParallel& sp);
  // One block's share on the chosen kernels: keys k, v, kseg of rank src.
  void block_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* kseg,
                     const RingBlockShape& b);
  void block_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* lse,
                      const float* k, const float* v, const int32_t* kseg, const RingBlockShape& b);
  // This rank's block (k, v, seg) into the pinned send buffer, waited for: the link sends from there.
  void own_block_to_host(const float* k, const float* v, const int32_t* seg);
  // The block just received into the pinned buffer, up to the device copy the next step computes with.
  void received_block_to_device();

  int device_;
  cudaStream_t stream_;
  bool tensor_cores_;
  std::unique_ptr<RingFlashBlocks> flash_blocks_;  // made when tensor cores are first used
  RingFlashBlocks* flash_ = nullptr;               // this pass's tensor-core blocks, or null: the SIMT kernels
  size_t kv_ = 0, tokens_ = 0, block_bytes_ = 0, delta_n_ = 0;
  // device: the travelling block [K | V | segment ids], this rank's segment ids, dK|dV accumulators, delta
  char* block_ = nullptr;
  char* block_next_ = nullptr;  // the block being received over a device link
  float* acc_send_ = nullptr;   // the accumulator sent over a device link
  int32_t* seg_ = nullptr;
  float *acc_ = nullptr, *acc_in_ = nullptr, *delta_ = nullptr;
  // pinned host: the block being sent and the one being received; the accumulators sent and received
  char *cur_ = nullptr, *next_ = nullptr;
  float *acc_send_host_ = nullptr, *acc_in_host_ = nullptr;
  int32_t* seg_host_ = nullptr;  // the segment ids last uploaded (pinned, so the upload does not wait)
};

}  // namespace rt::cuda
