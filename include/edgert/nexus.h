/*
 * edgert/nexus.h: the dispatch layer for C hosts.
 *
 * A nexus holds named kernels. Each kernel has a compiled side (a bound
 * module function, or a plain C function) and a reference side (a C
 * function the host trusts). A call goes to the compiled side when its
 * argument guard passes and the kernel is active; otherwise to the
 * reference. A compiled call that fails (returns an error, or crashes and is
 * contained by the runtime) falls back to the reference, or fails the call
 * with EDGERT_EFAILED when fallback is off; after `max_failures` consecutive
 * failures the kernel is quarantined and calls go straight to the reference
 * until edgert_kernel_reset(). A call interrupted by a signal sent to its
 * thread (edgert_crash_t.sent) fails the same way but does not count
 * towards the quarantine: the kernel is not to blame. While the process is
 * unhealthy (edgert_process_healthy() is 0: a crash inside the C library
 * left one of its locks in doubt) every kernel's calls go to the reference.
 * Every route is counted.
 *
 * The compiled side can be replaced while other threads call the kernel:
 * edgert_kernel_swap() installs a new version atomically; a call in flight
 * finishes on the version it started with, which is freed (its `release`
 * callback run) only when the last such call returns and it has left the
 * history. edgert_kernel_rollback() returns to an earlier version.
 *
 * The policy (routing, counters, failures and quarantine, version
 * numbers, validation sampling, the option rules) is edgert/nexus_policy.h,
 * which this nexus drives under each kernel's mutex and the Python
 * package's Kernel under the GIL (python/src/nexus.c): one policy, two
 * drivers. Shadow validation: a validation falls due when the next served
 * call would be the validate_every-th; the first call to enter while it is
 * due claims it, and a claim not served (guard miss, failure) is handed
 * back, so overlapping calls lose none. Float results agree by edgert_agree
 * (edgert/agree.h: an infinity agrees only with itself); on agreement the
 * call returns the COMPILED result, in C as in Python, so a call's result
 * does not depend on whether it was sampled.
 *
 * NULL: every pointer argument may be NULL. A function that returns an
 * error code returns EDGERT_EINVAL naming the NULL argument (the nexus, the
 * kernel, the name, `out`, the compiled side); edgert_nexus_free,
 * edgert_nexus_options_init and edgert_kernel_reset do nothing;
 * edgert_nexus_count(NULL) is 0; edgert_nexus_kernel_at(NULL, i) and
 * edgert_kernel_name(NULL) are NULL; edgert_kernel_stats(NULL, out) zeroes
 * *out and edgert_kernel_stats(k, NULL) does nothing. Optional outputs
 * (`*out` of register, `*version` of swap and rollback) may be NULL.
 * `args` and `ret` are the kernel's: NULL only where its sides accept it.
 *
 * Thread safety: every function here may be called from any thread, except
 * edgert_nexus_free(), which needs every other call on the nexus finished.
 * Implemented in src/nexus.c.
 */
#ifndef EDGERT_NEXUS_H
#define EDGERT_NEXUS_H

#include "abi.h"
#include "common.h"
#include "loader.h"
#include "nexus_policy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgert_nexus_s edgert_nexus_t;
typedef struct edgert_kernel_s edgert_kernel_t;

/*
 * A C implementation of a kernel: reads its arguments from `args` (args[i]
 * points at argument i, as libffi and edgert_func_call take them), writes
 * the result to `ret` (may be NULL for a void kernel) and returns 0 or a
 * negative EDGERT_E* code (any other value counts as EDGERT_EFAILED).
 */
typedef int (*edgert_nexus_fn_t)(void *ud, void **args, void *ret);

/*
 * An argument guard: 1 if `args` are ones the compiled side accepts, 0 if
 * the call must go to the reference (a guard miss). It must not fail and
 * must not change anything.
 */
typedef int (*edgert_nexus_guard_t)(void *ud, void **args);

/*
 * A compiled side (one version). Exactly one of `func` and `fn` is set.
 * - func: a bound module function, called with edgert_func_call() (crash
 *   contained, quarantine of the module honoured). Borrowed: it must stay
 *   valid until `release` runs (or the nexus is freed, if release is NULL).
 * - fn: a plain C function, called under the runtime's crash guard.
 * - guard: optional; NULL accepts every call.
 * - ud: passed to fn, guard and release.
 * - release: optional; run exactly once, on whichever thread drops the last
 *   reference to this version (a swap, a rollback, the end of a call in
 *   flight, or edgert_nexus_free), never with a nexus lock held.
 */
typedef struct edgert_nexus_impl_s {
  edgert_func_t *func;
  edgert_nexus_fn_t fn;
  edgert_nexus_guard_t guard;
  void *ud;
  void (*release)(void *ud);
} edgert_nexus_impl_t;

/* What happened, as an edgert_nexus_observer_t hears it. */
typedef enum edgert_nexus_event_e {
  EDGERT_NEXUS_GUARD_MISS = 1, /* the guard refused the arguments: reference */
  EDGERT_NEXUS_FAILURE,        /* the compiled side failed (err says how) */
  EDGERT_NEXUS_FALLBACK,       /* the reference served: after a failure, or
                                  quarantined (err EDGERT_EQUARANTINED) */
  EDGERT_NEXUS_QUARANTINE,     /* max_failures consecutive failures */
  EDGERT_NEXUS_RESET,          /* edgert_kernel_reset: active again (err: the
                                  failed reload of a crashed module, or 0) */
  EDGERT_NEXUS_SWAP,           /* a new version is current */
  EDGERT_NEXUS_ROLLBACK,       /* an earlier version is current */
  EDGERT_NEXUS_MISMATCH,       /* shadow validation: the results differ */
  EDGERT_NEXUS_UNHEALTHY       /* the reference served because the process is
                                  unhealthy (edgert_process_healthy() says why) */
} edgert_nexus_event_t;

/*
 * Told of every transition and every call the compiled side did not serve,
 * on the thread that caused it, with no nexus lock held. `version` is the
 * compiled version involved; `err` the compiled side's error for FAILURE
 * and FALLBACK, the reference's error (or 0) for MISMATCH, else 0. It may
 * read the kernel (stats, name), nothing that changes it.
 */
typedef void (*edgert_nexus_observer_t)(void *ud, edgert_kernel_t *k,
                                        edgert_nexus_event_t event,
                                        uint64_t version, int err);

/*
 * Compares two results for shadow validation: 1 if they agree within
 * `tolerance`, 0 if not. `args` are the call's arguments.
 */
typedef int (*edgert_nexus_compare_t)(void *ud, void **args,
                                      const void *compiled_ret,
                                      const void *reference_ret,
                                      double tolerance);

/* Policy of one kernel. Start from edgert_nexus_options_init(). */
typedef struct edgert_nexus_options_s {
  int fallback_enabled;    /* 1 (default): a failed compiled call falls back */
  unsigned max_failures;   /* 3: consecutive failures before quarantine; 0 never */
  unsigned validate_every; /* 0: off; N: every Nth compiled call runs the
                              reference as well and compares (see above) */
  double tolerance;        /* 1e-9: for float results, by edgert_agree;
                              finite and >= 0 */
  int strict;              /* 0: a mismatch is counted; 1: the call fails
                              with EDGERT_EMISMATCH */
  unsigned history;        /* 8: versions kept for rollback (1..1024) */
  /*
   * For shadow validation: the result's type and size in bytes. A NULL
   * `compare` compares float types by edgert_agree within `tolerance` and
   * anything else bytewise over ret_size. When both are left 0 and the
   * compiled side is a bound function, they come from its contract; a
   * ret_size of 0 with a scalar ret_type means that type's size.
   */
  edgert_ctype_t ret_type;
  size_t ret_size;
  edgert_nexus_compare_t compare; /* NULL: as above */
  void *compare_ud;
  edgert_nexus_observer_t observer; /* NULL: nobody is told */
  void *observer_ud;
} edgert_nexus_options_t;

/* Fills `o` with the defaults above. */
EDGERT_EXTERN void edgert_nexus_options_init(edgert_nexus_options_t *o);

/* Kernel states: EDGERT_NEXUS_ACTIVE, EDGERT_NEXUS_QUARANTINED (from
 * edgert/nexus_policy.h). */

/* A kernel's counters, read together under its lock. */
typedef struct edgert_nexus_stats_s {
  uint64_t calls;        /* every call of the kernel */
  uint64_t compiled;     /* calls the compiled side served */
  uint64_t guard_misses; /* calls the reference served because the guard refused */
  uint64_t fallbacks;    /* calls the reference served after a failure,
                            while quarantined or while the process is
                            unhealthy */
  uint64_t failures;     /* compiled attempts that failed */
  uint64_t mismatches;   /* shadow validations that disagreed */
  uint64_t validations;  /* shadow validations run */
  uint64_t version;      /* the current version's number (1 for the first) */
  unsigned consecutive_failures;
  int state;             /* EDGERT_NEXUS_ACTIVE or EDGERT_NEXUS_QUARANTINED */
  unsigned versions;     /* versions in the history, the current included */
  uint64_t running;      /* calls entered and not yet ended (each call ends
                            exactly once: served, refused, failed or
                            abandoned); 0 when none runs */
} edgert_nexus_stats_t;

/* A new, empty nexus in *out. Returns 0, EDGERT_EINVAL or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_nexus_new(edgert_nexus_t **out);

/*
 * Frees the nexus, its kernels and their versions (running each version's
 * `release`). No call on it may be in flight. NULL does nothing.
 */
EDGERT_EXTERN void edgert_nexus_free(edgert_nexus_t *nx);

/*
 * Registers kernel `name` (copied) with compiled side `compiled` (version 1;
 * the struct is copied, what it points at is borrowed as described above),
 * reference `reference(reference_ud, args, ret)` and policy `opts` (copied;
 * NULL for the defaults). On success *out (may be NULL) is the kernel,
 * owned by the nexus and valid until edgert_nexus_free. Returns 0,
 * EDGERT_EINVAL (empty name, no reference, not exactly one of func/fn, a bad
 * option: the message names it), EDGERT_EEXIST (the name is taken) or
 * EDGERT_ENOMEM. On failure nothing is registered and `release` is not run.
 * No foreign code runs.
 */
EDGERT_EXTERN int edgert_nexus_register(edgert_nexus_t *nx, const char *name,
                                        const edgert_nexus_impl_t *compiled,
                                        edgert_nexus_fn_t reference,
                                        void *reference_ud,
                                        const edgert_nexus_options_t *opts,
                                        edgert_kernel_t **out);

/* The kernel named `name` in *out: 0, or EDGERT_ENOTFOUND naming it. */
EDGERT_EXTERN int edgert_nexus_find(edgert_nexus_t *nx, const char *name,
                                    edgert_kernel_t **out);

/* How many kernels there are, and the i-th in registration order (NULL past
 * the end). */
EDGERT_EXTERN size_t edgert_nexus_count(edgert_nexus_t *nx);
EDGERT_EXTERN edgert_kernel_t *edgert_nexus_kernel_at(edgert_nexus_t *nx,
                                                      size_t i);

/* edgert_nexus_find, then edgert_kernel_call. */
EDGERT_EXTERN int edgert_nexus_call(edgert_nexus_t *nx, const char *name,
                                    void **args, void *ret);

/*
 * Calls kernel `k` with `args` (as edgert_nexus_fn_t takes them), writing
 * the result to `ret` (when the compiled side is a bound function, `ret`
 * follows edgert_func_call's rule: at least 16 bytes, aligned for long
 * double; NULL only for a void kernel). Runs foreign code: the guard, the compiled side (crash
 * contained), the reference, the comparison and the observer.
 * Returns 0 when a side produced the result; the reference's own error when
 * it failed; EDGERT_EFAILED when the compiled side failed and fallback is
 * off (the message names the kernel, the version and the cause; the
 * reference did not run); EDGERT_EMISMATCH when strict shadow validation
 * found the results different (`ret` then holds the reference's result);
 * on agreement `ret` holds the compiled result.
 */
EDGERT_EXTERN int edgert_kernel_call(edgert_kernel_t *k, void **args,
                                     void *ret);

/*
 * Installs `compiled` as the new current version of `k` and writes its
 * number to *version (may be NULL). Version numbers grow and are never
 * reused. Calls that already started finish on their version. When the
 * history is full its oldest version leaves it. A quarantined kernel
 * becomes active: the new code gets its own chances.
 * Returns 0, EDGERT_EINVAL (not exactly one of func/fn) or EDGERT_ENOMEM;
 * on failure nothing changed and `compiled->release` is not run.
 */
EDGERT_EXTERN int edgert_kernel_swap(edgert_kernel_t *k,
                                     const edgert_nexus_impl_t *compiled,
                                     uint64_t *version);

/*
 * Drops the `steps` newest versions so that an earlier one is current, and
 * writes its number to *version (may be NULL). The kernel becomes active.
 * Returns 0, or EDGERT_EINVAL when steps is 0 or the history does not hold
 * steps + 1 versions (the message says how many it holds).
 */
EDGERT_EXTERN int edgert_kernel_rollback(edgert_kernel_t *k, unsigned steps,
                                         uint64_t *version);

/* Makes a quarantined kernel active and forgets its consecutive failures.
 * When the current version is a bound module function whose mapping is
 * quarantined after a crash, the module is first reloaded
 * (edgert_module_reload: a fresh verified copy), so the kernel is active on
 * that copy instead of back in quarantine at its next call; if the reload
 * fails, the RESET event's `err` says why (edgert_last_error()) and the
 * kernel's next compiled call fails with EDGERT_EQUARANTINED.
 * May run foreign code: the module's constructors (and destructors). */
EDGERT_EXTERN void edgert_kernel_reset(edgert_kernel_t *k);

/* Copies the counters of `k` into *out. */
EDGERT_EXTERN void edgert_kernel_stats(edgert_kernel_t *k,
                                       edgert_nexus_stats_t *out);

/* The kernel's name (owned by the kernel). */
EDGERT_EXTERN const char *edgert_kernel_name(const edgert_kernel_t *k);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_NEXUS_H */
