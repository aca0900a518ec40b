#pragma once
// The Node face of a sequence-parallel ring link: createRingLink(host, port) listens at once (port 0: any
// free port, read back from .port); join(nextHost, nextPort, secret, timeoutMs, peerTimeoutMs?) connects to the next
// rank and accepts the previous one off the main thread; close() ends any transfer in progress. A model's
// forwardBackward takes { sequenceParallel: { link, rank, size } } to run its attention round the ring.
#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include "ring_link.h"

namespace rt_binding {

struct RingLinkState {
  std::unique_ptr<rt::TcpRingListener> listener;
  std::unique_ptr<rt::RingLink> link;
  std::mutex mu;  // guards link against close() while join() installs it
  bool closed = false;
};

class RingLinkJoin : public Napi::AsyncWorker {
 public:
  RingLinkJoin(Napi::Env env, std::shared_ptr<RingLinkState> st, std::string host, int port, std::string secret,
               int timeout_ms, int peer_timeout_ms)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        st_(std::move(st)),
        host_(std::move(host)),
        secret_(std::move(secret)),
        port_(port),
        timeout_ms_(timeout_ms),
        peer_timeout_ms_(peer_timeout_ms) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      auto link = st_->listener->join(host_, port_, secret_, timeout_ms_, peer_timeout_ms_);
      std::lock_guard<std::mutex> g(st_->mu);
      if (st_->closed) return SetError("ring link: closed while joining");
      st_->link = std::move(link);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<RingLinkState> st_;
  std::string host_, secret_;
  int port_, timeout_ms_, peer_timeout_ms_;
};

class RingLinkWrap : public Napi::ObjectWrap<RingLinkWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRingLink",
                       {InstanceAccessor("port", &RingLinkWrap::Port, nullptr),
                        InstanceMethod("join", &RingLinkWrap::Join), InstanceMethod("close", &RingLinkWrap::Close)});
  }
  explicit RingLinkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingLinkWrap>(info) {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
      throw Napi::TypeError::New(info.Env(), "createRingLink: expects (host: string, port: number)");
    state_ = std::make_shared<RingLinkState>();
    try {
      state_->listener = std::make_unique<rt::TcpRingListener>(info[0].As<Napi::String>().Utf8Value(),
                                                               info[1].As<Napi::Number>().Int32Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }
  // The joined link, or a JS error naming the call when join() has not completed.
  rt::RingLink* link(Napi::Env env, const char* call) {
    std::lock_guard<std::mutex> g(state_->mu);
    if (!state_->link || state_->closed)
      throw Napi::Error::New(env, std::string(call) + ": sequenceParallel.link is not joined (or is closed)");
    return state_->link.get();
  }
  std::shared_ptr<RingLinkState> state() const { return state_; }

 private:
  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_->listener->port); }
  Napi::Value Join(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber())
      throw Napi::TypeError::New(env, "join: expects (nextHost: string, nextPort: number, secret: string, timeoutMs)");
    // Optional: transfers of a step fail after this long without progress (a stopped peer); 0 or absent: never.
    const int peer_timeout_ms = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : 0;
    auto* w = new RingLinkJoin(env, state_, info[0].As<Napi::String>().Utf8Value(),
                               info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::String>().Utf8Value(),
                               info[3].As<Napi::Number>().Int32Value(), peer_timeout_ms);
    w->Queue();
    return w->promise();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(state_->mu);
    state_->closed = true;
    if (state_->link) state_->link->shutdown();  // a step blocked on a peer fails now instead of hanging
    return info.Env().Undefined();
  }
  std::shared_ptr<RingLinkState> state_;
};

inline Napi::FunctionReference* RingLinkWrap::constructor = nullptr;

inline Napi::Value CreateRingLink(const Napi::CallbackInfo& info) {
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); i++) args.push_back(info[i]);
  return RingLinkWrap::constructor->New(args);
}

inline void RegisterRingLink(Napi::Env env, Napi::Object exports) {
  RingLinkWrap::constructor = new Napi::FunctionReference(Napi::Persistent(RingLinkWrap::Define(env)));
  exports.Set("createRingLink", Napi::Function::New(env, CreateRingLink));
}

// Reads forwardBackward's sequenceParallel option ({ link, rank, size }); size 1 or absent: none.
inline std::shared_ptr<rt::SequenceParallel> sequence_parallel_option(const Napi::Object& o, const char* call,
                                                                      std::shared_ptr<RingLinkState>* keep) {
  Napi::Value v = o.Get("sequenceParallel");
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  Napi::Env env = o.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(call) + ": sequenceParallel must be an object");
  Napi::Object sp = v.As<Napi::Object>();
  Napi::Value rank = sp.Get("rank"), size = sp.Get("size"), link = sp.Get("link");
  if (!rank.IsNumber() || !size.IsNumber())
    throw Napi::TypeError::New(env, std::string(call) + ": sequenceParallel.rank and .size must be numbers");
  auto out = std::make_shared<rt::SequenceParallel>();
  out->rank = rank.As<Napi::Number>().Int32Value();
  out->size = size.As<Napi::Number>().Int32Value();
  if (out->size < 1 || out->rank < 0 || out->rank >= out->size)
    throw Napi::RangeError::New(env, std::string(call) + ": sequenceParallel rank " + std::to_string(out->rank) +
                                         " outside a group of " + std::to_string(out->size));
  if (out->size == 1) return nullptr;
  // Over NCCL (sequenceParallel.ncclComm, attached by the caller) the blocks never touch a host link.
  if (link.IsUndefined() && !sp.Get("ncclComm").IsUndefined()) return out;
  if (!link.IsObject() || !link.As<Napi::Object>().InstanceOf(RingLinkWrap::constructor->Value()))
    throw Napi::TypeError::New(env, std::string(call) + ": sequenceParallel.link must come from createRingLink");
  RingLinkWrap* w = RingLinkWrap::Unwrap(link.As<Napi::Object>());
  out->link = w->link(env, call);
  *keep = w->state();
  return out;
}

}  // namespace rt_binding
