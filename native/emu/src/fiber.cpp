#include "fiber.h"

#include <cstdint>

#if defined(__x86_64__)
// ringtune_emu_switch(void** save_sp, void* new_sp): pushes the callee-saved registers and the SSE/x87 control
// words, stores the stack pointer, loads the other fiber's and pops its saved state.
asm(R"(
  .text
  .globl ringtune_emu_switch
  .type ringtune_emu_switch,@function
ringtune_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size ringtune_emu_switch, .-ringtune_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
extern "C" void ringtune_emu_switch(void** save_sp, void* new_sp);

namespace ringtune_emu {

void fiber_switch(FiberContext* from, FiberContext* to) { ringtune_emu_switch(&from->sp, to->sp); }

void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*entry)()) {
  uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
  uint64_t* s = (uint64_t*)top;
  *--s = 0;                                    // entry's return address: it never returns
  *--s = (uint64_t)entry;                      // popped by ret
  for (int i = 0; i < 6; i++) *--s = 0;        // rbp rbx r12 r13 r14 r15
  *--s = 0x1f80u | ((uint64_t)0x037fu << 32);  // MXCSR default, x87 control word default
  c->sp = s;
}

}  // namespace ringtune_emu

#else

namespace ringtune_emu {

void fiber_switch(FiberContext* from, FiberContext* to) { swapcontext(&from->uc, &to->uc); }

void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}

}  // namespace ringtune_emu

#endif
