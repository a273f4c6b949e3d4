/*
 * unwind.h: walking a faulted thread's stack from inside a signal handler
 * (src/unwind.c), for the crash guard. Private to libedgert.
 */
#ifndef EDGERT_UNWIND_H
#define EDGERT_UNWIND_H

#include <stdint.h>

/*
 * Called for each frame, innermost first: `pc` is the frame's instruction
 * (the faulting one for the first frame, a return address for the others),
 * `sp` its stack pointer. Returns nonzero to stop the walk.
 */
typedef int (*edgert__unwind_visit_t)(void *ud, uintptr_t pc, uintptr_t sp);

/* Outcomes of edgert__unwind. */
enum {
  EDGERT__UNWIND_TOP = 0,     /* reached `top` (or the outermost frame) */
  EDGERT__UNWIND_STOPPED = 1, /* `visit` asked to stop */
  EDGERT__UNWIND_LOST = -1    /* a frame could not be unwound: *lost_sp says where */
};

/*
 * Finds how to unwind, once, before any handler can run (resolves glibc's
 * _dl_find_object, 2.35 and later). Returns 1 when edgert__unwind can work
 * in this process, 0 when it cannot (an older C library, another machine):
 * then every walk is LOST at its first frame.
 */
int edgert__unwind_init(void);

/*
 * Walks the stack of the interrupted context `ucontext` (a ucontext_t from
 * an SA_SIGINFO handler) with the DWARF call frame information of each
 * frame's object (.eh_frame, found through _dl_find_object), from the
 * interrupted frame up to the first frame whose stack pointer is above
 * `top`, calling `visit` for each. Reads stack memory only inside
 * [stack_lo, stack_hi) and unwind tables only inside their object's
 * mapping. Async-signal-safe: no lock, no allocation, no stdio.
 */
int edgert__unwind(const void *ucontext, uintptr_t stack_lo, uintptr_t stack_hi,
                   uintptr_t top, edgert__unwind_visit_t visit, void *ud,
                   uintptr_t *lost_sp);

#endif /* EDGERT_UNWIND_H */
