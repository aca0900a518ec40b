// The backend seam: the model's layer sequence reaches every op through the backend it was built with, and
// the CPU backend gives the same numbers as before (the gradient checks in model_tests go through it too).
#include <map>
#include <string>
#include <vector>
#include "backend.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

// The CPU backend with a count of the calls to each op.
class CountingBackend final : public Backend<double> {
 public:
  mutable std::map<std::string, int> calls;
  const Backend<double>& cpu = cpu_backend<double>();

  const char* name() const override { return "counting cpu"; }
  Buffer<double> zeros(size_t n) const override { return count("zeros"), cpu.zeros(n); }
  void fill(double* p, size_t n, double value) const override { count("fill"), cpu.fill(p, n, value); }
  void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
            double beta, double* C, int ldc) const override {
    count("gemm"), cpu.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void linear_forward(double* out, const double* inp, const double* w, const double* b, int N, int I,
                      int O) const override {
    count("linear_forward"), cpu.linear_forward(out, inp, w, b, N, I, O);
  }
  void linear_backward(double* dinp, double* dw, double* db, const double* dout, const double* inp, const double* w,
                       int N, int I, int O) const override {
    count("linear_backward"), cpu.linear_backward(dinp, dw, db, dout, inp, w, N, I, O);
  }
  void embedding_forward(double* out, const int32_t* ids, const double* wte, int N, int C, int V) const override {
    count("embedding_forward"), cpu.embedding_forward(out, ids, wte, N, C, V);
  }
  void embedding_backward(double* dwte, const double* dout, const int32_t* ids, int N, int C) const override {
    count("embedding_backward"), cpu.embedding_backward(dwte, dout, ids, N, C);
  }
  void rmsnorm_forward(double* out, double* rstd, const double* inp, const double* w, int N, int C,
                       double eps) const override {
    count("rmsnorm_forward"), cpu.rmsnorm_forward(out, rstd, inp, w, N, C, eps);
  }
  void rmsnorm_backward(double* dinp, double* dw, const double* dout, const double* inp, const double* w,
                        const double* rstd, int N, int C) const override {
    count("rmsnorm_backward"), cpu.rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
  }
  void rope_forward(double* x, const int32_t* pos, const double* f, int N, int heads, int D) const override {
    count("rope_forward"), cpu.rope_forward(x, pos, f, N, heads, D);
  }
  void rope_backward(double* dx, const int32_t* pos, const double* f, int N, int heads, int D) const override {
    count("rope_backward"), cpu.rope_backward(dx, pos, f, N, heads, D);
  }
  void attention_forward(double* out, double* lse, const double* q, const double* k, const double* v,
                         const std::vector<SegmentRun>& runs, const AttentionShape& s,
                         AttentionScratch<double>& scratch) const override {
    count("attention_forward"), cpu.attention_forward(out, lse, q, k, v, runs, s, scratch);
  }
  void attention_backward(double* dq, double* dk, double* dv, const double* dout, const double* q, const double* k,
                          const double* v, const double* out, const double* lse, const std::vector<SegmentRun>& runs,
                          const AttentionShape& s, AttentionScratch<double>& scratch) const override {
    count("attention_backward"), cpu.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, runs, s, scratch);
  }
  void cached_attention(double* att, const double* q, const double* k, const double* v, int start, int n, int H,
                        int KVH, int D) const override {
    count("cached_attention"), cpu.cached_attention(att, q, k, v, start, n, H, KVH, D);
  }
  void add(double* out, const double* a, const double* b, size_t n) const override {
    count("add"), cpu.add(out, a, b, n);
  }
  void add_inplace(double* acc, const double* x, size_t n) const override {
    count("add_inplace"), cpu.add_inplace(acc, x, n);
  }
  void swiglu_forward(double* h, const double* gate, const double* up, size_t n) const override {
    count("swiglu_forward"), cpu.swiglu_forward(h, gate, up, n);
  }
  void swiglu_backward(double* dgate, double* dup, const double* dh, const double* gate, const double* up,
                       size_t n) const override {
    count("swiglu_backward"), cpu.swiglu_backward(dgate, dup, dh, gate, up, n);
  }
  LossSum cross_entropy_forward_backward(double* losses, double* dlogits, const double* logits, const int32_t* labels,
                                         int N, int V, double scale, const float* weights) const override {
    count("cross_entropy");
    return cpu.cross_entropy_forward_backward(losses, dlogits, logits, labels, N, V, scale, weights);
  }
  double sum_of_squares(const double* x, size_t n) const override {
    count("sum_of_squares");
    return cpu.sum_of_squares(x, n);
  }
  void adamw_update(double* p, const double* g, double* m, double* v, size_t n, const AdamWStep& s,
                    bool decay) const override {
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
  CountingBackend counting;
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
