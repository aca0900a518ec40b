// Kernel launches of a training step on the emulated CUDA backend (fp32 and bf16, a full fine-tune), counted by the
// emulator: printed, so that a change that fuses kernels shows what it saved, and the same from one step to the next (a
// step of seen shapes does the same work).
#include <string>
#include <vector>
#include "backend.h"
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"

#ifdef RINGTUNE_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's: ringtune_emu_kernel_launches()

using namespace rt;
using rt::test::note;

namespace {

ModelConfig launch_config() {
  ModelConfig c;
  c.vocab_size = 53;
  c.hidden_size = 64;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;
  c.rope_theta = 10000;
  return c;
}

unsigned long long step_launches(rt::cuda::Precision precision, bool lora) {
  const ModelConfig c = launch_config();
  const auto gpu = rt::cuda::make_cuda_backend(0, precision);
  Model<float> m(c, *gpu, false);
  m.init_random(5, 0.1);
  if (lora) {
    LoraConfig l;
    l.rank = 4, l.alpha = 8, l.seed = 3, l.targets = {"q_proj", "v_proj"};
    m.enable_lora(l);
  }
  const int rows = 2, T = 16, N = rows * T;
  std::vector<int32_t> ids(N), labels(N), pos(N), seg(N, 0);
  for (int i = 0; i < N; i++) ids[i] = (i * 7 + 3) % c.vocab_size, labels[i] = (i * 11 + 1) % c.vocab_size;
  for (int i = 0; i < N; i++) pos[i] = i % T, seg[i] = i / T;
  const Batch b{rows, T, ids.data(), labels.data(), pos.data(), seg.data()};
  unsigned long long counts[3];
  for (int s = 0; s < 3; s++) {
    const unsigned long long before = ringtune_emu_kernel_launches();
    m.zero_grad();
    m.forward_backward(b, StepOptions{});
    m.adamw_step(AdamWOptions{});
    counts[s] = ringtune_emu_kernel_launches() - before;
  }
  const std::string what = std::string(precision == rt::cuda::Precision::bf16 ? "bf16" : "fp32") +
                           (lora ? " LoRA (q_proj, v_proj)" : " full") + " step";
  note(what + ": " + std::to_string(counts[2]) + " kernel launches (2 layers)");
  CHECK(counts[1] == counts[2] && counts[2] > 0, what << ": " << counts[1] << " then " << counts[2] << " launches");
  return counts[2];
}

}  // namespace

TEST(cuda_step_kernel_launches) {
  // (LoRA on q_proj and v_proj: step_launches(precision, true); left out of make test for its time)
  for (auto p : {rt::cuda::Precision::fp32, rt::cuda::Precision::bf16}) step_launches(p, false);
}
#endif
