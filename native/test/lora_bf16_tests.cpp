// LoRA on a frozen base held in bf16: the same computation as an fp32 (or double) base whose weights were
// rounded to bf16 (to the precision of the compute type), no gradients or moments for the base, half its
// bytes, and results within bf16 tolerance of the unrounded fp32 base.
#include <algorithm>
#include <cmath>
#include <vector>
#include "model.h"
#include "ops/cross_entropy.h"
#include "tensor_io.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

// A vocabulary just over one head tile, so the tiled head crosses a tile edge; tied or untied head.
ModelConfig bf16_model(bool tied) {
  ModelConfig c;
  c.vocab_size = kHeadTile + 37;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.rope_theta = 100;
  c.qkv_bias = true;
  c.tie_word_embeddings = tied;
  return c;
}

LoraConfig adapters(bool base_bf16) {
  LoraConfig l;
  l.rank = 2;
  l.alpha = 4;
  l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  l.seed = 7;
  l.base_bf16 = base_bf16;
  return l;
}

struct Rows {
  std::vector<int32_t> ids, labels, pos, seg;
  Batch view() const { return {1, (int)ids.size(), ids.data(), labels.data(), pos.data(), seg.data()}; }
};

Rows rows_of(int vocab) {
  Rows r;
  for (int t = 0; t < 10; t++) {
    r.ids.push_back((int32_t)(uniform01(3, 1, t) * vocab));
    r.labels.push_back(t == 0 ? kIgnoreIndex : (int32_t)(uniform01(3, 2, t) * vocab));
    r.pos.push_back(t);
    r.seg.push_back(0);
  }
  return r;
}

// A model with random weights and nonzero adapters; `round` first rounds its base to bf16 values.
template <typename T>
void prepare(Model<T>& m, bool round, bool base_bf16) {
  m.init_random(11, 0.4);
  if (round)
    for (size_t i = 0; i < m.num_params(); i++) m.params()[i] = (T)bf16_to_float(float_to_bf16((float)m.params()[i]));
  m.enable_lora(adapters(base_bf16));
  for (size_t i = 0; i < m.num_lora_params(); i++) m.lora_params()[i] = (T)(0.3 * (2 * uniform01(5, 5, i) - 1));
}

template <typename T>
void bf16_base_equals_rounded_base(bool tied, double rel_tol) {
  const ModelConfig c = bf16_model(tied);
  const Rows r = rows_of(c.vocab_size);
  Model<T> rounded(c), bf16(c);
  prepare(rounded, true, false);
  prepare(bf16, false, true);
  CHECK(bf16.base_is_bf16() && !bf16.params() && !rounded.base_is_bf16());
  for (bool keep_logits : {false, true}) {
    rounded.zero_grad();
    bf16.zero_grad();
    const StepResult a = rounded.forward_backward(r.view(), {true, keep_logits, 0});
    const StepResult b = bf16.forward_backward(r.view(), {true, keep_logits, 0});
    expect_close("loss", &b.loss_sum, &a.loss_sum, 1, 0, rel_tol);
    expect_close("adapter gradients", bf16.grads(), rounded.grads(), rounded.num_trainable(), rel_tol * 1e-2, rel_tol);
    if (keep_logits)
      expect_close("logits", bf16.logits(), rounded.logits(), r.ids.size() * c.vocab_size, 1e-300, rel_tol);
  }
  GenerateOptions g;
  g.prompt = {1, 2, 3};
  g.max_new = 4;
  CHECK(bf16.generate(g) == rounded.generate(g));
}

}  // namespace

TEST(lora_bf16_base_equals_the_double_base_rounded_to_bf16) {
  bf16_base_equals_rounded_base<double>(false, 1e-12);
  bf16_base_equals_rounded_base<double>(true, 1e-12);
}

TEST(lora_bf16_base_equals_the_fp32_base_rounded_to_bf16) {
  // The tiled head sums in another order than one GEMM: equal to fp32 rounding, not bit for bit.
  bf16_base_equals_rounded_base<float>(false, 1e-4);
  bf16_base_equals_rounded_base<float>(true, 1e-4);
}

TEST(lora_bf16_base_holds_half_the_base_bytes_and_no_base_training_state) {
  const ModelConfig c = bf16_model(false);
  const Rows r = rows_of(c.vocab_size);
  Model<float> fp32(c), bf16(c);
  prepare(fp32, false, false);
  prepare(bf16, false, true);
  for (Model<float>* m : {&fp32, &bf16}) {
    m->zero_grad();
    m->forward_backward(r.view(), {true, false, 0});
    m->adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, 0});
  }
  const MemoryReport a = fp32.memory(), b = bf16.memory();
  CHECK(a.base_params == fp32.num_params() * 4 && a.base_bytes_per_param == 4);
  CHECK(b.base_params * 2 == a.base_params && b.base_bytes_per_param == 2, "bf16 base " << b.base_params);
  CHECK(b.grads == bf16.num_lora_params() * 4 && b.optimizer == 2 * b.grads, "adapters only: " << b.grads);
  CHECK(b.scratch > 0 && b.scratch < b.base_params, "staging " << b.scratch << " of a base of " << b.base_params);
}

TEST(lora_bf16_base_trains_like_the_fp32_base_within_bf16_tolerance) {
  const ModelConfig c = bf16_model(true);
  const Rows r = rows_of(c.vocab_size);
  Model<float> fp32(c), bf16(c);
  prepare(fp32, false, false);
  prepare(bf16, false, true);
  for (int step = 0; step < 3; step++) {
    double loss[2];
    int i = 0;
    for (Model<float>* m : {&fp32, &bf16}) {
      m->zero_grad();
      loss[i++] = m->forward_backward(r.view(), {true, false, 0}).loss_sum;
      if (step == 0 && m == &bf16) {
        // bf16 keeps 8 bits of mantissa (relative error of a weight <= 2^-9): the adapter gradients move by
        // a few parts in a thousand of their scale on average, a few percent at worst once the rounding has
        // compounded through the layers of weights this large (std 0.4), whichever random draws they are.
        double scale = 0;
        for (size_t k = 0; k < fp32.num_trainable(); k++) scale = std::max(scale, (double)std::fabs(fp32.grads()[k]));
        expect_close("adapter gradients", bf16.grads(), fp32.grads(), fp32.num_trainable(), 5e-2 * scale, 0);
      }
      m->adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, 0});
    }
    CHECK(std::fabs(loss[1] - loss[0]) <= 1e-2 * std::fabs(loss[0]),
          "step " << step << ": " << loss[1] << " vs " << loss[0]);
  }
}

TEST(lora_bf16_base_merges_into_fp32_weights) {
  const ModelConfig c = bf16_model(false);
  Model<double> rounded(c), bf16(c);
  prepare(rounded, true, false);
  prepare(bf16, false, true);
  rounded.merge_lora();
  bf16.merge_lora();
  CHECK(!bf16.base_is_bf16() && bf16.params() && bf16.memory().scratch == 0);
  expect_close("merged weights", bf16.params(), rounded.params(), rounded.num_params(), 1e-7, 1e-6);
}
