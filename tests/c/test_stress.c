/*
 * test_stress.c: threads loading, binding, calling and unloading modules at
 * the same time, and a nexus kernel called from threads while it is swapped
 * and rolled back; bounded in time (about a second per case).
 *
 * What must hold whatever the interleaving: every call either returns the
 * right answer or, once its module was unloaded, EDGERT_EUNLOADED; no call
 * ever enters unmapped code; loads of the same bytes from many threads all
 * verify; and nothing leaks (the failing allocator's live count, checked at
 * the end, and the sanitizer/valgrind runs of this suite).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define KERNELS EDGERT_FIXTURE_DIR "/libquality_kernels.so"

/* A return slot as edgert_func_call wants it: at least 16 bytes, aligned
 * for long double (a fast-path trampoline may store a whole register). */
typedef union {
  int i;
  double d;
  long double ld;
  unsigned char bytes[16];
} ret_t;
#define THREADS 4

/* Open file descriptors of this process (every load holds a sealed memfd
 * until its mapping goes: none may outlive the modules). */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Shorter under valgrind and the sanitizers, which run 10-50x slower. */
static double budget(void) {
  return (getenv("EDGERT_VALGRIND") || getenv("EDGERT_SANITIZED")) ? 0.3 : 1.0;
}

static int bind_add(edgert_module_t *m, edgert_func_t **fn) {
  static const char *const args[] = {"c_int", "c_int"};
  edgert_contract_t c;
  int rc = edgert_contract_init(&c, "q_add_i32", args, 2, "c_int", NULL, 1);
  if (rc < 0)
    return rc;
  return edgert_module_bind(m, &c, fn);
}

static int bind_sum(edgert_module_t *m, edgert_func_t **fn) {
  static const char *const args[] = {"LP_c_double", "c_size_t"};
  edgert_contract_t c;
  int rc = edgert_contract_init(&c, "q_sum_f64", args, 2, "c_double", NULL, 1);
  if (rc < 0)
    return rc;
  return edgert_module_bind(m, &c, fn);
}

/* ---- every thread: load, bind, call, unload, free, again ---------------- */

typedef struct {
  int id;
  double until;
  const char *sha;
  long rounds;
  long calls;
  char error[256];
} churn_t;

static void *churn(void *arg) {
  churn_t *t = arg;
  /* At least one whole round each, however slow the machine: the check
   * below counts rounds, and a time budget alone made it fail under load. */
  while (t->rounds == 0 || now() < t->until) {
    edgert_module_t *m = NULL;
    int rc = edgert_module_load(KERNELS, t->sha, &m);
    if (rc < 0) {
      snprintf(t->error, sizeof t->error, "load: %s: %s", edgert_err_name(rc),
               edgert_last_error());
      return NULL;
    }
    edgert_func_t *add = NULL, *sum = NULL;
    if ((rc = bind_add(m, &add)) < 0 || (rc = bind_sum(m, &sum)) < 0) {
      snprintf(t->error, sizeof t->error, "bind: %s: %s", edgert_err_name(rc),
               edgert_last_error());
      edgert_module_free(m);
      return NULL;
    }
    double xs[16];
    for (int i = 0; i < 16; i++)
      xs[i] = i + t->id;
    for (int i = 0; i < 50; i++) {
      int a = t->id * 1000 + i, b = i;
      ret_t out;
      void *args[] = {&a, &b};
      if ((rc = edgert_func_call(add, args, &out)) < 0 || out.i != a + b) {
        snprintf(t->error, sizeof t->error, "call: rc %d out %d", rc, out.i);
        edgert_module_free(m);
        return NULL;
      }
      edgert_value_t v[2];
      v[0].p = xs;
      v[1].u = 16;
      ret_t s;
      if ((rc = edgert_func_call_values(sum, v, &s)) < 0 ||
          s.d != 120.0 + 16.0 * t->id) {
        snprintf(t->error, sizeof t->error, "call_values: rc %d sum %g", rc, s.d);
        edgert_module_free(m);
        return NULL;
      }
      t->calls += 2;
    }
    edgert_module_unload(m);
    int a = 1, b = 2;
    ret_t out;
    void *args[] = {&a, &b};
    rc = edgert_func_call(add, args, &out);
    if (rc != EDGERT_EUNLOADED) {
      snprintf(t->error, sizeof t->error, "call after unload: %d", rc);
      edgert_module_free(m);
      return NULL;
    }
    edgert_module_free(m);
    t->rounds++;
  }
  return NULL;
}

static char *sha_of_kernels(void) {
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  char *sha = strdup(edgert_module_sha256(m));
  edgert_module_free(m);
  return sha;
}

static void threads_load_bind_call_and_unload_at_once(void **state) {
  (void)state;
  int fds = open_fds();
  long live = edgert_test_failalloc_live();
  char *sha = sha_of_kernels();
  churn_t t[THREADS];
  pthread_t th[THREADS];
  double until = now() + budget();
  for (int i = 0; i < THREADS; i++) {
    memset(&t[i], 0, sizeof t[i]);
    t[i].id = i;
    t[i].until = until;
    t[i].sha = sha;
    assert_int_equal(pthread_create(&th[i], NULL, churn, &t[i]), 0);
  }
  long rounds = 0, calls = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    rounds += t[i].rounds;
    calls += t[i].calls;
  }
  free(sha);
  for (int i = 0; i < THREADS; i++)
    if (t[i].error[0])
      fail_msg("thread %d: %s", i, t[i].error);
  assert_true(rounds >= THREADS);
  print_message("stress: %ld load/bind/call/unload rounds, %ld calls in %d "
                "threads\n", rounds, calls, THREADS);
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(open_fds(), fds);
}

/* ---- many threads calling one module while it is unloaded ----------------- */

typedef struct {
  edgert_func_t *add;
  atomic_int *stop;
  long ok, unloaded;
  char error[256];
} caller_t;

static void *caller(void *arg) {
  caller_t *c = arg;
  for (int i = 0;; i++) {
    edgert_value_t v[2];
    v[0].i = i;
    v[1].i = 7;
    ret_t out;
    int rc = edgert_func_call_values(c->add, v, &out);
    if (rc == 0) {
      if (out.i != i + 7) {
        snprintf(c->error, sizeof c->error, "wrong result %d for %d + 7", out.i, i);
        return NULL;
      }
      c->ok++;
    } else if (rc == EDGERT_EUNLOADED) {
      c->unloaded++;
      if (atomic_load(c->stop))
        return NULL;
    } else {
      snprintf(c->error, sizeof c->error, "rc %s: %s", edgert_err_name(rc),
               edgert_last_error());
      return NULL;
    }
    if (i > 1000000)
      i = 0;
  }
}

static void unload_races_calls_safely(void **state) {
  (void)state;
  int fds = open_fds();
  long live = edgert_test_failalloc_live();
  double until = now() + budget();
  long rounds = 0, ok = 0, unloaded = 0;
  while (now() < until) {
    edgert_module_t *m = NULL;
    assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
    edgert_func_t *add = NULL;
    assert_int_equal(bind_add(m, &add), 0);
    atomic_int stop = 0;
    caller_t c[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
      memset(&c[i], 0, sizeof c[i]);
      c[i].add = add;
      c[i].stop = &stop;
      assert_int_equal(pthread_create(&th[i], NULL, caller, &c[i]), 0);
    }
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    edgert_module_unload(m); /* while calls are in flight */
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) {
      pthread_join(th[i], NULL);
      if (c[i].error[0])
        fail_msg("caller %d: %s", i, c[i].error);
      ok += c[i].ok;
      unloaded += c[i].unloaded;
    }
    edgert_module_free(m);
    rounds++;
  }
  print_message("stress: %ld unload-under-calls rounds, %ld calls answered, "
                "%ld refused as unloaded\n", rounds, ok, unloaded);
  assert_true(unloaded >= rounds); /* every caller saw the unload */
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(open_fds(), fds);
}

/* ---- one module, threads binding and calling it at once ------------------- */

typedef struct {
  edgert_module_t *m;
  double until;
  long binds;
  char error[256];
} binder_t;

static void *binder(void *arg) {
  binder_t *b = arg;
  while (now() < b->until) {
    edgert_func_t *fn = NULL;
    int rc = bind_add(b->m, &fn);
    if (rc < 0) {
      snprintf(b->error, sizeof b->error, "bind: %s", edgert_last_error());
      return NULL;
    }
    int x = 20, y = 22;
    ret_t out;
    void *args[] = {&x, &y};
    if ((rc = edgert_func_call(fn, args, &out)) < 0 || out.i != 42) {
      snprintf(b->error, sizeof b->error, "call: rc %d out %d", rc, out.i);
      return NULL;
    }
    edgert_func_t *cur = edgert_module_function(b->m, "q_add_i32");
    if (cur == NULL) {
      snprintf(b->error, sizeof b->error, "edgert_module_function lost q_add_i32");
      return NULL;
    }
    b->binds++;
    if (b->binds >= 2000)
      break; /* every bind is kept until free: keep the total bounded */
  }
  return NULL;
}

static void threads_bind_one_module_at_once(void **state) {
  (void)state;
  int fds = open_fds();
  long live = edgert_test_failalloc_live();
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  binder_t b[THREADS];
  pthread_t th[THREADS];
  double until = now() + budget() / 2;
  for (int i = 0; i < THREADS; i++) {
    memset(&b[i], 0, sizeof b[i]);
    b[i].m = m;
    b[i].until = until;
    assert_int_equal(pthread_create(&th[i], NULL, binder, &b[i]), 0);
  }
  long binds = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    if (b[i].error[0])
      fail_msg("binder %d: %s", i, b[i].error);
    binds += b[i].binds;
  }
  edgert_module_free(m);
  print_message("stress: %ld concurrent binds of one module\n", binds);
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(open_fds(), fds);
}


/* ---- a nexus kernel called from threads while it is swapped and rolled back */

static atomic_long released;
static void release_version(void *ud) {
  (void)ud;
  atomic_fetch_add(&released, 1);
}

/* Every version computes the same thing, x * 2 + 1, so any mix is right. */
static int scale_plain(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = *(double *)args[0] * 2.0 + 1.0;
  return 0;
}
static int scale_reference(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = *(double *)args[0] * 2.0 + 1.0;
  return 0;
}
static int scale_guard(void *ud, void **args) {
  (void)ud;
  return *(double *)args[0] >= 0.0; /* negatives go to the reference */
}

typedef struct {
  edgert_kernel_t *k;
  atomic_int *stop;
  long calls;
  char error[256];
} nexus_caller_t;

static void *nexus_caller(void *arg) {
  nexus_caller_t *c = arg;
  for (int i = 0; !atomic_load(c->stop); i++) {
    double x = (double)(i % 100) - 10.0;
    ret_t out;
    void *args[] = {&x};
    int rc = edgert_kernel_call(c->k, args, &out);
    if (rc != 0 || out.d != x * 2.0 + 1.0) {
      snprintf(c->error, sizeof c->error, "call(%g): rc %s (%s), out %g", x,
               edgert_err_name(rc), edgert_last_error(), out.d);
      return NULL;
    }
    c->calls++;
  }
  return NULL;
}

static void nexus_swaps_and_rollbacks_under_calls(void **state) {
  (void)state;
  int fds = open_fds();
  long live = edgert_test_failalloc_live();
  atomic_store(&released, 0);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  static const char *const args[] = {"c_double"};
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "q_scale", args, 1, "c_double", NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);

  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.validate_every = 5;
  edgert_nexus_impl_t v1 = {fn, NULL, scale_guard, NULL, release_version};
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "scale", &v1, scale_reference, NULL, &o, &k), 0);

  atomic_int stop = 0;
  nexus_caller_t cs[THREADS - 1];
  pthread_t th[THREADS - 1];
  for (int i = 0; i < THREADS - 1; i++) {
    memset(&cs[i], 0, sizeof cs[i]);
    cs[i].k = k;
    cs[i].stop = &stop;
    assert_int_equal(pthread_create(&th[i], NULL, nexus_caller, &cs[i]), 0);
  }
  double until = now() + budget();
  long swaps = 0, rollbacks = 0;
  while (now() < until) {
    edgert_nexus_impl_t next = {NULL, scale_plain, NULL, NULL, release_version};
    if (swaps % 2)
      next = (edgert_nexus_impl_t){fn, NULL, scale_guard, NULL, release_version};
    uint64_t ver = 0;
    assert_int_equal(edgert_kernel_swap(k, &next, &ver), 0);
    swaps++;
    if (swaps % 3 == 0) {
      uint64_t back = 0;
      if (edgert_kernel_rollback(k, 1, &back) == 0) {
        assert_true(back < ver);
        rollbacks++;
      }
    }
  }
  atomic_store(&stop, 1);
  long calls = 0;
  for (int i = 0; i < THREADS - 1; i++) {
    pthread_join(th[i], NULL);
    if (cs[i].error[0])
      fail_msg("caller %d: %s", i, cs[i].error);
    calls += cs[i].calls;
  }
  edgert_nexus_stats_t st;
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.calls, (uint64_t)calls);
  assert_int_equal(st.calls, st.compiled + st.guard_misses + st.fallbacks);
  assert_int_equal(st.failures, 0);
  assert_int_equal(st.mismatches, 0);
  edgert_nexus_free(nx);
  /* Every version, the first included, was released exactly once. */
  assert_int_equal(atomic_load(&released), swaps + 1);
  edgert_module_free(m);
  print_message("stress: %ld nexus calls in %d threads across %ld swaps and "
                "%ld rollbacks\n", calls, THREADS - 1, swaps, rollbacks);
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(open_fds(), fds);
}

static int setup(void **state) {
  (void)state;
  /* Counting only (nothing fails): lets each case check it leaked nothing. */
  return edgert_test_failalloc_install();
}

static int teardown(void **state) {
  (void)state;
  edgert_test_failalloc_uninstall();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(threads_load_bind_call_and_unload_at_once),
      cmocka_unit_test(unload_races_calls_safely),
      cmocka_unit_test(threads_bind_one_module_at_once),
      cmocka_unit_test(nexus_swaps_and_rollbacks_under_calls),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
