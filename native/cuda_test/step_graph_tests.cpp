// CUDA graphs of the training step (step_graph.h). A backend that captures each step from the second on and
// launches it as graphs trains as one that issues every kernel itself: the same losses and gradients at every
// step and the same weights after AdamW (to 1e-6 relative: the embedding's backward sums with atomics, whose
// order may vary from launch to launch on a GPU; under the emulator they agree bit for bit), with the batch
// changing every step (the second captured step updates the first one's graphs), through LoRA with dropout on a
// bf16 base, bf16 compute, staged gradient buckets (each bucket ends a segment) and a step cancelled
// mid-backward. Under the emulator its counters show the replay: from the second step on, the
// step's kernels were captured, none ran as issued, all ran from graph launches, and the step allocated nothing
// and waited for the device no more than the eager step.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"
#ifdef RINGTUNE_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's: ringtune_emu_read_counters()
#endif

using namespace rt;
using rt::cuda::Precision;
using rt::cuda::StepGraphMode;
using rt::test::expect_close;
using rt::test::note;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 53;
  c.hidden_size = 64;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;
  c.rope_theta = 10000;
  c.qkv_bias = true;
  c.tie_word_embeddings = true;
  return c;
}

// Packed rows whose segments move with the salt: every step uploads new ids, labels and segment starts.
struct Packed {
  static constexpr int rows = 2, T = 16, N = rows * T;
  std::vector<int32_t> ids, labels, pos, seg;
  Packed(int vocab, int salt) : ids(N), labels(N), pos(N), seg(N) {
    const int cut = 5 + salt % 7;
    for (int i = 0; i < N; i++) {
      const int t = i % T;
      const bool second = i >= T && t >= cut;
      ids[i] = (int32_t)((i * 7 + 3 + salt * 5) % vocab);
      labels[i] = (t + salt) % 5 == 0 ? kIgnoreIndex : (int32_t)((i * 11 + 1 + salt) % vocab);
      pos[i] = second ? t - cut : t;
      seg[i] = i < T ? 0 : (second ? 2 : 1);
    }
  }
  Batch batch() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

struct Setup {
  bool lora = false, checkpointing = false, staged = false;
  Precision precision = Precision::fp32;
};

// One model over a backend, trained step by step, with its gradient buckets staged to pinned host memory when
// asked (the landed callback doubles a bucket, as an all-reduce over two identical ranks would).
struct Trainer {
  std::unique_ptr<Backend<float>> ops;
  Model<float> m;
  Buffer<float> host;
  std::unique_ptr<GradStaging<float>> staging;
  Trainer(const ModelConfig& c, const Setup& s, StepGraphMode graphs)
      : ops(rt::cuda::make_cuda_backend(0, s.precision, graphs)), m(c, *ops, s.lora) {
    m.init_random(5, 0.1);
    if (s.lora) {
      LoraConfig l;
      l.rank = 4;
      l.alpha = 8;
      l.dropout = 0.1;
      l.seed = 3;
      l.base_bf16 = true;
      l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
      m.enable_lora(l);
    } else {
      m.set_head_chunk_rows(5);  // the trained head in chunks
    }
    m.set_activation_checkpointing(s.checkpointing);
    if (s.staged) {
      host = ops->pinned_host_zeros(m.num_trainable());
      staging = ops->make_grad_staging();
    }
  }
  float* weights() { return m.lora_enabled() ? m.lora_params() : m.params(); }
  std::vector<float> download(const float* p) {
    std::vector<float> v(m.num_trainable());
    ops->download(v.data(), p, v.size());
    return v;
  }
  // forward_backward (cancelled at the first bucket when asked); then the gradients as the all-reduce left them.
  StepResult step(const Batch& b, bool cancel_mid_backward) {
    CancelToken cancel;
    StepOptions o;
    o.cancel = &cancel;
    o.on_grads_ready = [&](size_t off, size_t n) {
      if (staging)
        staging->send(host->data() + off, m.grads() + off, n, [this, off, n] {
          for (size_t i = 0; i < n; i++) host->data()[off + i] *= 2;
        });
      if (cancel_mid_backward) cancel.cancel();
    };
    m.zero_grad();
    StepResult r{};
    try {
      r = m.forward_backward(b, o);
    } catch (const Cancelled&) {
      if (staging) staging->drain();
      throw;
    }
    if (staging) {
      staging->drain();
      for (const auto& [off, n] : m.grad_bucket_ranges()) staging->receive(m.grads() + off, host->data() + off, n);
    }
    return r;
  }
};

void close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
  note(what + " max diff " + std::to_string(expect_close(what, got.data(), want.data(), got.size(), 1e-6, 1e-6)));
}

void graphs_train_as_issued(const Setup& s) {
  const ModelConfig c = tiny();
  Trainer eager(c, s, StepGraphMode::off), graphed(c, s, StepGraphMode::on);
  AdamWOptions ao;
  ao.weight_decay = 0.1;
  ao.max_grad_norm = 1.0;
  for (int step = 0; step < 3; step++) {
    const Packed p(c.vocab_size, step);
    const std::string what = "step " + std::to_string(step);
    if (step == 2) {  // cancelled at the first bucket on both: the half-captured step is dropped, unlaunched
      bool both = true;
      for (Trainer* t : {&eager, &graphed}) {
        try {
          t->step(p.batch(), true);
          both = false;
        } catch (const Cancelled&) {
        }
      }
      CHECK(both, what + ": both steps were cancelled");
    }
#ifdef RINGTUNE_CUDA_EMU
    const ringtune_emu_counters before = ringtune_emu_read_counters();
#endif
    const StepResult rg = graphed.step(p.batch(), false);
    const AdamWResult ag = graphed.m.adamw_step(ao);
#ifdef RINGTUNE_CUDA_EMU
    const ringtune_emu_counters after = ringtune_emu_read_counters();
    const auto launches = after.graph_launches - before.graph_launches;
    const auto replayed = after.graph_kernels - before.graph_kernels;
    const auto captured = after.captured_kernels - before.captured_kernels;
    note(what + ": " + std::to_string(launches) + " graph launches replayed " + std::to_string(replayed) + " of " +
         std::to_string(captured) + " captured kernels; " + std::to_string(after.allocations - before.allocations) +
         " allocations, " + std::to_string(after.host_syncs - before.host_syncs) + " host synchronisations");
    if (step == 0) {
      CHECK(launches == 0 && captured == 0, what + ": the first step runs as issued");
    } else {
      // A segment ends at each bucket's hand-off: at most one more than the buckets.
      const size_t segments = graphed.m.grad_bucket_ranges().size() + 1;
      CHECK(launches >= 1 && launches <= segments, what + ": " << launches << " graph launches");
      CHECK(captured > 20 && replayed == captured, what + ": every captured kernel replayed");
      CHECK(after.allocations == before.allocations, what + ": allocations");
      CHECK(after.host_syncs - before.host_syncs == 2, what + ": waits for the loss sums and the gradient norm only");
    }
#endif
    const StepResult re = eager.step(p.batch(), false);
    const AdamWResult ae = eager.m.adamw_step(ao);
    CHECK(rg.targets == re.targets);
    expect_close(what + " loss", &rg.loss_sum, &re.loss_sum, 1, 1e-6, 1e-6);
    expect_close(what + " grad norm", &ag.grad_norm, &ae.grad_norm, 1, 1e-6, 1e-6);
    close(what + " gradients", graphed.download(graphed.m.grads()), eager.download(eager.m.grads()));
    close(what + " weights after AdamW", graphed.download(graphed.weights()), eager.download(eager.weights()));
  }
}

}  // namespace

TEST(cuda_step_graphs_train_as_issued_full) { graphs_train_as_issued({}); }
TEST(cuda_step_graphs_train_as_issued_bf16_lora_staged) {
  graphs_train_as_issued({true, false, true, Precision::bf16});
}

// automatic: RINGTUNE_CUDA_GRAPHS when set (a typo is refused by name), else on for a GPU, off under the emulator.
TEST(cuda_step_graphs_follow_the_environment) {
  const char* was = std::getenv("RINGTUNE_CUDA_GRAPHS");
  const std::string saved = was ? was : "";
  unsetenv("RINGTUNE_CUDA_GRAPHS");
#ifdef RINGTUNE_CUDA_EMU
  CHECK(!rt::cuda::step_graphs_on(StepGraphMode::automatic));
#else
  CHECK(rt::cuda::step_graphs_on(StepGraphMode::automatic));
#endif
  setenv("RINGTUNE_CUDA_GRAPHS", "on", 1);
  CHECK(rt::cuda::step_graphs_on(StepGraphMode::automatic) && !rt::cuda::step_graphs_on(StepGraphMode::off));
  setenv("RINGTUNE_CUDA_GRAPHS", "0", 1);
  CHECK(!rt::cuda::step_graphs_on(StepGraphMode::automatic) && rt::cuda::step_graphs_on(StepGraphMode::on));
  setenv("RINGTUNE_CUDA_GRAPHS", "yes", 1);
  std::string error;
  try {
    rt::cuda::step_graphs_on(StepGraphMode::automatic);
  } catch (const Error& e) {
    error = e.what();
  }
  CHECK(error.find("RINGTUNE_CUDA_GRAPHS") != std::string::npos && error.find("'yes'") != std::string::npos, error);
  if (was) setenv("RINGTUNE_CUDA_GRAPHS", saved.c_str(), 1);
  else unsetenv("RINGTUNE_CUDA_GRAPHS");
}
