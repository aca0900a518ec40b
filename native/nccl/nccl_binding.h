#pragma once
// The Node face of the NCCL data plane: ncclProbe(device?) says whether libnccl.so.2 opens here (and which file);
// ncclUniqueId(device?) makes the id a ring's first rank hands out; ncclConnect(id, rank, size, timeoutMs, device?)
// joins the communicator off the main thread and resolves to a NcclComm, whose abort() ends it from the main thread
// (a collective blocked on a silent peer fails at once) and whose collective(data, op, timeoutMs) runs one
// collective on a copy of a host array in device memory (for tests and tools; a step's buckets stay on the
// device: forwardBackward's ncclBuckets option and the model's ncclCollective, in binding.cpp).
// `device` picks the data plane of the runtime that holds the models: "cuda-emu" (the default) the emulator's,
// linked into the addon; "cuda:N" the one inside the GPU library (ringtune_cuda_device.so), on GPU N.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include "cuda_device_loader.h"
#include "nccl_plane.h"

namespace rt_binding {

using NcclOp = rt::nccl::Op;

inline NcclOp nccl_op(Napi::Env env, const Napi::Value& v, const char* call) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "all-reduce") return NcclOp::AllReduce;
  if (s == "reduce-scatter") return NcclOp::ReduceScatter;
  if (s == "all-gather") return NcclOp::AllGather;
  throw Napi::TypeError::New(env, std::string(call) + ": op must be 'all-reduce', 'reduce-scatter' or 'all-gather'");
}

// One collective on device memory `p` of n floats, ordered after `compute`'s work so far.
inline void run_nccl_op(rt::nccl::Collectives& c, NcclOp op, float* p, size_t n, rt::nccl::Stream compute) {
  c.run(op, p, n, compute);
}

// The data plane for argument `i` (a device name; absent: "cuda-emu") and the CUDA device to join with (-1: the
// calling thread's current one, as the emulator's models use).
struct NcclPlaneChoice {
  const rt::nccl::Plane* plane;
  int device;
};
inline NcclPlaneChoice nccl_plane_arg(const Napi::CallbackInfo& info, size_t i, const char* call) {
  Napi::Env env = info.Env();
  std::string device = "cuda-emu";
  if (info.Length() > i && !info[i].IsUndefined()) {
    if (!info[i].IsString())
      throw Napi::TypeError::New(env, std::string(call) + ": device must be \"cuda-emu\" or \"cuda:N\"");
    device = info[i].As<Napi::String>().Utf8Value();
  }
  if (device == "cuda-emu") return {&rt::nccl::runtime_plane(), -1};
  int gpu = -1;
  if (device.size() >= 6 && device.size() <= 8 && device.compare(0, 5, "cuda:") == 0 &&
      device.find_first_not_of("0123456789", 5) == std::string::npos)
    gpu = std::stoi(device.substr(5));
  if (gpu < 0)
    throw Napi::TypeError::New(
        env, std::string(call) + ": device must be \"cuda-emu\" or \"cuda:N\", got \"" + device + "\"");
  try {
    return {&rt::cuda_device_nccl_plane(rt::cuda_device_library_path(rt::this_module_path())), gpu};
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(call) + ": " + e.what());
  }
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
  std::shared_ptr<rt::nccl::Collectives> comm;

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
      env, [c, op, host, n, timeout_ms] { c->run_on_host_copy(op, host, n, timeout_ms); }, nullptr);
  task->keep(data);
  task->Queue();
  return task->promise();
}

inline Napi::Value NcclProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NcclPlaneChoice choice = nccl_plane_arg(info, 0, "ncclProbe");
  const rt::nccl::Probe probe = choice.plane->probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", probe.available);
  o.Set("runtime", choice.plane->runtime());
  if (probe.available) {
    o.Set("path", probe.path);
    o.Set("version", probe.version);
  } else {
    o.Set("reason", probe.reason);
  }
  return o;
}

inline Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NcclPlaneChoice choice = nccl_plane_arg(info, 0, "ncclUniqueId");
  rt::nccl::UniqueId id{};
  try {
    id = choice.plane->unique_id();
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
    throw Napi::TypeError::New(env, "ncclConnect: expects (id: Uint8Array, rank, size, timeoutMs: number, device?)");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  if (bytes.ElementLength() != rt::nccl::kUniqueIdBytes)
    throw Napi::RangeError::New(env, "ncclConnect: id must be " + std::to_string(rt::nccl::kUniqueIdBytes) +
                                         " bytes, got " + std::to_string(bytes.ElementLength()));
  rt::nccl::UniqueId id{};
  std::memcpy(id.internal, bytes.Data(), rt::nccl::kUniqueIdBytes);
  const int rank = info[1].As<Napi::Number>().Int32Value(), size = info[2].As<Napi::Number>().Int32Value();
  const int timeout_ms = info[3].As<Napi::Number>().Int32Value();
  const NcclPlaneChoice choice = nccl_plane_arg(info, 4, "ncclConnect");
  auto made = std::make_shared<std::shared_ptr<rt::nccl::Collectives>>();
  auto* task = new NcclTask(
      env,
      [choice, id, rank, size, timeout_ms, made] {
        *made = choice.plane->connect(id, rank, size, timeout_ms, choice.device);
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
inline std::shared_ptr<rt::nccl::Collectives> nccl_comm_of(const Napi::Value& v) {
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
