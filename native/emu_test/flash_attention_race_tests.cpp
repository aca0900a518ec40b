// The shuffled emulator catches a missing barrier or a missing wait in the tensor-core attention: the forward
// kernel built without the __syncthreads after a K/V tile has landed (warps then read rows other threads' copies
// have not landed yet: the NaN fill of fresh shared memory, or an older tile), or waiting one group of
// asynchronous copies short (the tile it computes with is still in flight), gives wrong outputs, while the
// kernel as shipped matches the CPU op. Emulator only: on a GPU the race may or may not show.
#include <cmath>
#include <sstream>
#include "attention_fixture.h"
#include "flash_attention_kernels.cuh"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;
using cu::flash::Planted;

namespace {

// The largest |got - want| (infinite when got holds a NaN).
double max_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double d = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double e = std::fabs((double)got[i] - want[i]);
    d = std::isnan(e) ? INFINITY : std::max(d, e);
  }
  return d;
}

template <Planted kPlanted>
double forward_error(AttentionProblem& p) {
  const cu::AttnShape s = p.shape();
  DeviceBuffer<bf16> out(p.N * s.qdim());
  DeviceBuffer<float> lse((size_t)s.B * s.H * s.T);
  cu::flash::launch_forward<64, kPlanted>(out.ptr, lse.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
  return max_diff(to_floats(out.download()), p.out);
}

}  // namespace

TEST(emu_flash_attention_missing_barrier_is_caught) {
  AttentionProblem p(64, 150, 2, 1, {60});
  const double with = forward_error<Planted::none>(p), without = forward_error<Planted::no_barrier_after_tile>(p);
  std::ostringstream s;
  s << "max |out - CPU|: " << with << " with the barrier, " << without << " without";
  note(s.str());
  CHECK(with < 2e-2, "the kernel as shipped must match: " << with);
  CHECK(without > 0.1, "the emulator did not expose the missing barrier: " << without);
}

TEST(emu_flash_attention_missing_wait_for_async_copies_is_caught) {
  AttentionProblem p(64, 150, 2, 1, {60});
  const double with = forward_error<Planted::none>(p), short_wait = forward_error<Planted::wait_one_group_short>(p);
  std::ostringstream s;
  s << "max |out - CPU|: " << with << " waiting for the tile's copies, " << short_wait << " waiting one group short";
  note(s.str());
  CHECK(with < 2e-2, "the kernel as shipped must match: " << with);
  CHECK(short_wait > 0.1, "the emulator did not expose the missing wait: " << short_wait);
}
