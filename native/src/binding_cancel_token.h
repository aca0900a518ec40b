#pragma once
// The Node face of a cancel token: createCancelToken() gives an object with cancel() and a `cancelled`
// getter. A model's forwardBackward takes { cancel: token }; cancel() from the main thread then stops the
// step running on a worker thread at its next layer, and its Promise rejects with Error('cancelled').
#include <napi.h>

#include <memory>
#include <string>
#include "cancel_token.h"

namespace rt_binding {

class CancelTokenWrap : public Napi::ObjectWrap<CancelTokenWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeCancelToken",
                       {InstanceMethod("cancel", &CancelTokenWrap::Cancel),
                        InstanceAccessor("cancelled", &CancelTokenWrap::Cancelled, nullptr)});
  }
  explicit CancelTokenWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<CancelTokenWrap>(info), token_(std::make_shared<rt::CancelToken>()) {}
  // Shared with the calls that read it, so it outlives a JS object collected mid-step.
  std::shared_ptr<rt::CancelToken> token() const { return token_; }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    token_->cancel();
    return info.Env().Undefined();
  }
  Napi::Value Cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), token_->cancelled()); }
  std::shared_ptr<rt::CancelToken> token_;
};

inline Napi::FunctionReference* CancelTokenWrap::constructor = nullptr;

inline void RegisterCancelToken(Napi::Env env, Napi::Object exports) {
  CancelTokenWrap::constructor = new Napi::FunctionReference(Napi::Persistent(CancelTokenWrap::Define(env)));
  exports.Set("createCancelToken", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return CancelTokenWrap::constructor->New({});
              }));
}

// Reads a call's `cancel` option: absent, or an object from createCancelToken.
inline std::shared_ptr<rt::CancelToken> cancel_token_option(const Napi::Object& o, const char* call) {
  Napi::Value v = o.Get("cancel");
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(CancelTokenWrap::constructor->Value()))
    throw Napi::TypeError::New(o.Env(), std::string(call) + ": cancel must come from createCancelToken");
  return CancelTokenWrap::Unwrap(v.As<Napi::Object>())->token();
}

}  // namespace rt_binding
