// Cancelling a step: a cancelled token stops forward_backward between layers with Cancelled (not an error
// of the batch), a step after it on the same model is whole again, and a ring link whose peer is silent
// fails with the peer timeout instead of waiting for ever.
#include <cmath>
#include <string>
#include <vector>
#include "cancel_token.h"
#include "model.h"
#include "ring_link.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig cancel_config() {
  ModelConfig c;
  c.vocab_size = 29;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100;
  return c;
}

struct OneRow {
  int T = 10;
  std::vector<int32_t> ids, labels, pos, seg;
  explicit OneRow(int vocab) {
    for (int t = 0; t < T; t++) {
      ids.push_back((int32_t)(uniform01(5, 1, t) * vocab));
      labels.push_back(t == 0 ? kIgnoreIndex : (int32_t)(uniform01(5, 2, t) * vocab));
      pos.push_back(t);
      seg.push_back(1);
    }
  }
  Batch view() const { return {1, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

}  // namespace

TEST(a_cancelled_token_stops_forward_backward_with_cancelled) {
  const ModelConfig c = cancel_config();
  Model<float> m(c);
  m.init_random(3, 0.3);
  const OneRow row(c.vocab_size);
  CancelToken token;
  token.cancel();
  StepOptions opts;
  opts.cancel = &token;
  bool cancelled = false;
  try {
    m.forward_backward(row.view(), opts);
  } catch (const Cancelled& e) {
    cancelled = std::string(e.what()) == "cancelled";
  }
  CHECK(cancelled, "a cancelled step must throw Cancelled with the message 'cancelled'");
}

TEST(cancel_during_the_backward_stops_it_between_layers_and_the_next_step_is_whole) {
  const ModelConfig c = cancel_config();
  Model<float> m(c), reference(c);
  m.init_random(3, 0.3);
  reference.init_random(3, 0.3);
  const OneRow row(c.vocab_size);
  CancelToken token;
  StepOptions opts;
  opts.cancel = &token;
  int reported = 0;
  // The first bucket (head and final norm) is ready before any layer's backward: cancel there, as another
  // thread would mid-step. The layers' buckets must then never be reported.
  opts.on_grads_ready = [&](size_t, size_t) {
    reported++;
    token.cancel();
  };
  bool cancelled = false;
  try {
    m.forward_backward(row.view(), opts);
  } catch (const Cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled);
  CHECK(reported == 1, "buckets reported after the cancel: " << reported - 1 << " of " << m.grad_buckets() - 1);
  // A later step without the token runs in full and gives the uninterrupted model's loss and gradients.
  m.zero_grad();
  reference.zero_grad();
  const StepResult got = m.forward_backward(row.view(), {});
  const StepResult want = reference.forward_backward(row.view(), {});
  CHECK(got.targets == want.targets && std::fabs(got.loss_sum - want.loss_sum) <= 1e-6 * std::fabs(want.loss_sum));
  expect_close("gradients after a cancelled step", m.grads(), reference.grads(), m.num_trainable(), 1e-6, 1e-5);
}

TEST(a_silent_ring_peer_fails_the_receive_after_the_peer_timeout) {
  auto links = local_ring(2, 150);
  std::vector<float> block(8);
  std::string message;
  try {
    links[1]->recv(block.data(), block.size() * sizeof(float));  // rank 0 never sends
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(message.find("ring peer (the previous rank) did not answer within 0.15 s") != std::string::npos,
        "got '" << message << "'");
  // A peer that does send is received as before.
  std::vector<float> sent(8, 2.5f);
  links[0]->send(sent.data(), sent.size() * sizeof(float));
  links[1]->recv(block.data(), block.size() * sizeof(float));
  CHECK(block[7] == 2.5f);
}
