#pragma once
// A model whose flat buffers are a device's (the CUDA backend, or the CUDA emulator's): JavaScript gets host
// copies of them instead of views (paramData, baseDataBf16, loraData, gradData, optimizerData), and the binding
// keeps each copy and its device buffer in step at the edges of the native calls: a copy is uploaded before a
// call that reads its buffer and refreshed after a call that writes it. A buffer JavaScript never asked for is
// never copied. A call that replaces a buffer (LoRA switched on, a merge) drops the copies of the old one.
#include <functional>
#include <memory>
#include "buffer.h"
#include "model.h"

namespace rt_binding {

struct DeviceMirrors {
  rt::Buffer<float> params, grads;   // null until JavaScript asks for them
  rt::Buffer<uint16_t> base16;       // a frozen bf16 base (loaded from files, saved with a merged model)
  rt::Buffer<float> lora;            // the adapters: trained by AdamW, saved as PEFT files
  rt::Buffer<float> adam_m, adam_v;  // the AdamW moments: for checkpoints (written and read back)
  // With the gradients' host copy in pinned memory (a backend that has it), the buckets of a backward reach it
  // on a copy stream as each becomes final, and the sums go back without the host waiting.
  std::shared_ptr<rt::GradStaging<float>> staging;

  static rt::Buffer<float> copy_of(const rt::Backend<float>& ops, const float* device, size_t n) {
    rt::Buffer<float> host = rt::host_buffer<float>(n);
    ops.download(host->data(), device, n);
    return host;
  }
  static rt::Buffer<uint16_t> copy_of_bf16(const rt::Backend<float>& ops, const uint16_t* device, size_t n) {
    rt::Buffer<uint16_t> host = rt::host_buffer<uint16_t>(n);
    ops.download_bf16(host->data(), device, n);
    return host;
  }
  // The weights: the base (fp32 or bf16) and the adapters. The base is only read by training; the adapters are
  // what AdamW writes, so they come back after a step with the fp32 base of full training.
  void params_to_device(rt::Model<float>& m) const {
    if (params && m.params()) m.backend().upload(m.params(), params->data(), params->size());
    if (base16 && m.base_is_bf16())
      m.backend().upload_bf16(m.base_bf16_buffer()->data(), base16->data(), base16->size());
    if (lora && m.lora_enabled()) m.backend().upload(m.lora_params(), lora->data(), lora->size());
  }
  void params_from_device(rt::Model<float>& m) const {
    if (params && m.params()) m.backend().download(params->data(), m.params(), params->size());
    if (lora && m.lora_enabled()) m.backend().download(lora->data(), m.lora_params(), lora->size());
  }
  // The gradients' host copy, made when JavaScript first asks for it: pinned and staged when the backend can.
  void make_grads_copy(rt::Model<float>& m) {
    const rt::Backend<float>& ops = m.backend();
    grads = ops.pinned_host_zeros(m.num_trainable());
    if (!grads) {
      grads = copy_of(ops, m.grads(), m.num_trainable());
      return;
    }
    ops.download(grads->data(), m.grads(), grads->size());
    if (!staging) staging = ops.make_grad_staging();
  }
  void grads_to_device(rt::Model<float>& m) const {
    if (grads && staging) staging->receive(m.grads(), grads->data(), grads->size());
    else if (grads) m.backend().upload(m.grads(), grads->data(), grads->size());
  }
  // A bucket the backward just finished, for an all-reduce that overlaps the rest of it: landed() runs once the
  // range is in the host copy, on the staging's thread (drain_buckets() waits for the last), or at once here
  // after a synchronous copy without staging.
  void send_bucket(rt::Model<float>& m, size_t offset, size_t n, std::function<void()> landed) const {
    if (grads && staging) return staging->send(grads->data() + offset, m.grads() + offset, n, std::move(landed));
    grads_range_from_device(m, offset, n);
    landed();
  }
  void drain_buckets() const {
    if (staging) staging->drain();
  }
  void grads_from_device(rt::Model<float>& m) const {
    if (grads) m.backend().download(grads->data(), m.grads(), grads->size());
  }
  // Only a gradient range: the bucket the backward just finished, for an all-reduce that overlaps the rest.
  void grads_range_from_device(rt::Model<float>& m, size_t offset, size_t n) const {
    if (grads) m.backend().download(grads->data() + offset, m.grads() + offset, n);
  }
  void moments_to_device(rt::Model<float>& m) const {
    if (adam_m) m.backend().upload(m.adam_m(), adam_m->data(), adam_m->size());
    if (adam_v) m.backend().upload(m.adam_v(), adam_v->data(), adam_v->size());
  }
  void moments_from_device(rt::Model<float>& m) const {
    if (adam_m) m.backend().download(adam_m->data(), m.adam_m(), adam_m->size());
    if (adam_v) m.backend().download(adam_v->data(), m.adam_v(), adam_v->size());
  }
  // AdamW on the host copies with the CPU ops (a ring that mixes devices: every rank then has the CPU ranks'
  // bits), the result sent back to the device. A copy JavaScript never asked for is made from the device first.
  rt::AdamWResult adamw_step_on_host(rt::Model<float>& m, const rt::AdamWOptions& o) {
    const rt::Backend<float>& ops = m.backend();
    rt::Buffer<float>& weights = m.lora_enabled() ? lora : params;
    const float* device_weights = m.lora_enabled() ? m.lora_params() : m.params();
    if (!weights) weights = copy_of(ops, device_weights, m.num_trainable());
    if (!grads) grads = copy_of(ops, m.grads(), m.num_trainable());
    if (!adam_m) adam_m = copy_of(ops, m.adam_m(), m.optimizer_elements());
    if (!adam_v) adam_v = copy_of(ops, m.adam_v(), m.optimizer_elements());
    const rt::AdamWResult r =
        m.adamw_step_on(rt::cpu_backend<float>(), {weights->data(), grads->data(), adam_m->data(), adam_v->data()}, o);
    params_to_device(m);
    moments_to_device(m);
    return r;
  }
  // The trainable buffer changed (LoRA switched on): gradients and moments are the adapters' from now on.
  void drop_training_state() {
    grads.reset();
    adam_m.reset();
    adam_v.reset();
  }
};

}  // namespace rt_binding
