/*
 * edgert/guard.h: guarded calls that survive crashing kernels.
 *
 * A call made through libedgert (a bound module function, edgert_guard_call)
 * runs under a crash guard: a SIGSEGV, SIGBUS, SIGFPE or SIGILL raised by the
 * kernel on the calling thread returns as EDGERT_ECRASH instead of killing the
 * process, and edgert_last_crash() describes it.
 */
#ifndef EDGERT_GUARD_H
#define EDGERT_GUARD_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the last contained crash on this thread was. */
typedef struct edgert_crash_s {
  int signo;            /* SIGSEGV, SIGBUS, SIGFPE or SIGILL */
  int code;             /* si_code */
  void *address;        /* si_addr: the faulting address */
  const char *function; /* the kernel's name, or "" (borrowed, static or module-owned) */
  const char *module;   /* the module's path or name, or "" */
} edgert_crash_t;

/* This thread's last contained crash; signo is 0 if there was none. Never NULL. */
EDGERT_EXTERN const edgert_crash_t *edgert_last_crash(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_GUARD_H */
