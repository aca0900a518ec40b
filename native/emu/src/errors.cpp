// The CUDA emulator's error state: each host thread's last error and what the emulator found about it.
#include <string>
#include "emu_internal.h"

namespace {
thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t detail_error = cudaSuccess;
thread_local std::string detail;  // the description of detail_error with what was found

const char* plain_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "operation not permitted in the current state";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureIsolation:
      return "a dependency would have been created which crosses the capture sequence boundary";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread:
      return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorGraphExecUpdateFailure:
      return "the graph update was not performed because it included changes which violated constraints specific to "
             "instantiated graph update";
  }
  return "unknown error";
}
}  // namespace

namespace ringtune_emu {
cudaError_t set_error(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return e;
  last_error = e;
  detail_error = e;
  detail = std::string(plain_string(e)) + " [CUDA emulator: " + what + "]";
  return e;
}
void restore_last_error(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
}
}  // namespace ringtune_emu

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define RT_EMU_NAME(x) \
  case x: return #x;
    RT_EMU_NAME(cudaSuccess)
    RT_EMU_NAME(cudaErrorInvalidValue)
    RT_EMU_NAME(cudaErrorMemoryAllocation)
    RT_EMU_NAME(cudaErrorInitializationError)
    RT_EMU_NAME(cudaErrorInvalidConfiguration)
    RT_EMU_NAME(cudaErrorInvalidDevicePointer)
    RT_EMU_NAME(cudaErrorInvalidMemcpyDirection)
    RT_EMU_NAME(cudaErrorNoDevice)
    RT_EMU_NAME(cudaErrorInvalidDevice)
    RT_EMU_NAME(cudaErrorInvalidResourceHandle)
    RT_EMU_NAME(cudaErrorIllegalState)
    RT_EMU_NAME(cudaErrorNotReady)
    RT_EMU_NAME(cudaErrorIllegalAddress)
    RT_EMU_NAME(cudaErrorLaunchOutOfResources)
    RT_EMU_NAME(cudaErrorLaunchFailure)
    RT_EMU_NAME(cudaErrorStreamCaptureUnsupported)
    RT_EMU_NAME(cudaErrorStreamCaptureInvalidated)
    RT_EMU_NAME(cudaErrorStreamCaptureUnmatched)
    RT_EMU_NAME(cudaErrorStreamCaptureIsolation)
    RT_EMU_NAME(cudaErrorStreamCaptureImplicit)
    RT_EMU_NAME(cudaErrorCapturedEvent)
    RT_EMU_NAME(cudaErrorStreamCaptureWrongThread)
    RT_EMU_NAME(cudaErrorGraphExecUpdateFailure)
#undef RT_EMU_NAME
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaSuccess && e == detail_error && !detail.empty()) return detail.c_str();
  return plain_string(e);
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }
