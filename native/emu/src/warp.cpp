// Barriers and warp meetings. __syncthreads parks the thread until every live thread of the block is parked;
// a warp primitive parks the lane until every lane of its mask has arrived, and the last one runs the
// primitive's operation for all (so a shuffle reads values that all lanes have deposited, as on the GPU).
#include <cstring>
#include <sstream>
#include <string>
#include "scheduler_state.h"

namespace ringtune_emu {

namespace {
unsigned linear_index(const BlockRun& r) { return (unsigned)r.current; }
}  // namespace

void syncthreads() {
  BlockRun& r = run_or_die("__syncthreads");
  r.threads[r.current].state = ThreadState::AtBarrier;
  r.at_barrier++;
  yield_to_scheduler(r);
}

unsigned lane_id() { return linear_index(run_or_die("a warp primitive")) % 32; }

uint32_t active_lanes() {
  BlockRun& r = run_or_die("__activemask");
  const unsigned w = linear_index(r) / 32;
  uint32_t m = 0;
  for (int l = 0; l < 32; l++) {
    const size_t t = (size_t)w * 32 + l;
    if (t < r.threads.size() && r.threads[t].state != ThreadState::Exited) m |= 1u << l;
  }
  return m;
}

void warp_collective(uint32_t mask, CollectiveOp op, void* ctx, const char* what) {
  BlockRun& r = run_or_die(what);
  const unsigned t = linear_index(r), lane = t % 32;
  Warp& w = r.warps[t / 32];
  if (!(mask >> lane & 1)) fail_in_kernel((std::string(what) + ": the calling lane is not in its own mask").c_str());
  size_t at = 0;
  while (at < w.open.size() && !(w.open[at].mask & mask)) at++;
  if (at == w.open.size()) {
    w.open.emplace_back();
    w.open[at].mask = mask;
    w.open[at].op = op;
    w.open[at].what = what;
  }
  Meeting& m = w.open[at];
  if (m.mask != mask || m.op != op || std::strcmp(m.what, what) != 0) {
    std::ostringstream s;
    s << "lanes of one warp meet in different primitives or overlapping masks: " << m.what << " (mask 0x" << std::hex
      << m.mask << ") and " << what << " (mask 0x" << mask << ")";
    fail_in_kernel(s.str().c_str());
  }
  m.ctx[lane] = ctx;
  m.arrived |= 1u << lane;
  const uint32_t expected = mask & w.existing;
  if (m.arrived != expected) {
    r.threads[t].state = ThreadState::InWarp;
    yield_to_scheduler(r);
    return;
  }
  m.op(m.ctx, expected);
  w.open.erase(w.open.begin() + (long)at);
  for (int l = 0; l < 32; l++)
    if (expected >> l & 1) r.threads[(t / 32) * 32 + l].state = ThreadState::Runnable;
  yield_to_scheduler(r);  // the last to arrive does not always go first
}

void shuffle_op(void* const* lane_ctx, uint32_t lanes) {
  for (int l = 0; l < 32; l++) {
    if (!(lanes >> l & 1)) continue;
    ShuffleLane* c = static_cast<ShuffleLane*>(lane_ctx[l]);
    if (c->src < 0 || c->src > 31 || !(lanes >> c->src & 1))
      fail_in_kernel(("a shuffle: lane " + std::to_string(l) + " reads lane " + std::to_string(c->src) +
                      ", which is not in the shuffle's mask (or has exited)")
                         .c_str());
    c->result = static_cast<ShuffleLane*>(lane_ctx[c->src])->value;
  }
}

void vote_op(void* const* lane_ctx, uint32_t lanes) {
  uint32_t b = 0;
  for (int l = 0; l < 32; l++)
    if ((lanes >> l & 1) && static_cast<VoteLane*>(lane_ctx[l])->pred) b |= 1u << l;
  for (int l = 0; l < 32; l++)
    if (lanes >> l & 1) static_cast<VoteLane*>(lane_ctx[l])->ballot = b;
}

void no_op(void* const*, uint32_t) {}

}  // namespace ringtune_emu
