/*
 * nexus.c: kernel handles, the hot path of edgert.Nexus.
 *
 * A Kernel is called through vectorcall. A call goes to the current compiled
 * version unless the kernel is quarantined; for a bound module function the
 * argument guard is the contract, checked while the arguments are converted
 * (edgert_py_bound_call with a `missed` flag), so a refused call goes to the
 * reference with no exception ever built. A compiled call that raises (an
 * Exception; KeyboardInterrupt and other BaseExceptions pass through) is a
 * failure: the reference serves it when fallback is enabled, else it raises
 * CompiledModeFailure whose __cause__ is the original error; max_failures
 * consecutive failures of the current version quarantine the kernel until
 * reset(), swap() or rollback(). A KernelCrash whose signal was sent to the
 * thread (`sent`: raise(), pthread_kill) fails the call the same way but does
 * not count towards the quarantine. While the process is unhealthy
 * (edgert_process_healthy: a contained crash inside the C library may have
 * left one of its locks held) every kernel serves its calls from the
 * reference, and says so once in the log.
 *
 * Invariants. All mutable state (history, state, counters, latencies) lives
 * in the handle as plain C integers and is only read or written in a
 * critical section on the handle (free-threaded builds; with a GIL the
 * sections are plain blocks and the GIL serializes as before). No section
 * is held across a call of either side, of logging or of a decref that may
 * run code: a call picks its version in one short section, runs unlocked,
 * and records its outcome in another. `name`, `reference` and the options
 * are set at construction and never change (tp_clear, which drops the
 * reference, runs only once nothing can reach the handle). A call takes a
 * strong reference to the compiled object of the version it starts on, and
 * copies that version's number and kind, so a swap or rollback in another
 * thread (while this call runs) never frees or changes what the call runs
 * on; consecutive
 * failures and the quarantine follow only calls on the version that is still
 * current. The history is a fixed array, oldest first, never empty: its last
 * entry is the current version. Latencies are sampled on one call in
 * SAMPLE_EVERY (SAMPLE_EVERY_FULL once the ring is full) of each side, so
 * timing costs nothing on the others.
 * The policy itself (routing, counters, quarantine, version numbers,
 * validation sampling, option rules) is edgert/nexus_policy.h, which the C
 * nexus (src/nexus.c) drives too: this file drives it in the handle's
 * critical section and adds only what a Python host owns (the versions'
 * Python objects, logging, exceptions, buffer snapshots, latencies). It does
 * not go through the C nexus because its two sides are Python objects, and
 * a critical section (free with a GIL) costs less than the core kernel's
 * lock and reference counts.
 */
#include "ext.h"
#include "func.h"

#include <structmember.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Latency sampling: the first call of each side, then every SAMPLE_EVERY-th
 * until the ring holds LAT_RING samples, then every SAMPLE_EVERY_FULL-th
 * (two clock reads cost ~50 ns: one call in 64 put ~1 ns on every call of a
 * hot kernel; one in 1024 puts ~0.05 ns, and a kernel called rarely still
 * fills its ring after 8,128 calls). */
#define SAMPLE_EVERY 64u
#define SAMPLE_EVERY_FULL 1024u
#define LAT_RING 128u
#define HISTORY_DEFAULT ((long)EDGERT_NEXUS_HISTORY_DEFAULT)
#define HISTORY_MAX ((int)EDGERT_NEXUS_HISTORY_MAX)

enum { ACTIVE = EDGERT_NEXUS_ACTIVE, QUARANTINED = EDGERT_NEXUS_QUARANTINED };

#if defined(__GNUC__)
#define EDGERT_PY_INLINE inline __attribute__((always_inline))
#define EDGERT_PY_COLD __attribute__((noinline, cold))
/* Out of line but not cold: GCC moves the paths that lead to a cold
 * function into the function's .cold part, the served path among them. */
#define EDGERT_PY_NOINLINE __attribute__((noinline))
#else
#define EDGERT_PY_INLINE inline
#define EDGERT_PY_COLD
#define EDGERT_PY_NOINLINE
#endif

static edgert_py_logger_t nexus_log;

/* The core's health word (edgert_process_health_word), read inline on the
 * call path: one load instead of a call into libedgert. */
static const atomic_int *health_word;

static EDGERT_PY_INLINE int process_healthy(void) {
  return atomic_load_explicit(health_word, memory_order_acquire) == 0;
}

typedef struct lat_s {
  int32_t until;  /* calls of this side before the next sampled one: 0 at
                     first, so the first call is sampled, then every
                     SAMPLE_EVERY-th, SAMPLE_EVERY_FULL-th once the ring is
                     full (one decrement and sign test per call) */
  uint64_t n;     /* samples taken */
  double sum, min, max;
  double ring[LAT_RING]; /* the last LAT_RING samples, ns */
} lat_t;

typedef struct version_s {
  PyObject *compiled; /* strong */
  uint64_t number;
  double installed; /* time.time() when it was installed */
  int bound;        /* compiled is a bound module function (has a contract) */
  edgert_py_lane_t lane; /* edgert_py_bound_lane when bound, else plain_lane */
  int width;        /* edgert_py_bound_float_width: 1 or 2 for the float lane,
                       which positional_call runs inline on fself, else 0 */
  BoundObject *fself; /* compiled's _Bound when bound (borrowed), else NULL */
} version_t;

typedef struct kernel_s {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *weakrefs;
  PyObject *name;      /* str */
  PyObject *reference; /* callable */
  version_t *history;  /* [0] oldest ... [nversions - 1] current */
  version_t *current;  /* &history[nversions - 1], kept by set_current */
  int nversions;       /* == pol.versions */
  int gone;             /* cleared by the garbage collector (pol.state is then
                           QUARANTINED, so calls take the slow path) */
  int unhealthy_logged; /* the "process is unhealthy" error was logged */
  edgert_nexus_policy_t pol; /* options, state, counters: edgert/nexus_policy.h */
  /* Versions the history dropped while calls were running (calls hold no
   * reference of their own: see pick_t), released once none runs
   * (edgert_nexus_policy_running is 0): by settle() when a call ends, and
   * by swap, rollback and reset. ngrave is read without the
   * critical section on the call path (a relaxed atomic where there is no
   * GIL). */
  PyObject **grave;
  Py_ssize_t ngrave, grave_cap;
  /* Failures of an isolated compiled side (docs/isolation.md), also counted
   * in pol.failures: calls that overran the timeout (KernelTimeout) and
   * worker deaths (KernelCrash with isolated=True). */
  uint64_t timeouts, worker_deaths;
  lat_t clat, rlat;
} KernelObject;

static PyTypeObject Kernel_Type;

/* ---- timing ------------------------------------------------------------ */

static inline double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Whether this call of the side is sampled; in the handle's critical
 * section. */
static EDGERT_PY_INLINE int sampled(lat_t *l) {
  if (EDGERT__LIKELY(--l->until >= 0))
    return 0;
  /* this sample will be number n + 1 */
  l->until = (int32_t)((l->n + 1 < LAT_RING ? SAMPLE_EVERY : SAMPLE_EVERY_FULL) - 1);
  return 1;
}

static void lat_record(lat_t *l, double ns) {
  if (l->n == 0 || ns < l->min)
    l->min = ns;
  if (l->n == 0 || ns > l->max)
    l->max = ns;
  l->sum += ns;
  l->ring[l->n % LAT_RING] = ns;
  l->n++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* {"samples", "mean_ns", "min_ns", "p50_ns", "p99_ns", "max_ns"}; the
 * percentiles are over the last LAT_RING samples, the rest over all. */
static PyObject *lat_summary(const lat_t *l) {
  if (l->n == 0)
    return Py_BuildValue("{s:i,s:O,s:O,s:O,s:O,s:O}", "samples", 0, "mean_ns",
                         Py_None, "min_ns", Py_None, "p50_ns", Py_None,
                         "p99_ns", Py_None, "max_ns", Py_None);
  double sorted[LAT_RING];
  size_t m = l->n < LAT_RING ? (size_t)l->n : LAT_RING;
  memcpy(sorted, l->ring, m * sizeof *sorted);
  qsort(sorted, m, sizeof *sorted, cmp_double);
  /* nearest rank: the smallest sample with at least p of them at or below */
  double p50 = sorted[(m + 1) / 2 - 1];
  double p99 = sorted[(size_t)ceil((double)m * 0.99) - 1];
  return Py_BuildValue("{s:K,s:d,s:d,s:d,s:d,s:d}", "samples",
                       (unsigned long long)l->n, "mean_ns", l->sum / (double)l->n,
                       "min_ns", l->min, "p50_ns", p50, "p99_ns", p99, "max_ns",
                       l->max);
}

/* ---- the reference side ------------------------------------------------ */

/* The reference through its own vectorcall entry when it has one (a Python
 * function: _PyFunction_Vectorcall), read at each call since an object may
 * change it, else the generic call. */
static inline PyObject *invoke_reference(KernelObject *self,
                                         PyObject *const *args,
                                         Py_ssize_t nargs) {
  vectorcallfunc vc = PyVectorcall_Function(self->reference);
  if (EDGERT__LIKELY(vc != NULL))
    return vc(self->reference, args, (size_t)nargs, NULL);
  return PyObject_Vectorcall(self->reference, args, (size_t)nargs, NULL);
}

static void record_latency(KernelObject *self, lat_t *l, double ns) {
  (void)self; /* only free-threaded builds lock */
  Py_BEGIN_CRITICAL_SECTION(self);
  lat_record(l, ns);
  Py_END_CRITICAL_SECTION();
}

static EDGERT_PY_INLINE PyObject *call_reference(KernelObject *self, PyObject *const *args,
                                                 Py_ssize_t nargs) {
  int sample;
  Py_BEGIN_CRITICAL_SECTION(self);
  sample = sampled(&self->rlat);
  Py_END_CRITICAL_SECTION();
  if (sample) {
    double t0 = now_ns();
    PyObject *r = invoke_reference(self, args, nargs);
    if (r != NULL)
      record_latency(self, &self->rlat, now_ns() - t0);
    return r;
  }
  return invoke_reference(self, args, nargs);
}

/* ---- the slow paths ---------------------------------------------------- */

static inline uint64_t current_number(KernelObject *self) {
  return self->pol.version;
}

/*
 * Whether debug logging is on, for the guard-miss path: the answer is kept
 * with the version tag of the logger's level cache (PEP 509), which changes
 * whenever logging clears or fills that cache, so the common case is one
 * integer compare instead of a dict lookup. The tag is deprecated from 3.12
 * (part of a dict's layout, with no public reader), so there every check is
 * the lookup.
 */
#if PY_VERSION_HEX < 0x030C0000
static uint64_t debug_tag;
static int debug_on;
#endif
static EDGERT_PY_NOINLINE int debug_lookup(void) {
#if PY_VERSION_HEX < 0x030C0000
  PyDictObject *cache = (PyDictObject *)nexus_log.cache;
  if (cache != NULL) {
    debug_on = edgert_py_log_enabled(&nexus_log, EDGERT_PY_DEBUG);
    debug_tag = cache->ma_version_tag; /* read after the check filled it */
    return debug_on;
  }
#endif
  return edgert_py_log_enabled(&nexus_log, EDGERT_PY_DEBUG);
}

/* The common case inline: the tag unchanged since the last lookup. */
static EDGERT_PY_INLINE int debug_enabled(void) {
#if PY_VERSION_HEX < 0x030C0000
  PyDictObject *cache = (PyDictObject *)nexus_log.cache;
  if (EDGERT__LIKELY(cache != NULL && debug_tag != 0 && cache->ma_version_tag == debug_tag))
    return debug_on;
#endif
  return debug_lookup();
}

/* ---- the grave: versions dropped while calls run ---------------------- */

/* Room for `n` more versions in the grave, in the handle's critical
 * section, before a swap or rollback changes anything: 0, or -1 with
 * MemoryError (and nothing changed). */
static int grave_reserve(KernelObject *self, Py_ssize_t n) {
  if (self->ngrave + n <= self->grave_cap)
    return 0;
  Py_ssize_t cap = 2 * (self->ngrave + n);
  PyObject **g = PyMem_Realloc(self->grave, (size_t)cap * sizeof *g);
  if (g == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  self->grave = g;
  self->grave_cap = cap;
  return 0;
}

/* Whether a version the history drops now must wait in the grave (in the
 * critical section): some call may be running on it. */
static int calls_running(const KernelObject *self) {
  return edgert_nexus_policy_running(&self->pol) != 0;
}

/* `compiled`, a reference the history gave up, in the critical section:
 * into the grave (room reserved) while calls run, and NULL; else returned,
 * for the caller to release after the section. */
static PyObject *bury(KernelObject *self, PyObject *compiled) {
  if (!calls_running(self))
    return compiled;
  self->grave[self->ngrave] = compiled;
  EDGERT_PY_STORE(self->ngrave, self->ngrave + 1);
  return NULL;
}

/* Releases the grave's versions if no call runs. Keeps an exception that is
 * set (a call that failed): releasing one may run code. */
static EDGERT_PY_NOINLINE void settle_grave(KernelObject *self) {
  PyObject **g = NULL;
  Py_ssize_t n = 0;
  Py_BEGIN_CRITICAL_SECTION(self);
  if (self->ngrave != 0 && !calls_running(self)) {
    g = self->grave;
    n = self->ngrave;
    self->grave = NULL;
    self->grave_cap = 0;
    EDGERT_PY_STORE(self->ngrave, 0);
  }
  Py_END_CRITICAL_SECTION();
  if (n == 0)
    return;
  PyObject *exc = PyErr_GetRaisedException();
  for (Py_ssize_t i = 0; i < n; i++)
    Py_DECREF(g[i]);
  PyMem_Free(g);
  PyErr_SetRaisedException(exc);
}

/* A call ended: releases the grave if it holds versions and none runs. */
static EDGERT_PY_INLINE void settle(KernelObject *self) {
  if (EDGERT__UNLIKELY(EDGERT_PY_LOAD(self->ngrave) != 0))
    settle_grave(self);
}

static EDGERT_PY_INLINE PyObject *guard_miss(KernelObject *self,
                                              PyObject *const *args,
                                              Py_ssize_t nargs,
                                              uint64_t number, int claimed) {
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_nexus_policy_guard_miss(&self->pol, claimed);
  Py_END_CRITICAL_SECTION();
  settle(self);
  if (EDGERT__UNLIKELY(debug_enabled())) {
    PyObject *shapes = edgert_py_describe_args(args, nargs);
    if (shapes != NULL) {
      edgert_py_log(&nexus_log, EDGERT_PY_DEBUG,
                    "kernel '%U' version %llu: guard miss: arguments %U do "
                    "not fit the contract; calling the reference",
                    self->name, (unsigned long long)number, shapes);
      Py_DECREF(shapes);
    } else
      PyErr_Clear();
  }
  return call_reference(self, args, nargs);
}

/* The handle lost its state to the garbage collector (it was in a reference
 * cycle being freed, and something still called it): 1 with RuntimeError.
 * In the handle's critical section. */
static int cleared(KernelObject *self) {
  if (self->gone || self->reference == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "this kernel handle was cleared by the garbage collector (it was part "
                    "of a reference cycle being freed); register the kernel again");
    return 1;
  }
  return 0;
}

/* A quarantined kernel, or any kernel of an unhealthy process: the
 * reference serves (the first call of the latter kind logs why). */
static EDGERT_PY_COLD PyObject *quarantined_call(KernelObject *self, PyObject *const *args,
                                                 Py_ssize_t nargs, int healthy) {
  int gone, log_unhealthy = 0;
  const char *reason = NULL;
  if (!healthy) /* the reason, for the log */
    healthy = edgert_process_healthy(&reason);
  Py_BEGIN_CRITICAL_SECTION(self);
  gone = cleared(self);
  if (!gone && !healthy && !self->unhealthy_logged)
    log_unhealthy = self->unhealthy_logged = 1;
  Py_END_CRITICAL_SECTION();
  if (gone)
    return NULL;
  if (log_unhealthy)
    edgert_py_log(&nexus_log, EDGERT_PY_ERROR,
                  "kernel '%U': the process is unhealthy (%s); calls go to the "
                  "reference from now on: restart the process to use compiled kernels",
                  self->name, reason != NULL ? reason : "");
  return call_reference(self, args, nargs);
}

/* Logs at `level` with the arguments' shapes appended as "%U". */
static void log_with_shapes(int level, PyObject *const *args, Py_ssize_t nargs,
                            const char *fmt, KernelObject *self,
                            uint64_t number, PyObject *what) {
  if (!edgert_py_log_enabled(&nexus_log, level))
    return;
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  PyObject *shapes = edgert_py_describe_args(args, nargs);
  if (shapes != NULL) {
    edgert_py_log(&nexus_log, level, fmt, self->name,
                  (unsigned long long)number, what, shapes);
    Py_DECREF(shapes);
  }
  PyErr_Clear();
  PyErr_Restore(et, ev, tb);
}

/* The compiled call raised (the exception is set). Counts, logs, and falls
 * back or raises CompiledModeFailure. */
static EDGERT_PY_COLD PyObject *compiled_failed(KernelObject *self,
                                                PyObject *const *args,
                                                Py_ssize_t nargs,
                                                uint64_t number, int claimed) {
  if (!PyErr_ExceptionMatches(PyExc_Exception)) {
    /* KeyboardInterrupt, SystemExit: not the kernel's failure; abandoned */
    Py_BEGIN_CRITICAL_SECTION(self);
    edgert_nexus_policy_abandoned(&self->pol, claimed);
    Py_END_CRITICAL_SECTION();
    settle(self);
    return NULL;
  }
  PyObject *ev = PyErr_GetRaisedException();

  int quarantine = 0;
  /* A signal sent to the thread interrupted the kernel: not its failure. An
   * isolated call's timeout or worker death is its failure like any other:
   * it counts toward the quarantine (the worker is respawned; this process
   * was never touched, so there is nothing to quarantine at once). */
  int blamed = 1, timeout = 0, worker_died = 0;
  if (PyObject_TypeCheck(ev, (PyTypeObject *)EdgertPy_KernelCrash)) {
    PyObject *sent = PyObject_GetAttrString(ev, "sent");
    if (sent != NULL)
      blamed = !PyObject_IsTrue(sent);
    Py_XDECREF(sent);
    PyObject *iso = PyObject_GetAttrString(ev, "isolated");
    if (iso != NULL)
      worker_died = PyObject_IsTrue(iso) == 1;
    Py_XDECREF(iso);
    PyErr_Clear();
  } else if (PyObject_TypeCheck(ev, (PyTypeObject *)EdgertPy_KernelTimeout)) {
    timeout = 1;
  }
  unsigned long consecutive;
  Py_BEGIN_CRITICAL_SECTION(self);
  self->timeouts += (uint64_t)timeout;
  self->worker_deaths += (uint64_t)worker_died;
  quarantine = edgert_nexus_policy_failed(&self->pol, number, blamed, claimed);
  consecutive = self->pol.consecutive_failures;
  Py_END_CRITICAL_SECTION();
  settle(self);
  PyObject *what = PyUnicode_FromFormat("%s: %S", Py_TYPE(ev)->tp_name, ev);
  if (what == NULL) {
    Py_DECREF(ev);
    return NULL;
  }
  if (self->pol.fallback_enabled) {
    log_with_shapes(EDGERT_PY_WARNING, args, nargs,
                    "kernel '%U' version %llu failed (%U) on %U; falling back "
                    "to the reference",
                    self, number, what);
  } else {
    log_with_shapes(EDGERT_PY_ERROR, args, nargs,
                    "kernel '%U' version %llu failed (%U) on %U; fallback is "
                    "disabled: raising CompiledModeFailure",
                    self, number, what);
  }
  if (quarantine)
    edgert_py_log(&nexus_log, EDGERT_PY_ERROR,
                  "kernel '%U' version %llu quarantined after %lu consecutive "
                  "failure%s; calls go to the reference until reset()",
                  self->name, (unsigned long long)number, consecutive,
                  consecutive == 1 ? "" : "s");
  if (self->pol.fallback_enabled) {
    Py_DECREF(what);
    Py_DECREF(ev);
    return call_reference(self, args, nargs);
  }
  PyObject *msg = PyUnicode_FromFormat("kernel '%U' version %llu failed: %U",
                                       self->name, (unsigned long long)number,
                                       what);
  Py_DECREF(what);
  PyObject *num = msg ? PyLong_FromUnsignedLongLong(number) : NULL;
  if (num != NULL)
    edgert_py_compiled_failure(msg, ev, self->name, num);
  Py_XDECREF(num);
  Py_XDECREF(msg);
  Py_DECREF(ev);
  return NULL;
}

/* Puts the buffer arguments back to `snap` (when there is one) at the end of
 * a call that returns `r`. When the call raises (r == NULL), its exception
 * is kept and a failed restore is dropped; otherwise a failed restore turns
 * the call into that error. */
static PyObject *leave_buffers(PyObject *r, const edgert_py_snap_t *snap,
                               PyObject *const *args) {
  if (snap == NULL || edgert_py_snap_restore(snap, args) == 0 || r == NULL)
    return r;
  Py_DECREF(r);
  return NULL;
}

/*
 * Shadow validation: `result` (owned) is the compiled result. Returns it,
 * or NULL with FallbackMismatchError in strict mode.
 *
 * When arguments export writable buffers, `before` holds their contents
 * from before the compiled call: what the compiled side wrote is kept
 * aside, the arguments are put back so that the reference starts from the
 * same inputs, and the two sides' writes are compared after the return
 * values. The call then leaves the compiled side's writes in place (it
 * returns the compiled result), except when it raises, which leaves the
 * arguments as they were before the call.
 */
static PyObject *shadow_validate(KernelObject *self, PyObject *result,
                                 PyObject *const *args, Py_ssize_t nargs,
                                 uint64_t number, const edgert_py_snap_t *before) {
  edgert_py_snap_t *after = NULL;
  if (before != NULL) {
    if (edgert_py_snap_take(args, nargs, &after) < 0 ||
        edgert_py_snap_restore(before, args) < 0) {
      edgert_py_snap_free(after);
      Py_DECREF(result);
      return NULL;
    }
  }
  PyObject *cause = NULL, *diff = NULL;
  PyObject *ref = call_reference(self, args, nargs); /* kept for the error */
  if (ref == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
      Py_DECREF(result);
      result = leave_buffers(NULL, before, args);
      goto out;
    }
    cause = PyErr_GetRaisedException();
    diff = PyUnicode_FromFormat("the reference raised %s: %S",
                                Py_TYPE(cause)->tp_name, cause);
  } else {
    int m = edgert_py_results_match(result, ref, self->pol.tolerance, &diff);
    if (m == 1 && after != NULL)
      m = edgert_py_snap_match(after, args, self->pol.tolerance, &diff);
    if (m == 1) { /* agreement: the compiled result, as in the C nexus */
      result = leave_buffers(result, after, args);
      goto out;
    }
    if (m < 0) {
      if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        Py_DECREF(result);
        result = leave_buffers(NULL, before, args);
        goto out;
      }
      cause = PyErr_GetRaisedException();
      diff = PyUnicode_FromFormat("the results could not be compared: %s: %S",
                                  Py_TYPE(cause)->tp_name, cause);
    } else if (diff == NULL) {
      diff = PyUnicode_FromString("the results differ");
    }
  }
  if (diff == NULL) {
    Py_XDECREF(cause);
    Py_DECREF(result);
    result = leave_buffers(NULL, before, args);
    goto out;
  }
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_nexus_policy_mismatch(&self->pol);
  Py_END_CRITICAL_SECTION();
  log_with_shapes(self->pol.strict ? EDGERT_PY_ERROR : EDGERT_PY_WARNING, args,
                  nargs,
                  self->pol.strict
                      ? "kernel '%U' version %llu: shadow validation mismatch "
                        "(%U) on %U; strict: raising FallbackMismatchError"
                      : "kernel '%U' version %llu: shadow validation mismatch "
                        "(%U) on %U; returning the compiled result",
                  self, number, diff);
  if (!self->pol.strict) {
    Py_DECREF(diff);
    Py_XDECREF(cause);
    result = leave_buffers(result, after, args);
    goto out;
  }
  PyObject *compiled_result = result;
  result = NULL;
  if (before != NULL && edgert_py_snap_restore(before, args) < 0) {
    Py_DECREF(compiled_result);
    Py_DECREF(diff);
    Py_XDECREF(cause);
    goto out;
  }
  PyObject *shapes = edgert_py_describe_args(args, nargs);
  PyObject *msg =
      shapes ? PyUnicode_FromFormat("kernel '%U' version %llu: compiled and "
                                    "reference results differ on %U: %U",
                                    self->name, (unsigned long long)number,
                                    shapes, diff)
             : NULL;
  Py_XDECREF(shapes);
  PyObject *num = msg ? PyLong_FromUnsignedLongLong(number) : NULL;
  if (num != NULL) {
    edgert_py_mismatch(msg, self->name, num, compiled_result, ref, diff);
    if (cause != NULL && PyErr_ExceptionMatches(EdgertPy_FallbackMismatchError)) {
      PyObject *exc = PyErr_GetRaisedException(); /* the reference's error is the cause */
      PyException_SetContext(exc, Py_NewRef(cause));
      PyException_SetCause(exc, Py_NewRef(cause));
      PyErr_SetRaisedException(exc);
    }
  }
  Py_XDECREF(num);
  Py_XDECREF(msg);
  Py_DECREF(diff);
  Py_DECREF(compiled_result);
  Py_XDECREF(cause);
out:
  Py_XDECREF(ref);
  edgert_py_snap_free(after);
  return result;
}

/* ---- the hot path ------------------------------------------------------ */

/* The lane of a compiled side with no contract (any callable): a plain
 * call, which never misses. A bound one's is edgert_py_bound_lane's. */
static PyObject *plain_lane(PyObject *compiled, PyObject *const *args, Py_ssize_t nargs,
                            int *missed) {
  *missed = 0;
  return PyObject_Vectorcall(compiled, args, (size_t)nargs, NULL);
}

/* The lane of v, a new version whose compiled side is set, `bound` when
 * edgert_py_is_bound. */
static void set_lane(version_t *v, int bound) {
  v->bound = bound;
  v->lane = bound ? edgert_py_bound_lane(v->compiled) : plain_lane;
  v->fself = NULL;
  v->width = bound ? edgert_py_bound_float_width(v->compiled, &v->fself) : 0;
}

/*
 * What a call runs on, taken in the handle's critical section by
 * pick_current: the current version's compiled side, its number and kind,
 * and whether this call's latency is sampled. `compiled` is borrowed: a
 * version the history drops while calls run (a swap in another thread, or
 * by the compiled side itself) waits in the kernel's grave until none does,
 * so a call needs no reference of its own (which cost two writes per call
 * to an object the float lane does not otherwise touch).
 */
typedef struct pick_s {
  PyObject *compiled;
  edgert_py_lane_t lane; /* the version's lane */
  BoundObject *fself;    /* and its float lane's */
  uint64_t number;
  int width;
  int sample;
} pick_t;

static EDGERT_PY_INLINE void pick_current(KernelObject *self, pick_t *p) {
  version_t *v = self->current;
  p->compiled = v->compiled;
  p->number = v->number;
  p->lane = v->lane;
  p->fself = v->fself;
  p->width = v->width;
  p->sample = sampled(&self->clat);
}

/*
 * One call on the version `p` picked. *served
 * is 1 when the compiled side served it, 0 when the reference did or the
 * call raised. `before` (validated calls with buffer arguments, else NULL)
 * is restored before the reference serves a failed call, so the reference
 * never sees a failed kernel's partial writes, and when the call raises.
 */
static EDGERT_PY_INLINE PyObject *compiled_call(KernelObject *self,
                                                 PyObject *const *args,
                                                 Py_ssize_t nargs,
                                                 const edgert_py_snap_t *before,
                                                 pick_t p, int claimed,
                                                 int *served) {
  PyObject *compiled = p.compiled;
  uint64_t number = p.number;
  *served = 0;
  double t0 = EDGERT__UNLIKELY(p.sample) ? now_ns() : 0.0;
  int missed = 0;
  PyObject *r = p.lane(compiled, args, nargs, &missed);
  if (EDGERT__UNLIKELY(r == NULL) && missed)
    return guard_miss(self, args, nargs, number, claimed);
  if (EDGERT__UNLIKELY(r == NULL)) {
    leave_buffers(NULL, before, args); /* the kernel's error stays set */
    return compiled_failed(self, args, nargs, number, claimed);
  }
  Py_BEGIN_CRITICAL_SECTION(self);
  if (EDGERT__UNLIKELY(p.sample))
    lat_record(&self->clat, now_ns() - t0);
  edgert_nexus_policy_served(&self->pol, number, claimed);
  Py_END_CRITICAL_SECTION();
  settle(self);
  *served = 1;
  return r;
}

/*
 * A call with keyword arguments. A compiled kernel takes positional
 * arguments only (an ABI contract has no names), so such a call is one its
 * contract refuses: the reference serves it, counted as a guard miss (a
 * fallback when quarantined), whatever the compiled side is.
 */
static EDGERT_PY_COLD PyObject *keyword_call(KernelObject *self,
                                             PyObject *const *args,
                                             size_t nargsf, PyObject *kwnames) {
  int gone, miss = 0;
  uint64_t number = 0;
  int healthy = process_healthy();
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_nexus_route_t route = edgert_nexus_policy_enter(&self->pol, healthy);
  gone = cleared(self);
  if (!gone && route <= EDGERT_NEXUS_ROUTE_VALIDATE) {
    edgert_nexus_policy_guard_miss(&self->pol,
                                   route == EDGERT_NEXUS_ROUTE_VALIDATE);
    miss = 1;
    number = current_number(self);
  }
  Py_END_CRITICAL_SECTION();
  if (gone)
    return NULL;
  if (miss && EDGERT__UNLIKELY(debug_enabled()))
    edgert_py_log(&nexus_log, EDGERT_PY_DEBUG,
                  "kernel '%U' version %llu: guard miss: keyword arguments %R; "
                  "calling the reference",
                  self->name, (unsigned long long)number, kwnames);
  return PyObject_Vectorcall(self->reference, args, nargsf, kwnames);
}

/* A call that shadow validation will check if the compiled side serves it. */
static EDGERT_PY_COLD PyObject *validated_call(KernelObject *self,
                                               PyObject *const *args,
                                               Py_ssize_t nargs, pick_t p) {
  edgert_py_snap_t *before;
  if (edgert_py_snap_take(args, nargs, &before) < 0) {
    Py_BEGIN_CRITICAL_SECTION(self);
    edgert_nexus_policy_abandoned(&self->pol, 1); /* the claim goes back */
    Py_END_CRITICAL_SECTION();
    settle(self);
    return NULL;
  }
  int served;
  PyObject *r = compiled_call(self, args, nargs, before, p, 1, &served);
  if (r != NULL && served)
    r = shadow_validate(self, r, args, nargs, p.number, before);
  edgert_py_snap_free(before);
  return r;
}

/*
 * Every call but the commonest: a sampled, validated, quarantined or
 * unhealthy one. `route` and `p` are what kernel_vectorcall's section
 * decided and picked.
 */
static EDGERT_PY_COLD PyObject *other_call(KernelObject *self, PyObject *const *args,
                                           Py_ssize_t nargs, edgert_nexus_route_t route,
                                           pick_t p, int healthy) {
  if (route == EDGERT_NEXUS_ROUTE_COMPILED) {
    int served;
    return compiled_call(self, args, nargs, NULL, p, 0, &served);
  }
  if (route == EDGERT_NEXUS_ROUTE_VALIDATE)
    return validated_call(self, args, nargs, p);
  return quarantined_call(self, args, nargs, healthy);
}

/* The lane of the commonest call returned NULL: a guard miss (`missed`) or
 * a failure of the compiled side (its error is set). */
static EDGERT_PY_INLINE PyObject *lane_returned_null(KernelObject *self, PyObject *const *args,
                                                   Py_ssize_t nargs, uint64_t number,
                                                   int missed) {
  if (missed)
    return guard_miss(self, args, nargs, number, 0);
  return compiled_failed(self, args, nargs, number, 0);
}

/*
 * A call with positional arguments. The commonest one (active, healthy,
 * nothing due, latency not sampled) is compiled_call's sequence written out
 * here with nothing it does not need: one pass of the policy's enter and
 * served transitions around the lane, the float lane (edgert_py_floats_lane)
 * inline. All other calls go to other_call. Inlined into both ways in,
 * kernel_vectorcall and Kernel.call.
 */
static EDGERT_PY_INLINE PyObject *positional_call(KernelObject *self, PyObject *const *args,
                                                  Py_ssize_t nargs) {
  edgert_nexus_route_t route;
  pick_t p = {NULL, NULL, NULL, 0, 0, 0};
  int healthy = process_healthy();
  Py_BEGIN_CRITICAL_SECTION(self);
  route = edgert_nexus_policy_enter(&self->pol, healthy);
  if (EDGERT__LIKELY(route == EDGERT_NEXUS_ROUTE_COMPILED ||
                     route == EDGERT_NEXUS_ROUTE_VALIDATE))
    pick_current(self, &p);
  Py_END_CRITICAL_SECTION();
  if (EDGERT__LIKELY(route == EDGERT_NEXUS_ROUTE_COMPILED && !p.sample)) {
    int missed = 0, took = 0;
    PyObject *r = NULL;
    if (p.width == 2)
      r = edgert_py_floats_lane(p.fself, args, nargs, 2, &took);
    else if (p.width == 1)
      r = edgert_py_floats_lane(p.fself, args, nargs, 1, &took);
    if (!took)
      r = p.lane(p.compiled, args, nargs, &missed);
    if (EDGERT__UNLIKELY(r == NULL))
      return lane_returned_null(self, args, nargs, p.number, missed);
    Py_BEGIN_CRITICAL_SECTION(self);
    edgert_nexus_policy_served(&self->pol, p.number, 0);
    Py_END_CRITICAL_SECTION();
    settle(self);
    return r;
  }
  return other_call(self, args, nargs, route, p, healthy);
}

/* The call k(...). */
#if defined(__GNUC__)
__attribute__((aligned(64))) /* its placement moved the call path by ns */
#endif
static PyObject *kernel_vectorcall(PyObject *op, PyObject *const *args,
                                   size_t nargsf, PyObject *kwnames) {
  KernelObject *self = (KernelObject *)op;
  if (EDGERT__UNLIKELY(kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0))
    return keyword_call(self, args, nargsf, kwnames);
  return positional_call(self, args, PyVectorcall_NARGS(nargsf));
}

/* ---- construction ------------------------------------------------------ */

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* After the history changed (in the handle's critical section). */
static void set_current(KernelObject *self) {
  self->current = &self->history[self->nversions - 1];
}

static int check_compiled(PyObject *name, PyObject *compiled) {
  if (!PyCallable_Check(compiled)) {
    PyErr_Format(PyExc_TypeError,
                 "the compiled side of kernel '%U' must be callable, not %.100s",
                 name, Py_TYPE(compiled)->tp_name);
    return -1;
  }
  return 0;
}

/* "kernel '<name>': <problem>, got <tolerance>" as a ValueError. */
static void bad_tolerance(PyObject *name, const char *problem, double tolerance) {
  PyObject *t = PyFloat_FromDouble(tolerance);
  if (t != NULL)
    PyErr_Format(PyExc_ValueError, "kernel '%U': %s, got %R", name, problem, t);
  Py_XDECREF(t);
}

static PyObject *kernel_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwds) {
  static char *kwlist[] = {"name",          "compiled",     "reference",
                           "fallback_enabled", "max_failures", "validate_every",
                           "tolerance",     "strict",       "history",
                           NULL};
  PyObject *name, *compiled, *reference;
  int fallback_enabled = 1, strict = 0;
  long max_failures = 3, validate_every = 0, history = HISTORY_DEFAULT;
  double tolerance = 1e-9;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "UOO|$plldpl:Kernel", kwlist,
                                   &name, &compiled, &reference,
                                   &fallback_enabled, &max_failures,
                                   &validate_every, &tolerance, &strict,
                                   &history))
    return NULL;
  if (PyUnicode_GET_LENGTH(name) == 0) {
    PyErr_SetString(PyExc_ValueError, "a kernel name must not be empty");
    return NULL;
  }
  if (check_compiled(name, compiled) < 0)
    return NULL;
  if (!PyCallable_Check(reference)) {
    PyErr_Format(PyExc_TypeError,
                 "the reference of kernel '%U' must be callable, not %.100s",
                 name, Py_TYPE(reference)->tp_name);
    return NULL;
  }
  int value_bad;
  long long value;
  const char *problem = edgert_nexus_policy_option_problem(
      max_failures, validate_every, tolerance, history, &value_bad, &value);
  if (problem != NULL) {
    if (value_bad)
      PyErr_Format(PyExc_ValueError, "kernel '%U': %s, not %lld", name, problem,
                   value);
    else
      bad_tolerance(name, problem, tolerance);
    return NULL;
  }
  KernelObject *self = (KernelObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->history = PyMem_Calloc((size_t)history, sizeof *self->history);
  if (self->history == NULL) {
    Py_DECREF(self);
    return PyErr_NoMemory();
  }
  self->vectorcall = kernel_vectorcall;

  self->name = Py_NewRef(name);
  self->reference = Py_NewRef(reference);
  self->pol.fallback_enabled = fallback_enabled;
  self->pol.strict = strict;
  self->pol.max_failures = (unsigned)max_failures;
  self->pol.validate_every = (unsigned)validate_every;
  self->pol.history = (unsigned)history;
  self->pol.tolerance = tolerance;
  edgert_nexus_policy_start(&self->pol);
  version_t *v = &self->history[0];
  v->compiled = Py_NewRef(compiled);
  v->number = 1;
  v->installed = wall_time();
  set_lane(v, edgert_py_is_bound(compiled));
  self->nversions = 1;
  set_current(self);
  return (PyObject *)self;
}

static int kernel_traverse(KernelObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->reference);
  for (int i = 0; i < self->nversions; i++)
    Py_VISIT(self->history[i].compiled);
  for (Py_ssize_t i = 0; i < self->ngrave; i++)
    Py_VISIT(self->grave[i]);
  return 0;
}

/* The references are taken out in the handle's critical section and
 * released after it, since releasing one may run code. The grave's too:
 * the garbage collector clears a handle only when nothing can call it, so
 * no call runs. */
static int kernel_clear(KernelObject *self) {
  PyObject *dropped[HISTORY_MAX + 1];
  int n = 0;
  PyObject **grave;
  Py_ssize_t ngrave;
  Py_BEGIN_CRITICAL_SECTION(self);
  grave = self->grave;
  ngrave = self->ngrave;
  self->grave = NULL;
  self->grave_cap = 0;
  EDGERT_PY_STORE(self->ngrave, 0);
  self->gone = 1; /* calls now raise instead of touching the history */
  self->pol.state = QUARANTINED; /* ... since they take the slow path */
  dropped[n++] = self->reference;
  self->reference = NULL;
  for (int i = 0; i < self->nversions; i++) {
    dropped[n++] = self->history[i].compiled;
    self->history[i].compiled = NULL;
  }
  Py_END_CRITICAL_SECTION();
  for (int i = 0; i < n; i++)
    Py_XDECREF(dropped[i]);
  for (Py_ssize_t i = 0; i < ngrave; i++)
    Py_DECREF(grave[i]);
  PyMem_Free(grave);
  return 0;
}

static void kernel_dealloc(KernelObject *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs != NULL)
    PyObject_ClearWeakRefs((PyObject *)self);
  kernel_clear(self);
  Py_CLEAR(self->name);
  PyMem_Free(self->history);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- methods ----------------------------------------------------------- */

/* Installs `compiled` as the newest version; in the handle's critical
 * section. Returns its number, or 0 with RuntimeError when the handle was
 * cleared (MemoryError when the grave has no room), nothing changed.
 * *dropped is the version that left a full history, for the caller to
 * release unlocked, or NULL (none left, or it waits in the grave); *was
 * the state before. */
static uint64_t install_version(KernelObject *self, PyObject *compiled, int bound,
                                PyObject **dropped, int *was) {
  if (cleared(self))
    return 0;
  /* room for the oldest version, should it leave while calls run */
  if (calls_running(self) && grave_reserve(self, 1) < 0)
    return 0;
  int evict;
  *was = self->pol.state;
  uint64_t number = edgert_nexus_policy_swap(&self->pol, &evict);
  if (evict) {
    *dropped = bury(self, self->history[0].compiled);
    memmove(self->history, self->history + 1,
            (size_t)(self->nversions - 1) * sizeof *self->history);
    self->nversions--;
  }
  version_t *v = &self->history[self->nversions];
  v->compiled = Py_NewRef(compiled);
  v->number = number;
  v->installed = wall_time();
  set_lane(v, bound);
  self->nversions++;
  set_current(self);
  return number;
}

static PyObject *kernel_swap(KernelObject *self, PyObject *compiled) {
  if (check_compiled(self->name, compiled) < 0)
    return NULL;
  int bound = edgert_py_is_bound(compiled);
  PyObject *dropped = NULL;
  int was = ACTIVE;
  uint64_t number;
  Py_BEGIN_CRITICAL_SECTION(self);
  number = install_version(self, compiled, bound, &dropped, &was);
  Py_END_CRITICAL_SECTION();
  if (number == 0)
    return NULL;
  /* Dropping the oldest version may run arbitrary code (a __del__): only
   * once the handle is consistent again. With calls in flight it waited in
   * the grave instead. */
  Py_XDECREF(dropped);
  settle(self);
  edgert_py_log(&nexus_log, EDGERT_PY_INFO,
                "kernel '%U': swapped in version %llu (%s)%s", self->name,
                (unsigned long long)number, Py_TYPE(compiled)->tp_name,
                was == QUARANTINED ? "; the quarantine is lifted" : "");
  return PyLong_FromUnsignedLongLong(number);
}

static PyObject *kernel_rollback(KernelObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const kw[] = {"steps"};
  long steps = 1;
  if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
    if (nargs != 0 || PyTuple_GET_SIZE(kwnames) != 1 ||
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), kw[0]) !=
            0) {
      PyErr_SetString(PyExc_TypeError,
                      "rollback() takes one argument: steps=1");
      return NULL;
    }
    nargs = 1;
  } else if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "rollback() takes one argument: steps=1");
    return NULL;
  }
  if (nargs == 1) {
    if (!PyLong_Check(args[0]) || PyBool_Check(args[0])) {
      PyErr_Format(PyExc_TypeError, "rollback(): steps must be an int, not %.100s",
                   Py_TYPE(args[0])->tp_name);
      return NULL;
    }
    steps = PyLong_AsLong(args[0]);
    if (steps == -1 && PyErr_Occurred())
      return NULL;
  }
  PyObject *dropped[HISTORY_MAX];
  int ok = 0;
  uint64_t number = 0;
  Py_BEGIN_CRITICAL_SECTION(self);
  if (!cleared(self)) {
    if (!edgert_nexus_policy_can_roll_back(&self->pol, steps)) {
      PyErr_Format(PyExc_ValueError,
                   "kernel '%U': " EDGERT_NEXUS_ROLLBACK_MSG " (history=%u)",
                   self->name, steps, self->pol.versions, self->pol.history);
    } else if (!calls_running(self) || grave_reserve(self, steps) == 0) {
      for (long i = 0; i < steps; i++) {
        dropped[i] = bury(self, self->history[--self->nversions].compiled);
        self->history[self->nversions].compiled = NULL;
      }
      set_current(self);
      number = self->current->number;
      edgert_nexus_policy_rollback(&self->pol, steps, number);
      ok = 1;
    }
  }
  Py_END_CRITICAL_SECTION();
  if (!ok)
    return NULL;
  for (long i = 0; i < steps; i++)
    Py_XDECREF(dropped[i]);
  settle(self);
  edgert_py_log(&nexus_log, EDGERT_PY_INFO,
                "kernel '%U': rolled back %ld step(s) to version %llu",
                self->name, steps, (unsigned long long)number);
  return PyLong_FromUnsignedLongLong(number);
}

static PyObject *kernel_reset(KernelObject *self, PyObject *unused) {
  (void)unused;
  int was = ACTIVE, gone;
  unsigned long consecutive = 0;
  PyObject *compiled = NULL;
  settle(self);
  Py_BEGIN_CRITICAL_SECTION(self);
  gone = cleared(self);
  if (!gone)
    compiled = Py_NewRef(self->history[self->nversions - 1].compiled);
  Py_END_CRITICAL_SECTION();
  if (gone)
    return NULL;
  /* A bound compiled side whose module mapping crashed would be
   * quarantined again at its next call: reload it (a fresh verified copy)
   * before the kernel is active again. */
  int reloaded = edgert_py_bound_reload_if_crashed(compiled);
  unsigned long generation =
      reloaded > 0 ? edgert_module_generation(edgert_func_module(edgert_py_bound_func(compiled)))
                   : 0;
  Py_DECREF(compiled);
  if (reloaded < 0)
    return NULL;
  Py_BEGIN_CRITICAL_SECTION(self);
  gone = cleared(self);
  if (!gone) {
    consecutive = self->pol.consecutive_failures;
    was = edgert_nexus_policy_activate(&self->pol);
  }
  Py_END_CRITICAL_SECTION();
  if (gone)
    return NULL;
  if (reloaded)
    edgert_py_log(&nexus_log, EDGERT_PY_INFO,
                  "kernel '%U' reset: its module crashed; reloaded, calls run on mapping "
                  "generation %lu",
                  self->name, generation);
  if (was == QUARANTINED)
    edgert_py_log(&nexus_log, EDGERT_PY_INFO,
                  "kernel '%U' reset: active again after %lu consecutive "
                  "failure%s",
                  self->name, consecutive, consecutive == 1 ? "" : "s");
  Py_RETURN_NONE;
}

static const char *state_name(KernelObject *self) {
  return self->gone                  ? "cleared"
         : self->pol.state == ACTIVE ? "active"
                                     : "quarantined";
}

EDGERT_PY_LOCKED(PyObject *, kernel_stats, self,
                 (KernelObject *self, PyObject *unused),
                 (self, unused))
static PyObject *kernel_stats_locked(KernelObject *self, PyObject *unused) {
  (void)unused;
  PyObject *cl = lat_summary(&self->clat);
  PyObject *rl = cl ? lat_summary(&self->rlat) : NULL;
  if (rl == NULL) {
    Py_XDECREF(cl);
    return NULL;
  }
  unsigned long long version =
      self->nversions ? (unsigned long long)current_number(self) : 0;
  /* The mapping generation of a bound compiled side's module: the copy its
   * calls run on now (a reload, or a reset after a crash, moves it on). */
  edgert_func_t *bf =
      self->nversions ? edgert_py_bound_func(self->history[self->nversions - 1].compiled) : NULL;
  PyObject *gen = bf != NULL ? PyLong_FromUnsignedLong(edgert_module_generation(
                                   edgert_func_module(bf)))
                             : Py_NewRef(Py_None);
  if (gen == NULL) {
    Py_DECREF(cl);
    Py_DECREF(rl);
    return NULL;
  }
  /* An isolated compiled side: its module's worker respawns (all of its
   * functions' calls: workers belong to the module). */
  edgert_isolate_stats_t ist;
  int isolated = bf != NULL && edgert_isolate_options(edgert_func_module(bf), NULL) == 1 &&
                 edgert_isolate_stats(edgert_func_module(bf), &ist) == 0;
  return Py_BuildValue(
      "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:s,s:k,s:i,s:N,s:N,s:O,s:N,s:O,s:K,s:K,s:K,s:K}",
      "calls",
      (unsigned long long)self->pol.calls, "compiled",
      (unsigned long long)self->pol.compiled, "guard_misses",
      (unsigned long long)self->pol.guard_misses, "fallbacks",
      (unsigned long long)self->pol.fallbacks, "failures",
      (unsigned long long)self->pol.failures, "mismatches",
      (unsigned long long)self->pol.mismatches, "validations",
      (unsigned long long)self->pol.validations, "version", version, "state",
      state_name(self), "consecutive_failures",
      (unsigned long)self->pol.consecutive_failures,
      "versions", self->nversions, "compiled_latency", cl, "reference_latency",
      rl, "process_healthy", edgert_process_healthy(NULL) ? Py_True : Py_False,
      "generation", gen, "isolated", isolated ? Py_True : Py_False, "timeouts",
      (unsigned long long)self->timeouts, "worker_deaths",
      (unsigned long long)self->worker_deaths, "respawns",
      isolated ? (unsigned long long)ist.respawns : 0ull, "running",
      (unsigned long long)edgert_nexus_policy_running(&self->pol));
}

/*
 * k.call(*args): the call k(*args), entered as a method. CPython 3.11-3.13
 * specialise a call of a C method (`k.call(x)`: a method descriptor) and of
 * a builtin function (`f = k.call; f(x)`: exact builtin_function_or_method)
 * and run its C function directly, but call any other object, a Kernel
 * among them, through their generic path (adaptive counters,
 * PyObject_Vectorcall, _Py_CheckFunctionResult: about 85 instructions on
 * 3.11). Positional only (METH_FASTCALL), as the bound function is: the
 * interpreter's no-keywords call is 7 instructions shorter on 3.11, and
 * there are no keywords to test. Nothing else differs: the same call path
 * (positional_call), the same counters.
 */
#if defined(__GNUC__)
__attribute__((aligned(64)))
#endif
static PyObject *kernel_call_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  return positional_call((KernelObject *)self, args, nargs);
}

static PyMethodDef kernel_methods[] = {
    {"call", (PyCFunction)(void (*)(void))kernel_call_method, METH_FASTCALL,
     "call(*args) -> the result\n\nThe same call as kernel(*args), with the same routing "
     "and counters, positional arguments only (like the bound function it stands for; "
     "kernel(*args, **kwargs) sends keywords to the reference). CPython calls a method of "
     "a C type (kernel.call(x)) and a builtin function (f = kernel.call; f(x)) through "
     "specialised instructions, and any other callable object, a Kernel among them, "
     "through its generic path. In a hot loop, take f = kernel.call once and call f(x): "
     "on 3.11 that is about 90 instructions per call fewer than kernel(x) "
     "(kernel.call(x), which looks the method up each time, about 50)."},
    {"swap", (PyCFunction)kernel_swap, METH_O,
     "swap(compiled) -> int\n\nInstall `compiled` as the new current version "
     "and return its number. Calls already running finish on their version; "
     "the oldest version leaves the history when it is full; a quarantined "
     "kernel becomes active."},
    {"rollback", (PyCFunction)(void (*)(void))kernel_rollback,
     METH_FASTCALL | METH_KEYWORDS,
     "rollback(steps=1) -> int\n\nDrop the `steps` newest versions and return "
     "the number of the one now current. ValueError when the history does "
     "not hold steps + 1 versions."},
    {"reset", (PyCFunction)kernel_reset, METH_NOARGS,
     "reset()\n\nLift a quarantine and forget consecutive failures. A bound compiled side "
     "whose module crashed is reloaded first (ModuleLoader.reload), so the kernel is "
     "active on a fresh copy."},
    {"stats", (PyCFunction)kernel_stats, METH_NOARGS,
     "stats() -> dict\n\nThe counters (calls, compiled, guard_misses, "
     "fallbacks, failures, mismatches, validations), version, state "
     "('active' or 'quarantined'), consecutive_failures, versions, the "
     "sampled compiled_latency and reference_latency summaries, and for "
     "process isolation: isolated (the current compiled side runs in a "
     "worker process), timeouts and worker_deaths (of its failures), respawns "
     "(of its module's workers)."},
    {NULL, NULL, 0, NULL}};

/* ---- attributes -------------------------------------------------------- */

static PyObject *get_name(KernelObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->name);
}
EDGERT_PY_LOCKED(PyObject *, get_reference, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_reference_locked(KernelObject *self, void *c) {
  (void)c;
  if (cleared(self))
    return NULL;
  return Py_NewRef(self->reference);
}
EDGERT_PY_LOCKED(PyObject *, get_compiled, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_compiled_locked(KernelObject *self, void *c) {
  (void)c;
  if (cleared(self))
    return NULL;
  return Py_NewRef(self->history[self->nversions - 1].compiled);
}
EDGERT_PY_LOCKED(PyObject *, get_version, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_version_locked(KernelObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->nversions ? current_number(self) : 0);
}
EDGERT_PY_LOCKED(PyObject *, get_state, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_state_locked(KernelObject *self, void *c) {
  (void)c;
  return PyUnicode_FromString(state_name(self));
}
EDGERT_PY_LOCKED(PyObject *, get_history, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_history_locked(KernelObject *self, void *c) {
  (void)c;
  if (cleared(self))
    return NULL;
  PyObject *list = PyList_New(self->nversions);
  if (list == NULL)
    return NULL;
  for (int i = 0; i < self->nversions; i++) {
    version_t *v = &self->history[i];
    PyObject *d = Py_BuildValue("{s:K,s:O,s:d,s:O}", "version",
                                (unsigned long long)v->number, "compiled",
                                v->compiled, "installed", v->installed,
                                "current",
                                i == self->nversions - 1 ? Py_True : Py_False);
    if (d == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, d);
  }
  return list;
}
static PyObject *get_fallback_enabled(KernelObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->pol.fallback_enabled);
}
static PyObject *get_strict(KernelObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->pol.strict);
}
EDGERT_PY_LOCKED(PyObject *, get_guarded, self, (KernelObject *self, void *c), (self, c))
static PyObject *get_guarded_locked(KernelObject *self, void *c) {
  (void)c;
  if (cleared(self))
    return NULL;
  return PyBool_FromLong(self->history[self->nversions - 1].bound);
}

static PyGetSetDef kernel_getset[] = {
    {"name", (getter)get_name, NULL, "The kernel's name.", NULL},
    {"__name__", (getter)get_name, NULL, "The kernel's name.", NULL},
    {"reference", (getter)get_reference, NULL, "The reference callable.", NULL},
    {"__wrapped__", (getter)get_reference, NULL,
     "The reference (so inspect.signature shows its signature).", NULL},
    {"compiled", (getter)get_compiled, NULL, "The current compiled side.", NULL},
    {"version", (getter)get_version, NULL, "The current version's number.", NULL},
    {"state", (getter)get_state, NULL, "'active' or 'quarantined'.", NULL},
    {"history", (getter)get_history, NULL,
     "The versions kept for rollback, oldest first: dicts with version, "
     "compiled, installed (time.time()) and current.",
     NULL},
    {"guarded", (getter)get_guarded, NULL,
     "True when the current compiled side has an ABI contract that guards "
     "its arguments.",
     NULL},
    {"fallback_enabled", (getter)get_fallback_enabled, NULL, NULL, NULL},
    {"strict", (getter)get_strict, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

/* The options read as they are stored. */
static PyMemberDef kernel_members[] = {
    {"history_size", T_UINT, offsetof(KernelObject, pol.history), READONLY,
     "How many versions the history keeps."},
    {"max_failures", T_UINT, offsetof(KernelObject, pol.max_failures), READONLY, NULL},
    {"validate_every", T_UINT, offsetof(KernelObject, pol.validate_every), READONLY, NULL},
    {"tolerance", T_DOUBLE, offsetof(KernelObject, pol.tolerance), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

EDGERT_PY_LOCKED(PyObject *, kernel_repr, self, (KernelObject *self), (self))
static PyObject *kernel_repr_locked(KernelObject *self) {
  return PyUnicode_FromFormat("<edgert.Kernel '%U' version %llu %s>",
                              self->name,
                              (unsigned long long)(self->nversions
                                                       ? current_number(self)
                                                       : 0),
                              state_name(self));
}

static PyTypeObject Kernel_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.Kernel",
    .tp_basicsize = sizeof(KernelObject),
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_vectorcall_offset = offsetof(KernelObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)kernel_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc =
        "Kernel(name, compiled, reference, *, fallback_enabled=True, "
        "max_failures=3, validate_every=0, tolerance=1e-9, strict=False, "
        "history=8)\n\n"
        "A named kernel: calling it runs the compiled side when its ABI "
        "contract accepts the arguments and the kernel is active, else the "
        "reference. Usually made by Nexus.register.",
    .tp_traverse = (traverseproc)kernel_traverse,
    .tp_clear = (inquiry)kernel_clear,
    .tp_weaklistoffset = offsetof(KernelObject, weakrefs),
    .tp_methods = kernel_methods,
    .tp_getset = kernel_getset,
    .tp_members = kernel_members,
    .tp_new = kernel_new,
};

int edgert_py_nexus_init(PyObject *m) {
  health_word = edgert_process_health_word();
  if (edgert_py_logger_init(&nexus_log, "edgert.nexus") < 0)
    return -1;
  if (PyType_Ready(&Kernel_Type) < 0)
    return -1;
  Py_INCREF(&Kernel_Type);
  if (PyModule_AddObject(m, "Kernel", (PyObject *)&Kernel_Type) < 0) {
    Py_DECREF(&Kernel_Type);
    return -1;
  }
  return 0;
}
