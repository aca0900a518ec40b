// The Node binding: registers functions and copies JS arguments into C++ structs on the main thread.
// Long calls run in an AsyncWorker whose Execute() touches no JS value; results and errors become JS in
// OnOK/OnError. Typed arrays are used in place (kept referenced while native code reads them); the
// parameter, gradient and optimizer buffers are exposed as zero-copy Float32Array views.
#include <napi.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "batched_generate.h"
#include "binding_cancel_token.h"
#include "binding_device_mirrors.h"
#include "binding_ring_link.h"
#include "cuda_device_loader.h"
#include "cuda_probe.h"
#ifdef RINGTUNE_ADDON_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's (its memory for deviceMemory)
#include "cuda_backend.h"
#include "nccl_binding.h"
#include "nccl_ring_link.h"
#endif
#include "model.h"
#include "tensor_io.h"

namespace {

using rt::Model;
using ModelPtr = std::shared_ptr<Model<float>>;
// Whether this addon links the CUDA backend built against the CUDA emulator (device "cuda-emu").
#ifdef RINGTUNE_ADDON_CUDA_EMU
constexpr bool kCudaEmu = true;
#else
constexpr bool kCudaEmu = false;
#endif

// ---- argument helpers: messages name the call, the field, what was expected and what came --------------

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray())
    return "a typed array of " + std::to_string(v.As<Napi::TypedArray>().ElementLength()) + " elements";
  if (v.IsNumber()) return std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  return "an object";
}

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* call) {
  if (info.Length() <= i || !info[i].IsObject())
    type_error(info.Env(), std::string(call) + ": argument " + std::to_string(i + 1) + " must be an object, got " +
                               (info.Length() > i ? describe(info[i]) : "nothing"));
  return info[i].As<Napi::Object>();
}

double number_field(const Napi::Object& o, const char* call, const char* key, const double* fallback = nullptr) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && fallback) return *fallback;
  if (!v.IsNumber()) type_error(o.Env(), std::string(call) + ": " + key + " must be a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int int_field(const Napi::Object& o, const char* call, const char* key) {
  const double d = number_field(o, call, key);
  if (d != (double)(int)d)
    type_error(o.Env(), std::string(call) + ": " + key + " must be an integer, got " + std::to_string(d));
  return (int)d;
}

bool bool_field(const Napi::Object& o, const char* call, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) type_error(o.Env(), std::string(call) + ": " + key + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

template <typename TA>
TA typed_field(const Napi::Object& o, const char* call, const char* key, napi_typedarray_type type, const char* tname,
               size_t expected /* 0: any */) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    type_error(o.Env(), std::string(call) + ": " + key + " must be a " + tname + ", got " + describe(v));
  TA a = v.As<TA>();
  if (expected && a.ElementLength() != expected)
    type_error(o.Env(), std::string(call) + ": " + key + " must have " + std::to_string(expected) + " elements, got " +
                            std::to_string(a.ElementLength()));
  return a;
}

// ---- Promise-returning work off the main thread ---------------------------------------------------------

// Claims an object (a model, a decoder) for one async call: a second call while one runs is an error,
// not a data race. The Job that runs the call releases the claim when it settles.
void claim_busy(std::atomic<bool>& busy, Napi::Env env, const std::string& call, const char* what) {
  bool expected = false;
  if (!busy.compare_exchange_strong(expected, true))
    throw Napi::Error::New(env, call + ": the " + what + " is busy with another call; await it first");
}

// Runs f on the main thread, a C++ exception becoming a JS Error with its message.
template <typename F>
auto js_errors(Napi::Env env, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

class Job : public Napi::AsyncWorker {
 public:
  using Result = std::function<Napi::Value(Napi::Env)>;
  Job(Napi::Env env, std::function<void()> exec, Result result, std::atomic<bool>* busy)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        result_(std::move(result)),
        busy_(busy) {}
  // Keeps a JS value (a typed array native code reads) alive until the job ends.
  void keep(Napi::Value v) { kept_.push_back(Napi::Persistent(v)); }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      exec_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    release();
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    release();
    deferred_.Reject(e.Value());
  }

 private:
  void release() {
    if (busy_) busy_->store(false);
  }
  Napi::Promise::Deferred deferred_;
  std::function<void()> exec_;
  Result result_;
  std::atomic<bool>* busy_;
  std::vector<Napi::Reference<Napi::Value>> kept_;
};

// ---- the NCCL data plane of a step ------------------------------------------------------------------------

// forwardBackward's ncclBuckets option ({ comm, op: "all-reduce" | "reduce-scatter", timeoutMs }): each gradient
// bucket is summed on the device by NCCL as it becomes final, instead of being copied to the host for the TCP
// ring. The collectives wait for the backend's compute stream, and it waits for them before the step's last copy.
struct NcclBuckets {
#ifdef RINGTUNE_ADDON_CUDA_EMU
  std::shared_ptr<rt::nccl::Collectives> comm;
  rt_binding::NcclOp op = rt_binding::NcclOp::AllReduce;
  int timeout_ms = 0;
  void issue(Model<float>& m, size_t offset, size_t size) const {
    rt_binding::run_nccl_op(*comm, op, m.grads() + offset, size, compute_stream(m));
  }
  void finish(const Model<float>& m) const { comm->finish(compute_stream(m), timeout_ms); }
  static rt::nccl::Stream compute_stream(const Model<float>& m) {
    return static_cast<rt::nccl::Stream>(m.backend().compute_stream());
  }
#else
  std::nullptr_t comm = nullptr;
  void issue(Model<float>&, size_t, size_t) const {}
  void finish(const Model<float>&) const {}
#endif
};

NcclBuckets nccl_buckets_option(const Napi::Object& o, const char* call) {
  NcclBuckets out;
  Napi::Value v = o.Get("ncclBuckets");
  if (v.IsUndefined() || v.IsNull()) return out;
#ifdef RINGTUNE_ADDON_CUDA_EMU
  if (!v.IsObject()) type_error(o.Env(), std::string(call) + ": ncclBuckets must be an object, got " + describe(v));
  Napi::Object b = v.As<Napi::Object>();
  out.comm = rt_binding::nccl_comm_of(b.Get("comm"));
  if (!out.comm) type_error(o.Env(), std::string(call) + ": ncclBuckets.comm must be a NcclComm from ncclConnect");
  out.op = rt_binding::nccl_op(o.Env(), b.Get("op"), call);
  if (out.op == rt_binding::NcclOp::AllGather)
    type_error(o.Env(), std::string(call) + ": ncclBuckets.op must be 'all-reduce' or 'reduce-scatter'");
  out.timeout_ms = int_field(b, call, "timeoutMs");
  return out;
#else
  type_error(o.Env(), std::string(call) + ": ncclBuckets needs an addon built with the CUDA backend");
#endif
}

// sequenceParallel.ncclComm (a NcclComm from ncclConnect, its ranks the group's) with .timeoutMs: the blocks of
// the ring attention move by NCCL send/recv between device buffers; attached to sp (null: no such option).
std::shared_ptr<rt::DeviceRingLink> nccl_ring_link_option(const Napi::Object& o, rt::SequenceParallel* sp,
                                                          const char* call) {
  Napi::Value v = o.Get("sequenceParallel");
  if (!sp || !v.IsObject() || v.As<Napi::Object>().Get("ncclComm").IsUndefined()) return nullptr;
#ifdef RINGTUNE_ADDON_CUDA_EMU
  Napi::Object so = v.As<Napi::Object>();
  auto comm = rt_binding::nccl_comm_of(so.Get("ncclComm"));
  if (!comm) type_error(o.Env(), std::string(call) + ": sequenceParallel.ncclComm must be a NcclComm from ncclConnect");
  if (comm->size() != sp->size || comm->rank() != (sp->rank + 1) % sp->size)
    type_error(o.Env(), std::string(call) + ": sequenceParallel.ncclComm is rank " + std::to_string(comm->rank()) +
                            " of " + std::to_string(comm->size()) + ", not the group's rank " +
                            std::to_string(sp->rank) + " of " + std::to_string(sp->size) + " (NCCL rank rank + 1)");
  auto link = std::make_shared<rt::nccl::NcclRingLink>(comm, int_field(so, call, "timeoutMs"));
  sp->device_link = link.get();
  return link;
#else
  type_error(o.Env(), std::string(call) + ": sequenceParallel.ncclComm needs an addon built with the CUDA backend");
#endif
}

// ---- the model object ------------------------------------------------------------------------------------

rt::ModelConfig config_from(const Napi::Object& o) {
  const char* call = "createModel";
  rt::ModelConfig c;
  c.vocab_size = int_field(o, call, "vocabSize");
  c.hidden_size = int_field(o, call, "hiddenSize");
  c.intermediate_size = int_field(o, call, "intermediateSize");
  c.num_layers = int_field(o, call, "numLayers");
  c.num_heads = int_field(o, call, "numHeads");
  c.num_kv_heads = int_field(o, call, "numKvHeads");
  c.head_dim = int_field(o, call, "headDim");
  c.rms_norm_eps = number_field(o, call, "rmsNormEps");
  c.rope_theta = number_field(o, call, "ropeTheta");
  c.tie_word_embeddings = bool_field(o, call, "tieWordEmbeddings", false);
  c.qkv_bias = bool_field(o, call, "qkvBias", false);
  c.o_bias = bool_field(o, call, "oBias", false);
  c.mlp_bias = bool_field(o, call, "mlpBias", false);
  Napi::Value rs = o.Get("ropeScaling");
  if (rs.IsObject()) {
    Napi::Object r = rs.As<Napi::Object>();
    c.rope_scaling.llama3 = true;
    c.rope_scaling.factor = number_field(r, call, "factor");
    c.rope_scaling.low_freq_factor = number_field(r, call, "lowFreqFactor");
    c.rope_scaling.high_freq_factor = number_field(r, call, "highFreqFactor");
    c.rope_scaling.original_max_position_embeddings = int_field(r, call, "originalMaxPositionEmbeddings");
  } else if (!rs.IsUndefined() && !rs.IsNull()) {
    type_error(o.Env(), std::string(call) + ": ropeScaling must be an object or null, got " + describe(rs));
  }
  return c;
}

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("params", &ModelWrap::Params),
                        InstanceMethod("paramData", &ModelWrap::ParamData),
                        InstanceMethod("gradData", &ModelWrap::GradData),
                        InstanceMethod("optimizerData", &ModelWrap::OptimizerData),
                        InstanceMethod("getStep", &ModelWrap::GetStep),
                        InstanceMethod("setStep", &ModelWrap::SetStep),
                        InstanceMethod("memory", &ModelWrap::Memory),
                        InstanceMethod("backendName", &ModelWrap::BackendName),
                        InstanceMethod("initRandom", &ModelWrap::InitRandom),
                        InstanceMethod("zeroGrad", &ModelWrap::ZeroGrad),
                        InstanceMethod("forwardBackward", &ModelWrap::ForwardBackward),
#ifdef RINGTUNE_ADDON_CUDA_EMU
                        InstanceMethod("ncclCollective", &ModelWrap::NcclCollective),
#endif
                        InstanceMethod("logits", &ModelWrap::Logits),
                        InstanceMethod("tokenLosses", &ModelWrap::TokenLosses),
                        InstanceMethod("adamwStep", &ModelWrap::AdamwStep),
                        InstanceMethod("generate", &ModelWrap::Generate),
                        InstanceMethod("trainableParams", &ModelWrap::TrainableParams),
                        InstanceMethod("gradBucketRanges", &ModelWrap::GradBucketRanges),
                        InstanceMethod("enableLora", &ModelWrap::EnableLora),
                        InstanceMethod("enableLoraAsync", &ModelWrap::EnableLoraAsync),
                        InstanceMethod("loraSettings", &ModelWrap::LoraSettings),
                        InstanceMethod("loraParams", &ModelWrap::LoraParams),
                        InstanceMethod("loraData", &ModelWrap::LoraData),
                        InstanceMethod("mergeLora", &ModelWrap::MergeLora),
                        InstanceMethod("checksum", &ModelWrap::Checksum),
                        InstanceMethod("prepareTraining", &ModelWrap::PrepareTraining),
                        InstanceMethod("baseDataBf16", &ModelWrap::BaseDataBf16),
                        InstanceMethod("setActivationCheckpointing", &ModelWrap::SetActivationCheckpointing),
                        InstanceMethod("setOptimizerShard", &ModelWrap::SetOptimizerShard),
                        InstanceMethod("optimizerShard", &ModelWrap::OptimizerShard),
                        InstanceMethod("gradSumOfSquares", &ModelWrap::GradSumOfSquares)});
  }

  ModelPtr model() const { return model_; }

  // For serving from a bf16 base: the fp32 base is rounded and freed (the old view dropped, so JS no
  // longer keeps it alive).
  void RoundBaseToBf16(Napi::Env env, const char* call) {
    require_idle(env, call);
    js_errors(env, [&] {
      // On a device the weights JavaScript loaded are in the host copy: they are what is rounded.
      if (mirrors_) mirrors_->params_to_device(*model_);
      model_->round_base_to_bf16();
    });
    if (mirrors_) mirrors_->params.reset();  // its buffer is gone; a bf16 base has no fp32 view
    params_view_.Reset();
  }

  ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    // A model built off the main thread (createModelAsync) arrives ready made.
    if (info.Length() > 0 && info[0].IsExternal()) {
      model_ = *info[0].As<Napi::External<ModelPtr>>().Data();
      if (!model_->backend().host_memory()) mirrors_ = std::make_shared<rt_binding::DeviceMirrors>();
      return;
    }
    Napi::Object cfg = object_arg(info, 0, "createModel");
    const rt::ModelConfig c = config_from(cfg);
    try {
      model_ = std::make_shared<Model<float>>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  // Claims the model for one async call; a second concurrent call is an error, not a data race.
  void claim(Napi::Env env, const char* call) { claim_busy(busy_, env, call, "model"); }
  void require_idle(Napi::Env env, const char* call) {
    if (busy_.load())
      throw Napi::Error::New(env, std::string(call) + ": the model is busy with another call; await it first");
  }

  Napi::Value Params(const Napi::CallbackInfo& info) { return EntriesToJs(info.Env(), model_->table().entries); }

  // One external ArrayBuffer per native buffer, created once (V8 refuses a second registration of the same
  // memory). It holds a reference to the buffer itself, so a view stays valid even after the model drops
  // the buffer (the base gradients when LoRA is switched on) or is itself collected.
  Napi::Value View(Napi::Env env, Napi::Reference<Napi::Float32Array>& cache, const rt::Buffer<float>& buf) {
    if (!cache.IsEmpty()) return cache.Value();
    auto* owner = new rt::Buffer<float>(buf);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, buf->data(), buf->size() * sizeof(float), [](Napi::Env, void*, rt::Buffer<float>* hint) { delete hint; },
        owner);
    Napi::Float32Array view = Napi::Float32Array::New(env, buf->size(), ab, 0);
    cache = Napi::Persistent(view);
    return view;
  }
  Napi::Value ParamData(const Napi::CallbackInfo& info) {
    if (mirrors_ && !model_->base_is_bf16()) {
      if (!mirrors_->params)
        mirrors_->params =
            rt_binding::DeviceMirrors::copy_of(model_->backend(), model_->params(), model_->num_params());
      return View(info.Env(), params_view_, mirrors_->params);
    }
    if (model_->base_is_bf16())
      throw Napi::Error::New(
          info.Env(), "paramData: the frozen base is held in bf16 (LoRA base_precision bf16): use baseDataBf16()");
    return View(info.Env(), params_view_, model_->params_buffer());
  }
  // The bf16 bits of a frozen base (null when the base is fp32), zero-copy like the other views.
  Napi::Value BaseDataBf16(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto buf = model_->base_bf16_buffer();
    if (!buf) return env.Null();
    if (!base16_view_.IsEmpty()) return base16_view_.Value();
    if (mirrors_) {
      require_idle(env, "baseDataBf16");
      if (!mirrors_->base16)
        mirrors_->base16 = rt_binding::DeviceMirrors::copy_of_bf16(model_->backend(), buf->data(), buf->size());
      buf = mirrors_->base16;
    }
    using Owner = rt::Buffer<uint16_t>;
    auto* owner = new Owner(buf);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, buf->data(), buf->size() * sizeof(uint16_t), [](Napi::Env, void*, Owner* hint) { delete hint; }, owner);
    Napi::Uint16Array view = Napi::Uint16Array::New(env, buf->size(), ab, 0, napi_uint16_array);
    base16_view_ = Napi::Persistent(view);
    return view;
  }
  Napi::Value GradData(const Napi::CallbackInfo& info) {
    if (mirrors_) {
      require_idle(info.Env(), "gradData");
      if (!mirrors_->grads) mirrors_->make_grads_copy(*model_);
      return View(info.Env(), grads_view_, mirrors_->grads);
    }
    return View(info.Env(), grads_view_, model_->grads_buffer());
  }
  Napi::Value OptimizerData(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    if (mirrors_) {
      require_idle(info.Env(), "optimizerData");
      if (!mirrors_->adam_m) {
        const size_t n = model_->optimizer_elements();
        mirrors_->adam_m = rt_binding::DeviceMirrors::copy_of(model_->backend(), model_->adam_m(), n);
        mirrors_->adam_v = rt_binding::DeviceMirrors::copy_of(model_->backend(), model_->adam_v(), n);
      }
      o.Set("m", View(info.Env(), m_view_, mirrors_->adam_m));
      o.Set("v", View(info.Env(), v_view_, mirrors_->adam_v));
      return o;
    }
    o.Set("m", View(info.Env(), m_view_, model_->m_buffer()));
    o.Set("v", View(info.Env(), v_view_, model_->v_buffer()));
    return o;
  }
  Napi::Value LoraData(const Napi::CallbackInfo& info) {
    if (!model_->lora_enabled()) throw Napi::Error::New(info.Env(), "loraData: LoRA is not on (enableLora first)");
    if (mirrors_) {
      require_idle(info.Env(), "loraData");
      if (!mirrors_->lora)
        mirrors_->lora =
            rt_binding::DeviceMirrors::copy_of(model_->backend(), model_->lora_params(), model_->num_lora_params());
      return View(info.Env(), lora_view_, mirrors_->lora);
    }
    return View(info.Env(), lora_view_, model_->lora_buffer());
  }

  friend class DecoderWrap;
  static Napi::Array EntriesToJs(Napi::Env env, const std::vector<rt::ParamEntry>& entries) {
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      const rt::ParamEntry& e = entries[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", e.name);
      o.Set("offset", (double)e.offset);
      o.Set("size", (double)e.size);
      Napi::Array shape = Napi::Array::New(env, e.shape.size());
      for (size_t d = 0; d < e.shape.size(); d++) shape.Set((uint32_t)d, (double)e.shape[d]);
      o.Set("shape", shape);
      o.Set("decay", e.decay);
      out.Set((uint32_t)i, o);
    }
    return out;
  }
  Napi::Value TrainableParams(const Napi::CallbackInfo& info) {
    return EntriesToJs(info.Env(), model_->trainable_entries());
  }
  Napi::Value LoraParams(const Napi::CallbackInfo& info) {
    if (!model_->lora_enabled()) return Napi::Array::New(info.Env(), 0);
    return EntriesToJs(info.Env(), model_->lora_table().entries);
  }
  Napi::Value SetActivationCheckpointing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env, "setActivationCheckpointing");
    if (info.Length() < 1 || !info[0].IsBoolean())
      type_error(env, "setActivationCheckpointing: on must be a boolean, got " +
                          (info.Length() ? describe(info[0]) : std::string("nothing")));
    model_->set_activation_checkpointing(info[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  }

  // ZeRO-1: ranges [offset, size] of gradData whose AdamW moments this rank keeps; [] = all of them.
  Napi::Value SetOptimizerShard(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "setOptimizerShard";
    require_idle(env, call);
    if (info.Length() < 1 || !info[0].IsArray())
      type_error(env, std::string(call) + ": ranges must be an array of [offset, size] pairs");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<std::pair<size_t, size_t>> ranges;
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value r = a.Get(i);
      Napi::Array pair = r.IsArray() ? r.As<Napi::Array>() : Napi::Array::New(env);
      if (pair.Length() != 2 || !pair.Get(0u).IsNumber() || !pair.Get(1u).IsNumber() ||
          pair.Get(0u).As<Napi::Number>().DoubleValue() < 0 || pair.Get(1u).As<Napi::Number>().DoubleValue() < 0)
        type_error(
            env, std::string(call) + ": ranges[" + std::to_string(i) + "] must be [offset, size], got " + describe(r));
      ranges.push_back({(size_t)pair.Get(0u).As<Napi::Number>().DoubleValue(),
                        (size_t)pair.Get(1u).As<Napi::Number>().DoubleValue()});
    }
    try {
      model_->set_optimizer_shard(ranges);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    m_view_.Reset();  // the moments were reallocated for the new shard
    v_view_.Reset();
    if (mirrors_) mirrors_->adam_m.reset(), mirrors_->adam_v.reset();
    return env.Undefined();
  }

  Napi::Value OptimizerShard(const Napi::CallbackInfo& info) {
    const auto& ranges = model_->optimizer_shard();
    Napi::Array out = Napi::Array::New(info.Env(), ranges.size());
    for (size_t i = 0; i < ranges.size(); i++) {
      Napi::Array pair = Napi::Array::New(info.Env(), 2);
      pair.Set(0u, (double)ranges[i].first);
      pair.Set(1u, (double)ranges[i].second);
      out.Set((uint32_t)i, pair);
    }
    return out;
  }

  Napi::Value GradSumOfSquares(const Napi::CallbackInfo& info) {
    require_idle(info.Env(), "gradSumOfSquares");
    // On a device: of the host copy JavaScript summed into (ZeRO-1's reduce-scatter), sent first.
    if (mirrors_) mirrors_->grads_to_device(*model_);
    return Napi::Number::New(info.Env(), model_->grad_sum_of_squares());
  }

  Napi::Value GradBucketRanges(const Napi::CallbackInfo& info) {
    const auto ranges = model_->grad_bucket_ranges();
    Napi::Array out = Napi::Array::New(info.Env(), ranges.size());
    for (size_t i = 0; i < ranges.size(); i++) {
      Napi::Array pair = Napi::Array::New(info.Env(), 2);
      pair.Set((uint32_t)0, (double)ranges[i].first);
      pair.Set((uint32_t)1, (double)ranges[i].second);
      out.Set((uint32_t)i, pair);
    }
    return out;
  }

  static rt::LoraConfig lora_config_from(Napi::Env env, const Napi::CallbackInfo& info, const char* call) {
    Napi::Object o = object_arg(info, 0, call);
    rt::LoraConfig l;
    l.rank = int_field(o, call, "rank");
    l.alpha = number_field(o, call, "alpha");
    const double zero = 0;
    l.dropout = number_field(o, call, "dropout", &zero);
    l.rslora = bool_field(o, call, "rslora", false);
    l.seed = (uint64_t)number_field(o, call, "seed", &zero);
    l.base_bf16 = bool_field(o, call, "baseBf16", false);
    Napi::Value targets = o.Get("targets");
    if (!targets.IsArray())
      type_error(env, std::string(call) + ": targets must be an array of module names, got " + describe(targets));
    Napi::Array ta = targets.As<Napi::Array>();
    for (uint32_t i = 0; i < ta.Length(); i++) {
      Napi::Value t = ta.Get(i);
      if (!t.IsString())
        type_error(env,
                   std::string(call) + ": targets[" + std::to_string(i) + "] must be a string, got " + describe(t));
      l.targets.push_back(t.As<Napi::String>().Utf8Value());
    }
    return l;
  }

  // The trainable buffers changed: later views must show the adapters' gradients and moments.
  void reset_views_after_lora() {
    if (model_->base_is_bf16()) params_view_.Reset();
    grads_view_.Reset();
    m_view_.Reset();
    v_view_.Reset();
    if (!mirrors_) return;
    if (model_->base_is_bf16()) mirrors_->params.reset();
    mirrors_->drop_training_state();
  }

  Napi::Value EnableLora(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env, "enableLora");
    const rt::LoraConfig l = lora_config_from(env, info, "enableLora");
    try {
      // On a device the base JavaScript may have written (loaded weights) is sent before it is rounded.
      if (mirrors_) mirrors_->params_to_device(*model_);
      model_->enable_lora(l);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    reset_views_after_lora();
    return env.Undefined();
  }

  // Rounding a large base to bf16 takes seconds: off the main thread. The views are reset before the
  // Promise settles, so no caller sees the freed fp32 base through an old view after awaiting it.
  Napi::Value EnableLoraAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const rt::LoraConfig l = lora_config_from(env, info, "enableLoraAsync");
    if (model_->lora_enabled()) throw Napi::Error::New(env, "enableLoraAsync: LoRA is already on");
    claim(env, "enableLoraAsync");
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto* job = new Job(
        env,
        [m, l, mirrors] {
          if (mirrors) mirrors->params_to_device(*m);
          m->enable_lora(l);
        },
        [this](Napi::Env e) {
          reset_views_after_lora();
          return e.Undefined();
        },
        &busy_);
    job->keep(info.This());  // the wrapper whose views the result resets
    job->Queue();
    return job->promise();
  }

  Napi::Value LoraSettings(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_->lora_enabled()) return env.Null();
    const rt::LoraConfig& l = model_->lora_config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", l.rank);
    o.Set("alpha", l.alpha);
    o.Set("dropout", l.dropout);
    Napi::Array t = Napi::Array::New(env, l.targets.size());
    for (size_t i = 0; i < l.targets.size(); i++) t.Set((uint32_t)i, l.targets[i]);
    o.Set("targets", t);
    o.Set("rslora", l.rslora);
    o.Set("seed", (double)l.seed);
    if (l.base_bf16) o.Set("baseBf16", true);  // absent when false, like the optional setting it echoes
    return o;
  }

  Napi::Value MergeLora(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_->lora_enabled()) throw Napi::Error::New(env, "mergeLora: LoRA is not on");
    claim(env, "mergeLora");
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    // A bf16 base comes back as fp32 (the merge's precision), in a new buffer: later views show it.
    if (model_->base_is_bf16()) {
      params_view_.Reset();
      base16_view_.Reset();
    }
    auto* job = new Job(
        env,
        [m, mirrors] {
          if (mirrors) mirrors->params_to_device(*m);
          const bool widened = m->base_is_bf16();
          m->merge_lora();
          if (!mirrors) return;
          if (widened) mirrors->params.reset(), mirrors->base16.reset();
          mirrors->params_from_device(*m);
        },
        nullptr, &busy_);
    job->Queue();
    return job->promise();
  }

  Napi::Value GetStep(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)model_->step()); }
  Napi::Value SetStep(const Napi::CallbackInfo& info) {
    require_idle(info.Env(), "setStep");
    if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0)
      type_error(info.Env(),
                 "setStep: step must be a non-negative number, got " + (info.Length() ? describe(info[0]) : "nothing"));
    model_->set_step((int64_t)info[0].As<Napi::Number>().DoubleValue());
    return info.Env().Undefined();
  }

  // Where the model computes, as its backend names itself: "cpu", or "cuda:0 fp32 (...)" with its GEMM.
  Napi::Value BackendName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), model_->backend().name());
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    const rt::MemoryReport m = model_->memory();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("params", (double)m.params);
    o.Set("grads", (double)m.grads);
    o.Set("optimizer", (double)m.optimizer);
    o.Set("activations", (double)m.activations);
    o.Set("total", (double)m.total());
    o.Set("moments", (double)m.optimizer);
    o.Set("baseParams", (double)m.base_params);
    o.Set("adapterParams", (double)m.adapter_params);
    o.Set("baseBytesPerParam", m.base_bytes_per_param);
    o.Set("scratch", (double)m.scratch);
    o.Set("activationsSaved", (double)m.activations_saved);
    o.Set("optimizerUnsharded", (double)m.optimizer_unsharded);
    return o;
  }

  // The bits of the base weights, the adapters (with LoRA) and both AdamW moments (unless sharded), hashed in that
  // order by two multiply-xor lanes, off the main thread: ranks compare it to prove their training state identical.
  Napi::Value Checksum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env, "checksum");
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto out = std::make_shared<std::string>();
    auto* job = new Job(
        env,
        [m, out, mirrors] {
          if (!mirrors) {
            *out =
                training_state_checksum(*m, {m->params(), m->base_bf16(),
                                             m->lora_enabled() ? m->lora_params() : nullptr, m->adam_m(), m->adam_v()});
            return;
          }
          // The host copies JavaScript may have written (a loaded checkpoint) are the state: sent first, then
          // the whole state is read back once into host memory and hashed there. Not part of a step.
          mirrors->params_to_device(*m), mirrors->moments_to_device(*m);
          const rt::Backend<float>& ops = m->backend();
          const size_t np = m->num_params(), nm = m->optimizer_elements();
          std::vector<float> params(m->params() ? np : 0), lora(m->num_lora_params()), adam_m(nm), adam_v(nm);
          std::vector<uint16_t> base16(m->base_is_bf16() ? np : 0);
          if (m->params()) ops.download(params.data(), m->params(), np);
          if (m->base_is_bf16()) ops.download_bf16(base16.data(), m->base_bf16(), np);
          if (m->lora_enabled()) ops.download(lora.data(), m->lora_params(), lora.size());
          ops.download(adam_m.data(), m->adam_m(), nm);
          ops.download(adam_v.data(), m->adam_v(), nm);
          *out = training_state_checksum(*m, {params.data(), base16.data(), lora.data(), adam_m.data(), adam_v.data()});
        },
        [out](Napi::Env e) { return (Napi::Value)Napi::String::New(e, *out); }, &busy_);
    job->Queue();
    return job->promise();
  }

  // Host copies of the model's buffers (the buffers themselves on the CPU backend).
  struct HostState {
    const float* params;     // the fp32 base, unless it is bf16
    const uint16_t* base16;  // the bf16 base, if so
    const float* lora;       // the adapters, with LoRA
    const float* adam_m;
    const float* adam_v;
  };
  static std::string training_state_checksum(Model<float>& m, const HostState& h) {
    uint32_t a = 0x811c9dc5u, b = 0x9e3779b9u, i = 0;
    auto hash = [&](const void* p, size_t n) {
      const auto* words = static_cast<const uint32_t*>(p);
      for (size_t j = 0; j < n; j++, i++) {
        const uint32_t w = words[j];
        a = (a ^ w) * 0x01000193u;
        b = ((b ^ (w + i)) * 0x85ebca6bu) ^ (b >> 13);
      }
    };
    if (m.base_is_bf16()) {
      // two bf16 weights per word; an odd last one widened alone
      const uint16_t* b = h.base16;
      hash(b, m.num_params() / 2);
      if (m.num_params() % 2) {
        const uint32_t last = b[m.num_params() - 1];
        hash(&last, 1);
      }
    } else {
      hash(h.params, m.num_params());
    }
    if (m.lora_enabled()) hash(h.lora, m.num_lora_params());
    // Under ZeRO-1 each rank holds different moments (its shard): only the weights must then match.
    if (m.optimizer_shard().empty()) {
      hash(h.adam_m, m.num_trainable());
      hash(h.adam_v, m.num_trainable());
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%08x%08x", a, b);
    return hex;
  }

  Napi::Value InitRandom(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      type_error(env, "initRandom: expected (seed: number, std: number)");
    const uint64_t seed = (uint64_t)info[0].As<Napi::Number>().Int64Value();
    const double std = info[1].As<Napi::Number>().DoubleValue();
    claim(env, "initRandom");
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto* job = new Job(
        env,
        [m, seed, std, mirrors] {
          m->init_random(seed, std);
          if (mirrors) mirrors->params_from_device(*m);
        },
        nullptr, &busy_);
    job->Queue();
    return job->promise();
  }

  // Allocates and zeroes the trainable parameters' gradients and moments off the main thread, so the
  // first step's views (gradData, optimizerData) cost nothing on it.
  Napi::Value PrepareTraining(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env, "prepareTraining");
    ModelPtr m = model_;
    auto* job = new Job(
        env, [m] { m->grads_buffer(); }, nullptr, &busy_);
    job->Queue();
    return job->promise();
  }

  // A sweep over every gradient (gigabytes for a large model): off the main thread, like a step.
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    claim(env, "zeroGrad");
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto* job = new Job(
        env,
        [m, mirrors] {
          m->zero_grad();
          if (mirrors) mirrors->grads_from_device(*m);
        },
        nullptr, &busy_);
    job->Queue();
    return job->promise();
  }

  Napi::Value ForwardBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "forwardBackward";
    Napi::Object b = object_arg(info, 0, call);
    Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    const int rows = int_field(b, call, "rows"), T = int_field(b, call, "seqLen");
    if (rows <= 0 || T <= 0) type_error(env, std::string(call) + ": rows and seqLen must be positive");
    const size_t n = (size_t)rows * T;
    auto ids = typed_field<Napi::Int32Array>(b, call, "inputIds", napi_int32_array, "Int32Array", n);
    auto labels = typed_field<Napi::Int32Array>(b, call, "labels", napi_int32_array, "Int32Array", n);
    auto pos = typed_field<Napi::Int32Array>(b, call, "positionIds", napi_int32_array, "Int32Array", n);
    auto seg = typed_field<Napi::Int32Array>(b, call, "segmentIds", napi_int32_array, "Int32Array", n);
    rt::StepOptions opts;
    opts.backward = bool_field(o, call, "backward", true);
    opts.keep_logits = bool_field(o, call, "keepLogits", false);
    const double zero = 0;
    opts.loss_scale = number_field(o, call, "lossScale", &zero);
    // zeroGrads: clears the gradients first, in the same native call (a full sweep of them is too long for
    // the main thread on a large model).
    const bool zero_grads = bool_field(o, call, "zeroGrads", false);
    std::shared_ptr<rt_binding::RingLinkState> link_state;  // keeps the link alive while the step runs
    const std::shared_ptr<rt::SequenceParallel> sp = rt_binding::sequence_parallel_option(o, call, &link_state);
    const std::shared_ptr<rt::DeviceRingLink> device_link = nccl_ring_link_option(o, sp.get(), call);
    if (device_link && !mirrors_)
      type_error(env,
                 std::string(call) + ": sequenceParallel.ncclComm needs a model on a CUDA device (cuda or cuda-emu)");
    opts.sp = sp.get();
    const std::shared_ptr<rt::CancelToken> cancel = rt_binding::cancel_token_option(o, call);
    opts.cancel = cancel.get();
    opts.adapters_off = bool_field(o, call, "adaptersOff", false);
    // labelWeights (Float32Array, rows * seqLen): each position's weight in the loss's gradient.
    Napi::Float32Array weights;
    if (!o.Get("labelWeights").IsUndefined()) {
      weights = typed_field<Napi::Float32Array>(o, call, "labelWeights", napi_float32_array, "Float32Array", n);
      opts.label_weights = weights.Data();
    }
    const rt::Batch batch{rows, T, ids.Data(), labels.Data(), pos.Data(), seg.Data()};
    // onGradsReady(offset, size): called on the main thread as each gradient bucket becomes final, so the
    // caller can all-reduce it while the backward goes on. Delivery is asynchronous: a caller must count
    // the buckets (gradBuckets in the result), not rely on the Promise settling after the last call.
    Napi::Value cb = o.Get("onGradsReady");
    std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
    const NcclBuckets nccl = nccl_buckets_option(o, call);
    if (nccl.comm && !mirrors_)
      type_error(env, std::string(call) + ": ncclBuckets needs a model on a CUDA device (cuda or cuda-emu)");
    if (nccl.comm && !cb.IsFunction()) {
      opts.on_grads_ready = [nccl, m = model_.get()](size_t offset, size_t size) { nccl.issue(*m, offset, size); };
    }
    if (cb.IsFunction()) {
      tsfn = std::make_shared<Napi::ThreadSafeFunction>(
          Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "ringtune.onGradsReady", 0, 1));
      // On a device the bucket reaches the host copy first (on a copy stream, JavaScript told once it has
      // landed): that copy is what JavaScript all-reduces. With the NCCL data plane it stays on the device and
      // is summed there; JavaScript is only told.
      opts.on_grads_ready = [tsfn, nccl, mirrors = mirrors_, m = model_.get()](size_t offset, size_t size) {
        auto tell = [tsfn, offset, size] {
          auto* range = new std::pair<size_t, size_t>(offset, size);
          tsfn->BlockingCall(range, [](Napi::Env e, Napi::Function fn, std::pair<size_t, size_t>* r) {
            const double off = (double)r->first, n = (double)r->second;
            delete r;
            fn.Call({Napi::Number::New(e, off), Napi::Number::New(e, n)});
          });
        };
        if (nccl.comm) nccl.issue(*m, offset, size);
        if (mirrors && !nccl.comm) return mirrors->send_bucket(*m, offset, size, tell);
        tell();
      };
    } else if (!cb.IsUndefined()) {
      type_error(env, std::string(call) + ": onGradsReady must be a function, got " + describe(cb));
    }
    claim(env, call);
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto result = std::make_shared<rt::StepResult>();
    const int buckets = model_->grad_buckets();
    auto* job = new Job(
        env,
        [m, batch, opts, result, tsfn, zero_grads, sp, link_state, device_link, cancel, mirrors, nccl] {
          struct ReleaseOnExit {
            std::shared_ptr<Napi::ThreadSafeFunction> f;
            ~ReleaseOnExit() {
              if (f) f->Release();
            }
          } release{tsfn};
          // Every staged bucket handed over before the callback is released, even when the step fails.
          struct DrainOnExit {
            const rt_binding::DeviceMirrors* mirrors;
            bool staged;
            ~DrainOnExit() {
              try {
                if (mirrors && staged) mirrors->drain_buckets();
              } catch (...) {  // the step's own failure is the one reported
              }
            }
          } drain{mirrors.get(), tsfn && !nccl.comm};
          // Gradients about to be cleared need not go up first.
          if (mirrors) mirrors->params_to_device(*m);
          if (mirrors && !zero_grads) mirrors->grads_to_device(*m);
          if (zero_grads) m->zero_grad();
          *result = m->forward_backward(batch, opts);
          if (drain.staged && mirrors) mirrors->drain_buckets();  // a failed hand-over fails the step
          // With onGradsReady each bucket came back as it became final, and JavaScript may be summing it in
          // place by now: a second copy would overwrite the sums.
          if (nccl.comm && opts.backward) {
            nccl.finish(*m);
            if (mirrors) mirrors->grads_from_device(*m);  // the sums, for the host copy's readers
          } else if (mirrors && opts.backward && !tsfn) {
            mirrors->grads_from_device(*m);
          }
        },
        [result, buckets](Napi::Env e) {
          Napi::Object r = Napi::Object::New(e);
          r.Set("lossSum", result->loss_sum);
          r.Set("targets", (double)result->targets);
          r.Set("loss", result->targets > 0 ? result->loss_sum / result->targets : NAN);
          r.Set("gradBuckets", buckets);
          return (Napi::Value)r;
        },
        &busy_);
    for (auto* a : {&ids, &labels, &pos, &seg}) job->keep(*a);
    if (opts.label_weights) job->keep(weights);
    job->Queue();
    return job->promise();
  }

#ifdef RINGTUNE_ADDON_CUDA_EMU
  // ncclCollective(comm, { op, buffer: "grads" | "weights", ranges: [offset, size][], timeoutMs }): one collective
  // per range of the model's device buffer on the NCCL data plane (a rank without rows this step sums its zero
  // gradients; ZeRO-1 all-gathers its updated weights: the adapters under LoRA, else the fp32 base), then the
  // host copy is refreshed.
  Napi::Value NcclCollective(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "ncclCollective";
    auto comm = info.Length() > 0 ? rt_binding::nccl_comm_of(info[0]) : nullptr;
    if (!comm) type_error(env, std::string(call) + ": argument 1 must be a NcclComm from ncclConnect");
    if (!mirrors_) type_error(env, std::string(call) + ": needs a model on a CUDA device (cuda or cuda-emu)");
    Napi::Object o = object_arg(info, 1, call);
    const rt_binding::NcclOp op = rt_binding::nccl_op(env, o.Get("op"), call);
    const std::string buffer = o.Get("buffer").IsString() ? o.Get("buffer").As<Napi::String>().Utf8Value() : "";
    if (buffer != "grads" && buffer != "weights")
      type_error(env, std::string(call) + ": buffer must be 'grads' or 'weights', got " + describe(o.Get("buffer")));
    const bool params = buffer == "weights";
    if (params && !model_->lora_enabled() && model_->base_is_bf16())
      type_error(env, std::string(call) + ": the weights of a frozen bf16 base do not train");
    const int timeout_ms = int_field(o, call, "timeoutMs");
    Napi::Value rv = o.Get("ranges");
    if (!rv.IsArray()) type_error(env, std::string(call) + ": ranges must be an array of [offset, size]");
    Napi::Array ra = rv.As<Napi::Array>();
    const size_t limit = model_->num_trainable();
    std::vector<std::pair<size_t, size_t>> ranges;
    for (uint32_t i = 0; i < ra.Length(); i++) {
      Napi::Value r = ra.Get(i);
      if (!r.IsArray() || r.As<Napi::Array>().Length() != 2)
        type_error(env, std::string(call) + ": ranges[" + std::to_string(i) + "] must be [offset, size]");
      const double off = r.As<Napi::Array>().Get(0u).ToNumber().DoubleValue();
      const double n = r.As<Napi::Array>().Get(1u).ToNumber().DoubleValue();
      if (!(off >= 0 && n >= 0 && off + n <= (double)limit) || off != (double)(size_t)off || n != (double)(size_t)n)
        throw Napi::RangeError::New(env, std::string(call) + ": ranges[" + std::to_string(i) +
                                             "] is outside the trainable buffer of " + std::to_string(limit));
      ranges.emplace_back((size_t)off, (size_t)n);
    }
    claim(env, call);
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto* job = new Job(
        env,
        [m, mirrors, comm, op, params, ranges, timeout_ms] {
          if (mirrors) params ? mirrors->params_to_device(*m) : mirrors->grads_to_device(*m);
          float* base = !params ? m->grads() : m->lora_enabled() ? m->lora_params() : m->params();
          const auto compute = static_cast<rt::nccl::Stream>(m->backend().compute_stream());
          for (const auto& [off, n] : ranges) rt_binding::run_nccl_op(*comm, op, base + off, n, compute);
          comm->finish(compute, timeout_ms);
          if (mirrors) params ? mirrors->params_from_device(*m) : mirrors->grads_from_device(*m);
        },
        nullptr, &busy_);
    job->Queue();
    return job->promise();
  }
#endif

  // Results of the last forward, copied out: they are small next to the weights, and a copy stays valid
  // after the next step reuses the activation memory.
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    require_idle(info.Env(), "logits");
    if (!model_->logits())
      throw Napi::Error::New(info.Env(), "logits: the last forwardBackward kept no logits (pass keepLogits: true)");
    const size_t n = model_->last_positions() * model_->config().vocab_size;
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
    if (n) model_->backend().download(out.Data(), model_->logits(), n);
    return out;
  }
  Napi::Value TokenLosses(const Napi::CallbackInfo& info) {
    require_idle(info.Env(), "tokenLosses");
    const size_t n = model_->last_positions();
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
    if (n) model_->backend().download(out.Data(), model_->token_losses(), n);
    return out;
  }

  Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "adamwStep";
    Napi::Object o = object_arg(info, 0, call);
    const double zero = 0, none = -1;
    const rt::AdamWOptions opts{number_field(o, call, "lr"),
                                number_field(o, call, "beta1"),
                                number_field(o, call, "beta2"),
                                number_field(o, call, "eps"),
                                number_field(o, call, "weightDecay"),
                                number_field(o, call, "maxGradNorm", &zero),
                                number_field(o, call, "gradNorm", &none)};
    const bool host_update = bool_field(o, call, "hostUpdate", false);
    claim(env, call);
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto result = std::make_shared<rt::AdamWResult>();
    auto* job = new Job(
        env,
        [m, opts, result, mirrors, host_update] {
          if (mirrors && host_update) {
            *result = mirrors->adamw_step_on_host(*m, opts);
            return;
          }
          if (mirrors) mirrors->params_to_device(*m), mirrors->grads_to_device(*m), mirrors->moments_to_device(*m);
          *result = m->adamw_step(opts);
          if (mirrors) mirrors->params_from_device(*m), mirrors->moments_from_device(*m);
        },
        [result](Napi::Env e) {
          Napi::Object r = Napi::Object::New(e);
          r.Set("gradNorm", result->grad_norm);
          r.Set("step", (double)result->step);
          return (Napi::Value)r;
        },
        &busy_);
    job->Queue();
    return job->promise();
  }

  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "generate";
    Napi::Object o = object_arg(info, 0, call);
    rt::GenerateOptions g;
    auto prompt = typed_field<Napi::Int32Array>(o, call, "promptIds", napi_int32_array, "Int32Array", 0);
    g.prompt.assign(prompt.Data(), prompt.Data() + prompt.ElementLength());
    g.max_new = int_field(o, call, "maxNew");
    const double zero = 0, one = 1;
    g.temperature = number_field(o, call, "temperature", &zero);
    g.top_p = number_field(o, call, "topP", &one);
    g.seed = (uint64_t)number_field(o, call, "seed", &zero);
    if (!o.Get("eosIds").IsUndefined()) {
      auto eos = typed_field<Napi::Int32Array>(o, call, "eosIds", napi_int32_array, "Int32Array", 0);
      g.eos.assign(eos.Data(), eos.Data() + eos.ElementLength());
    }
    for (int32_t t : g.prompt)
      if (t < 0 || t >= model_->config().vocab_size)
        type_error(env, std::string(call) + ": prompt token " + std::to_string(t) + " outside vocab [0," +
                            std::to_string(model_->config().vocab_size) + ")");
    claim(env, call);
    ModelPtr m = model_;
    auto mirrors = mirrors_;
    auto out = std::make_shared<std::vector<int32_t>>();
    auto* job = new Job(
        env,
        [m, g, out, mirrors] {
          if (mirrors) mirrors->params_to_device(*m);
          *out = m->generate(g);
        },
        [out](Napi::Env e) {
          Napi::Int32Array a = Napi::Int32Array::New(e, out->size());
          std::copy(out->begin(), out->end(), a.Data());
          return (Napi::Value)a;
        },
        &busy_);
    job->Queue();
    return job->promise();
  }

  ModelPtr model_;
  std::shared_ptr<rt_binding::DeviceMirrors> mirrors_;  // set for a model on a device (see its header)
  std::atomic<bool> busy_{false};
  Napi::Reference<Napi::Float32Array> params_view_, grads_view_, m_view_, v_view_, lora_view_;
  Napi::Reference<Napi::Uint16Array> base16_view_;
};

Napi::FunctionReference* ModelWrap::constructor = nullptr;

#include "batched_binding.h"

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  return ModelWrap::constructor->New({info.Length() > 0 ? info[0] : info.Env().Undefined()});
}

// N of "cuda:N" (one to three digits), else -1.
int cuda_index(const std::string& device) {
  if (device.size() < 6 || device.size() > 8 || device.compare(0, 5, "cuda:") != 0) return -1;
  int n = 0;
  for (size_t i = 5; i < device.size(); i++) {
    if (device[i] < '0' || device[i] > '9') return -1;
    n = n * 10 + (device[i] - '0');
  }
  return n;
}

// Allocating and zeroing the weights of a large model takes seconds: done off the main thread, so the
// event loop (heartbeats among it) keeps running.
Napi::Value CreateModelAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const rt::ModelConfig c = config_from(object_arg(info, 0, "createModelAsync"));
  // { baseBf16: true }: the base is created frozen in bf16 for LoRA, never held in fp32 first.
  const bool base_bf16 = info.Length() > 1 && info[1].IsObject() &&
                         bool_field(info[1].As<Napi::Object>(), "createModelAsync", "baseBf16", false);
  // { device: "cuda-emu" }: the model over the CUDA backend run by the CUDA emulator (slow; for tests and for
  // checking a set-up without a GPU). { device: "cuda:N" }: over the CUDA backend of ringtune_cuda_device.so
  // (loaded now, beside this addon) on GPU N. Default "cpu".
  std::string device = "cpu";
  if (info.Length() > 1 && info[1].IsObject() && !info[1].As<Napi::Object>().Get("device").IsUndefined())
    device = info[1].As<Napi::Object>().Get("device").ToString().Utf8Value();
  // { precision: "bf16" }: a CUDA device computes GEMMs and attention on bf16 operands over fp32 master weights;
  // "fp32" (the default) is the checking mode. The CPU computes in fp32 whatever it says.
  std::string precision = "fp32";
  if (info.Length() > 1 && info[1].IsObject() && !info[1].As<Napi::Object>().Get("precision").IsUndefined())
    precision = info[1].As<Napi::Object>().Get("precision").ToString().Utf8Value();
  if (precision != "fp32" && precision != "bf16")
    type_error(env, "createModelAsync: precision must be \"fp32\" or \"bf16\", got \"" + precision + "\"");
  const bool bf16 = precision == "bf16";
  const int gpu = cuda_index(device);
  if (device != "cpu" && device != "cuda-emu" && gpu < 0)
    type_error(env, "createModelAsync: device must be \"cpu\", \"cuda:N\" or \"cuda-emu\", got \"" + device + "\"");
  if (device == "cuda-emu" && !kCudaEmu)
    type_error(env, "createModelAsync: this addon was built without the CUDA emulator (device \"cuda-emu\")");
  auto built = std::make_shared<ModelPtr>();
  auto* job = new Job(
      env,
      [c, built, base_bf16, device, gpu, bf16] {
        if (device == "cpu") {
          *built = std::make_shared<Model<float>>(c, rt::cpu_backend<float>(), base_bf16);
          return;
        }
        if (gpu >= 0) {
          // The backend (and so every buffer the model allocates) on GPU `gpu`; it makes that device current on
          // whichever thread calls it.
          std::shared_ptr<rt::Backend<float>> backend =
              rt::make_cuda_device_backend(rt::cuda_device_library_path(rt::this_module_path()), gpu, bf16);
          *built = ModelPtr(new Model<float>(c, *backend, base_bf16), [backend](Model<float>* m) { delete m; });
          return;
        }
#ifdef RINGTUNE_ADDON_CUDA_EMU
        // The model holds its backend by reference: the model's owner keeps the backend too.
        std::shared_ptr<rt::Backend<float>> backend =
            rt::cuda::make_cuda_backend(0, bf16 ? rt::cuda::Precision::bf16 : rt::cuda::Precision::fp32);
        *built = ModelPtr(new Model<float>(c, *backend, base_bf16), [backend](Model<float>* m) { delete m; });
#endif
      },
      [built](Napi::Env e) {
        return (Napi::Value)ModelWrap::constructor->New({Napi::External<ModelPtr>::New(e, built.get())});
      },
      nullptr);
  job->Queue();
  return job->promise();
}

// ---- tensor file I/O -------------------------------------------------------------------------------------

Napi::Value ReadTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "readTensors";
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray())
    type_error(env, std::string(call) + ": expected (file: string, items: array)");
  const std::string file = info[0].As<Napi::String>().Utf8Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<rt::ReadItem> items;
  std::vector<Napi::Value> keep;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object it = arr.Get(i).As<Napi::Object>();
    const size_t count = (size_t)number_field(it, call, "count");
    // A Uint16Array takes bf16 bits (a frozen bf16 base), read in place; a Float32Array float32 values.
    Napi::Value dv = it.Get("dst");
    const bool to_bf16 = dv.IsTypedArray() && dv.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
    Napi::TypedArray dst = to_bf16 ? dv.As<Napi::TypedArray>()
                                   : typed_field<Napi::Float32Array>(it, call, "dst", napi_float32_array,
                                                                     "Float32Array or Uint16Array", 0);
    if (dst.ElementLength() < count)
      type_error(env, std::string(call) + ": " + file + ": item " + std::to_string(i) + " has count " +
                          std::to_string(count) + " but dst holds " + std::to_string(dst.ElementLength()));
    Napi::Value dt = it.Get("dtype");
    rt::Dtype dtype;
    try {
      dtype = rt::parse_dtype(dt.IsString() ? dt.As<Napi::String>().Utf8Value() : describe(dt));
    } catch (const std::exception& e) {
      throw Napi::TypeError::New(env, std::string(call) + ": " + file + ": " + e.what());
    }
    const uint64_t offset = (uint64_t)number_field(it, call, "fileOffset");
    // name and firstIndex (optional) only say where a NaN or Inf was found.
    Napi::Value name = it.Get("name");
    Napi::Value first = it.Get("firstIndex");
    rt::ReadItem item{offset, dtype, count, nullptr};
    if (to_bf16) item.dst_bf16 = dv.As<Napi::Uint16Array>().Data();
    else item.dst = dst.As<Napi::Float32Array>().Data();
    item.name = name.IsString() ? name.As<Napi::String>().Utf8Value() : "";
    item.first_index = first.IsNumber() ? (size_t)first.As<Napi::Number>().DoubleValue() : 0;
    items.push_back(std::move(item));
    keep.push_back(dst);
  }
  // onProgress(bytesRead): on the main thread, after each chunk (asynchronously; calls may trail the Promise).
  std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
  if (info.Length() > 2 && info[2].IsFunction())
    tsfn = std::make_shared<Napi::ThreadSafeFunction>(
        Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "ringtune.readProgress", 0, 1));
  else if (info.Length() > 2 && !info[2].IsUndefined())
    type_error(env, std::string(call) + ": onProgress must be a function, got " + describe(info[2]));
  auto* job = new Job(
      env,
      [file, items, tsfn] {
        struct ReleaseOnExit {
          std::shared_ptr<Napi::ThreadSafeFunction> f;
          ~ReleaseOnExit() {
            if (f) f->Release();
          }
        } release{tsfn};
        std::function<void(uint64_t)> progress;
        if (tsfn)
          progress = [tsfn](uint64_t done) {
            auto* d = new uint64_t(done);
            // Non-blocking: a slow main thread must not stall the read; a dropped report is superseded.
            if (tsfn->NonBlockingCall(d, [](Napi::Env e, Napi::Function fn, uint64_t* v) {
                  const double n = (double)*v;
                  delete v;
                  fn.Call({Napi::Number::New(e, n)});
                }) != napi_ok)
              delete d;
          };
        rt::read_tensors(file, items, progress);
      },
      nullptr, nullptr);
  for (Napi::Value& v : keep) job->keep(v);
  job->Queue();
  return job->promise();
}

Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "writeSafetensors";
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsArray())
    type_error(env, std::string(call) + ": expected (file: string, header: Uint8Array, items: array)");
  const std::string file = info[0].As<Napi::String>().Utf8Value();
  Napi::Uint8Array h = info[1].As<Napi::Uint8Array>();
  std::vector<uint8_t> header(h.Data(), h.Data() + h.ElementLength());
  Napi::Array arr = info[2].As<Napi::Array>();
  std::vector<rt::WriteItem> items;
  std::vector<Napi::Value> keep;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object it = arr.Get(i).As<Napi::Object>();
    Napi::Value dt = it.Get("dtype");
    const std::string dname = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : describe(dt);
    if (dname != "F32" && dname != "BF16")
      type_error(env, std::string(call) + ": " + file + ": item " + std::to_string(i) +
                          " dtype must be F32 or BF16, got " + dname);
    Napi::Value sv = it.Get("src");
    // A Uint16Array holds bf16 bits (a frozen bf16 base); a Float32Array fp32 values.
    if (sv.IsTypedArray() && sv.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
      auto src = sv.As<Napi::Uint16Array>();
      items.push_back({nullptr, src.ElementLength(), rt::parse_dtype(dname), src.Data()});
      keep.push_back(src);
      continue;
    }
    auto src = typed_field<Napi::Float32Array>(it, call, "src", napi_float32_array, "Float32Array or Uint16Array", 0);
    items.push_back({src.Data(), src.ElementLength(), rt::parse_dtype(dname)});
    keep.push_back(src);
  }
  auto* job = new Job(
      env, [file, header, items] { rt::write_safetensors(file, header, items); }, nullptr, nullptr);
  for (Napi::Value& v : keep) job->keep(v);
  job->Queue();
  return job->promise();
}

// probeCuda(index): whether CUDA device `index` is usable, from the NVIDIA driver (fast: no context is made).
Napi::Value ProbeCuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) type_error(env, "probeCuda: index must be a number");
  const rt::CudaProbe p = rt::probe_cuda(info[0].As<Napi::Number>().Int32Value());
  Napi::Object o = Napi::Object::New(env);
  o.Set("usable", p.usable());
  o.Set("problem", rt::cuda_problem_name(p.problem));
  o.Set("message", p.message);
  o.Set("deviceName", p.device_name);
  o.Set("devices", p.devices);
  o.Set("driverVersion", p.driver_version);
  o.Set("computeCapability", p.compute_capability);
  o.Set("memoryBytes", static_cast<double>(p.memory_bytes));
  const std::vector<int> built = rt::built_cuda_archs();
  Napi::Array archs = Napi::Array::New(env, built.size());
  for (size_t i = 0; i < built.size(); ++i) archs.Set(static_cast<uint32_t>(i), built[i]);
  o.Set("builtArchs", archs);
  return o;
}

// cudaLibrary(): whether the GPU library (ringtune_cuda_device.so beside this addon, or RINGTUNE_CUDA_LIBRARY) loads
// here, without touching a GPU: { loaded, path, message, build }.
Napi::Value CudaLibrary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const rt::CudaDeviceLibrary lib =
      rt::load_cuda_device_library(rt::cuda_device_library_path(rt::this_module_path()), rt::backend_abi());
  Napi::Object o = Napi::Object::New(env);
  o.Set("loaded", lib.loaded());
  o.Set("path", lib.path);
  o.Set("message", lib.error);
  o.Set("build", lib.loaded() ? lib.table->build : "");
  return o;
}

// deviceMemory("cuda:N" | "cuda-emu"): { freeBytes, totalBytes } of that device as the CUDA runtime counts them
// (the GPU library's, or the emulator's arena); throws naming the reason. Fast once the device is in use.
Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) type_error(env, "deviceMemory: device must be a string");
  const std::string device = info[0].As<Napi::String>().Utf8Value();
  size_t free_bytes = 0, total_bytes = 0;
  const int gpu = cuda_index(device);
  if (gpu >= 0) {
    const rt::CudaDeviceLibrary lib =
        rt::load_cuda_device_library(rt::cuda_device_library_path(rt::this_module_path()), rt::backend_abi());
    if (!lib.loaded()) throw Napi::Error::New(env, "deviceMemory: " + lib.error);
    char error[512] = "";
    if (!lib.table->memory(gpu, &free_bytes, &total_bytes, error, sizeof error))
      throw Napi::Error::New(env, std::string("deviceMemory: ") + error);
  } else if (device == "cuda-emu" && kCudaEmu) {
#ifdef RINGTUNE_ADDON_CUDA_EMU
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess)
      throw Napi::Error::New(env, "deviceMemory: the CUDA emulator did not answer");
#endif
  } else {
    type_error(env, "deviceMemory: device must be \"cuda:N\" or \"cuda-emu\" (in an addon with the emulator), got \"" +
                        device + "\"");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("freeBytes", static_cast<double>(free_bytes));
  o.Set("totalBytes", static_cast<double>(total_bytes));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ModelWrap::constructor = new Napi::FunctionReference(Napi::Persistent(ModelWrap::Define(env)));
  exports.Set("ignoreIndex", Napi::Number::New(env, rt::kIgnoreIndex));
  exports.Set("cudaEmu", Napi::Boolean::New(env, kCudaEmu));
  exports.Set("createModel", Napi::Function::New(env, CreateModel));
  DecoderWrap::constructor = new Napi::FunctionReference(Napi::Persistent(DecoderWrap::Define(env)));
  exports.Set("createBatchedDecoder", Napi::Function::New(env, CreateBatchedDecoder));
  exports.Set("createModelAsync", Napi::Function::New(env, CreateModelAsync));
  exports.Set("readTensors", Napi::Function::New(env, ReadTensors));
  exports.Set("writeSafetensors", Napi::Function::New(env, WriteSafetensors));
  exports.Set("probeCuda", Napi::Function::New(env, ProbeCuda));
  exports.Set("cudaLibrary", Napi::Function::New(env, CudaLibrary));
  exports.Set("deviceMemory", Napi::Function::New(env, DeviceMemory));
  rt_binding::RegisterRingLink(env, exports);
#ifdef RINGTUNE_ADDON_CUDA_EMU
  rt_binding::RegisterNccl(env, exports);
#endif
  rt_binding::RegisterCancelToken(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(ringtune_native, Init)
