// Activation checkpointing: the recompute in the backward must give the very losses and gradients of the
// run that kept every activation (in double, so any difference is a real one, not rounding), with LoRA
// dropout too, and the memory report must show exactly what it no longer keeps.
#include <cmath>
#include <vector>
#include "host_batch.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 23;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;  // grouped-query heads
  c.head_dim = 4;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

// Two rows of 12 packed tokens (positions restart at each segment).
HostBatch packed_rows(int vocab) { return packed_batch({{5, 7}, {4, 6, 2}}, 12, vocab, 3); }

template <typename T>
void random_weights(Model<T>& m) {
  m.init_random(21, 0.4);
  for (const ParamEntry& p : m.table().entries)
    if (p.shape.size() == 1)  // norms and biases away from 1 and 0, so their gradients matter
      for (size_t i = 0; i < p.size; i++) m.params()[p.offset + i] += (T)(0.2 * std::sin(1.0 + p.offset + i));
}

// Trains one batch plainly and checkpointed; returns (plain loss, checkpointed loss) after comparing grads.
template <typename T>
void compare_runs(Model<T>& plain, Model<T>& ckpt, const Batch& b, double tol, const char* what) {
  ckpt.set_activation_checkpointing(true);
  CHECK(ckpt.activation_checkpointing() && !plain.activation_checkpointing());
  plain.zero_grad();
  ckpt.zero_grad();
  const StepResult p = plain.forward_backward(b, {true, false, 0});
  const StepResult c = ckpt.forward_backward(b, {true, false, 0});
  CHECK(p.targets == c.targets && p.targets > 0);
  CHECK(std::fabs(p.loss_sum - c.loss_sum) <= tol * std::fabs(p.loss_sum),
        what << ": loss " << c.loss_sum << " checkpointed, " << p.loss_sum << " plain");
  expect_close(std::string(what) + " gradients", ckpt.grads(), plain.grads(), plain.num_trainable(), tol, tol);
  expect_close(std::string(what) + " per-position losses", ckpt.token_losses(), plain.token_losses(),
               plain.last_positions(), tol, tol);
}

}  // namespace

TEST(activation_checkpointing_keeps_losses_and_gradients_in_double) {
  const ModelConfig c = small_config();
  Model<double> plain(c), ckpt(c);
  random_weights(plain);
  random_weights(ckpt);
  const HostBatch r = packed_rows(c.vocab_size);
  compare_runs(plain, ckpt, r.view(), 1e-12, "full training");
  // and again on the same activations: the recompute slot is refilled, not appended to
  compare_runs(plain, ckpt, r.view(), 1e-12, "second step");
}

TEST(activation_checkpointing_keeps_lora_dropout_gradients_in_double) {
  // The recompute must draw the same dropout masks as the forward did.
  const ModelConfig c = small_config();
  LoraConfig l;
  l.rank = 3;
  l.alpha = 6;
  l.dropout = 0.3;
  l.targets = {"q_proj", "v_proj", "o_proj", "down_proj"};
  Model<double> plain(c), ckpt(c);
  random_weights(plain);
  random_weights(ckpt);
  plain.enable_lora(l);
  ckpt.enable_lora(l);
  for (size_t i = 0; i < plain.num_lora_params(); i++)
    plain.lora_params()[i] = ckpt.lora_params()[i] = 0.2 * std::cos(0.7 * (double)i);
  const HostBatch r = packed_rows(c.vocab_size);
  compare_runs(plain, ckpt, r.view(), 1e-12, "LoRA with dropout");
}

TEST(activation_checkpointing_in_float_matches_and_reports_its_saving) {
  const ModelConfig c = small_config();
  Model<float> plain(c), ckpt(c);
  random_weights(plain);
  random_weights(ckpt);
  const HostBatch r = packed_rows(c.vocab_size);
  compare_runs(plain, ckpt, r.view(), 1e-5, "fp32");
  const MemoryReport p = plain.memory(), k = ckpt.memory();
  CHECK(p.activations_saved == 0 && k.activations_saved > 0);
  // Exactly what the plain run keeps beyond the checkpointed one: every layer's internals but one copy.
  CHECK(k.activations + k.activations_saved == p.activations,
        "checkpointed " << k.activations << " + saved " << k.activations_saved << " vs plain " << p.activations);
  CHECK(k.activations < p.activations);
}

TEST(activation_checkpointing_switched_off_again_keeps_everything) {
  const ModelConfig c = small_config();
  Model<float> m(c);
  random_weights(m);
  const HostBatch r = packed_rows(c.vocab_size);
  m.set_activation_checkpointing(true);
  m.forward_backward(r.view(), {true, false, 0});
  const size_t checkpointed = m.memory().activations;
  m.set_activation_checkpointing(false);
  m.forward_backward(r.view(), {true, false, 0});
  CHECK(m.memory().activations_saved == 0 && m.memory().activations > checkpointed);
}
