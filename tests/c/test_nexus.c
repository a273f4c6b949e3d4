/* test_nexus.c: the C nexus: routing, failure policy, quarantine, hot swap
 * and rollback under concurrent calls, shadow validation, observers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/failalloc.h"

/* ---- kernels: double f(double x) ------------------------------------- */

/* What a compiled version knows: the value it adds, and a canary that its
 * release poisons, so a call on a freed version is caught. */
#define ALIVE 0xA11CEu
#define DEAD 0xDEADu
typedef struct impl_s {
  unsigned canary;
  double add;          /* result = 2x + add */
  int fail;            /* return this instead (0: succeed) */
  atomic_int invoked;  /* how often the compiled side ran */
  atomic_int released; /* how often release ran */
  int free_on_release; /* heap-allocated by the swap test */
} impl_t;

/* Calls that found a freed (poisoned) version, and releases of one: counted
 * rather than asserted, because they may happen on the test's threads. */
static atomic_int dead_calls, dead_releases;

static int compiled_fn(void *ud, void **args, void *ret) {
  impl_t *im = ud;
  if (im->canary != ALIVE) {
    atomic_fetch_add(&dead_calls, 1);
    return EDGERT_EFAILED;
  }
  atomic_fetch_add(&im->invoked, 1);
  if (im->fail)
    return im->fail;
  double x = *(double *)args[0];
  *(double *)ret = 2.0 * x + im->add;
  return 0;
}

static int reference_calls;
static int reference_fn(void *ud, void **args, void *ret) {
  (void)ud;
  reference_calls++;
  double x = *(double *)args[0];
  *(double *)ret = 2.0 * x + 1.0;
  return 0;
}

/* The guard: accepts non-negative x only. */
static int nonnegative(void *ud, void **args) {
  (void)ud;
  return *(double *)args[0] >= 0.0;
}

static void release_impl(void *ud) {
  impl_t *im = ud;
  if (im->canary != ALIVE)
    atomic_fetch_add(&dead_releases, 1);
  atomic_fetch_add(&im->released, 1);
  im->canary = DEAD;
  if (im->free_on_release)
    free(im);
}

static edgert_nexus_impl_t plain(impl_t *im) {
  im->canary = ALIVE;
  edgert_nexus_impl_t c = {NULL, compiled_fn, NULL, im, release_impl};
  return c;
}

static double call(edgert_kernel_t *k, double x, int *rc) {
  void *args[1] = {&x};
  double out = -1.0;
  *rc = edgert_kernel_call(k, args, &out);
  return out;
}

static edgert_nexus_stats_t stats_of(edgert_kernel_t *k) {
  edgert_nexus_stats_t st;
  edgert_kernel_stats(k, &st);
  return st;
}

/* ---- routing ---------------------------------------------------------- */

static void compiled_side_serves_when_the_guard_passes(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.0};
  edgert_nexus_impl_t c = plain(&im);
  c.guard = nonnegative;
  edgert_kernel_t *k;
  assert_int_equal(edgert_nexus_register(nx, "f", &c, reference_fn, NULL,
                                         NULL, &k),
                   0);
  assert_string_equal(edgert_kernel_name(k), "f");
  reference_calls = 0;
  int rc;
  assert_true(call(k, 3.0, &rc) == 7.0);
  assert_int_equal(rc, 0);
  assert_int_equal(atomic_load(&im.invoked), 1);
  assert_int_equal(reference_calls, 0);

  /* by name, too */
  double x = 4.0, out = 0;
  void *args[1] = {&x};
  assert_int_equal(edgert_nexus_call(nx, "f", args, &out), 0);
  assert_true(out == 9.0);

  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.calls, 2);
  assert_int_equal(st.compiled, 2);
  assert_int_equal(st.guard_misses, 0);
  assert_int_equal(st.fallbacks, 0);
  assert_int_equal(st.failures, 0);
  assert_int_equal(st.version, 1);
  assert_int_equal(st.versions, 1);
  assert_int_equal(st.state, EDGERT_NEXUS_ACTIVE);
  edgert_nexus_free(nx);
  assert_int_equal(atomic_load(&im.released), 1);
}

static void guard_miss_goes_to_the_reference_and_is_counted(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 100.0};
  edgert_nexus_impl_t c = plain(&im);
  c.guard = nonnegative;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, NULL, &k), 0);
  reference_calls = 0;
  int rc;
  assert_true(call(k, -2.0, &rc) == -3.0); /* the reference's 2x + 1 */
  assert_int_equal(rc, 0);
  assert_int_equal(atomic_load(&im.invoked), 0); /* no partial effect */
  assert_int_equal(reference_calls, 1);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.calls, 1);
  assert_int_equal(st.guard_misses, 1);
  assert_int_equal(st.compiled, 0);
  assert_int_equal(st.fallbacks, 0);
  assert_int_equal(st.failures, 0);
  edgert_nexus_free(nx);
}

/* ---- failure policy ---------------------------------------------------- */

static void failures_fall_back_then_quarantine_until_reset(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.0, .fail = EDGERT_EIO};
  edgert_nexus_impl_t c = plain(&im);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 2;
  edgert_kernel_t *k;
  assert_int_equal(edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o,
                                         &k),
                   0);
  reference_calls = 0;
  int rc;
  assert_true(call(k, 1.0, &rc) == 3.0);
  assert_int_equal(rc, 0);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.failures, 1);
  assert_int_equal(st.fallbacks, 1);
  assert_int_equal(st.consecutive_failures, 1);
  assert_int_equal(st.state, EDGERT_NEXUS_ACTIVE);

  assert_true(call(k, 1.0, &rc) == 3.0);
  st = stats_of(k);
  assert_int_equal(st.state, EDGERT_NEXUS_QUARANTINED);
  assert_int_equal(atomic_load(&im.invoked), 2);

  /* quarantined: the compiled side is not even tried */
  assert_true(call(k, 5.0, &rc) == 11.0);
  assert_int_equal(atomic_load(&im.invoked), 2);
  st = stats_of(k);
  assert_int_equal(st.calls, 3);
  assert_int_equal(st.failures, 2);
  assert_int_equal(st.fallbacks, 3);
  assert_int_equal(st.compiled, 0);
  assert_int_equal(reference_calls, 3);

  /* reset: the compiled side gets its chance again, and now succeeds */
  im.fail = 0;
  edgert_kernel_reset(k);
  st = stats_of(k);
  assert_int_equal(st.state, EDGERT_NEXUS_ACTIVE);
  assert_int_equal(st.consecutive_failures, 0);
  assert_true(call(k, 5.0, &rc) == 11.0);
  assert_int_equal(atomic_load(&im.invoked), 3);
  assert_int_equal(stats_of(k).compiled, 1);
  edgert_nexus_free(nx);
}

static void a_success_breaks_the_run_of_failures(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.0};
  edgert_nexus_impl_t c = plain(&im);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 2;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k), 0);
  int rc;
  for (int i = 0; i < 5; i++) {
    im.fail = EDGERT_EFAILED;
    call(k, 1.0, &rc);
    im.fail = 0;
    call(k, 1.0, &rc);
  }
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.failures, 5);
  assert_int_equal(st.compiled, 5);
  assert_int_equal(st.state, EDGERT_NEXUS_ACTIVE);
  edgert_nexus_free(nx);
}

static void without_fallback_a_failure_is_efailed_naming_the_cause(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.0, .fail = EDGERT_EIO};
  edgert_nexus_impl_t c = plain(&im);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.fallback_enabled = 0;
  edgert_kernel_t *k;
  assert_int_equal(edgert_nexus_register(nx, "scale", &c, reference_fn, NULL,
                                         &o, &k),
                   0);
  reference_calls = 0;
  int rc;
  call(k, 1.0, &rc);
  assert_int_equal(rc, EDGERT_EFAILED);
  assert_string_equal(edgert_last_error(),
                      "kernel 'scale' version 1 failed (EIO): I/O error");
  assert_int_equal(reference_calls, 0);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.failures, 1);
  assert_int_equal(st.fallbacks, 0);
  /* a positive return from a C kernel is a failure too */
  im.fail = 7;
  call(k, 1.0, &rc);
  assert_int_equal(rc, EDGERT_EFAILED);
  assert_non_null(strstr(edgert_last_error(), "(EFAILED)"));
  edgert_nexus_free(nx);
}

/* A kernel that faults: the runtime's crash guard contains it. The fault is
 * the point: in the sanitizer build (make test-sanitize) UBSan and ASan must
 * not instrument this function, or they stop at the NULL load before the
 * hardware fault the guard contains. */
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "undefined"), noinline))
#endif
static int crashing_fn(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  (void)ret;
  volatile int *volatile p = NULL;
  return *p;
}

static void a_crashing_compiled_side_is_contained_and_falls_back(void **state) {
  (void)state;
  /* CMocka puts its own SIGSEGV handler in front for each test: put the
   * runtime's guard back in front of it, as a host that installs handlers
   * after libedgert does. */
  assert_int_equal(edgert_guard_install(), 0);
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_impl_t c = {NULL, crashing_fn, NULL, NULL, NULL};
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 1;
  edgert_kernel_t *k;
  assert_int_equal(edgert_nexus_register(nx, "crashy", &c, reference_fn, NULL,
                                         &o, &k),
                   0);
  int rc;
  assert_true(call(k, 2.0, &rc) == 5.0);
  assert_int_equal(rc, 0);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.failures, 1);
  assert_int_equal(st.fallbacks, 1);
  assert_int_equal(st.state, EDGERT_NEXUS_QUARANTINED);
  assert_int_equal(edgert_last_crash()->signo, 11 /* SIGSEGV */);
  assert_string_equal(edgert_last_crash()->function, "crashy");
  edgert_nexus_free(nx);
}

/* ---- observers --------------------------------------------------------- */

typedef struct seen_s {
  int n;
  edgert_nexus_event_t ev[16];
  uint64_t version[16];
  int err[16];
} seen_t;

static void record(void *ud, edgert_kernel_t *k, edgert_nexus_event_t ev,
                   uint64_t version, int err) {
  seen_t *s = ud;
  assert_string_equal(edgert_kernel_name(k), "f");
  if (s->n < 16) {
    s->ev[s->n] = ev;
    s->version[s->n] = version;
    s->err[s->n] = err;
    s->n++;
  }
}

static void the_observer_hears_every_transition(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t a = {.add = 1.0}, b = {.add = 1.0, .fail = EDGERT_EIO};
  edgert_nexus_impl_t ca = plain(&a), cb = plain(&b);
  ca.guard = nonnegative;
  seen_t seen = {0};
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 1;
  o.observer = record;
  o.observer_ud = &seen;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &ca, reference_fn, NULL, &o, &k), 0);
  int rc;
  call(k, 1.0, &rc);  /* compiled: nothing to tell */
  call(k, -1.0, &rc); /* guard miss */
  uint64_t v;
  assert_int_equal(edgert_kernel_swap(k, &cb, &v), 0);
  assert_int_equal(v, 2);
  call(k, 1.0, &rc); /* failure, quarantine, fallback */
  call(k, 1.0, &rc); /* quarantined: fallback */
  edgert_kernel_reset(k);
  assert_int_equal(edgert_kernel_rollback(k, 1, &v), 0);
  assert_int_equal(v, 1);

  edgert_nexus_event_t want[] = {
      EDGERT_NEXUS_GUARD_MISS, EDGERT_NEXUS_SWAP,     EDGERT_NEXUS_FAILURE,
      EDGERT_NEXUS_QUARANTINE, EDGERT_NEXUS_FALLBACK, EDGERT_NEXUS_FALLBACK,
      EDGERT_NEXUS_RESET,      EDGERT_NEXUS_ROLLBACK};
  uint64_t want_v[] = {1, 2, 2, 2, 2, 2, 2, 1};
  int want_err[] = {0, 0, EDGERT_EIO, EDGERT_EIO, EDGERT_EIO,
                    EDGERT_EQUARANTINED, 0, 0};
  assert_int_equal(seen.n, 8);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(seen.ev[i], want[i]);
    assert_int_equal(seen.version[i], want_v[i]);
    assert_int_equal(seen.err[i], want_err[i]);
  }
  edgert_nexus_free(nx);
}

/* ---- swap and rollback ------------------------------------------------- */

static void swap_and_rollback_number_versions_and_bound_the_history(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im[6];
  memset(im, 0, sizeof im);
  for (int i = 0; i < 6; i++)
    im[i].add = 10.0 * (i + 1);
  edgert_nexus_impl_t c0 = plain(&im[0]);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.history = 3;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c0, reference_fn, NULL, &o, &k), 0);
  int rc;
  uint64_t v = 0;
  for (int i = 1; i < 4; i++) {
    edgert_nexus_impl_t ci = plain(&im[i]);
    assert_int_equal(edgert_kernel_swap(k, &ci, &v), 0);
    assert_int_equal(v, (uint64_t)i + 1);
    assert_true(call(k, 0.0, &rc) == im[i].add);
  }
  /* history 3: versions 2, 3, 4 kept, version 1 released */
  assert_int_equal(atomic_load(&im[0].released), 1);
  assert_int_equal(atomic_load(&im[1].released), 0);
  assert_int_equal(stats_of(k).versions, 3);

  assert_int_equal(edgert_kernel_rollback(k, 3, &v), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "kernel 'f': cannot roll back 3 step(s): the history "
                      "holds 3 version(s)");
  assert_int_equal(edgert_kernel_rollback(k, 0, &v), EDGERT_EINVAL);
  assert_int_equal(stats_of(k).version, 4); /* nothing changed */

  assert_int_equal(edgert_kernel_rollback(k, 2, &v), 0);
  assert_int_equal(v, 2);
  assert_true(call(k, 0.0, &rc) == im[1].add);
  assert_int_equal(atomic_load(&im[2].released), 1);
  assert_int_equal(atomic_load(&im[3].released), 1);
  assert_int_equal(stats_of(k).versions, 1);
  assert_int_equal(edgert_kernel_rollback(k, 1, &v), EDGERT_EINVAL);

  /* numbers are never reused */
  edgert_nexus_impl_t c4 = plain(&im[4]);
  assert_int_equal(edgert_kernel_swap(k, &c4, &v), 0);
  assert_int_equal(v, 5);
  assert_int_equal(edgert_kernel_rollback(k, 1, &v), 0);
  assert_int_equal(v, 2);
  assert_int_equal(atomic_load(&im[4].released), 1);
  edgert_nexus_free(nx);
  assert_int_equal(atomic_load(&im[1].released), 1);
  for (int i = 0; i < 5; i++)
    assert_int_equal(atomic_load(&im[i].released), 1);
}


/* A call in flight keeps its version: a compiled side that waits until the
 * test has swapped it out, then finishes on itself. */
typedef struct gate_s {
  impl_t im;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, open;
} gate_t;

static int gated_fn(void *ud, void **args, void *ret) {
  gate_t *g = ud;
  pthread_mutex_lock(&g->mu);
  g->entered = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return compiled_fn(&g->im, args, ret);
}

typedef struct inflight_s {
  edgert_kernel_t *k;
  double out;
  int rc;
} inflight_t;

static void *call_thread(void *arg) {
  inflight_t *t = arg;
  t->out = call(t->k, 1.0, &t->rc);
  return NULL;
}

static void release_gate(void *ud) { release_impl(&((gate_t *)ud)->im); }

static void a_call_in_flight_finishes_on_its_version(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  gate_t g;
  memset(&g, 0, sizeof g);
  g.im.canary = ALIVE;
  g.im.add = 100.0;
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  edgert_nexus_impl_t c = {NULL, gated_fn, NULL, &g, release_gate};
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.history = 1; /* a swap drops the old version from the history at once */
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k), 0);
  inflight_t t = {k, 0, -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, call_thread, &t), 0);
  pthread_mutex_lock(&g.mu);
  while (!g.entered)
    pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);

  impl_t next = {.add = 5.0};
  edgert_nexus_impl_t cn = plain(&next);
  uint64_t v;
  assert_int_equal(edgert_kernel_swap(k, &cn, &v), 0);
  assert_int_equal(v, 2);
  /* out of the history, but still running: not released yet */
  assert_int_equal(atomic_load(&g.im.released), 0);
  int rc;
  assert_true(call(k, 1.0, &rc) == 7.0); /* new calls run the new version */

  pthread_mutex_lock(&g.mu);
  g.open = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(t.rc, 0);
  assert_true(t.out == 102.0); /* the old version's result */
  assert_int_equal(atomic_load(&g.im.released), 1); /* by the caller, last */
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.calls, 2);
  assert_int_equal(st.compiled, 2);
  edgert_nexus_free(nx);
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);
}

/* Several threads call while one swaps and rolls back: every call is
 * counted, every result comes from a version that was alive (the canary
 * assert in compiled_fn), and every version is released exactly once. */
#define CALLERS 4
#define CALLS_EACH 20000
#define SWAPS 400

static atomic_int live_versions;
static void release_counted(void *ud) {
  atomic_fetch_sub(&live_versions, 1);
  release_impl(ud);
}

typedef struct caller_s {
  edgert_kernel_t *k;
  long bad;
} caller_t;

static void *caller_thread(void *arg) {
  caller_t *c = arg;
  for (int i = 0; i < CALLS_EACH; i++) {
    int rc;
    double out = call(c->k, 1.0, &rc);
    /* versions add 1000 * n: the result names a version that existed */
    if (rc != 0 || out < 1002.0 || out > 1002.0 + 1000.0 * (SWAPS + 1))
      c->bad++;
  }
  return NULL;
}

static edgert_nexus_impl_t heap_version(int n) {
  impl_t *im = calloc(1, sizeof *im);
  assert_non_null(im);
  im->add = 1000.0 * n;
  im->free_on_release = 1;
  atomic_fetch_add(&live_versions, 1);
  edgert_nexus_impl_t c = plain(im);
  c.release = release_counted;
  return c;
}

static void concurrent_calls_survive_swaps_and_rollbacks(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.history = 4;
  edgert_nexus_impl_t c1 = heap_version(1);
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c1, reference_fn, NULL, &o, &k), 0);
  caller_t callers[CALLERS];
  pthread_t th[CALLERS];
  for (int i = 0; i < CALLERS; i++) {
    callers[i].k = k;
    callers[i].bad = 0;
    assert_int_equal(pthread_create(&th[i], NULL, caller_thread, &callers[i]),
                     0);
  }
  for (int s = 2; s <= SWAPS; s++) {
    edgert_nexus_impl_t cs = heap_version(s);
    uint64_t v;
    assert_int_equal(edgert_kernel_swap(k, &cs, &v), 0);
    if (s % 3 == 0)
      assert_int_equal(edgert_kernel_rollback(k, 1, &v), 0);
  }
  for (int i = 0; i < CALLERS; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(callers[i].bad, 0);
  }
  assert_int_equal(atomic_load(&dead_calls), 0);
  assert_int_equal(atomic_load(&dead_releases), 0);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.calls, (uint64_t)CALLERS * CALLS_EACH);
  assert_int_equal(st.compiled, (uint64_t)CALLERS * CALLS_EACH);
  assert_int_equal(st.failures, 0);
  assert_true(st.versions <= 4);
  assert_int_equal(atomic_load(&live_versions), (int)st.versions);
  edgert_nexus_free(nx);
  assert_int_equal(atomic_load(&live_versions), 0);
  assert_int_equal(atomic_load(&dead_releases), 0);
}

/* ---- shadow validation ------------------------------------------------- */

static void shadow_validation_counts_a_divergent_kernel(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.5}; /* reference adds 1.0 */
  edgert_nexus_impl_t c = plain(&im);
  seen_t seen = {0};
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.validate_every = 2;
  o.ret_type = EDGERT_CT_DOUBLE;
  o.observer = record;
  o.observer_ud = &seen;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k), 0);
  reference_calls = 0;
  int rc;
  for (int i = 0; i < 4; i++) {
    assert_true(call(k, 1.0, &rc) == 3.5); /* the compiled result */
    assert_int_equal(rc, 0);
  }
  assert_int_equal(reference_calls, 2); /* calls 2 and 4 */
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.validations, 2);
  assert_int_equal(st.mismatches, 2);
  assert_int_equal(st.compiled, 4);
  assert_int_equal(seen.n, 2);
  assert_int_equal(seen.ev[0], EDGERT_NEXUS_MISMATCH);

  /* within tolerance: agreement */
  im.add = 1.0 + 1e-12;
  call(k, 1.0, &rc);
  call(k, 1.0, &rc);
  assert_int_equal(stats_of(k).mismatches, 2);
  assert_int_equal(stats_of(k).validations, 3);
  edgert_nexus_free(nx);
}

static void strict_validation_fails_with_emismatch(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 2.0};
  edgert_nexus_impl_t c = plain(&im);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.validate_every = 1;
  o.strict = 1;
  o.ret_type = EDGERT_CT_DOUBLE;
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "g", &c, reference_fn, NULL, &o, &k), 0);
  int rc;
  double out = call(k, 1.0, &rc);
  assert_int_equal(rc, EDGERT_EMISMATCH);
  assert_true(out == 3.0); /* the reference's */
  assert_string_equal(edgert_last_error(),
                      "kernel 'g' version 1: compiled and reference results "
                      "differ beyond tolerance 1e-09");
  assert_int_equal(stats_of(k).mismatches, 1);
  edgert_nexus_free(nx);
}

/* ---- bad input --------------------------------------------------------- */

static void register_refuses_bad_input_naming_it(void **state) {
  (void)state;
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  impl_t im = {.add = 1.0};
  edgert_nexus_impl_t c = plain(&im);
  c.release = NULL;
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "", &c, reference_fn, NULL, NULL,
                                         &k),
                   EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "edgert_nexus_register: the kernel name is empty");
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, NULL, NULL, NULL, &k), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(), "kernel 'f': the reference is NULL");
  edgert_nexus_impl_t none = {0};
  assert_int_equal(
      edgert_nexus_register(nx, "f", &none, reference_fn, NULL, NULL, &k),
      EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "f: the compiled side must set exactly one of func and "
                      "fn");
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.history = 0;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k),
      EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "kernel 'f': history must be between 1 and 1024, not 0");
  edgert_nexus_options_init(&o);
  o.tolerance = -1.0;
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k),
      EDGERT_EINVAL);
  assert_null(k);
  assert_int_equal(edgert_nexus_count(nx), 0);

  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, NULL, &k), 0);
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, reference_fn, NULL, NULL, NULL),
      EDGERT_EEXIST);
  assert_string_equal(edgert_last_error(), "kernel 'f' is already registered");
  assert_int_equal(edgert_kernel_swap(k, &none, NULL), EDGERT_EINVAL);
  assert_int_equal(stats_of(k).version, 1);

  edgert_kernel_t *found = NULL;
  assert_int_equal(edgert_nexus_find(nx, "f", &found), 0);
  assert_ptr_equal(found, k);
  assert_int_equal(edgert_nexus_find(nx, "nope", &found), EDGERT_ENOTFOUND);
  assert_string_equal(edgert_last_error(), "no kernel named 'nope'");
  double x = 1.0, out;
  void *args[1] = {&x};
  assert_int_equal(edgert_nexus_call(nx, "nope", args, &out), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_nexus_count(nx), 1);
  assert_ptr_equal(edgert_nexus_kernel_at(nx, 0), k);
  assert_null(edgert_nexus_kernel_at(nx, 1));
  edgert_nexus_free(nx);
  edgert_nexus_free(NULL);
}

/* ---- out of memory ----------------------------------------------------- */

static void *oom_setup_nexus(void) {
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  return nx;
}
static impl_t oom_impl = {.add = 1.0};
static int oom_run_register(void *st) {
  edgert_nexus_impl_t c = {NULL, compiled_fn, NULL, &oom_impl, NULL};
  oom_impl.canary = ALIVE;
  return edgert_nexus_register(st, "f", &c, reference_fn, NULL, NULL, NULL);
}
static void oom_unchanged_nexus(void *st) {
  assert_int_equal(edgert_nexus_count(st), 0);
}
static void oom_teardown_nexus(void *st) { edgert_nexus_free(st); }

static int oom_run_new(void *st) {
  (void)st;
  edgert_nexus_t *nx;
  int rc = edgert_nexus_new(&nx);
  if (rc == 0)
    edgert_nexus_free(nx);
  return rc;
}

static void *oom_setup_kernel(void) {
  edgert_nexus_t *nx = oom_setup_nexus();
  assert_int_equal(oom_run_register(nx), 0);
  return nx;
}
static int oom_run_swap(void *st) {
  edgert_kernel_t *k = edgert_nexus_kernel_at(st, 0);
  edgert_nexus_impl_t c = {NULL, compiled_fn, NULL, &oom_impl, NULL};
  return edgert_kernel_swap(k, &c, NULL);
}
static void oom_unchanged_kernel(void *st) {
  assert_int_equal(stats_of(edgert_nexus_kernel_at(st, 0)).version, 1);
}

static void every_allocation_failure_is_reported_and_leaks_nothing(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t cases[] = {
      {"edgert_nexus_new", NULL, oom_run_new, NULL, NULL, 0},
      {"edgert_nexus_register", oom_setup_nexus, oom_run_register,
       oom_unchanged_nexus, oom_teardown_nexus, 0},
      {"edgert_kernel_swap", oom_setup_kernel, oom_run_swap,
       oom_unchanged_kernel, oom_teardown_nexus, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_true(edgert_test_failalloc_sweep(&cases[i]) >= 1);
  edgert_test_failalloc_uninstall();
}


/* ---- a bound module function as the compiled side ---------------------- */

/* tests/fixtures/nexus_kernels.c, built as nexus_kernels.so (or with the
 * platform's lib prefix, by older build trees). */
static const char *kernels_path(void) {
  static const char *const paths[] = {EDGERT_FIXTURE_DIR "/nexus_kernels.so",
                                      EDGERT_FIXTURE_DIR "/libnexus_kernels.so"};
  return access(paths[0], R_OK) == 0 ? paths[0] : paths[1];
}
#define KERNELS kernels_path()

static edgert_func_t *bind_one(edgert_module_t *m, const char *name,
                               const char *arg, const char *ret) {
  edgert_contract_t c;
  const char *args[1] = {arg};
  assert_int_equal(edgert_contract_init(&c, name, args, 1, ret, NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  return fn;
}

typedef union result_u { /* edgert_func_call wants 16 bytes, aligned */
  double d;
  int i;
  long double ld;
} result_t;

static int int_reference(void *ud, void **args, void *ret) {
  (void)ud;
  *(int *)ret = 2 * *(int *)args[0] + 1;
  return 0;
}

static void a_bound_function_is_validated_by_its_contracts_type(void **state) {
  (void)state;
  edgert_module_t *m;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  edgert_func_t *good = bind_one(m, "nexus_affine", "c_double", "c_double");
  edgert_func_t *bad =
      bind_one(m, "nexus_affine_divergent", "c_double", "c_double");
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.validate_every = 1; /* ret_type and size come from the contract */
  edgert_nexus_impl_t c = {bad, NULL, NULL, NULL, NULL};
  edgert_kernel_t *k;
  assert_int_equal(
      edgert_nexus_register(nx, "affine", &c, reference_fn, NULL, &o, &k), 0);
  result_t out;
  double x = 1.0;
  void *args[1] = {&x};
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_true(out.d == 3.0);
  x = 20.0;
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_true(out.d == 41.5); /* the compiled result stands */
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.validations, 2);
  assert_int_equal(st.mismatches, 1);
  assert_int_equal(st.compiled, 2);

  /* swap in the good kernel: validation agrees from then on */
  edgert_nexus_impl_t cg = {good, NULL, NULL, NULL, NULL};
  uint64_t v;
  assert_int_equal(edgert_kernel_swap(k, &cg, &v), 0);
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_true(out.d == 41.0);
  assert_int_equal(stats_of(k).mismatches, 1);
  edgert_nexus_free(nx);
  edgert_module_free(m);
}

static void a_crashing_bound_function_falls_back_then_quarantines(void **state) {
  (void)state;
  assert_int_equal(edgert_guard_install(), 0);
  edgert_module_t *m;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  edgert_func_t *crashy =
      bind_one(m, "nexus_crash_if_negative", "c_int", "c_int");
  edgert_nexus_t *nx;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  seen_t seen = {0};
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 2;
  o.observer = record;
  o.observer_ud = &seen;
  edgert_nexus_impl_t c = {crashy, NULL, NULL, NULL, NULL};
  edgert_kernel_t *k;
  /* (record() checks the name is "f") */
  assert_int_equal(
      edgert_nexus_register(nx, "f", &c, int_reference, NULL, &o, &k), 0);
  result_t out;
  int x = 3;
  void *args[1] = {&x};
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_int_equal(out.i, 7);
  x = -1; /* faults: contained, the reference answers */
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_int_equal(out.i, -1);
  assert_int_equal(edgert_last_crash()->signo, 11 /* SIGSEGV */);
  x = -2; /* the module is quarantined by the loader now: a second failure */
  assert_int_equal(edgert_kernel_call(k, args, &out), 0);
  assert_int_equal(out.i, -3);
  edgert_nexus_stats_t st = stats_of(k);
  assert_int_equal(st.compiled, 1);
  assert_int_equal(st.failures, 2);
  assert_int_equal(st.fallbacks, 2);
  assert_int_equal(st.state, EDGERT_NEXUS_QUARANTINED);
  assert_int_equal(seen.ev[0], EDGERT_NEXUS_FAILURE);
  assert_int_equal(seen.err[0], EDGERT_ECRASH);
  assert_int_equal(seen.ev[2], EDGERT_NEXUS_FAILURE);
  assert_int_equal(seen.err[2], EDGERT_EQUARANTINED);
  assert_int_equal(seen.ev[3], EDGERT_NEXUS_QUARANTINE);

  /* without fallback the crash is EDGERT_EFAILED naming the cause */
  edgert_nexus_options_init(&o);
  o.fallback_enabled = 0;
  assert_int_equal(
      edgert_nexus_register(nx, "strict", &c, int_reference, NULL, &o, &k), 0);
  assert_int_equal(edgert_kernel_call(k, args, &out), EDGERT_EFAILED);
  assert_non_null(strstr(edgert_last_error(),
                         "kernel 'strict' version 1 failed (EQUARANTINED)"));
  edgert_nexus_free(nx);
  edgert_module_free(m);
}

/* ---- the NULL rule (include/edgert/nexus.h) ---------------------------- */

static void every_entry_point_handles_null_as_its_header_states(void **state) {
  (void)state;
  /* edgert_nexus_count(NULL) read through NULL before */
  assert_int_equal(edgert_nexus_count(NULL), 0);
  assert_null(edgert_nexus_kernel_at(NULL, 0));
  assert_int_equal(edgert_nexus_new(NULL), EDGERT_EINVAL);
  edgert_nexus_free(NULL);
  edgert_nexus_options_init(NULL);
  assert_int_equal(edgert_nexus_call(NULL, "f", NULL, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_kernel_call(NULL, NULL, NULL), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "edgert_kernel_call: kernel is NULL"));
  impl_t im = {0};
  edgert_nexus_impl_t c = plain(&im);
  uint64_t ver = 7;
  assert_int_equal(edgert_kernel_swap(NULL, &c, &ver), EDGERT_EINVAL);
  assert_int_equal(edgert_kernel_rollback(NULL, 1, &ver), EDGERT_EINVAL);
  assert_int_equal(ver, 7);
  edgert_kernel_reset(NULL);
  edgert_nexus_stats_t st;
  memset(&st, 0xff, sizeof st);
  edgert_kernel_stats(NULL, &st);
  assert_int_equal(st.calls, 0);
  assert_int_equal(st.version, 0);
  assert_null(edgert_kernel_name(NULL));

  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "f", &c, reference_fn, NULL, NULL, &k), 0);
  edgert_kernel_stats(k, NULL); /* nothing to write to: nothing happens */
  assert_int_equal(edgert_nexus_find(nx, NULL, &k), EDGERT_EINVAL);
  assert_int_equal(edgert_nexus_find(nx, "f", NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_nexus_call(nx, NULL, NULL, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_kernel_swap(k, NULL, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_kernel_rollback(k, 1, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_nexus_count(nx), 1);
  assert_ptr_equal(edgert_nexus_kernel_at(nx, 0), k);
  assert_null(edgert_nexus_kernel_at(nx, 1));
  edgert_nexus_free(nx);
}

/* ---- agreement is edgert_agree; tolerance is finite -------------------- */

static int inf_fn(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  *(double *)ret = *(double *)ud;
  return 0;
}

static void an_infinity_agrees_only_with_itself_and_tolerance_is_finite(void **state) {
  (void)state;
  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.ret_type = EDGERT_CT_DOUBLE;
  o.validate_every = 1;
  o.tolerance = 0.5;
  static double out = INFINITY;
  edgert_nexus_impl_t c = {NULL, inf_fn, NULL, &out, NULL};
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "f", &c, reference_fn, NULL, &o, &k), 0);
  double x = 1.0, r = 0.0;
  void *args[] = {&x};
  /* +inf against 3.0: the old rule took inf - 3 <= 0.5 * inf as agreement */
  assert_int_equal(edgert_kernel_call(k, args, &r), 0);
  edgert_nexus_stats_t st;
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.validations, 1);
  assert_int_equal(st.mismatches, 1);
  /* -inf against +inf */
  out = -INFINITY;
  x = INFINITY;
  assert_int_equal(edgert_kernel_call(k, args, &r), 0);
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.mismatches, 2);
  /* +inf against +inf */
  out = INFINITY;
  assert_int_equal(edgert_kernel_call(k, args, &r), 0);
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.validations, 3);
  assert_int_equal(st.mismatches, 2);
  /* an infinite tolerance would accept any finite result */
  o.tolerance = INFINITY;
  assert_int_equal(edgert_nexus_register(nx, "g", &c, reference_fn, NULL, &o, NULL),
                   EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "kernel 'g': tolerance must be finite"));
  o.tolerance = NAN;
  assert_int_equal(edgert_nexus_register(nx, "g", &c, reference_fn, NULL, &o, NULL),
                   EDGERT_EINVAL);
  assert_int_equal(edgert_nexus_count(nx), 1);
  edgert_nexus_free(nx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(compiled_side_serves_when_the_guard_passes),
      cmocka_unit_test(guard_miss_goes_to_the_reference_and_is_counted),
      cmocka_unit_test(failures_fall_back_then_quarantine_until_reset),
      cmocka_unit_test(a_success_breaks_the_run_of_failures),
      cmocka_unit_test(without_fallback_a_failure_is_efailed_naming_the_cause),
      cmocka_unit_test(a_crashing_compiled_side_is_contained_and_falls_back),
      cmocka_unit_test(the_observer_hears_every_transition),
      cmocka_unit_test(swap_and_rollback_number_versions_and_bound_the_history),
      cmocka_unit_test(a_call_in_flight_finishes_on_its_version),
      cmocka_unit_test(concurrent_calls_survive_swaps_and_rollbacks),
      cmocka_unit_test(shadow_validation_counts_a_divergent_kernel),
      cmocka_unit_test(strict_validation_fails_with_emismatch),
      cmocka_unit_test(register_refuses_bad_input_naming_it),
      cmocka_unit_test(every_allocation_failure_is_reported_and_leaks_nothing),
      cmocka_unit_test(a_bound_function_is_validated_by_its_contracts_type),
      cmocka_unit_test(a_crashing_bound_function_falls_back_then_quarantines),
      cmocka_unit_test(every_entry_point_handles_null_as_its_header_states),
      cmocka_unit_test(an_infinity_agrees_only_with_itself_and_tolerance_is_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
