// Gradient buckets leaving the device during the backward (backend.h's GradStaging over the CUDA backend): each
// bucket reaches pinned host memory on a copy stream and is handed to the host's all-reduce (here: a stand-in
// that doubles it, as summing with an identical second rank would) while the backward goes on; the sums go back
// before AdamW. Under the emulator the copies of a step are counted: the buckets and nothing else leave the
// device beyond the step's two results, one copy brings the sums back, and nothing allocates or waits.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"
#ifdef RINGTUNE_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's: ringtune_emu_read_counters()
#endif

using namespace rt;
using rt::test::expect_close;
using rt::test::note;

namespace {

ModelConfig three_layers() {
  ModelConfig c;
  c.vocab_size = 41;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 3;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.rope_theta = 10000;
  return c;
}

struct Rows {
  static constexpr int rows = 2, T = 12, N = rows * T;
  std::vector<int32_t> ids, labels, pos, seg;
  explicit Rows(int vocab, int salt) : ids(N), labels(N), pos(N), seg(N, 0) {
    for (int i = 0; i < N; i++) {
      ids[i] = (int32_t)((i * 5 + 2 + salt) % vocab);
      labels[i] = (int32_t)((i * 3 + 7 + salt) % vocab);
      pos[i] = i % T;
    }
  }
  Batch batch() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

// What the landed callbacks saw: the bucket offsets in the order they reached the host, and on which threads.
struct Landings {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> offsets;
  bool on_caller_thread = false;
};

struct StagedModel {
  std::unique_ptr<Backend<float>> gpu = rt::cuda::make_cuda_backend(0);
  Model<float> m;
  Buffer<float> host;
  std::unique_ptr<GradStaging<float>> staging;
  std::vector<std::pair<size_t, size_t>> ranges;
  explicit StagedModel(const ModelConfig& c) : m(c, *gpu) {
    m.init_random(5, 0.1);
    host = gpu->pinned_host_zeros(m.num_trainable());
    staging = gpu->make_grad_staging();
    ranges = m.grad_bucket_ranges();
  }
  // forward_backward with every bucket staged; when a bucket after the first is reported, the first must already
  // have reached the host (its all-reduce has begun while the backward goes on).
  StepResult backward(const Batch& b, Landings& seen) {
    const std::thread::id caller = std::this_thread::get_id();
    size_t reported = 0;
    bool first_early = true;
    StepOptions o;
    o.on_grads_ready = [&](size_t off, size_t n) {
      staging->send(host->data() + off, m.grads() + off, n, [&, off, n, caller] {
        float* h = host->data() + off;
        for (size_t i = 0; i < n; i++) h[i] *= 2;  // the all-reduce stand-in
        std::lock_guard<std::mutex> lock(seen.mu);
        seen.offsets.push_back(off);
        seen.on_caller_thread |= std::this_thread::get_id() == caller;
        seen.cv.notify_all();
      });
      if (++reported == 2) {
        std::unique_lock<std::mutex> lock(seen.mu);
        first_early = seen.cv.wait_for(lock, std::chrono::seconds(20), [&] { return !seen.offsets.empty(); });
      }
    };
    m.zero_grad();
    const StepResult r = m.forward_backward(b, o);
    staging->drain();
    CHECK(first_early, "the first bucket reached the host before the second was final");
    return r;
  }
};

}  // namespace

TEST(cuda_grad_buckets_reach_the_host_while_the_backward_goes_on) {
  const ModelConfig c = three_layers();
  StagedModel s(c);
  Model<float> cpu(c, cpu_backend<float>());
  cpu.init_random(5, 0.1);
  const Rows rows(c.vocab_size, 0);
  Landings seen;
  s.backward(rows.batch(), seen);
  StepOptions plain;
  cpu.zero_grad();
  cpu.forward_backward(rows.batch(), plain);

  CHECK(s.ranges.size() == (size_t)c.num_layers + 2, "buckets " << s.ranges.size());
  CHECK(seen.offsets.size() == s.ranges.size(), "landed " << seen.offsets.size() << " of " << s.ranges.size());
  for (size_t i = 0; i < s.ranges.size(); i++)
    CHECK(seen.offsets[i] == s.ranges[i].first, "bucket " << i << " landed out of order");
  CHECK(!seen.on_caller_thread, "a bucket was handed over on the backward's own thread");

  // Every bucket landed where it belongs, final: the host copy is twice the CPU's gradients, and twice the
  // device's (which the stand-in did not touch).
  const size_t n = s.m.num_trainable();
  std::vector<float> half(n), device(n), want(cpu.grads(), cpu.grads() + n);
  for (size_t i = 0; i < n; i++) half[i] = s.host->data()[i] / 2;
  note("host copy vs CPU gradients, max diff " +
       std::to_string(expect_close("staged gradients", half.data(), want.data(), n, 1e-5, 1e-5)));
  s.gpu->download(device.data(), s.m.grads(), n);
  for (size_t i = 0; i < n; i++) CHECK(half[i] == device[i], "element " << i << " of the host copy");

  // The sums go back before AdamW.
  s.staging->receive(s.m.grads(), s.host->data(), n);
  s.gpu->download(device.data(), s.m.grads(), n);
  for (size_t i = 0; i < n; i++) CHECK(device[i] == s.host->data()[i], "element " << i << " after receive");
}

#ifdef RINGTUNE_CUDA_EMU
// A step once its shapes are seen, without staging and then with it: staging adds exactly one copy per bucket to
// the host (the gradient's bytes, no more) and one copy of the sums back, and neither an allocation nor a host
// synchronisation. Without it the only copies to the host are the step's two results (its status, the norm).
TEST(cuda_grad_staging_copies_the_buckets_and_nothing_else) {
  const ModelConfig c = three_layers();
  StagedModel s(c);
  const size_t n = s.m.num_trainable();
  AdamWOptions ao;
  ao.max_grad_norm = 1.0;
  auto staged_step = [&](int salt) {
    Landings seen;
    s.backward(Rows(c.vocab_size, salt).batch(), seen);
    s.staging->receive(s.m.grads(), s.host->data(), n);
    s.m.adamw_step(ao);
  };
  auto plain_step = [&](int salt) {
    s.m.zero_grad();
    const Rows rows(c.vocab_size, salt);
    StepOptions o;
    s.m.forward_backward(rows.batch(), o);
    s.m.adamw_step(ao);
  };
  staged_step(0);
  plain_step(1);
  auto counted = [](const std::function<void()>& step) {
    const ringtune_emu_counters a = ringtune_emu_read_counters();
    step();
    const ringtune_emu_counters b = ringtune_emu_read_counters();
    return ringtune_emu_counters{b.allocations - a.allocations,           b.host_syncs - a.host_syncs,
                                 b.copies_to_host - a.copies_to_host,     b.bytes_to_host - a.bytes_to_host,
                                 b.copies_to_device - a.copies_to_device, b.bytes_to_device - a.bytes_to_device};
  };
  const ringtune_emu_counters plain = counted([&] { plain_step(2); });
  const ringtune_emu_counters staged = counted([&] { staged_step(3); });
  auto say = [](const char* what, const ringtune_emu_counters& k) {
    note(std::string(what) + ": " + std::to_string(k.allocations) + " allocations, " + std::to_string(k.host_syncs) +
         " host syncs, " + std::to_string(k.copies_to_host) + " copies (" + std::to_string(k.bytes_to_host) +
         " bytes) to the host, " + std::to_string(k.copies_to_device) + " (" + std::to_string(k.bytes_to_device) +
         " bytes) to the device");
  };
  say("plain step", plain);
  say("staged step", staged);
  const unsigned long long buckets = s.ranges.size(), bytes = sizeof(float) * n;
  CHECK(plain.copies_to_host == 2 && plain.bytes_to_host < 64, "a plain step's copies to the host: its two results");
  CHECK(staged.allocations == 0 && plain.allocations == 0, "allocations in a step");
  CHECK(staged.host_syncs == plain.host_syncs && plain.host_syncs == 2, "host synchronisations in a step");
  CHECK(staged.copies_to_host == plain.copies_to_host + buckets, "copies to the host: the results and each bucket");
  CHECK(staged.bytes_to_host == plain.bytes_to_host + bytes, "bytes to the host: the results and the gradients");
  CHECK(staged.copies_to_device == plain.copies_to_device + 1, "copies to the device: the batch and the sums");
  CHECK(staged.bytes_to_device == plain.bytes_to_device + bytes, "bytes to the device: the batch and the sums");
}
#endif
