// Activation checkpointing: the training forward keeps each layer's input (res_in) and writes the rest of
// every layer into one shared recompute slot; before a layer's backward its forward runs again from the
// kept input into that slot. The recomputed values are those of the forward: the same ops on the same
// inputs, and LoRA dropout masks drawn from (step, layer, module) rather than from a running generator.
#include "model.h"

namespace rt {

template <typename T>
void Model<T>::set_activation_checkpointing(bool on) {
  if (on == checkpointing_) return;
  checkpointing_ = on;
  acts_.clear();  // the per-shape activations are laid out for one mode or the other
  last_ = nullptr;
}

template <typename T>
void Model<T>::recompute_layer(Activations<T>& a, const Batch& b, int l) {
  const ModelConfig& c = cfg_;
  const PackedRows<T> rows{&a.runs, {b.rows, b.seq_len, c.num_heads, c.num_kv_heads, c.head_dim}, &a.attn_scratch};
  LayerBuffers<T> io = training_layer_buffers(a, b, l, true);
  // The layer's output is the next layer's kept input (or res_out), already right: the recomputed copy
  // goes to d(ln) scratch, free at the start of a layer's backward, rather than overwrite it.
  io.res_out = a.dln.data();
  layer_forward(l, io, &rows, nullptr, own_adapters(io.n));
}

template void Model<float>::set_activation_checkpointing(bool);
template void Model<double>::set_activation_checkpointing(bool);
template void Model<float>::recompute_layer(Activations<float>&, const Batch&, int);
template void Model<double>::recompute_layer(Activations<double>&, const Batch&, int);

}  // namespace rt
