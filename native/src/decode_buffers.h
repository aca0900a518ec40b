#pragma once
// The buffers of a forward over KV caches (generation and serving): every layer runs in the same ones, as
// nothing is kept between layers but the residual stream and the caches. They live in the backend's memory
// and only grow: after the largest step has been seen, a step allocates nothing.
#include <cstdint>

#include "backend.h"
#include "config.h"
#include "layer_buffers.h"

namespace rt {

template <typename T>
struct DecodeBuffers {
  int positions = 0, rank = 0;  // what the buffers hold room for
  Buffer<T> x, ln, tmp, lnf, q, att, k, v, gate, up, h, rstd1, rstd2, rstdf, u;
  Buffer<int32_t> ids, pos;

  // Room for n positions and adapters of rank up to `max_rank`.
  void reserve(const ModelConfig& c, int n, int max_rank, const Backend<T>& ops) {
    if (n > positions) {
      const size_t N = (size_t)n, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
      x = ops.zeros(N * C), ln = ops.zeros(N * C), tmp = ops.zeros(N * C), lnf = ops.zeros(N * C);
      q = ops.zeros(N * Q), att = ops.zeros(N * Q), k = ops.zeros(N * KV), v = ops.zeros(N * KV);
      gate = ops.zeros(N * I), up = ops.zeros(N * I), h = ops.zeros(N * I);
      rstd1 = ops.zeros(N), rstd2 = ops.zeros(N), rstdf = ops.zeros(N);
      ids = ops.int_zeros(N), pos = ops.int_zeros(N);
      positions = n;
      rank = 0;  // u follows the positions
    }
    if (max_rank > rank || !u) {
      u = ops.zeros((size_t)positions * max_rank);
      rank = max_rank;
    }
  }

  // Every layer's buffers for n positions: the residual stream x updated in place, the new keys and values
  // in k and v until each run's part is appended to its cache.
  LayerBuffers<T> layer(int n) const {
    LayerBuffers<T> io;
    io.n = n;
    io.positions = pos->data();
    io.res_in = io.res_mid = io.res_out = x->data();
    io.rstd1 = rstd1->data();
    io.rstd2 = rstd2->data();
    io.ln = ln->data();
    io.tmp = tmp->data();
    io.q = q->data();
    io.att = att->data();
    io.k = k->data();
    io.v = v->data();
    io.gate = gate->data();
    io.up = up->data();
    io.h = h->data();
    for (AdapterBuffers<T>& ab : io.adapters) ab.u = u->data();  // no dropout: x and keep stay null
    return io;
  }
};

}  // namespace rt
