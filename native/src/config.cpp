#include "config.h"
#include <sstream>
#include "error.h"

namespace rt {

void ModelConfig::validate() const {
  auto positive = [](const char* name, int v) {
    if (v <= 0) fail("config", name, " must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("head_dim", head_dim);
  if (num_heads % num_kv_heads != 0)
    fail("config", "num_attention_heads (", num_heads, ") must be a multiple of num_key_value_heads (", num_kv_heads,
         ")");
  if (head_dim % 2 != 0) fail("config", "head_dim must be even for RoPE, got ", head_dim);
  if (!(rms_norm_eps > 0)) fail("config", "rms_norm_eps must be positive");
  if (!(rope_theta > 0)) fail("config", "rope_theta must be positive");
  if (rope_scaling.llama3) {
    if (!(rope_scaling.factor > 0)) fail("config", "rope_scaling.factor must be positive");
    if (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor))
      fail("config", "rope_scaling.high_freq_factor must exceed low_freq_factor");
    positive("rope_scaling.original_max_position_embeddings", rope_scaling.original_max_position_embeddings);
  }
}

std::string ModelConfig::describe() const {
  std::ostringstream s;
  s << "vocab " << vocab_size << ", hidden " << hidden_size << ", intermediate " << intermediate_size << ", layers "
    << num_layers << ", heads " << num_heads << "/" << num_kv_heads << " x " << head_dim;
  return s.str();
}

}  // namespace rt
