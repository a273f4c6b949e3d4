/*
 * edgert/guard_policy.h: the guarded-call policy, once, for every host.
 *
 * A guarded call runs a compiled function with a reference beside it. Two
 * modes:
 * - production (not strict): run the compiled side; if it returns, that is
 *   the result; if it fails (an error, or a contained crash), run the
 *   reference instead when fallback is enabled, else fail with the compiled
 *   side's error.
 * - strict: run the compiled side; if it fails, as above; if it returns,
 *   run the reference too and compare. When they agree the call returns the
 *   COMPILED result (a call's result does not depend on whether it was
 *   checked; the nexus's validation does the same); when they differ it
 *   fails with a mismatch (EDGERT_EMISMATCH in C, FallbackMismatchError in
 *   Python) and counts it.
 *
 * edgert_guard_call (C, src/guard.c) and ExplicitFallback (Python:
 * run_with_guard is production mode, fallback_to_python strict mode without
 * fallback; python/src/guard.c) both drive the transitions below, which
 * decide the next step and count it. Agreement is edgert_agree()
 * (edgert/agree.h); the option rules and their messages are
 * edgert_guard_option_problem().
 *
 * The counters are ONE process-wide set (edgert_guard_counts()): both hosts'
 * calls show in it, whoever reads it. It is kept in two blocks that a read
 * adds up: the shared block, updated with relaxed atomic read-modify-writes
 * from any thread, and the host block, for a host whose calls are already
 * serialized by a lock of its own (CPython's GIL), updated with relaxed
 * atomic loads and stores (no locked instruction on its fast path; readers
 * on other threads see whole values). Only one host may use the host block;
 * CPython's with a GIL does, a free-threaded CPython uses the shared one.
 *
 * Header only (static inline): no lock, allocation or out-of-line call of
 * its own; the caller passes the counter block and says whether its calls
 * are serialized (a constant, so each host compiles only its own kind of
 * update).
 */
#ifndef EDGERT_GUARD_POLICY_H
#define EDGERT_GUARD_POLICY_H

#include <stdint.h>

#include "agree.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The counters of guarded calls (edgert_guard_call and ExplicitFallback). */
typedef struct edgert_guard_counts_s {
  uint64_t calls;              /* production-mode calls (run_with_guard; edgert_guard_call, not strict) */
  uint64_t compiled;           /* ... whose compiled call returned */
  uint64_t failures;           /* compiled calls that failed, in either mode */
  uint64_t crashes;            /* ... of them, with a contained crash */
  uint64_t fallbacks;          /* reference calls after a failure */
  uint64_t reference_failures; /* reference calls that failed (fallback or comparison) */
  uint64_t validations;        /* strict-mode calls (fallback_to_python; edgert_guard_call, strict) */
  uint64_t matches;            /* ... whose results agreed */
  uint64_t mismatches;         /* ... whose results differed */
} edgert_guard_counts_t;

/* What the caller does next. */
typedef enum edgert_guard_step_e {
  EDGERT_GUARD_RETURN_COMPILED = 0, /* the compiled result is the call's result */
  EDGERT_GUARD_RUN_FALLBACK,        /* run the reference: its result (or failure) is the call's */
  EDGERT_GUARD_COMPARE,             /* run the reference, then edgert_guard_compared() */
  EDGERT_GUARD_FAIL,                /* fail with the compiled side's failure */
  EDGERT_GUARD_MISMATCH             /* fail with a mismatch */
} edgert_guard_step_t;

/* One counter step. `serialized`: the block is the host block (see above). */
#if defined(__GNUC__) || defined(__clang__)
#define EDGERT_GUARD__BUMP(c, field, serialized)                                             \
  ((serialized) ? __atomic_store_n(&(c)->field, __atomic_load_n(&(c)->field, __ATOMIC_RELAXED) + 1, \
                                   __ATOMIC_RELAXED)                                         \
                : (void)__atomic_fetch_add(&(c)->field, 1, __ATOMIC_RELAXED))
#else
#error "edgert/guard_policy.h needs GCC or Clang atomic builtins"
#endif

/*
 * NULL when the options are acceptable, else what is wrong (a static
 * string; the caller prefixes its own context, e.g. "run_with_guard(): "):
 * the tolerance (edgert_tolerance_problem: finite and >= 0), and a
 * reference for a policy that may run one.
 */
static inline const char *edgert_guard_option_problem(int strict, int fallback_enabled,
                                                      int have_reference, double tolerance) {
  if (!have_reference && (strict || fallback_enabled))
    return strict ? "the policy (strict) needs a reference function and ref is NULL"
                  : "the policy (fallback enabled) needs a reference function and ref is NULL";
  return edgert_tolerance_problem(tolerance);
}

/* A guarded call starts (its options accepted). */
static inline void edgert_guard_enter(edgert_guard_counts_t *c, int strict, int serialized) {
  if (strict)
    EDGERT_GUARD__BUMP(c, validations, serialized);
  else
    EDGERT_GUARD__BUMP(c, calls, serialized);
}

/* The compiled side returned: RETURN_COMPILED, or COMPARE in strict mode. */
static inline edgert_guard_step_t edgert_guard_compiled_returned(edgert_guard_counts_t *c,
                                                                 int strict, int serialized) {
  if (strict)
    return EDGERT_GUARD_COMPARE;
  EDGERT_GUARD__BUMP(c, compiled, serialized);
  return EDGERT_GUARD_RETURN_COMPILED;
}

/* The compiled side failed (`crashed`: a contained crash): RUN_FALLBACK or FAIL. */
static inline edgert_guard_step_t edgert_guard_compiled_failed(edgert_guard_counts_t *c,
                                                               int fallback_enabled, int crashed,
                                                               int serialized) {
  EDGERT_GUARD__BUMP(c, failures, serialized);
  if (crashed)
    EDGERT_GUARD__BUMP(c, crashes, serialized);
  if (!fallback_enabled)
    return EDGERT_GUARD_FAIL;
  EDGERT_GUARD__BUMP(c, fallbacks, serialized);
  return EDGERT_GUARD_RUN_FALLBACK;
}

/* The reference failed (as the fallback or for the comparison): its failure is the call's. */
static inline void edgert_guard_reference_failed(edgert_guard_counts_t *c, int serialized) {
  EDGERT_GUARD__BUMP(c, reference_failures, serialized);
}

/* Strict mode compared the sides (`agree`: edgert_agree or the host's
 * comparison said they agree): RETURN_COMPILED or MISMATCH. */
static inline edgert_guard_step_t edgert_guard_compared(edgert_guard_counts_t *c, int agree,
                                                        int serialized) {
  if (agree) {
    EDGERT_GUARD__BUMP(c, matches, serialized);
    return EDGERT_GUARD_RETURN_COMPILED;
  }
  EDGERT_GUARD__BUMP(c, mismatches, serialized);
  return EDGERT_GUARD_MISMATCH;
}

/*
 * The process-wide counter blocks (see above): serialized = 0 the shared
 * block, 1 the host block. Never NULL; lives as long as the library.
 */
EDGERT_EXTERN edgert_guard_counts_t *edgert_guard_counts_block(int serialized);

/* Copies the sum of both blocks into *out (ignored if NULL). Thread-safe. */
EDGERT_EXTERN void edgert_guard_counts(edgert_guard_counts_t *out);

/* Sets every counter of both blocks to 0 (and edgert_guard_stats()'s
 * crashes). Thread-safe against the shared block's writers; a host-block
 * update running at the same moment on another thread may undo part of
 * the reset (CPython resets under the GIL, so its own calls never do). */
EDGERT_EXTERN void edgert_guard_counts_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* EDGERT_GUARD_POLICY_H */
