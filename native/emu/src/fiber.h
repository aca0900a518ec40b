#pragma once
// A minimal fiber switch for the emulator's one-fiber-per-CUDA-thread blocks: on x86-64 a few instructions
// (callee-saved registers and the stack pointer); elsewhere ucontext. swapcontext would cost a signal-mask
// system call per switch, and a block meets at every barrier and shuffle.
#include <cstddef>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace ringtune_emu {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

// Saves the running context in from and resumes to.
void fiber_switch(FiberContext* from, FiberContext* to);
// Makes c start entry() on the stack [stack, stack + size) when switched to; entry must never return.
void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*entry)());

}  // namespace ringtune_emu
