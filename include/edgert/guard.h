/*
 * edgert/guard.h: guarded calls that survive crashing kernels.
 *
 * A call made through libedgert (a bound module function, edgert_guard_run,
 * edgert_guard_call) runs under a crash guard: a SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL or SIGTRAP raised by the kernel on the calling thread (a stack
 * overflow included: every calling thread gets its own alternate signal
 * stack) returns as EDGERT_ECRASH instead of killing the process, and
 * edgert_last_crash() describes it. SIGABRT is never caught.
 *
 * A fault outside any guarded call, on a thread with no guarded call in
 * progress, or after the thread went back into its host interpreter from
 * inside the kernel (a Python callback: see edgert_guard_set_host_probe),
 * goes to the handler that was installed before the guard (Python's
 * faulthandler, say) exactly once, and the process dies with the original
 * signal. Setting EDGERT_CRASH_GUARD=0 in the environment before the first
 * guarded call switches containment off (for gdb and sanitizers): calls then
 * run unguarded.
 *
 * What containment cannot promise: memory the kernel corrupted before it
 * faulted stays corrupted; a kernel that hangs is not interrupted; faults in
 * threads the kernel starts itself are not contained (they kill the process);
 * a kernel that blocks the guarded signals or disables its alternate signal
 * stack dies with the fault; a module that faulted may hold its own locks or
 * half-updated state forever, which is why the loader quarantines a module
 * after a crash; a fault inside the C library or the dynamic linker may leave
 * their locks held, which is why it marks the process unhealthy
 * (edgert_process_healthy). See docs/guard.md.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_GUARD_H
#define EDGERT_GUARD_H

#include "common.h"
#include "loader.h"
#include "guard_policy.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* What the last contained crash on this thread was. */
typedef struct edgert_crash_s {
  int signo;            /* SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGTRAP */
  int code;             /* si_code */
  void *address;        /* si_addr: the faulting address (NULL for a sent signal) */
  const char *function; /* the kernel's name, or "" (borrowed, static or module-owned) */
  const char *module;   /* the module's path or name, or "" */
  /*
   * 1 when the signal was sent to the thread (si_code <= 0: raise(),
   * pthread_kill() from another thread) rather than raised by an
   * instruction of the kernel: the call was interrupted, but the kernel is
   * not to blame, and neither the loader nor the nexus holds it against it
   * (no quarantine). 0 for a fault.
   */
  int sent;
  int sender_pid;   /* si_pid of a sent signal (this process's pid), else 0 */
  int self_raised;  /* sent, and by the thread itself through the C library (raise()) */
  /*
   * 1 when the fault happened inside the C library or the dynamic linker,
   * or with one of their functions on the kernel's stack (a callback from
   * qsort, dl_iterate_phdr, stdio): a lock they held may stay held, so the
   * process is now unhealthy (edgert_process_healthy() is 0).
   */
  int unhealthy;
  /* Isolated calls (edgert/isolate.h): the worker process died, not this one. */
  int isolated;         /* 1 for a worker's death; the fields below are then set */
  int worker_pid;       /* the worker that died */
  int exit_status;      /* its exit() status, or -1 when a signal (signo) ended it; signo
                           is then any signal: SIGABRT, SIGKILL, SIGSYS included */
  const char *syscall;  /* SIGSYS from sandbox "strict": the denied system call's name
                           ("socket"), else "" (static) */
} edgert_crash_t;

/* This thread's last contained crash; signo is 0 if there was none. Never NULL. */
EDGERT_EXTERN const edgert_crash_t *edgert_last_crash(void);

/* "SIGSEGV" for SIGSEGV, ... for the fault signals and the others a kernel's
 * thread or an isolated worker (edgert/isolate.h) may end with (SIGABRT,
 * SIGKILL, SIGSYS, SIGTERM, SIGXCPU, ...); "signal" for a real-time or
 * unknown one. Static. */
EDGERT_EXTERN const char *edgert_signal_name(int signo);

/*
 * 1 if crash containment is on in this process, 0 if EDGERT_CRASH_GUARD=0
 * switched it off. The environment is read once, at the first call of any
 * guard function.
 */
EDGERT_EXTERN int edgert_guard_enabled(void);

/*
 * 1 while the process is healthy; 0 after a contained crash that happened
 * inside the C library or the dynamic linker (edgert_crash_t.unhealthy):
 * one of their locks (the loader's, stdio's, malloc's) may be held for
 * ever, so anything that needs it (dlopen, an `import` of an extension, a
 * printf to the same stream, malloc) may hang. It never becomes healthy
 * again: restart the process. When `reason` is not NULL it receives a
 * static description of the first such crash (NULL while healthy).
 * The nexus stops routing calls to compiled kernels while this is 0.
 * Lock-free; runs no foreign code.
 */
EDGERT_EXTERN int edgert_process_healthy(const char **reason);

#ifndef __cplusplus
/*
 * The word edgert_process_healthy() reads (0 while healthy), for a host
 * whose call path checks health on every call and cannot afford a call into
 * the library for it (the Python nexus): load it with atomic_load. Never
 * NULL; hosts only read it. C only (C++ has no _Atomic before C++23).
 */
EDGERT_EXTERN const atomic_int *edgert_process_health_word(void);
#endif

/*
 * What a host interpreter says about the calling thread, for the guard to
 * tell its own code from the kernel's: two words that stay the same while
 * the thread runs the kernel and change as soon as the thread re-enters the
 * interpreter (for CPython: the thread's current frame and its
 * PyGILState_Ensure depth).
 */
typedef struct edgert_guard_host_state_s {
  uintptr_t word[2];
} edgert_guard_host_state_t;

/*
 * Fills *out with the calling thread's host state. Called when a guarded
 * call is armed and again in the signal handler when a fault arrives: it
 * must be async-signal-safe, take no lock, allocate nothing, and be cheap
 * (it runs on every guarded call).
 */
typedef void (*edgert_guard_host_probe_t)(edgert_guard_host_state_t *out);

/*
 * Installs the host probe (NULL removes it). A guarded call records the
 * probe's answer when it is armed; a fault whose answer differs happened
 * after the thread re-entered the host (a kernel calling back into Python,
 * whose code then faulted) and is NOT contained: jumping out of it would
 * skip live interpreter frames, so it goes where a fault outside any
 * guarded call goes. A guarded call made from inside the callback records
 * its own answer and keeps its own containment. Each call uses the probe
 * that was installed when it was armed. The Python extension installs one
 * for CPython when it is imported. Runs no foreign code.
 */
EDGERT_EXTERN void edgert_guard_set_host_probe(edgert_guard_host_probe_t probe);

/*
 * Installs the guard's signal handlers now (the first guarded call does it
 * anyway), or puts them back in front if another handler was installed over
 * them since (Python's faulthandler.enable() or signal.signal(), a C host's
 * sigaction(), say): the displacing handler becomes the one a fault outside
 * a guarded call, or a signal sent to the process, is handed to. A host
 * that installs a handler for a guarded signal after the first guarded call
 * must call this afterwards (the Python package does it for faulthandler
 * and signal.signal): until then its handler sees the kernels' faults
 * first, and one that returns from a fault makes the fault repeat for
 * ever. Cheap when nothing changed (five sigaction reads). Returns 0, or EDGERT_EUNSUPPORTED
 * when containment is switched off (nothing is installed then).
 * Runs no foreign code.
 */
EDGERT_EXTERN int edgert_guard_install(void);

/*
 * Runs fn(ud) under the crash guard of the calling thread, for C hosts that
 * call foreign code themselves. `name` names fn in the crash record and
 * message (borrowed for the call; NULL for ""). Returns 0, EDGERT_EINVAL if
 * fn is NULL, or EDGERT_ECRASH after a contained fault (edgert_last_crash()
 * and edgert_last_error() then say which signal, where and in what).
 * Runs foreign code: fn.
 */
EDGERT_EXTERN int edgert_guard_run(void (*fn)(void *ud), void *ud,
                                   const char *name);

/*
 * A reference implementation of a bound function, for edgert_guard_call:
 * reads the same `args` as the compiled function, writes its result to `ret`
 * (the compiled function's return type; ignore it for a void function) and
 * returns 0, or a negative EDGERT_E* code if it failed (it may set a message
 * with its own words; the guard keeps it).
 */
typedef int (*edgert_guard_ref_fn)(void *ud, void **args, void *ret);

/*
 * Compares a compiled result with a reference result, both of the function's
 * return type: 1 if they agree within `tolerance`, 0 if not. For strict mode.
 * When NULL, the guard compares by return type: floating point within
 * `tolerance` (absolute or relative; NaN equals NaN), everything else
 * bitwise.
 */
typedef int (*edgert_guard_cmp_fn)(void *ud, const void *compiled_ret,
                                   const void *reference_ret, double tolerance);

/* The policy of edgert_guard_call. Zero-initialised: no fallback, not strict,
 * tolerance 0 (use EDGERT_GUARD_POLICY_INIT for the article's defaults). */
typedef struct edgert_guard_policy_s {
  int fallback_enabled;        /* on a compiled failure run the reference instead */
  int strict;                  /* run both, compare: a difference is EDGERT_EMISMATCH */
  double tolerance;            /* for the comparison; 1e-9 in the article */
  edgert_guard_cmp_fn compare; /* strict mode's comparison, or NULL (see above) */
  void *ud;                    /* passed to `ref` and `compare` */
} edgert_guard_policy_t;

#define EDGERT_GUARD_POLICY_INIT {0, 0, 1e-9, NULL, NULL}

/*
 * Runs the bound function `fn` (edgert_func_call(fn, args, ret)) under the
 * crash guard, with `ref` as its reference, following `policy` (NULL for
 * EDGERT_GUARD_POLICY_INIT):
 *   - not strict: the compiled call only. If it fails (an error, a contained
 *     crash, a quarantined module) and fallback_enabled, `ref` runs and its
 *     result is returned (0, or ref's code); without fallback the call
 *     returns EDGERT_EFAILED, the message naming the function and the
 *     original error (edgert_last_crash() still describes a crash).
 *   - strict: the compiled call, then `ref` into a scratch value (16 bytes,
 *     aligned for long double); a compiled failure is handled as above
 *     (reference answer with fallback_enabled, else EDGERT_EFAILED), a
 *     reference failure is ref's code (a positive one becomes
 *     EDGERT_EFAILED), and results that differ are EDGERT_EMISMATCH with
 *     both values in the message. When they agree `ret` holds the COMPILED
 *     result, as it would unchecked: a call's result does not depend on
 *     whether it was checked (ExplicitFallback.fallback_to_python and the
 *     nexus's validation return the compiled result too). Floating-point
 *     results agree by edgert_agree() (edgert/agree.h: NaN with NaN, an
 *     infinity only with itself), unless policy->compare says otherwise.
 * The policy itself (the steps and the counters) is edgert/guard_policy.h,
 * which ExplicitFallback drives too; `policy->tolerance` must be finite and
 * >= 0 (edgert_tolerance_problem), else EDGERT_EINVAL.
 * `ref` may be NULL when neither fallback nor strict mode needs it; it is
 * EDGERT_EINVAL when they do. `args` and `ret` are as edgert_func_call takes
 * them (`ret`: at least 16 bytes aligned for long double, or NULL for a void
 * function) and borrowed for the call.
 * Counts every call in edgert_guard_stats(). Runs foreign code: the
 * module's function and `ref`.
 */
EDGERT_EXTERN int edgert_guard_call(edgert_func_t *fn, void **args, void *ret,
                                    edgert_guard_ref_fn ref,
                                    const edgert_guard_policy_t *policy);

/* Process-wide counters; every field only grows until edgert_guard_stats_reset().
 * calls, compiled, failures, fallbacks and mismatches are the guarded-call
 * counters of edgert_guard_counts() (edgert/guard_policy.h: C and Python
 * calls alike; `calls` and `compiled` count production-mode calls, strict
 * ones count as validations there); crashes counts every contained fault. */
typedef struct edgert_guard_stats_s {
  uint64_t calls;      /* edgert_guard_call calls */
  uint64_t compiled;   /* ... whose compiled call succeeded */
  uint64_t failures;   /* ... whose compiled call failed (crash or error) */
  uint64_t fallbacks;  /* ... answered by the reference after a failure */
  uint64_t mismatches; /* strict calls whose results differed */
  uint64_t crashes;    /* faults contained by any guarded call (loader calls too) */
} edgert_guard_stats_t;

/* Copies the counters into *out (ignored if NULL). Thread-safe. */
EDGERT_EXTERN void edgert_guard_stats(edgert_guard_stats_t *out);
/* Sets every counter to 0 (edgert_guard_counts_reset()). Thread-safe. */
EDGERT_EXTERN void edgert_guard_stats_reset(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_GUARD_H */
