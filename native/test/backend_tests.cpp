// The backend seam: the model's layer sequence reaches every op through the backend it was built with, and
// the CPU backend gives the same numbers as before (the gradient checks in model_tests go through it too).
#include <map>
#include <string>
#include <vector>
#include "backend.h"
#include "batched_generate.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

// The CPU backend with a count of the calls to each op.
template <typename T>
class CountingBackend final : public Backend<T> {
 public:
  mutable std::map<std::string, int> calls;
  const Backend<T>& cpu = cpu_backend<T>();

  const char* name() const override { return "counting cpu"; }
  Buffer<T> zeros(size_t n) const override { return count("zeros"), cpu.zeros(n); }
  Buffer<int32_t> int_zeros(size_t n) const override { return count("int_zeros"), cpu.int_zeros(n); }
  bool host_memory() const override { return cpu.host_memory(); }
  void fill(T* p, size_t n, T value) const override { count("fill"), cpu.fill(p, n, value); }
  void copy(T* dst, const T* src, size_t n) const override { count("copy"), cpu.copy(dst, src, n); }
  void upload(T* dst, const T* host, size_t n) const override { count("upload"), cpu.upload(dst, host, n); }
  void download(T* host, const T* src, size_t n) const override { count("download"), cpu.download(host, src, n); }
  void upload_ints(int32_t* dst, const int32_t* host, size_t n) const override {
    count("upload_ints"), cpu.upload_ints(dst, host, n);
  }
  Buffer<uint16_t> bf16_zeros(size_t n) const override { return count("bf16_zeros"), cpu.bf16_zeros(n); }
  void upload_bf16(uint16_t* dst, const uint16_t* host, size_t n) const override {
    count("upload_bf16"), cpu.upload_bf16(dst, host, n);
  }
  void download_bf16(uint16_t* host, const uint16_t* src, size_t n) const override {
    count("download_bf16"), cpu.download_bf16(host, src, n);
  }
  void widen_bf16(T* dst, const uint16_t* src, size_t n) const override {
    count("widen_bf16"), cpu.widen_bf16(dst, src, n);
  }
  void round_to_bf16(uint16_t* dst, const T* src, size_t n) const override {
    count("round_to_bf16"), cpu.round_to_bf16(dst, src, n);
  }
  void embedding_forward_bf16(T* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V) const override {
    count("embedding_forward_bf16"), cpu.embedding_forward_bf16(out, ids, wte, N, C, V);
  }
  void lora_dropout_forward(T* xd, const T* x, size_t n, double p, uint64_t seed, uint64_t stream) const override {
    count("lora_dropout_forward"), cpu.lora_dropout_forward(xd, x, n, p, seed, stream);
  }
  void lora_dropout_backward(T* dinp, const T* dxd, size_t n, double p, uint64_t seed, uint64_t stream) const override {
    count("lora_dropout_backward"), cpu.lora_dropout_backward(dinp, dxd, n, p, seed, stream);
  }
  void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
            int ldc) const override {
    count("gemm"), cpu.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int I, int O) const override {
    count("linear_forward"), cpu.linear_forward(out, inp, w, b, N, I, O);
  }
  void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int I,
                       int O) const override {
    count("linear_backward"), cpu.linear_backward(dinp, dw, db, dout, inp, w, N, I, O);
  }
  void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V) const override {
    count("embedding_forward"), cpu.embedding_forward(out, ids, wte, N, C, V);
  }
  void embedding_backward(T* dwte, const T* dout, const int32_t* ids, int N, int C) const override {
    count("embedding_backward"), cpu.embedding_backward(dwte, dout, ids, N, C);
  }
  void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) const override {
    count("rmsnorm_forward"), cpu.rmsnorm_forward(out, rstd, inp, w, N, C, eps);
  }
  void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                        int C) const override {
    count("rmsnorm_backward"), cpu.rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
  }
  void rope_forward(T* x, const int32_t* pos, const double* f, int N, int heads, int D) const override {
    count("rope_forward"), cpu.rope_forward(x, pos, f, N, heads, D);
  }
  void rope_backward(T* dx, const int32_t* pos, const double* f, int N, int heads, int D) const override {
    count("rope_backward"), cpu.rope_backward(dx, pos, f, N, heads, D);
  }
  void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const std::vector<SegmentRun>& runs,
                         const AttentionShape& s, AttentionScratch<T>& scratch) const override {
    count("attention_forward"), cpu.attention_forward(out, lse, q, k, v, runs, s, scratch);
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                          const T* lse, const std::vector<SegmentRun>& runs, const AttentionShape& s,
                          AttentionScratch<T>& scratch) const override {
    count("attention_backward"), cpu.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, runs, s, scratch);
  }
  void cached_attention(T* att, const T* q, const T* k, const T* v, int start, int n, int H, int KVH,
                        int D) const override {
    count("cached_attention"), cpu.cached_attention(att, q, k, v, start, n, H, KVH, D);
  }
  void add(T* out, const T* a, const T* b, size_t n) const override { count("add"), cpu.add(out, a, b, n); }
  void add_inplace(T* acc, const T* x, size_t n) const override { count("add_inplace"), cpu.add_inplace(acc, x, n); }
  void swiglu_forward(T* h, const T* gate, const T* up, size_t n) const override {
    count("swiglu_forward"), cpu.swiglu_forward(h, gate, up, n);
  }
  void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) const override {
    count("swiglu_backward"), cpu.swiglu_backward(dgate, dup, dh, gate, up, n);
  }
  LossSum cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits, const int32_t* labels, int N, int V,
                                         double scale, const float* weights) const override {
    count("cross_entropy");
    return cpu.cross_entropy_forward_backward(losses, dlogits, logits, labels, N, V, scale, weights);
  }
  double sum_of_squares(const T* x, size_t n) const override {
    count("sum_of_squares");
    return cpu.sum_of_squares(x, n);
  }
  void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWStep& s, bool decay) const override {
    count("adamw_update"), cpu.adamw_update(p, g, m, v, n, s, decay);
  }

 private:
  int count(const char* op) const { return ++calls[op]; }
};

ModelConfig seam_config() {
  ModelConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100;
  return c;
}

}  // namespace

TEST(model_runs_every_op_of_a_training_step_and_generation_through_its_backend) {
  const ModelConfig c = seam_config();
  CountingBackend<double> counting;
  Model<double> through(c, counting);
  Model<double> direct(c);  // the default backend: the CPU's
  CHECK(std::string(direct.backend().name()) == "cpu");
  through.init_random(7, 0.2);
  direct.init_random(7, 0.2);
  const int rows = 2, T = 6;
  std::vector<int32_t> ids(rows * T), labels(rows * T), pos(rows * T), seg(rows * T);
  for (int i = 0; i < rows * T; i++) {
    ids[i] = (i * 5 + 1) % c.vocab_size;
    labels[i] = i % 4 == 0 ? kIgnoreIndex : (i * 3 + 2) % c.vocab_size;
    pos[i] = i % T < 4 ? i % T : i % T - 4;  // two segments a row: 4 then 2 tokens
    seg[i] = i % T < 4 ? 1 : 2;
  }
  const Batch b{rows, T, ids.data(), labels.data(), pos.data(), seg.data()};
  StepOptions o;
  const StepResult r1 = through.forward_backward(b, o);
  const StepResult r2 = direct.forward_backward(b, o);
  AdamWOptions ao;
  ao.weight_decay = 0.1;
  through.adamw_step(ao);
  direct.adamw_step(ao);
  GenerateOptions g;
  g.prompt = {1, 2, 3};
  g.max_new = 2;
  const auto gen1 = through.generate(g);
  const auto gen2 = direct.generate(g);

  for (const char* op : {"zeros", "linear_forward", "linear_backward", "embedding_forward", "embedding_backward",
                         "rmsnorm_forward", "rmsnorm_backward", "rope_forward", "rope_backward", "attention_forward",
                         "attention_backward", "cached_attention", "add", "add_inplace", "swiglu_forward",
                         "swiglu_backward", "cross_entropy", "sum_of_squares", "adamw_update"})
    CHECK(counting.calls[op] > 0, "the model never called " << op << " through its backend");
  // Through the seam or not, the same numbers: the counting backend only forwards.
  CHECK(r1.loss_sum == r2.loss_sum && r1.targets == r2.targets, r1.loss_sum << " vs " << r2.loss_sum);
  for (size_t i = 0; i < through.num_params(); i++)
    CHECK(through.params()[i] == direct.params()[i], "parameter " << i << " differs after AdamW");
  CHECK(gen1 == gen2);
}

TEST(batched_decoder_runs_its_layers_and_adapters_through_the_models_backend) {
  ModelConfig c = seam_config();
  CountingBackend<float> counting;
  auto base = std::make_shared<Model<float>>(c, counting);
  base->init_random(7, 0.2);
  BatchedDecoder decoder(base);
  LoraConfig l;
  l.rank = 2;
  l.targets = {"q_proj", "down_proj"};
  auto a = decoder.add_adapter(1, l);
  std::fill(a->weights.begin(), a->weights.end(), 0.1f);
  decoder.open(0, 1, 8);
  decoder.open(1, -1, 8);
  counting.calls.clear();
  decoder.step({{0, {1, 2, 3}}, {1, {4}}});
  for (const char* op : {"embedding_forward", "rmsnorm_forward", "linear_forward", "gemm", "rope_forward", "copy",
                         "cached_attention", "add", "swiglu_forward", "upload_ints", "download"})
    CHECK(counting.calls[op] > 0, "the decoder never called " << op << " through the model's backend");
  // One cached attention per sequence per layer; the adapter's two GEMMs on each of its two targets per layer.
  CHECK(counting.calls["cached_attention"] == 2 * c.num_layers, counting.calls["cached_attention"]);
  CHECK(counting.calls["gemm"] == 2 * 2 * c.num_layers, counting.calls["gemm"]);
}
