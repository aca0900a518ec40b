#pragma once
// A model whose flat buffers are a device's (the CUDA backend, or the CUDA emulator's): JavaScript gets host
// copies of them instead of views (paramData, gradData), and the binding keeps each copy and its device
// buffer in step at the edges of the native calls: a copy is uploaded before a call that reads its buffer
// and refreshed after a call that writes it. A buffer JavaScript never asked for is never copied.
#include <memory>
#include "buffer.h"
#include "model.h"

namespace rt_binding {

struct DeviceMirrors {
  rt::Buffer<float> params, grads;   // null until JavaScript asks for them
  rt::Buffer<float> adam_m, adam_v;  // the AdamW moments: for checkpoints (written and read back)

  static rt::Buffer<float> copy_of(const rt::Backend<float>& ops, const float* device, size_t n) {
    rt::Buffer<float> host = rt::host_buffer<float>(n);
    ops.download(host->data(), device, n);
    return host;
  }
  void params_to_device(rt::Model<float>& m) const {
    if (params) m.backend().upload(m.params(), params->data(), params->size());
  }
  void params_from_device(rt::Model<float>& m) const {
    if (params) m.backend().download(params->data(), m.params(), params->size());
  }
  void grads_to_device(rt::Model<float>& m) const {
    if (grads) m.backend().upload(m.grads(), grads->data(), grads->size());
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
};

}  // namespace rt_binding
