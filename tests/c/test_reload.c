/* test_reload.c: recovery and lifetimes (issue #12) through the C API:
 * edgert_module_reload (bound functions follow the fresh copy on every call
 * path, calls in flight finish on the old one, the identity is checked),
 * edgert_module_generation and edgert_module_stats, quarantine per copy,
 * edgert_kernel_reset reloading a crashed module, and custom types pinning
 * the module of their callbacks until edgert_type_unregister. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"
#define RELOAD FX("loader_reload")

static edgert_func_t *bind_sig(edgert_module_t *m, const char *name, const char *ret,
                               size_t n, ...) {
  const char *args[EDGERT_MAX_ARGS];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, const char *);
  va_end(ap);
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, name, args, n, ret, NULL, 1), 0);
  edgert_func_t *fn = NULL;
  if (edgert_module_bind(m, &c, &fn) != 0)
    fail_msg("binding %s: %s", name, edgert_last_error());
  return fn;
}

static int64_t call0(edgert_func_t *fn) {
  int64_t r[2] = {0, 0};
  assert_int_equal(edgert_func_call(fn, NULL, r), 0);
  return r[0];
}

static void bound_functions_follow_the_fresh_copy_on_every_call_path(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  edgert_func_t *where = bind_sig(m, "reload_where", "c_int64", 0);
  edgert_func_t *count = bind_sig(m, "reload_count", "c_int64", 0);
  edgert_func_t *w5 = bind_sig(m, "reload_where5", "c_int64", 5, "c_int64", "c_int64",
                               "c_int64", "c_int64", "c_int64");
  edgert_func_t *wld = bind_sig(m, "reload_where_ld", "c_int64", 1, "c_longdouble");
  assert_true(edgert_func_is_fast(w5));
  assert_false(edgert_func_is_fast(wld));
  int64_t first = call0(where);
  assert_int_equal(call0(count), 1);
  assert_int_equal(call0(count), 2);
  assert_int_equal(edgert_module_generation(m), 1);
  void *addr_before = edgert_func_address(where);

  unsigned long gen = 0;
  assert_int_equal(edgert_module_reload(m, NULL, &gen), 0);
  assert_int_equal(gen, 2);
  assert_int_equal(edgert_module_generation(m), 2);
  int64_t now = call0(where);
  assert_true(now != first);
  assert_int_equal(call0(count), 1); /* the fresh copy's own state */
  assert_true(edgert_func_address(where) != addr_before);
  /* The register-file trampoline and libffi take the fresh address too. */
  edgert_value_t v[5];
  for (int i = 0; i < 5; i++)
    v[i].i = 0;
  int64_t r[2] = {0, 0};
  assert_int_equal(edgert_func_call_values(w5, v, r), 0);
  assert_int_equal(r[0], now);
  long double x = 0.0L;
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(wld, args, r), 0);
  assert_int_equal(r[0], now);
  /* The serialized entry follows it as well. */
  assert_int_equal(edgert_func_call_serialized(where, NULL, r), 0);
  assert_int_equal(r[0], now);

  edgert_module_stats_t st;
  assert_int_equal(edgert_module_stats(m, &st), 0);
  assert_int_equal(st.generation, 2);
  assert_int_equal(st.live_mappings, 1);
  assert_int_equal(st.calls_in_flight, 0);
  assert_int_equal(st.crashed_generation, 0);
  edgert_module_free(m);
}

static void reload_refuses_other_bytes_and_bad_handles(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  edgert_func_t *where = bind_sig(m, "reload_where", "c_int64", 0);
  int64_t first = call0(where);
  assert_int_equal(edgert_module_reload(m, FX("loader_kernels"), NULL), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), edgert_module_sha256(m)));
  assert_int_equal(edgert_module_generation(m), 1);
  assert_int_equal(call0(where), first); /* kept its mapping */
  assert_int_equal(edgert_module_reload(m, "/nonexistent/lib.so", NULL), EDGERT_EIO);
  assert_int_equal(edgert_module_reload(m, "", NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_module_reload(NULL, NULL, NULL), EDGERT_EINVAL);
  edgert_module_unload(m);
  assert_int_equal(edgert_module_reload(m, NULL, NULL), EDGERT_EUNLOADED);
  edgert_module_free(m);
  assert_int_equal(edgert_module_generation(NULL), 0);
  edgert_module_stats_t st;
  assert_int_equal(edgert_module_stats(NULL, &st), EDGERT_EINVAL);
}

typedef struct {
  edgert_func_t *fn;
  int fd;
  int64_t got;
  int rc;
} waiter_t;

static void *wait_call(void *arg) {
  waiter_t *w = arg;
  edgert_value_t v[1];
  v[0].i = w->fd;
  int64_t r[2] = {0, 0};
  w->rc = edgert_func_call_values(w->fn, v, r);
  w->got = r[0];
  return NULL;
}

static void a_call_in_flight_finishes_on_the_old_copy(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  edgert_func_t *where = bind_sig(m, "reload_where", "c_int64", 0);
  waiter_t w = {bind_sig(m, "reload_wait", "c_int64", 1, "c_int64"), -1, 0, -1};
  int64_t old = call0(where);
  int p[2];
  assert_int_equal(pipe(p), 0);
  w.fd = p[0];
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_call, &w), 0);
  edgert_module_stats_t st;
  do /* until the call is counted (it then blocks in read: no timing) */
    assert_int_equal(edgert_module_stats(m, &st), 0);
  while (st.calls_in_flight == 0);
  assert_int_equal(edgert_module_reload(m, NULL, NULL), 0);
  assert_int_equal(edgert_module_stats(m, &st), 0);
  assert_int_equal(st.live_mappings, 2);
  assert_int_equal(st.old_calls_in_flight, 1);
  assert_true(call0(where) != old);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.got, old); /* ran to its end on the copy it started on */
  assert_int_equal(edgert_module_stats(m, &st), 0);
  assert_int_equal(st.live_mappings, 1);
  assert_int_equal(st.calls_in_flight, 0);
  close(p[0]);
  close(p[1]);
  edgert_module_free(m);
}

typedef struct {
  edgert_func_t *fn;
  long n, bad;
} spinner_t;

static void *spin_calls(void *arg) {
  spinner_t *s = arg;
  for (long i = 0; i < 300; i++) {
    edgert_value_t v[1];
    v[0].i = 500;
    int64_t r[2] = {0, 0};
    if (edgert_func_call_values(s->fn, v, r) != 0 || r[0] == 0)
      s->bad++;
    else
      s->n++;
  }
  return NULL;
}

static void reloads_race_calls_from_threads(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  edgert_func_t *spin = bind_sig(m, "reload_spin", "c_int64", 1, "c_int64");
  spinner_t s[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    s[i] = (spinner_t){spin, 0, 0};
    assert_int_equal(pthread_create(&t[i], NULL, spin_calls, &s[i]), 0);
  }
  for (int i = 0; i < 10; i++)
    assert_int_equal(edgert_module_reload(m, NULL, NULL), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(s[i].bad, 0);
    assert_int_equal(s[i].n, 300);
  }
  edgert_module_stats_t st;
  assert_int_equal(edgert_module_stats(m, &st), 0);
  assert_int_equal(st.generation, 11);
  assert_int_equal(st.live_mappings, 1);
  edgert_module_free(m);
}

static int crash_guard_usable(void) {
  const char *pre = getenv("LD_PRELOAD");
  return edgert_guard_enabled() && !(pre != NULL && strstr(pre, "vgpreload") != NULL);
}

static int reference(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = *(double *)args[0] * 2.0 + 1.0;
  return 0;
}

static void kernel_reset_reloads_a_crashed_module(void **state) {
  (void)state;
  if (!crash_guard_usable())
    skip();
  assert_int_equal(edgert_guard_install(), 0);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  edgert_func_t *fn = bind_sig(m, "reload_crash", "c_double", 1, "c_double");
  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 1;
  edgert_nexus_impl_t impl;
  memset(&impl, 0, sizeof impl);
  impl.func = fn;
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "crashy", &impl, reference, NULL, &o, &k), 0);
  double x = -1.0, r[2];
  void *args[] = {&x};
  int rc = edgert_kernel_call(k, args, r);
  if (!edgert_module_quarantined(m)) {
    edgert_nexus_free(nx);
    edgert_module_free(m);
    skip(); /* the guard is off here */
  }
  assert_int_equal(rc, 0); /* the reference served */
  edgert_module_stats_t st;
  assert_int_equal(edgert_module_stats(m, &st), 0);
  assert_int_equal(st.crashed_generation, 1);
  edgert_kernel_reset(k);
  assert_int_equal(edgert_module_quarantined(m), 0);
  assert_int_equal(edgert_module_generation(m), 2);
  x = 2.0;
  assert_int_equal(edgert_kernel_call(k, args, r), 0);
  assert_true(r[0] == 5.0);
  edgert_nexus_stats_t ks;
  edgert_kernel_stats(k, &ks);
  assert_int_equal(ks.compiled, 1); /* served by the fresh copy, not quarantined again */
  assert_int_equal(ks.state, EDGERT_NEXUS_ACTIVE);
  edgert_nexus_free(nx);
  edgert_module_free(m);
}

static void a_type_keeps_its_module_mapped_until_unregistered(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(RELOAD, NULL, &m), 0);
  void *sz = NULL, *ck = NULL, *cp = NULL;
  assert_int_equal(edgert_module_address_of(m, "reload_pair_sizeof", &sz), 0);
  assert_int_equal(edgert_module_address_of(m, "reload_pair_check", &ck), 0);
  assert_int_equal(edgert_module_address_of(m, "reload_pair_copy", &cp), 0);
  assert_int_equal(edgert_register_custom_type("ReloadPair", sz, ck, cp), 0);
  /* The module's only handle goes away: the type keeps the code mapped. */
  edgert_module_free(m);
  const edgert_type_t *t = NULL;
  assert_int_equal(edgert_type_find("ReloadPair", &t), 0);
  edgert_list_t *l = NULL;
  assert_int_equal(edgert_list_new(t, 0, &l), 0);
  assert_int_equal(edgert_type_containers(t), 1);
  unsigned char pair[16] = {1, 2, 3}, out[16] = {0};
  assert_int_equal(edgert_type_check(t, pair), 1); /* runs the module's code */
  assert_int_equal(edgert_type_copy(t, out, pair), 0);
  assert_memory_equal(out, pair, 16);
  assert_int_equal(edgert_type_unregister("ReloadPair"), EDGERT_EBUSY);
  assert_non_null(strstr(edgert_last_error(), "1 container of it still exists"));
  edgert_list_free(l);
  assert_int_equal(edgert_type_containers(t), 0);
  assert_int_equal(edgert_type_unregister("ReloadPair"), 0);
  /* The handle stays readable; no container of it can be made. */
  assert_string_equal(edgert_type_name(t), "ReloadPair");
  assert_int_equal(edgert_list_new(t, 0, &l), EDGERT_ENOTFOUND);
  edgert_dict_t *d = NULL;
  assert_int_equal(edgert_dict_new(edgert_type_builtin(EDGERT_KIND_INT64), t, &d),
                   EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_find("ReloadPair", &t), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_unregister("ReloadPair"), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_unregister("int"), EDGERT_EINVAL);
  assert_int_equal(edgert_type_unregister(NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_type_containers(edgert_type_builtin(EDGERT_KIND_INT64)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bound_functions_follow_the_fresh_copy_on_every_call_path),
      cmocka_unit_test(reload_refuses_other_bytes_and_bad_handles),
      cmocka_unit_test(a_call_in_flight_finishes_on_the_old_copy),
      cmocka_unit_test(reloads_race_calls_from_threads),
      cmocka_unit_test(kernel_reset_reloads_a_crashed_module),
      cmocka_unit_test(a_type_keeps_its_module_mapped_until_unregistered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
