// Activations are allocated uninitialised and reused by every step of their shape, so a step must read
// only what its own forward or backward wrote. Held here by running a batch on buffers full of another
// batch's values: the losses, logits and gradients must be those of a model whose buffers are fresh (in
// double, so any difference is a stale read, not rounding). Covers full training (all logits at once, kept
// or consumed), LoRA with dropout on an fp32 and a bf16 base (the chunked head), activation checkpointing,
// and a forward without backward.
#include <cmath>
#include <string>
#include <vector>
#include "host_batch.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig reuse_config() {
  ModelConfig c;
  c.vocab_size = 29;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.rope_theta = 100;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

// Two rows of 12 packed tokens; `seed` draws the tokens and which targets are ignored.
HostBatch packed(const std::vector<std::vector<int>>& rows, uint64_t seed, int vocab) {
  return packed_batch(rows, 12, vocab, seed, 0.2);
}

struct Setup {
  const char* name;
  bool lora = false, bf16_base = false, checkpointing = false, keep_logits = false, backward = true;
  double dropout = 0;
};

void build(Model<double>& m, const Setup& s) {
  m.init_random(11, 0.4);
  if (s.lora) {
    LoraConfig l;
    l.rank = 3;
    l.alpha = 6;
    l.dropout = s.dropout;
    l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    l.seed = 5;
    l.base_bf16 = s.bf16_base;
    m.enable_lora(l);
    // B starts at zero; nonzero adapters make every adapter buffer matter to the result.
    for (size_t i = 0; i < m.num_lora_params(); i++) m.lora_params()[i] = 0.1 * std::sin(1.0 + (double)i);
  }
  m.set_activation_checkpointing(s.checkpointing);
}

void expect_same_step(const Setup& s) {
  const ModelConfig c = reuse_config();
  const HostBatch first = packed({{5, 7}, {4, 6, 2}}, 3, c.vocab_size);
  const HostBatch second = packed({{12}, {3, 3, 3, 3}}, 9, c.vocab_size);
  Model<double> reused(c), fresh(c);
  build(reused, s);
  build(fresh, s);
  StepOptions opts;
  opts.backward = s.backward;
  opts.keep_logits = s.keep_logits;
  reused.forward_backward(first.view(), opts);  // fills the shape's buffers with the first batch's values
  if (s.backward) {
    reused.zero_grad();
    fresh.zero_grad();
  }
  const StepResult r = reused.forward_backward(second.view(), opts);
  const StepResult f = fresh.forward_backward(second.view(), opts);
  const std::string what = s.name;
  CHECK(r.targets == f.targets && f.targets > 0, what);
  CHECK(within_tolerance(r.loss_sum, f.loss_sum, 1e-12, 1e-12),
        what << ": loss " << r.loss_sum << " on reused buffers, " << f.loss_sum << " on fresh ones");
  expect_close(what + " per-position losses", reused.token_losses(), fresh.token_losses(), fresh.last_positions(),
               1e-12, 1e-12);
  if (s.keep_logits) {
    CHECK(reused.logits() && fresh.logits(), what);
    expect_close(what + " logits", reused.logits(), fresh.logits(), fresh.last_positions() * c.vocab_size, 1e-12,
                 1e-12);
  }
  if (s.backward) expect_close(what + " gradients", reused.grads(), fresh.grads(), fresh.num_trainable(), 1e-12, 1e-12);
}

}  // namespace

TEST(activations_reused_by_another_batch_give_full_training_results_of_fresh_ones) {
  expect_same_step({"full training"});
  expect_same_step({"full training keeping logits", false, false, false, true});
  expect_same_step({"full training checkpointed", false, false, true});
}

TEST(activations_reused_by_another_batch_give_lora_results_of_fresh_ones) {
  Setup s{"LoRA with dropout", true};
  s.dropout = 0.3;
  expect_same_step(s);
  s.name = "LoRA with dropout on a bf16 base, checkpointed";
  s.bf16_base = s.checkpointing = true;
  expect_same_step(s);
}

TEST(activations_reused_by_another_batch_give_evaluation_results_of_fresh_ones) {
  expect_same_step({"evaluation", false, false, false, false, false});
  expect_same_step({"evaluation keeping logits", false, false, false, true, false});
}
