// Training on the CUDA backend beyond a full fp32 step, the product model against the same model on the CPU
// (fp32, 1e-5 relative): LoRA on a frozen bf16 base with dropout (masks from the same counter-based draws),
// the hybrid switch from full training to LoRA, activation checkpointing, a ZeRO-1 shard of the moments, the
// frozen base alone (adapters off) with per-position loss weights, and the refusals: a non-finite gradient
// norm refuses the step by name, a bad token id names the first bad position, a cancel stops between layers.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using rt::test::expect_close;
using rt::test::note;

namespace {

ModelConfig tiny(bool qwen2) {
  ModelConfig c;
  c.vocab_size = 53;
  c.hidden_size = 64;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;  // a head size the CUDA attention kernels are built for
  c.rope_theta = 10000;
  c.qkv_bias = qwen2;
  c.tie_word_embeddings = qwen2;
  return c;
}

LoraConfig adapters(bool base_bf16, double dropout) {
  LoraConfig l;
  l.rank = 4;
  l.alpha = 8;
  l.dropout = dropout;
  l.seed = 3;
  l.base_bf16 = base_bf16;
  l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return l;
}

std::vector<float> host(const Backend<float>& ops, const float* p, size_t n) {
  std::vector<float> v(n);
  ops.download(v.data(), p, n);
  return v;
}

void close(const std::string& what, const std::vector<float>& got, const float* want, double tol) {
  note(what + " max diff " + std::to_string(expect_close(what, got.data(), want, got.size(), tol, tol)));
}

// Two rows of 16, the second packed with two segments, a few positions without a target.
struct TinyBatch {
  static constexpr int rows = 2, T = 16, N = rows * T;
  std::vector<int32_t> ids, labels, pos, seg;
  explicit TinyBatch(int vocab, int salt = 0) : ids(N), labels(N), pos(N), seg(N) {
    for (int i = 0; i < N; i++) {
      const int t = i % T;
      const bool second = i >= T && t >= 10;
      ids[i] = (int32_t)((i * 7 + 3 + salt) % vocab);
      labels[i] = t % 5 == 0 ? kIgnoreIndex : (int32_t)((i * 11 + 1 + salt) % vocab);
      pos[i] = second ? t - 10 : t;
      seg[i] = i < T ? 0 : (second ? 2 : 1);
    }
  }
  Batch batch() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

// A model on the emulated (or real) GPU and one on the CPU, built and initialised alike.
struct Pair {
  std::unique_ptr<Backend<float>> gpu = rt::cuda::make_cuda_backend(0);
  Model<float> on_gpu, on_cpu;
  Pair(const ModelConfig& c, bool base_bf16) : on_gpu(c, *gpu, base_bf16), on_cpu(c, cpu_backend<float>(), base_bf16) {
    on_gpu.init_random(5, 0.1);
    on_cpu.init_random(5, 0.1);
  }

  // One training step on both; the losses, the trainable gradients and the trainable weights after AdamW agree.
  void step_and_compare(const std::string& what, const Batch& b, const StepOptions& o = {}) {
    on_gpu.zero_grad();
    on_cpu.zero_grad();
    const StepResult rg = on_gpu.forward_backward(b, o), rc = on_cpu.forward_backward(b, o);
    CHECK(rg.targets == rc.targets);
    expect_close(what + " loss", &rg.loss_sum, &rc.loss_sum, 1, 1e-5, 1e-5);
    for (const ParamEntry& e : on_cpu.trainable_entries())
      close(what + " grad " + e.name, host(*gpu, on_gpu.grads() + e.offset, e.size), on_cpu.grads() + e.offset, 1e-5);
    AdamWOptions ao;
    ao.weight_decay = 0.1;
    ao.max_grad_norm = 1.0;
    ao.eps = 1e-4;  // see model_tests.cpp: the update of a near-zero gradient would follow its rounding error
    const AdamWResult ag = on_gpu.adamw_step(ao), ac = on_cpu.adamw_step(ao);
    expect_close(what + " grad norm", &ag.grad_norm, &ac.grad_norm, 1, 1e-6, 1e-5);
    compare_weights(what + " after AdamW");
  }
  void compare_weights(const std::string& what) {
    if (on_cpu.lora_enabled())
      close(what + " adapters", host(*gpu, on_gpu.lora_params(), on_cpu.num_lora_params()), on_cpu.lora_params(), 1e-5);
    if (on_cpu.params()) close(what + " base", host(*gpu, on_gpu.params(), on_cpu.num_params()), on_cpu.params(), 1e-5);
  }
};

void lora_on_a_bf16_base(bool qwen2) {
  const ModelConfig c = tiny(qwen2);
  Pair p(c, true);  // created frozen in bf16: the same draws, rounded, on both
  std::vector<uint16_t> base(p.on_cpu.num_params());
  p.gpu->download_bf16(base.data(), p.on_gpu.base_bf16(), base.size());
  for (size_t i = 0; i < base.size(); i++) CHECK(base[i] == p.on_cpu.base_bf16()[i], "bf16 base bit " << i);
  p.on_gpu.enable_lora(adapters(true, 0.1));
  p.on_cpu.enable_lora(adapters(true, 0.1));
  p.compare_weights("fresh adapters");
  // Three steps: the adapters' B leaves 0, so the later steps' gradients go through both A and B, and each step
  // draws new dropout masks (the step is part of the draw).
  for (int s = 0; s < 3; s++) p.step_and_compare("lora step " + std::to_string(s), TinyBatch(c.vocab_size, s).batch());
  // The frozen base alone, with per-position loss weights: a preference loss's reference pass.
  const TinyBatch tb(c.vocab_size, 7);
  std::vector<float> weights(TinyBatch::N);
  for (int i = 0; i < TinyBatch::N; i++) weights[i] = (float)(i % 4) - 1.5f;
  StepOptions off;
  off.backward = false;
  off.adapters_off = true;
  off.label_weights = weights.data();
  const StepResult rg = p.on_gpu.forward_backward(tb.batch(), off), rc = p.on_cpu.forward_backward(tb.batch(), off);
  expect_close("adapters off loss", &rg.loss_sum, &rc.loss_sum, 1, 1e-5, 1e-5);
  close("adapters off token losses", host(*p.gpu, p.on_gpu.token_losses(), TinyBatch::N), p.on_cpu.token_losses(),
        1e-5);
  // Weighted, with the adapters, backward: the per-position weights reach the gradient.
  StepOptions weighted;
  weighted.label_weights = weights.data();
  p.step_and_compare("weighted lora step", tb.batch(), weighted);
  // The merge widens the bf16 base and adds scale * B A on both.
  p.on_gpu.merge_lora();
  p.on_cpu.merge_lora();
  close("merged base", host(*p.gpu, p.on_gpu.params(), p.on_cpu.num_params()), p.on_cpu.params(), 1e-5);
}

}  // namespace

TEST(cuda_lora_on_a_bf16_base_with_dropout_trains_as_on_the_cpu_llama) { lora_on_a_bf16_base(false); }
TEST(cuda_lora_on_a_bf16_base_with_dropout_trains_as_on_the_cpu_qwen2) { lora_on_a_bf16_base(true); }

TEST(cuda_hybrid_switch_and_activation_checkpointing_train_as_on_the_cpu) {
  const ModelConfig c = tiny(true);
  Pair p(c, false);
  p.on_gpu.set_activation_checkpointing(true);  // the CPU keeps every activation: the same numbers either way
  p.step_and_compare("full step (checkpointed on the GPU)", TinyBatch(c.vocab_size).batch());
  // The hybrid switch: LoRA over the base the full phase trained, kept in fp32.
  p.on_gpu.enable_lora(adapters(false, 0.05));
  p.on_cpu.enable_lora(adapters(false, 0.05));
  p.compare_weights("after the switch");
  for (int s = 0; s < 2; s++)
    p.step_and_compare("lora step after the switch " + std::to_string(s), TinyBatch(c.vocab_size, s + 1).batch());
}

TEST(cuda_zero1_shard_updates_its_ranges_as_on_the_cpu) {
  const ModelConfig c = tiny(false);
  Pair p(c, false);
  // Two ranges that cut through parameters, as a rank's pieces of the buckets do.
  const size_t n = p.on_cpu.num_trainable();
  const std::vector<std::pair<size_t, size_t>> shard = {{n / 7, n / 5}, {n / 2 + 3, n / 3}};
  p.on_gpu.set_optimizer_shard(shard);
  p.on_cpu.set_optimizer_shard(shard);
  CHECK(p.on_gpu.optimizer_elements() == n / 5 + n / 3);
  const TinyBatch tb(c.vocab_size);
  for (int s = 0; s < 2; s++) {
    p.on_gpu.zero_grad();
    p.on_cpu.zero_grad();
    p.on_gpu.forward_backward(tb.batch(), {});
    p.on_cpu.forward_backward(tb.batch(), {});
    const double sg = p.on_gpu.grad_sum_of_squares(), sc = p.on_cpu.grad_sum_of_squares();
    expect_close("shard sum of squares", &sg, &sc, 1, 1e-6, 1e-5);
    AdamWOptions ao;
    ao.eps = 1e-4;
    ao.max_grad_norm = 0.5;
    ao.grad_norm = std::sqrt(sc) * 1.5;  // the global norm comes from every rank's shard
    p.on_gpu.adamw_step(ao);
    p.on_cpu.adamw_step(ao);
    p.compare_weights("sharded AdamW step " + std::to_string(s));
  }
  close("shard moments", host(*p.gpu, p.on_gpu.adam_v(), p.on_cpu.optimizer_elements()), p.on_cpu.adam_v(), 1e-5);
}

TEST(cuda_non_finite_gradient_norm_refuses_the_step_by_name) {
  const ModelConfig c = tiny(false);
  Pair p(c, false);
  p.on_gpu.forward_backward(TinyBatch(c.vocab_size).batch(), {});
  const float nan = std::nanf("");
  p.gpu->upload(p.on_gpu.grads() + 17, &nan, 1);
  const std::vector<float> before = host(*p.gpu, p.on_gpu.params(), p.on_gpu.num_params());
  std::string error;
  try {
    AdamWOptions ao;
    ao.max_grad_norm = 1.0;
    p.on_gpu.adamw_step(ao);
  } catch (const Error& e) {
    error = e.what();
  }
  CHECK(error.find("gradient norm is nan") != std::string::npos, "refusal: " << error);
  CHECK(p.on_gpu.step() == 0, "no step counted");
  const std::vector<float> after = host(*p.gpu, p.on_gpu.params(), p.on_gpu.num_params());
  CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0, "the weights are unchanged");
}

TEST(cuda_model_names_the_first_bad_token_and_stops_when_cancelled) {
  const ModelConfig c = tiny(false);
  Pair p(c, true);
  TinyBatch tb(c.vocab_size);
  tb.ids[20] = c.vocab_size + 4;
  tb.ids[25] = -2;
  std::string gpu_error, cpu_error;
  try {
    p.on_gpu.forward_backward(tb.batch(), {});
  } catch (const Error& e) {
    gpu_error = e.what();
  }
  try {
    p.on_cpu.forward_backward(tb.batch(), {});
  } catch (const Error& e) {
    cpu_error = e.what();
  }
  CHECK(gpu_error.find("token id 57 at position 20 ") != std::string::npos, gpu_error);
  CHECK(cpu_error.find("token id 57 at position 20 ") != std::string::npos, cpu_error);
  CancelToken cancel;
  cancel.cancel();
  StepOptions o;
  o.cancel = &cancel;
  bool cancelled = false;
  try {
    p.on_gpu.forward_backward(TinyBatch(c.vocab_size).batch(), o);
  } catch (const Cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled, "a cancelled step throws Cancelled");
}

#ifdef RINGTUNE_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's: ringtune_emu_read_counters()

// A training step (forward, backward, AdamW) once its shapes have been seen: no device or pinned allocation, and
// the host waits for the device twice, for the step's two results: the loss sums at the end of the backward
// (one copy of the step's status) and the gradient norm at the start of AdamW. Neither the batch upload, the
// segment starts, the bad id and label checks nor the target count wait for the device.
static void step_allocates_nothing_and_waits_twice(bool lora, bool checkpointing,
                                                   rt::cuda::Precision precision = rt::cuda::Precision::fp32) {
  const ModelConfig c = tiny(true);
  const auto gpu = rt::cuda::make_cuda_backend(0, precision);
  Model<float> m(c, *gpu, lora);
  m.init_random(5, 0.1);
  if (lora) m.enable_lora(adapters(true, 0.1));
  else m.set_head_chunk_rows(5);  // the trained head in chunks, as a batch of many positions runs it
  m.set_activation_checkpointing(checkpointing);
  std::vector<float> weights(TinyBatch::N, 0.5f);
  auto step = [&](int salt) {
    const TinyBatch tb(c.vocab_size, salt);  // a new batch each step: new ids, labels, segment runs' uploads
    StepOptions o;
    o.label_weights = weights.data();
    m.zero_grad();
    const StepResult r = m.forward_backward(tb.batch(), o);
    CHECK(r.targets > 0 && std::isfinite(r.loss_sum));
    AdamWOptions ao;
    ao.max_grad_norm = 1.0;
    m.adamw_step(ao);
  };
  step(0);
  for (int s = 1; s <= 2; s++) {
    const ringtune_emu_counters before = ringtune_emu_read_counters();
    step(s);
    const ringtune_emu_counters after = ringtune_emu_read_counters();
    note("step " + std::to_string(s) + ": " + std::to_string(after.allocations - before.allocations) +
         " allocations, " + std::to_string(after.host_syncs - before.host_syncs) + " host synchronisations");
    CHECK(after.allocations == before.allocations, "allocations in step " << s);
    CHECK(after.host_syncs - before.host_syncs == 2, "host synchronisations in step " << s);
  }
}

TEST(cuda_training_step_allocates_nothing_and_waits_only_for_its_results_full) {
  step_allocates_nothing_and_waits_twice(false, false);
}
TEST(cuda_training_step_allocates_nothing_and_waits_only_for_its_results_lora_checkpointed) {
  step_allocates_nothing_and_waits_twice(true, true);
}
// bf16: the compute copy is refreshed by AdamW's kernel and the GEMM and attention operands are rounded into
// scratch sized by the first step.
TEST(cuda_training_step_allocates_nothing_and_waits_only_for_its_results_bf16) {
  step_allocates_nothing_and_waits_twice(false, false, rt::cuda::Precision::bf16);
}
TEST(cuda_training_step_allocates_nothing_and_waits_only_for_its_results_bf16_lora_checkpointed) {
  step_allocates_nothing_and_waits_twice(true, true, rt::cuda::Precision::bf16);
}
#endif
