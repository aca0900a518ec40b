// cuBLASLt behind the Gemm interface, loaded with dlopen at run time (libcublasLt.so.13, then .12; or the
// path in RINGTUNE_CUBLASLT). Descriptors and the heuristic's algorithm are cached per shape, so a training
// step pays the heuristic once per distinct GEMM.
#include <dlfcn.h>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>
#include <vector>
#include "cublaslt_api.h"
#include "gemm.cuh"

namespace rt::cuda {
namespace {

#define LT_CHECK(call, what)                                                                      \
  do {                                                                                            \
    const lt::Status s_ = (call);                                                                 \
    if (s_ != lt::kSuccess)                                                                       \
      fail("gemm (cublasLt)", what, " failed with status ", s_, " at ", __FILE__, ":", __LINE__); \
  } while (0)

using lt::Api;

template <typename F>
bool sym(void* lib, const char* name, F& f) {
  f = (F)dlsym(lib, name);
  return f != nullptr;
}

bool load_api(Api& api, std::string& why) {
  if (kEmulated) {  // the emulator's device pointers mean nothing to the real library
    why = "the CPU emulator runs the own GEMM kernels: cuBLASLt needs a GPU";
    return false;
  }
  std::vector<std::string> names;
  if (const char* p = std::getenv("RINGTUNE_CUBLASLT")) names.push_back(p);
  names.insert(names.end(), {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"});
  std::ostringstream tried;
  for (const std::string& n : names) {
    api.lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (api.lib) break;
    tried << n << ": " << dlerror() << "; ";
  }
  if (!api.lib) {
    why = "libcublasLt not found (" + tried.str() + ")";
    return false;
  }
  const bool ok = sym(api.lib, "cublasLtCreate", api.create) && sym(api.lib, "cublasLtDestroy", api.destroy) &&
                  sym(api.lib, "cublasLtMatmulDescCreate", api.desc_create) &&
                  sym(api.lib, "cublasLtMatmulDescDestroy", api.desc_destroy) &&
                  sym(api.lib, "cublasLtMatmulDescSetAttribute", api.desc_set) &&
                  sym(api.lib, "cublasLtMatrixLayoutCreate", api.layout_create) &&
                  sym(api.lib, "cublasLtMatrixLayoutDestroy", api.layout_destroy) &&
                  sym(api.lib, "cublasLtMatmulPreferenceCreate", api.pref_create) &&
                  sym(api.lib, "cublasLtMatmulPreferenceDestroy", api.pref_destroy) &&
                  sym(api.lib, "cublasLtMatmulPreferenceSetAttribute", api.pref_set) &&
                  sym(api.lib, "cublasLtMatmulAlgoGetHeuristic", api.heuristic) &&
                  sym(api.lib, "cublasLtMatmul", api.matmul) && sym(api.lib, "cublasLtGetVersion", api.version);
  if (!ok) {
    why = "libcublasLt lacks a symbol ringtune needs";
    dlclose(api.lib);
    api.lib = nullptr;
  }
  return ok;
}

// The largest power of two (at most 256, what cuBLASLt asks by default) that divides the address.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

class LtGemm final : public Gemm {
 public:
  explicit LtGemm(Api api) : api_(api) {
    LT_CHECK(api_.create(&handle_), "cublasLtCreate");
    CUDA_CHECK(cudaMalloc(&workspace_, kWorkspace));
    // The file actually loaded, so a run's log says which of several installed copies did the work.
    Dl_info info{};
    const char* file = dladdr((void*)api_.create, &info) && info.dli_fname ? info.dli_fname : "?";
    std::ostringstream s;
    s << "cuBLASLt " << api_.version() << " (" << file << ")";
    name_ = s.str();
  }
  ~LtGemm() override {
    for (auto& [key, p] : plans_) {
      api_.layout_destroy(p.a);
      api_.layout_destroy(p.b);
      api_.layout_destroy(p.c);
      if (p.r) api_.layout_destroy(p.r);
      api_.desc_destroy(p.desc);
    }
    cudaFree(workspace_);
    api_.destroy(handle_);
  }
  const char* name() const override { return name_.c_str(); }

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B's buffer is Lt's A and A's is Lt's B.
  // Epilogues: the bias is Lt's bias (one per row of the column-major D, a column of ours); a residual is Lt's C
  // with beta 1 and our C its D (D = alpha A B + C + bias).
  void run(const GemmArgs& g, cudaStream_t stream) override {
    check_gemm_args(g, "gemm (cublasLt)");
    const Plan& p = plan(g);
    // The plan's descriptor is shared by every call of its shape: its bias pointer is set and used under the lock.
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (g.bias) lock.lock();
    if (g.bias) LT_CHECK(api_.desc_set(p.desc, lt::kDescBiasPointer, &g.bias, sizeof g.bias), "set BIAS_POINTER");
    const float one = 1.f;
    const void* c_in = g.residual ? g.residual : g.C;
    LT_CHECK(api_.matmul(handle_, p.desc, &g.alpha, g.B, p.a, g.A, p.b, g.residual ? &one : &g.beta, c_in,
                         g.residual ? p.r : p.c, g.C, p.c, &p.algo, workspace_, kWorkspace, stream),
             "cublasLtMatmul");
  }

 private:
  static constexpr size_t kWorkspace = 32u << 20;
  struct Plan {
    lt::MatmulDesc desc;
    lt::MatrixLayout a, b, c;
    lt::MatrixLayout r;  // the residual's (Lt's C), when the GEMM adds one
    lt::MatmulAlgo algo;
  };
  // The shape, and the alignment of the three pointers: a sub-pointer (a LoRA slice, a bf16 offset into a flat
  // buffer) gets its own plan, made for the alignment it actually has.
  // The epilogue (bias; a residual's leading dimension and alignment) is part of the plan too.
  using Key = std::tuple<bool, bool, int, int, int, int, int, int, int, int, uint32_t, uint32_t, uint32_t, bool, int,
                         uint32_t, uint32_t>;

  const Plan& plan(const GemmArgs& g) {
    const uint32_t align_a = alignment_of(g.A), align_b = alignment_of(g.B), align_c = alignment_of(g.C);
    const uint32_t align_r = g.residual ? alignment_of(g.residual) : 0, align_bias = g.bias ? alignment_of(g.bias) : 0;
    const Key key{g.ta,    g.tb,      g.M,     g.N,       g.K,
                  g.lda,   g.ldb,     g.ldc,   (int)g.ab, (int)g.c,
                  align_a, align_b,   align_c, !!g.bias,  g.residual ? g.ldr : 0,
                  align_r, align_bias};
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan p{};
    LT_CHECK(api_.desc_create(&p.desc, lt::kComputeF32, CUDA_R_32F), "cublasLtMatmulDescCreate");
    const int32_t opa = g.tb ? lt::kOpT : lt::kOpN, opb = g.ta ? lt::kOpT : lt::kOpN;
    LT_CHECK(api_.desc_set(p.desc, lt::kDescTransA, &opa, sizeof opa), "set TRANSA");
    LT_CHECK(api_.desc_set(p.desc, lt::kDescTransB, &opb, sizeof opb), "set TRANSB");
    // Lt's A = our B: stored (column-major) as K x N when tb, else N x K; Lt's B = our A likewise.
    LT_CHECK(api_.layout_create(&p.a, cuda_type(g.ab), g.tb ? g.K : g.N, g.tb ? g.N : g.K, g.ldb), "layout A");
    LT_CHECK(api_.layout_create(&p.b, cuda_type(g.ab), g.ta ? g.M : g.K, g.ta ? g.K : g.M, g.lda), "layout B");
    LT_CHECK(api_.layout_create(&p.c, cuda_type(g.c), g.N, g.M, g.ldc), "layout C");
    if (g.residual) LT_CHECK(api_.layout_create(&p.r, cuda_type(g.c), g.N, g.M, g.ldr), "layout residual");
    const uint32_t epilogue = g.bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
    LT_CHECK(api_.desc_set(p.desc, lt::kDescEpilogue, &epilogue, sizeof epilogue), "set EPILOGUE");
    // The heuristic reads the bias pointer's alignment (it is set again, to the call's, before each matmul).
    if (g.bias) LT_CHECK(api_.desc_set(p.desc, lt::kDescBiasPointer, &g.bias, sizeof g.bias), "set BIAS_POINTER");
    lt::MatmulPreference pref;
    LT_CHECK(api_.pref_create(&pref), "cublasLtMatmulPreferenceCreate");
    const uint64_t ws = kWorkspace;
    LT_CHECK(api_.pref_set(pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof ws), "set MAX_WORKSPACE_BYTES");
    // Lt's A is our B and Lt's B our A (see run); C and D are both our C.
    LT_CHECK(api_.pref_set(pref, lt::kPrefMinAlignmentA, &align_b, sizeof align_b), "set MIN_ALIGNMENT_A_BYTES");
    LT_CHECK(api_.pref_set(pref, lt::kPrefMinAlignmentB, &align_a, sizeof align_a), "set MIN_ALIGNMENT_B_BYTES");
    const uint32_t align_c_in = g.residual ? std::min(align_r, align_c) : align_c;
    LT_CHECK(api_.pref_set(pref, lt::kPrefMinAlignmentC, &align_c_in, sizeof align_c_in), "set MIN_ALIGNMENT_C_BYTES");
    LT_CHECK(api_.pref_set(pref, lt::kPrefMinAlignmentD, &align_c, sizeof align_c), "set MIN_ALIGNMENT_D_BYTES");
    lt::HeuristicResult result{};
    int returned = 0;
    const lt::Status st =
        api_.heuristic(handle_, p.desc, p.a, p.b, g.residual ? p.r : p.c, p.c, pref, 1, &result, &returned);
    api_.pref_destroy(pref);
    if (st != lt::kSuccess || returned == 0)
      fail("gemm (cublasLt)", "no algorithm for M=", g.M, " N=", g.N, " K=", g.K, " ta=", g.ta, " tb=", g.tb,
           " lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc, " (status ", st, ")");
    p.algo = result.algo;
    return plans_.emplace(key, p).first->second;
  }

  Api api_;
  lt::Handle handle_ = nullptr;
  void* workspace_ = nullptr;
  std::string name_;
  std::mutex mu_;
  std::map<Key, Plan> plans_;
};

}  // namespace

std::unique_ptr<Gemm> make_cublaslt_gemm_from(const lt::Api& api) { return std::make_unique<LtGemm>(api); }

std::unique_ptr<Gemm> make_cublaslt_gemm(std::string* why) {
  Api api;
  std::string reason;
  if (!load_api(api, reason)) {
    if (why) *why = reason;
    return nullptr;
  }
  return std::make_unique<LtGemm>(api);
}

}  // namespace rt::cuda
