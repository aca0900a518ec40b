#include "cublaslt_stand_in.h"

#include <memory>

namespace rt::cuda::test {
namespace {

LtStandInLog* g_log = nullptr;

struct Desc {
  int32_t op_a = lt::kOpN, op_b = lt::kOpN;
  uint32_t epilogue = lt::kEpilogueDefault;
  const void* bias = nullptr;
};
struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct Pref {
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt's defaults
};

lt::Status create(lt::Handle* h) {
  *h = reinterpret_cast<lt::Handle>(new int(0));
  return lt::kSuccess;
}
lt::Status destroy(lt::Handle h) {
  delete reinterpret_cast<int*>(h);
  return lt::kSuccess;
}
lt::Status desc_create(lt::MatmulDesc* d, int, cudaDataType_t) {
  *d = new Desc;
  return lt::kSuccess;
}
lt::Status desc_destroy(lt::MatmulDesc d) {
  delete static_cast<Desc*>(d);
  return lt::kSuccess;
}
lt::Status desc_set(lt::MatmulDesc d, int attr, const void* buf, size_t size) {
  if (attr == lt::kDescBiasPointer) {
    if (size != sizeof(void*)) return 7;
    static_cast<Desc*>(d)->bias = *static_cast<const void* const*>(buf);
    return lt::kSuccess;
  }
  if (attr == lt::kDescEpilogue) {
    if (size != sizeof(uint32_t)) return 7;
    const uint32_t e = *static_cast<const uint32_t*>(buf);
    if (e != lt::kEpilogueDefault && e != lt::kEpilogueBias) return 15;  // only these are stood in for
    static_cast<Desc*>(d)->epilogue = e;
    return lt::kSuccess;
  }
  if (size != sizeof(int32_t)) return 7;  // CUBLAS_STATUS_INVALID_VALUE
  if (attr == lt::kDescTransA) static_cast<Desc*>(d)->op_a = *static_cast<const int32_t*>(buf);
  else if (attr == lt::kDescTransB) static_cast<Desc*>(d)->op_b = *static_cast<const int32_t*>(buf);
  else return 7;
  return lt::kSuccess;
}
lt::Status layout_create(lt::MatrixLayout* l, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (ld < (int64_t)rows) return 7;  // column-major: the leading dimension spans a column
  *l = new Layout{type, rows, cols, ld};
  return lt::kSuccess;
}
lt::Status layout_destroy(lt::MatrixLayout l) {
  delete static_cast<Layout*>(l);
  return lt::kSuccess;
}
lt::Status pref_create(lt::MatmulPreference* p) {
  *p = new Pref;
  return lt::kSuccess;
}
lt::Status pref_destroy(lt::MatmulPreference p) {
  delete static_cast<Pref*>(p);
  return lt::kSuccess;
}
lt::Status pref_set(lt::MatmulPreference p, int attr, const void* buf, size_t size) {
  if (attr == lt::kPrefMaxWorkspaceBytes) return size == sizeof(uint64_t) ? lt::kSuccess : 7;
  if (attr < lt::kPrefMinAlignmentA || attr > lt::kPrefMinAlignmentD || size != sizeof(uint32_t)) return 7;
  static_cast<Pref*>(p)->align[attr - lt::kPrefMinAlignmentA] = *static_cast<const uint32_t*>(buf);
  return lt::kSuccess;
}
// The "algorithm" remembers the alignments it was chosen for, as a real one is only valid for them.
lt::Status heuristic(lt::Handle, lt::MatmulDesc, lt::MatrixLayout, lt::MatrixLayout, lt::MatrixLayout, lt::MatrixLayout,
                     lt::MatmulPreference p, int requested, lt::HeuristicResult* results, int* returned) {
  if (requested < 1) return 7;
  const Pref& pref = *static_cast<Pref*>(p);
  results[0] = lt::HeuristicResult{};
  for (int i = 0; i < 4; i++) results[0].algo.data[i] = pref.align[i];
  *returned = 1;
  g_log->heuristics++;
  g_log->last_plan_a = pref.align[0], g_log->last_plan_b = pref.align[1], g_log->last_plan_c = pref.align[2];
  return lt::kSuccess;
}
bool aligned(const void* p, uint64_t align) { return reinterpret_cast<uintptr_t>(p) % align == 0; }
DType dtype(cudaDataType_t t) { return t == CUDA_R_16BF ? DType::BF16 : DType::F32; }

// Column-major D[m,n] = alpha opA(A) opB(B) + beta C, from the layouts alone. A column-major matrix is the
// row-major transpose of the same bytes, so D^T[n,m] = opB(B)^T opA(A)^T is a row-major GEMM whose first
// operand is B (transposed when opB is T) and whose second is A (transposed when opA is T).
lt::Status matmul(lt::Handle, lt::MatmulDesc d, const void* alpha, const void* A, lt::MatrixLayout la, const void* B,
                  lt::MatrixLayout lb, const void* beta, const void* C, lt::MatrixLayout lc, void* D,
                  lt::MatrixLayout ld, const lt::MatmulAlgo* algo, void*, size_t, cudaStream_t stream) {
  // C apart from D: ringtune's residual epilogue, which always adds C with beta 1
  if (C != D && *static_cast<const float*>(beta) != 1.f) return 15;  // CUBLAS_STATUS_NOT_SUPPORTED
  if (!aligned(A, algo->data[0]) || !aligned(B, algo->data[1]) || !aligned(C, algo->data[2]) ||
      !aligned(D, algo->data[3])) {
    g_log->misaligned++;
    return 13;  // CUBLAS_STATUS_EXECUTION_FAILED: what a misaligned vector load would end in
  }
  const Desc& desc = *static_cast<Desc*>(d);
  const Layout &a = *static_cast<Layout*>(la), &b = *static_cast<Layout*>(lb), &out = *static_cast<Layout*>(ld);
  GemmArgs g;
  g.ta = desc.op_b == lt::kOpT, g.tb = desc.op_a == lt::kOpT;
  g.M = (int)out.cols, g.N = (int)out.rows, g.K = (int)(desc.op_a == lt::kOpT ? a.rows : a.cols);
  g.alpha = *static_cast<const float*>(alpha), g.beta = *static_cast<const float*>(beta);
  g.A = B, g.lda = (int)b.ld, g.B = A, g.ldb = (int)a.ld, g.C = D, g.ldc = (int)out.ld;
  g.ab = dtype(a.type), g.c = dtype(out.type);
  if (desc.epilogue == lt::kEpilogueBias) {
    if (!desc.bias) return 7;
    g.bias = desc.bias;
    g_log->bias_epilogues++;
  }
  if (C != D) {
    g.residual = C, g.ldr = (int)static_cast<Layout*>(lc)->ld, g.beta = 0.f;
    g_log->residual_adds++;
  }
  static std::unique_ptr<Gemm> own = make_own_gemm();
  own->run(g, stream);
  g_log->matmuls++;
  g_log->last_ab = g.ab, g_log->last_c = g.c;
  return lt::kSuccess;
}
size_t version() { return 999; }

}  // namespace

lt::Api lt_stand_in(LtStandInLog* log) {
  *log = LtStandInLog{};
  g_log = log;
  lt::Api api;
  api.create = create, api.destroy = destroy, api.desc_create = desc_create, api.desc_destroy = desc_destroy;
  api.desc_set = desc_set, api.layout_create = layout_create, api.layout_destroy = layout_destroy;
  api.pref_create = pref_create, api.pref_destroy = pref_destroy, api.pref_set = pref_set;
  api.heuristic = heuristic, api.matmul = matmul, api.version = version;
  return api;
}

}  // namespace rt::cuda::test
