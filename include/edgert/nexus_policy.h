/*
 * edgert/nexus_policy.h: the nexus policy, once. The routing, the counters,
 * the failure policy and quarantine, the version bookkeeping of swap and
 * rollback, and the sampling of shadow validations, as a plain struct and
 * static inline transitions. Both hosts drive it: the C nexus
 * (src/nexus.c) under each kernel's mutex, the Python Kernel
 * (python/src/nexus.c) under the GIL or, in free-threaded builds, in the
 * handle's critical section. The header has no lock, atomic, allocation or
 * out-of-line call of its own: every transition is a few integer updates,
 * and the caller must hold whatever serializes the struct.
 *
 * A call, as a host drives it:
 *
 *   route = edgert_nexus_policy_enter(p, healthy)       (counts the call)
 *   REFERENCE / UNHEALTHY: the reference serves; done.
 *   COMPILED / VALIDATE (the call holds a validation claim):
 *     the guard refuses        -> edgert_nexus_policy_guard_miss(p, claim)
 *     the compiled side fails  -> edgert_nexus_policy_failed(p, ...)
 *     the call is abandoned    -> edgert_nexus_policy_abandoned(p, claim)
 *       (an error that is not the kernel's: KeyboardInterrupt, out of memory
 *       before the compiled side ran)
 *     the compiled side serves -> edgert_nexus_policy_served(p, ...); with a
 *       claim the host then runs the reference and compares, and a
 *       disagreement is edgert_nexus_policy_mismatch(p).
 *
 * Validation sampling. With validate_every = N a validation falls due when
 * the next served call would be the N-th (the N-th, 2N-th... served call,
 * counting from the last one that made one due). The first call to enter
 * while one is due claims it (route VALIDATE); a claim that is not served
 * (guard miss, failure, abandoned call) is handed back, so the next call to
 * enter claims it. So with calls that overlap (threads with the GIL
 * released, a compiled side that calls the kernel again) no due validation
 * is lost and none is run twice; sequential calls validate exactly the N-th,
 * 2N-th... served call.
 *
 * Quarantine. Consecutive failures count only failures of the current
 * version (a failure of a version swapped out meanwhile cannot quarantine
 * its successor) that the kernel is blamed for (a signal sent to the
 * calling thread is not its fault); a served call of the current version
 * forgets them. max_failures of them quarantine the kernel; swap, rollback
 * and reset make it active again with no failures.
 *
 * Agreement of numeric results is edgert_agree (edgert/agree.h). On a
 * validation that agrees, both hosts return the compiled result (a call's
 * result does not depend on whether it was sampled); on one that disagrees
 * the compiled result stands unless `strict`, where the call fails.
 */
#ifndef EDGERT_NEXUS_POLICY_H
#define EDGERT_NEXUS_POLICY_H

#include <stdint.h>

#include "agree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Kernel states (edgert_nexus_stats_t.state, the policy's state). */
#define EDGERT_NEXUS_ACTIVE 0
#define EDGERT_NEXUS_QUARANTINED 1

#define EDGERT_NEXUS_HISTORY_DEFAULT 8u
#define EDGERT_NEXUS_HISTORY_MAX 1024u

/* The message of a refused rollback, formatted by the host with the steps
 * asked for (a long) and the versions held (an unsigned). */
#define EDGERT_NEXUS_ROLLBACK_MSG                                              \
  "cannot roll back %ld step(s): the history holds %u version(s)"

/* Where a call goes, as edgert_nexus_policy_enter decides. */
typedef enum edgert_nexus_route_e {
  EDGERT_NEXUS_ROUTE_COMPILED = 0, /* the current compiled version */
  EDGERT_NEXUS_ROUTE_VALIDATE,     /* the same, holding a validation claim */
  EDGERT_NEXUS_ROUTE_REFERENCE,    /* quarantined: the reference serves */
  EDGERT_NEXUS_ROUTE_UNHEALTHY     /* the process is unhealthy: the reference */
} edgert_nexus_route_t;

typedef struct edgert_nexus_policy_s {
  /* Options: set before the first call, checked by
   * edgert_nexus_policy_option_problem, never changed after. */
  int fallback_enabled;    /* a failed compiled call falls back (else fails) */
  int strict;              /* a validation that disagrees fails the call */
  unsigned max_failures;   /* consecutive failures that quarantine; 0 never */
  unsigned validate_every; /* 0 off; N as above */
  unsigned history;        /* versions kept for rollback, 1..HISTORY_MAX */
  double tolerance;        /* for edgert_agree; finite and >= 0 */
  /* State. */
  int state;               /* EDGERT_NEXUS_ACTIVE or _QUARANTINED */
  unsigned consecutive_failures;
  unsigned versions;       /* versions in the history, the current included */
  uint64_t version;        /* the current version's number */
  uint64_t last_number;    /* the highest number given; never reused */
  unsigned due;            /* validations due and not claimed */
  /* Counters. */
  uint64_t calls, compiled, guard_misses, fallbacks, failures, mismatches,
      validations;
  uint64_t ended; /* calls that ended without the compiled side serving
                     them: routed to the reference, guard misses, failures,
                     abandoned calls (so edgert_nexus_policy_running) */
} edgert_nexus_policy_t;

/* What is wrong with a set of options, or NULL: a static message, which
 * the host prefixes with "kernel '<name>': " and, when *value_bad is set to
 * 1, follows with ", not <*value>" (the offending integer option's value),
 * else (the tolerance) with ", got <tolerance>". Signed arguments, so that a host
 * passes what its user gave before converting. */
static inline const char *
edgert_nexus_policy_option_problem(long long max_failures,
                                   long long validate_every, double tolerance,
                                   long long history, int *value_bad,
                                   long long *value) {
  *value_bad = 1;
  if (max_failures < 0 || max_failures > (long long)UINT32_MAX) {
    *value = max_failures;
    return max_failures < 0 ? "max_failures must be >= 0 (0 never quarantines)"
                            : "max_failures must be at most 4294967295";
  }
  if (validate_every < 0 || validate_every > (long long)UINT32_MAX) {
    *value = validate_every;
    return validate_every < 0 ? "validate_every must be >= 0 (0 is off)"
                              : "validate_every must be at most 4294967295";
  }
  if (history < 1 || history > (long long)EDGERT_NEXUS_HISTORY_MAX) {
    *value = history;
    return "history must be between 1 and 1024";
  }
  *value_bad = 0;
  return edgert_tolerance_problem(tolerance);
}

/* The defaults: fallback on, 3 failures quarantine, no validation,
 * tolerance 1e-9, not strict, 8 versions. */
static inline void edgert_nexus_policy_defaults(edgert_nexus_policy_t *p) {
  *p = (edgert_nexus_policy_t){0};
  p->fallback_enabled = 1;
  p->max_failures = 3;
  p->history = EDGERT_NEXUS_HISTORY_DEFAULT;
  p->tolerance = 1e-9;
}

/* After the options are set (and checked): version 1 is current, the kernel
 * active, the counters zero. */
static inline void edgert_nexus_policy_start(edgert_nexus_policy_t *p) {
  p->state = EDGERT_NEXUS_ACTIVE;
  p->consecutive_failures = 0;
  p->versions = 1;
  p->version = p->last_number = 1;
  p->due = p->validate_every == 1; /* the first served call is the 1st */
  p->calls = p->compiled = p->guard_misses = p->fallbacks = p->failures =
      p->mismatches = p->validations = p->ended = 0;
}

/* A call enters. `healthy` is edgert_process_healthy()'s answer. */
static inline edgert_nexus_route_t
edgert_nexus_policy_enter(edgert_nexus_policy_t *p, int healthy) {
  p->calls++;
  /* The commonest case first, in one test: active (EDGERT_NEXUS_ACTIVE is
   * 0), nothing due, healthy. */
  if (((p->state | p->due) == 0) & (healthy != 0)) /* & folds to one test */
    return EDGERT_NEXUS_ROUTE_COMPILED;
  if (p->state != EDGERT_NEXUS_ACTIVE || !healthy) {
    p->fallbacks++;
    p->ended++;
    return healthy ? EDGERT_NEXUS_ROUTE_REFERENCE : EDGERT_NEXUS_ROUTE_UNHEALTHY;
  }
  if (p->due != 0) {
    p->due--;
    return EDGERT_NEXUS_ROUTE_VALIDATE;
  }
  return EDGERT_NEXUS_ROUTE_COMPILED;
}

/* A claim not served goes back: the next call to enter takes it. */
static inline void edgert_nexus_policy_abandoned(edgert_nexus_policy_t *p,
                                                 int claimed) {
  p->ended++;
  if (claimed)
    p->due++;
}

/* The guard refused the arguments: the reference serves. */
static inline void edgert_nexus_policy_guard_miss(edgert_nexus_policy_t *p,
                                                  int claimed) {
  p->guard_misses++;
  edgert_nexus_policy_abandoned(p, claimed);
}

/* The compiled side of version `number` served the call. With a claim the
 * validation is counted here; the host runs it next. */
static inline void edgert_nexus_policy_served(edgert_nexus_policy_t *p,
                                              uint64_t number, int claimed) {
  p->compiled++;
  /* The commonest case in one test: no failures to forget, no claim, no
   * validation sampling. */
  if ((p->consecutive_failures | p->validate_every | (unsigned)claimed) == 0)
    return;
  if (number == p->version)
    p->consecutive_failures = 0;
  if (claimed)
    p->validations++;
  if (p->validate_every != 0 && (p->compiled + 1) % p->validate_every == 0)
    p->due++; /* the next served call would be the N-th */
}

/* The compiled side of version `number` failed; `blamed` is 0 when a signal
 * sent to the thread interrupted it. Returns 1 when this failure
 * quarantined the kernel. Counts the fallback when fallback is enabled (the
 * reference then serves); else the call fails. */
static inline int edgert_nexus_policy_failed(edgert_nexus_policy_t *p,
                                             uint64_t number, int blamed,
                                             int claimed) {
  int quarantined = 0;
  p->failures++;
  if (blamed && number == p->version && p->state == EDGERT_NEXUS_ACTIVE) {
    p->consecutive_failures++;
    if (p->max_failures != 0 && p->consecutive_failures >= p->max_failures) {
      p->state = EDGERT_NEXUS_QUARANTINED;
      quarantined = 1;
    }
  }
  if (p->fallback_enabled)
    p->fallbacks++;
  edgert_nexus_policy_abandoned(p, claimed);
  return quarantined;
}

/* Calls that entered and have not ended: entered and not yet served,
 * refused by the guard, failed or abandoned (a call routed to the reference
 * ends as it enters). A host that lets calls run on a version without a
 * reference of their own keeps a version the history drops until this is
 * 0 (python/src/nexus.c). */
static inline uint64_t edgert_nexus_policy_running(const edgert_nexus_policy_t *p) {
  return p->calls - p->compiled - p->ended;
}

/* A validation found the results different (or the reference failed). */
static inline void edgert_nexus_policy_mismatch(edgert_nexus_policy_t *p) {
  p->mismatches++;
}

/* Active, with no consecutive failures (reset, swap, rollback). Returns the
 * state before. */
static inline int edgert_nexus_policy_activate(edgert_nexus_policy_t *p) {
  int was = p->state;
  p->state = EDGERT_NEXUS_ACTIVE;
  p->consecutive_failures = 0;
  return was;
}

/* A new version becomes current: returns its number. When the history was
 * full (*evict set to 1) the host drops its oldest entry. Activates. */
static inline uint64_t edgert_nexus_policy_swap(edgert_nexus_policy_t *p,
                                                int *evict) {
  *evict = p->versions == p->history;
  if (!*evict)
    p->versions++;
  p->version = ++p->last_number;
  edgert_nexus_policy_activate(p);
  return p->version;
}

/* 1 when `steps` newest versions can be dropped (steps >= 1 and the history
 * holds steps + 1 versions), else 0: the host then reports
 * EDGERT_NEXUS_ROLLBACK_MSG. */
static inline int edgert_nexus_policy_can_roll_back(const edgert_nexus_policy_t *p,
                                                    long steps) {
  return steps >= 1 && (unsigned long)steps < p->versions;
}

/* The `steps` newest versions left the history (checked by
 * edgert_nexus_policy_can_roll_back); `number` is the one now current.
 * Activates. */
static inline void edgert_nexus_policy_rollback(edgert_nexus_policy_t *p,
                                                long steps, uint64_t number) {
  p->versions -= (unsigned)steps;
  p->version = number;
  edgert_nexus_policy_activate(p);
}

#ifdef __cplusplus
}
#endif

#endif /* EDGERT_NEXUS_POLICY_H */
