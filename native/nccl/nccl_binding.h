#pragma once
// The Node face of the NCCL data plane: ncclProbe() says whether libnccl.so.2 opens here (and which file);
// ncclUniqueId() makes the id a ring's first rank hands out; ncclConnect(id, rank, size, timeoutMs) joins the
// communicator off the main thread and resolves to a NcclComm, whose abort() ends it from the main thread (a
// collective blocked on a silent peer fails at once) and whose collective(data, op, timeoutMs) runs one
// collective on a copy of a host array in device memory (for tests and tools; a step's buckets stay on the
// device: forwardBackward's ncclBuckets option and the model's ncclCollective, in binding.cpp).
#include <napi.h>

#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <string>
#include "nccl_comm.h"

namespace rt_binding {

enum class NcclOp { AllReduce, ReduceScatter, AllGather };

inline NcclOp nccl_op(Napi::Env env, const Napi::Value& v, const char* call) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "all-reduce") return NcclOp::AllReduce;
  if (s == "reduce-scatter") return NcclOp::ReduceScatter;
  if (s == "all-gather") return NcclOp::AllGather;
  throw Napi::TypeError::New(env, std::string(call) + ": op must be 'all-reduce', 'reduce-scatter' or 'all-gather'");
}

// One collective on device memory `p` of n floats, ordered after `compute`'s work so far.
inline void run_nccl_op(rt::nccl::Communicator& c, NcclOp op, float* p, size_t n, cudaStream_t compute) {
  switch (op) {
    case NcclOp::AllReduce: return c.all_reduce(p, n, compute);
    case NcclOp::ReduceScatter: return c.reduce_scatter(p, n, compute);
    case NcclOp::AllGather: return c.all_gather(p, n, compute);
  }
}

inline const rt::nccl::Library& nccl_library(Napi::Env env) {
  std::string why;
  const rt::nccl::Library* lib = rt::nccl::load_library(&why);
  if (!lib) throw Napi::Error::New(env, "NCCL: " + why);
  return *lib;
}

class NcclCommWrap : public Napi::ObjectWrap<NcclCommWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "NcclComm",
        {InstanceAccessor("rank", &NcclCommWrap::Rank, nullptr), InstanceAccessor("size", &NcclCommWrap::Size, nullptr),
         InstanceAccessor("aborted", &NcclCommWrap::Aborted, nullptr), InstanceMethod("abort", &NcclCommWrap::Abort),
         InstanceMethod("collective", &NcclCommWrap::Collective)});
  }
  explicit NcclCommWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NcclCommWrap>(info) {}
  std::shared_ptr<rt::nccl::Communicator> comm;

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), comm->rank()); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), comm->size()); }
  Napi::Value Aborted(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), comm->aborted()); }
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    comm->abort();
    return info.Env().Undefined();
  }
  Napi::Value Collective(const Napi::CallbackInfo& info);
};

inline Napi::FunctionReference* NcclCommWrap::constructor = nullptr;

// Runs a function on a libuv thread and settles a promise: with `result` on success, the message on failure.
class NcclTask : public Napi::AsyncWorker {
 public:
  using Exec = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;
  NcclTask(Napi::Env env, Exec exec, Result result)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        result_(std::move(result)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void keep(Napi::Value v) { kept_ = Napi::Persistent(v); }

 protected:
  void Execute() override {
    try {
      exec_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Result result_;
  Napi::Reference<Napi::Value> kept_;
};

inline Napi::Value NcclCommWrap::Collective(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "collective: expects (data: Float32Array, op, timeoutMs: number)");
  Napi::Float32Array data = info[0].As<Napi::Float32Array>();
  const NcclOp op = nccl_op(env, info[1], "collective");
  const int timeout_ms = info[2].As<Napi::Number>().Int32Value();
  auto c = comm;
  float* host = data.Data();
  const size_t n = data.ElementLength();
  auto* task = new NcclTask(
      env,
      [c, op, host, n, timeout_ms] {
        float* dev = nullptr;
        if (cudaMalloc(&dev, n * sizeof(float) + 1) != cudaSuccess) throw std::runtime_error("collective: cudaMalloc");
        struct Free {
          float* p;
          ~Free() { cudaFree(p); }
        } release{dev};
        if (cudaMemcpy(dev, host, n * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess)
          throw std::runtime_error("collective: upload failed");
        run_nccl_op(*c, op, dev, n, nullptr);
        c->finish(nullptr, timeout_ms);
        if (cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
          throw std::runtime_error("collective: download failed");
      },
      nullptr);
  task->keep(data);
  task->Queue();
  return task->promise();
}

inline Napi::Value NcclProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  std::string why;
  const rt::nccl::Library* lib = rt::nccl::load_library(&why);
  o.Set("available", lib != nullptr);
  if (lib) {
    o.Set("path", lib->path);
    o.Set("version", lib->version);
  } else {
    o.Set("reason", why);
  }
  return o;
}

inline Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const rt::nccl::Library& lib = nccl_library(env);
  rt::nccl::UniqueId id{};
  try {
    id = rt::nccl::new_unique_id(lib);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(env, rt::nccl::kUniqueIdBytes);
  std::memcpy(out.Data(), id.internal, rt::nccl::kUniqueIdBytes);
  return out;
}

inline Napi::Value NcclConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[1].IsNumber() ||
      !info[2].IsNumber() || !info[3].IsNumber())
    throw Napi::TypeError::New(env, "ncclConnect: expects (id: Uint8Array, rank, size, timeoutMs: number)");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  if (bytes.ElementLength() != rt::nccl::kUniqueIdBytes)
    throw Napi::RangeError::New(env, "ncclConnect: id must be " + std::to_string(rt::nccl::kUniqueIdBytes) +
                                         " bytes, got " + std::to_string(bytes.ElementLength()));
  rt::nccl::UniqueId id{};
  std::memcpy(id.internal, bytes.Data(), rt::nccl::kUniqueIdBytes);
  const int rank = info[1].As<Napi::Number>().Int32Value(), size = info[2].As<Napi::Number>().Int32Value();
  const int timeout_ms = info[3].As<Napi::Number>().Int32Value();
  const rt::nccl::Library& lib = nccl_library(env);
  auto made = std::make_shared<std::shared_ptr<rt::nccl::Communicator>>();
  auto* task = new NcclTask(
      env,
      [&lib, id, rank, size, timeout_ms, made] {
        *made = rt::nccl::Communicator::connect(lib, id, rank, size, timeout_ms);
      },
      [made](Napi::Env e) {
        Napi::Object obj = NcclCommWrap::constructor->New({});
        NcclCommWrap::Unwrap(obj)->comm = *made;
        return (Napi::Value)obj;
      });
  task->Queue();
  return task->promise();
}

// A NcclComm passed to a model call; null for anything else.
inline std::shared_ptr<rt::nccl::Communicator> nccl_comm_of(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(NcclCommWrap::constructor->Value())) return nullptr;
  return NcclCommWrap::Unwrap(v.As<Napi::Object>())->comm;
}

inline void RegisterNccl(Napi::Env env, Napi::Object exports) {
  NcclCommWrap::constructor = new Napi::FunctionReference(Napi::Persistent(NcclCommWrap::Define(env)));
  exports.Set("ncclProbe", Napi::Function::New(env, NcclProbe));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
  exports.Set("ncclConnect", Napi::Function::New(env, NcclConnect));
}

}  // namespace rt_binding
