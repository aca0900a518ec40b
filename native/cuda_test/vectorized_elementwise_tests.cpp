// The 128-bit pack path of the elementwise kernels (swiglu, add) gives the same bits as their element-at-a-time
// path, which the op tests hold against the CPU ops: the same data runs once from aligned buffers (packs, and
// a tail of n % pack elements) and once from buffers offset by one element (no pack is aligned there).
#include <cstring>
#include <vector>
#include "add.cuh"
#include "device_buffer.h"
#include "swiglu.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

namespace {

template <typename T>
std::vector<std::vector<T>> run_all(const std::vector<float>& g, const std::vector<float>& u,
                                    const std::vector<float>& d, bool shifted) {
  const size_t n = g.size();
  const int shift = shifted ? 1 : 0;
  auto dev = [](std::vector<float> x) { return to_device_type<T>(x); };
  ShiftedBuffer<T> pg(dev(g), shift), pu(dev(u), shift), pd(dev(d), shift), h(std::vector<T>(n), shift),
      dg(std::vector<T>(n), shift), du(std::vector<T>(n), shift), sum(std::vector<T>(n), shift);
  cu::swiglu_forward(h.ptr, pg.ptr, pu.ptr, n, 0);
  cu::swiglu_backward(dg.ptr, du.ptr, pd.ptr, pg.ptr, pu.ptr, n, 0);
  cu::add(sum.ptr, pg.ptr, pu.ptr, n, 0);
  cu::add_inplace(sum.ptr, pd.ptr, n, 0);
  cu::swiglu_backward(pd.ptr, pu.ptr, pd.ptr, pg.ptr, h.ptr, n, 0);  // dgate aliasing dh, as the model calls it
  return {h.get(), dg.get(), du.get(), sum.get(), pd.get(), pu.get()};
}

template <typename T>
void packs_match_elements() {
  const size_t n = 1003;  // 125 packs of 8 bf16 (250 of 4 floats) and a tail of 3
  std::vector<float> g(n), u(n), d(n);
  fill_uniform(g, 60, 4.0), fill_uniform(u, 61, 2.0), fill_uniform(d, 62, 1.0);
  const auto packed = run_all<T>(g, u, d, false), single = run_all<T>(g, u, d, true);
  const char* names[] = {"swiglu h",          "swiglu dgate",      "swiglu dup",
                         "add + add_inplace", "dgate aliasing dh", "dup (second call)"};
  for (size_t t = 0; t < packed.size(); t++)
    for (size_t i = 0; i < n; i++)
      CHECK(std::memcmp(&packed[t][i], &single[t][i], sizeof(T)) == 0,
            precision_name<T>() << " " << names[t] << " element " << i << ": packed " << to_float(packed[t][i])
                                << " vs one at a time " << to_float(single[t][i]));
}

}  // namespace

TEST(cuda_vectorized_elementwise_fp32) { packs_match_elements<float>(); }
TEST(cuda_vectorized_elementwise_bf16) { packs_match_elements<bf16>(); }
