#pragma once
// The binding of BatchedDecoder (batched_generate.h): included by binding.cpp inside its anonymous
// namespace, after ModelWrap, so it shares the argument helpers, the Job worker, claim_busy and js_errors. step() runs
// off the main thread; adding or dropping adapters and sequences is cheap and runs on it, between or during steps.
#include "batched_generate.h"

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "BatchedDecoder",
        {InstanceMethod("addAdapter", &DecoderWrap::AddAdapter),
         InstanceMethod("removeAdapter", &DecoderWrap::RemoveAdapter), InstanceMethod("open", &DecoderWrap::Open),
         InstanceMethod("close", &DecoderWrap::Close), InstanceMethod("step", &DecoderWrap::Step),
         InstanceMethod("stepWithLogprobs", &DecoderWrap::StepWithLogprobs),
         InstanceMethod("memory", &DecoderWrap::Memory)});
  }

  // (model, {baseBf16?}): with baseBf16 the model's fp32 base is rounded to bf16 and freed first.
  DecoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecoderWrap>(info) {
    Napi::Env env = info.Env();
    const char* call = "createBatchedDecoder";
    if (info.Length() < 1 || !info[0].IsObject() ||
        !info[0].As<Napi::Object>().InstanceOf(ModelWrap::constructor->Value()))
      type_error(env, "createBatchedDecoder: argument 1 must be a NativeModel, got " +
                          (info.Length() > 0 ? describe(info[0]) : std::string("nothing")));
    ModelWrap* model = ModelWrap::Unwrap(info[0].As<Napi::Object>());
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (bool_field(object_arg(info, 1, call), call, "baseBf16", false)) model->RoundBaseToBf16(env, call);
    }
    decoder_ = js_errors(env, [&] { return std::make_shared<rt::BatchedDecoder>(model->model()); });
    if (model->mirrors_) base_upload_ = std::make_shared<BaseUpload>(BaseUpload{model->model(), model->mirrors_});
  }

 private:
  // addAdapter(id, settings) -> { params: [{name, offset, size, shape}], data: Float32Array } to fill.
  Napi::Value AddAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber())
      type_error(env, "addAdapter: expected (id: number, settings: LoraSettings)");
    const int id = info[0].As<Napi::Number>().Int32Value();
    Napi::Object o = object_arg(info, 1, "addAdapter");
    rt::LoraConfig l;
    l.rank = int_field(o, "addAdapter", "rank");
    l.alpha = number_field(o, "addAdapter", "alpha");
    l.rslora = bool_field(o, "addAdapter", "rslora", false);
    Napi::Value targets = o.Get("targets");
    if (!targets.IsArray())
      type_error(env, "addAdapter: targets must be an array of module names, got " + describe(targets));
    Napi::Array ta = targets.As<Napi::Array>();
    for (uint32_t i = 0; i < ta.Length(); i++) l.targets.push_back(ta.Get(i).ToString().Utf8Value());
    auto a = js_errors(env, [&] { return decoder_->add_adapter(id, l); });
    using Owner = std::shared_ptr<rt::AdapterWeights>;
    auto* owner = new Owner(a);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, a->weights.data(), a->weights.size() * sizeof(float), [](Napi::Env, void*, Owner* hint) { delete hint; },
        owner);
    Napi::Object out = Napi::Object::New(env);
    out.Set("params", ModelWrap::EntriesToJs(env, a->table.entries));
    out.Set("data", Napi::Float32Array::New(env, a->weights.size(), ab, 0));
    return out;
  }

  Napi::Value RemoveAdapter(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) type_error(info.Env(), "removeAdapter: expected (id: number)");
    const int id = info[0].As<Napi::Number>().Int32Value();
    js_errors(info.Env(), [&] { decoder_->remove_adapter(id); });
    return info.Env().Undefined();
  }

  // open(sequence, adapter (-1: base), capacity)
  Napi::Value Open(const Napi::CallbackInfo& info) {
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
      type_error(info.Env(), "open: expected (sequence: number, adapter: number, capacity: number)");
    const int s = info[0].As<Napi::Number>().Int32Value(), a = info[1].As<Napi::Number>().Int32Value(),
              cap = info[2].As<Napi::Number>().Int32Value();
    js_errors(info.Env(), [&] { decoder_->open(s, a, cap); });
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) type_error(info.Env(), "close: expected (sequence: number)");
    decoder_->close(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }

  // OpenAI's cap on top_logprobs.
  static constexpr int kMaxTopLogprobs = 20;

  // [{sequence, tokens: Int32Array, temperature, topP, seed, draw, topLogprobs?}], checked and copied.
  std::vector<rt::DecodeRow> step_rows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* call = "step";
    if (info.Length() < 1 || !info[0].IsArray()) type_error(env, "step: expected an array of rows");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<rt::DecodeRow> rows(arr.Length());
    const int V = decoder_->config().vocab_size;
    const double zero = 0, one = 1;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      if (!arr.Get(i).IsObject()) type_error(env, "step: row " + std::to_string(i) + " must be an object");
      Napi::Object o = arr.Get(i).As<Napi::Object>();
      rt::DecodeRow& r = rows[i];
      r.sequence = int_field(o, call, "sequence");
      auto t = typed_field<Napi::Int32Array>(o, call, "tokens", napi_int32_array, "Int32Array", 0);
      r.tokens.assign(t.Data(), t.Data() + t.ElementLength());
      for (int32_t id : r.tokens)
        if (id < 0 || id >= V)
          type_error(env, "step: row " + std::to_string(i) + ": token " + std::to_string(id) + " outside vocab [0," +
                              std::to_string(V) + ")");
      r.temperature = number_field(o, call, "temperature", &zero);
      r.top_p = number_field(o, call, "topP", &one);
      r.seed = (uint64_t)number_field(o, call, "seed", &zero);
      r.draw = (int64_t)number_field(o, call, "draw", &zero);
      r.top_logprobs = (int)number_field(o, call, "topLogprobs", &zero);
      if (r.top_logprobs < 0 || r.top_logprobs > kMaxTopLogprobs)
        type_error(env, "step: row " + std::to_string(i) + ": topLogprobs must be in [0, " +
                            std::to_string(kMaxTopLogprobs) + "], got " + std::to_string(r.top_logprobs));
    }
    return rows;
  }

  template <typename TA, typename T>
  static TA typed_copy(Napi::Env env, const std::vector<T>& v) {
    TA a = TA::New(env, v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
  }

  // step(rows) -> Promise<Int32Array>: each row's next token.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<rt::DecodeRow> rows = step_rows(info);
    claim_busy(busy_, env, "step", "decoder");
    auto d = decoder_;
    auto up = base_upload_;
    auto out = std::make_shared<std::vector<int32_t>>();
    auto* job = new Job(
        env,
        [d, rows, out, up] {
          if (up) up->once();
          *out = d->step(rows);
        },
        [out](Napi::Env e) { return (Napi::Value)typed_copy<Napi::Int32Array>(e, *out); }, &busy_);
    job->Queue();
    return job->promise();
  }

  // stepWithLogprobs(rows) -> Promise<{tokens, logprobs, topK, topIds, topLogprobs}> (see StepLogprobs).
  Napi::Value StepWithLogprobs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<rt::DecodeRow> rows = step_rows(info);
    claim_busy(busy_, env, "stepWithLogprobs", "decoder");
    auto d = decoder_;
    auto up = base_upload_;
    auto out = std::make_shared<std::vector<int32_t>>();
    auto lp = std::make_shared<rt::StepLogprobs>();
    auto* job = new Job(
        env,
        [d, rows, out, lp, up] {
          if (up) up->once();
          *out = d->step(rows, lp.get());
        },
        [out, lp](Napi::Env e) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("tokens", typed_copy<Napi::Int32Array>(e, *out));
          o.Set("logprobs", typed_copy<Napi::Float32Array>(e, lp->chosen));
          o.Set("topK", lp->k);
          o.Set("topIds", typed_copy<Napi::Int32Array>(e, lp->top_ids));
          o.Set("topLogprobs", typed_copy<Napi::Float32Array>(e, lp->top_logprobs));
          return (Napi::Value)o;
        },
        &busy_);
    job->Queue();
    return job->promise();
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    const rt::DecoderMemory m = decoder_->memory();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("base", (double)m.base);
    o.Set("adapters", (double)m.adapters);
    o.Set("caches", (double)m.caches);
    o.Set("baseBytesPerParam", m.base_bytes_per_param);
    return o;
  }

  // A base on a device: JavaScript wrote its weights into the model's host copy (loading them), which the
  // model's own calls upload at their start. The decoder runs the layers without the model's calls, so its
  // first step uploads that copy (off the main thread; steps run one at a time, so once).
  struct BaseUpload {
    ModelPtr model;
    std::shared_ptr<rt_binding::DeviceMirrors> mirrors;
    bool done = false;
    void once() {
      if (done) return;
      mirrors->params_to_device(*model);
      done = true;
    }
  };

  std::shared_ptr<rt::BatchedDecoder> decoder_;
  std::shared_ptr<BaseUpload> base_upload_;  // null for a base in host memory
  std::atomic<bool> busy_{false};
};

Napi::FunctionReference* DecoderWrap::constructor = nullptr;

Napi::Value CreateBatchedDecoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return DecoderWrap::constructor->New(
      {info.Length() > 0 ? info[0] : env.Undefined(), info.Length() > 1 ? info[1] : env.Undefined()});
}
