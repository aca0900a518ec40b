// Sequence-parallel attention inside the model's layer sequence, over any backend. A backend whose memory is the
// host's hands its buffers straight to the host's ring attention (ring_attention.cpp). A device backend with a
// ring attention of its own (blocks in device memory, only the transfers through host buffers) runs that. Any
// other copies the layer's inputs to host buffers kept in the model (no allocation after the first step of a
// shape), runs the host's, and copies the results back: per layer, the size of the layer's q, k and v.
#include "model.h"

namespace rt {

template <typename T>
static const T* to_host(const Backend<T>& ops, std::vector<T>& host, const T* src, size_t n) {
  host.resize(n);
  ops.download(host.data(), src, n);
  return host.data();
}

template <typename T>
void Model<T>::sp_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                                    const std::vector<SegmentRun>& runs, const RingShape& s) {
  if (ops_.host_memory()) return ring_attention_forward(out, lse, q, k, v, sp_segments_, runs, s, *sp_, ring_);
  if (ops_.ring_attention_forward(out, lse, q, k, v, sp_segments_, s, *sp_)) return;
  const size_t n = (size_t)s.tokens(), Q = n * s.H * s.D, KV = n * s.KVH * s.D, L = n * s.H;
  RingHostStage& h = ring_host_;
  h.out.resize(Q);
  h.lse.resize(L);
  ring_attention_forward(h.out.data(), h.lse.data(), to_host(ops_, h.q, q, Q), to_host(ops_, h.k, k, KV),
                         to_host(ops_, h.v, v, KV), sp_segments_, runs, s, *sp_, ring_);
  ops_.upload(out, h.out.data(), Q);
  ops_.upload(lse, h.lse.data(), L);
}

template <typename T>
void Model<T>::sp_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                     const T* out, const T* lse, const std::vector<SegmentRun>& runs,
                                     const RingShape& s) {
  if (ops_.host_memory())
    return ring_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, sp_segments_, runs, s, *sp_, ring_);
  if (ops_.ring_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, sp_segments_, s, *sp_)) return;
  const size_t n = (size_t)s.tokens(), Q = n * s.H * s.D, KV = n * s.KVH * s.D, L = n * s.H;
  RingHostStage& h = ring_host_;
  h.dq.resize(Q);
  h.dk.resize(KV);
  h.dv.resize(KV);
  ring_attention_backward(h.dq.data(), h.dk.data(), h.dv.data(), to_host(ops_, h.dout, dout, Q),
                          to_host(ops_, h.q, q, Q), to_host(ops_, h.k, k, KV), to_host(ops_, h.v, v, KV),
                          to_host(ops_, h.out, out, Q), to_host(ops_, h.lse, lse, L), sp_segments_, runs, s, *sp_,
                          ring_);
  ops_.upload(dq, h.dq.data(), Q);
  ops_.upload(dk, h.dk.data(), KV);
  ops_.upload(dv, h.dv.data(), KV);
}

#define RT_INSTANTIATE(T)                                                                                            \
  template void Model<T>::sp_attention_forward(T*, T*, const T*, const T*, const T*, const std::vector<SegmentRun>&, \
                                               const RingShape&);                                                    \
  template void Model<T>::sp_attention_backward(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,        \
                                                const T*, const std::vector<SegmentRun>&, const RingShape&);
RT_INSTANTIATE(float)
RT_INSTANTIATE(double)
#undef RT_INSTANTIATE

}  // namespace rt
