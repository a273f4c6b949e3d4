/* test_nexus_scenarios.c: the nexus policy's scenario table
 * (tests/scenarios/nexus_policy.json) run against the C nexus. The same
 * table runs against edgert.Kernel (tests/python/test_nexus_scenarios.py),
 * so a change of policy made in one host and not the other fails a runner.
 *
 * The kernel is double f(double x, const cJSON *step): the reference
 * computes 2x + 1 and ignores the step; the compiled side and its guard do
 * what the step says (see the table's "kernel" text), running the step's
 * "nested" steps first (a compiled side that calls the kernel again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgert.h"

#ifndef EDGERT_SCENARIO_DIR
#define EDGERT_SCENARIO_DIR EDGERT_SOURCE_DIR "/tests/scenarios"
#endif

/* The scenario and step being run, for failure messages. */
static char where[512];

static cJSON *load_table(void) {
  const char *dir = getenv("EDGERT_SCENARIO_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/nexus_policy.json",
           dir != NULL && dir[0] ? dir : EDGERT_SCENARIO_DIR);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open the scenario table %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  text[n] = '\0';
  fclose(f);
  cJSON *table = cJSON_Parse(text);
  free(text);
  if (table == NULL)
    fail_msg("%s is not JSON", path);
  return table;
}

/* A number of the table: a JSON number or "inf", "-inf", "nan". */
static double number(const cJSON *v) {
  if (cJSON_IsNumber(v))
    return v->valuedouble;
  if (cJSON_IsString(v)) {
    if (strcmp(v->valuestring, "inf") == 0)
      return INFINITY;
    if (strcmp(v->valuestring, "-inf") == 0)
      return -INFINITY;
    if (strcmp(v->valuestring, "nan") == 0)
      return NAN;
  }
  fail_msg("%s: not a number in the table", where);
  return 0.0;
}

static int for_c(const cJSON *item) {
  const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(item, "hosts");
  if (hosts == NULL)
    return 1;
  const cJSON *h;
  cJSON_ArrayForEach(h, hosts) if (cJSON_IsString(h) && strcmp(h->valuestring, "c") == 0) return 1;
  return 0;
}

static const char *action(const cJSON *step) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(step, "call");
  return cJSON_IsString(a) ? a->valuestring : "";
}

/* ---- the kernel ------------------------------------------------------- */

static edgert_kernel_t *kernel; /* the scenario's */
static edgert_nexus_impl_t impl;

static void run_steps(const cJSON *steps);

static int reference(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = 2.0 * *(double *)args[0] + 1.0;
  return 0;
}

static int guard(void *ud, void **args) {
  (void)ud;
  return strcmp(action(*(const cJSON **)args[1]), "miss") != 0;
}

/* Calls of the kernel the current step runs inside: the calls the
 * kernel's stats must show running (each call ends exactly once). */
static unsigned nesting;

static int compiled(void *ud, void **args, void *ret) {
  (void)ud;
  const cJSON *step = *(const cJSON **)args[1];
  char outer[sizeof where];
  memcpy(outer, where, sizeof where);
  nesting++;
  run_steps(cJSON_GetObjectItemCaseSensitive(step, "nested"));
  nesting--;
  memcpy(where, outer, sizeof where);
  double x = *(double *)args[0];
  const char *a = action(step);
  if (strcmp(a, "fail") == 0)
    return EDGERT_EFAILED;
  if (strcmp(a, "inf") == 0)
    *(double *)ret = INFINITY;
  else if (strcmp(a, "neg_inf") == 0)
    *(double *)ret = -INFINITY;
  else if (strcmp(a, "differ") == 0)
    *(double *)ret = 2.0 * x + 1.0 +
                     number(cJSON_GetObjectItemCaseSensitive(step, "delta"));
  else
    *(double *)ret = 2.0 * x + 1.0;
  return 0;
}

/* ---- checking --------------------------------------------------------- */

static void check_expect(const cJSON *step) {
  edgert_nexus_stats_t st;
  edgert_kernel_stats(kernel, &st);
  if (st.running != nesting)
    fail_msg("%s: %llu call(s) running, %u entered and not ended", where,
             (unsigned long long)st.running, nesting);
  const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step, "expect");
  if (expect == NULL)
    return;
  const cJSON *e;
  cJSON_ArrayForEach(e, expect) {
    const char *k = e->string;
    if (strcmp(k, "state") == 0) {
      const char *want = e->valuestring;
      const char *have = st.state == EDGERT_NEXUS_ACTIVE ? "active" : "quarantined";
      if (strcmp(want, have) != 0)
        fail_msg("%s: state is %s, the table says %s", where, have, want);
      continue;
    }
    uint64_t have;
    if (strcmp(k, "calls") == 0)
      have = st.calls;
    else if (strcmp(k, "compiled") == 0)
      have = st.compiled;
    else if (strcmp(k, "guard_misses") == 0)
      have = st.guard_misses;
    else if (strcmp(k, "fallbacks") == 0)
      have = st.fallbacks;
    else if (strcmp(k, "failures") == 0)
      have = st.failures;
    else if (strcmp(k, "mismatches") == 0)
      have = st.mismatches;
    else if (strcmp(k, "validations") == 0)
      have = st.validations;
    else if (strcmp(k, "version") == 0)
      have = st.version;
    else if (strcmp(k, "versions") == 0)
      have = st.versions;
    else if (strcmp(k, "consecutive_failures") == 0)
      have = st.consecutive_failures;
    else {
      fail_msg("%s: unknown counter '%s' in the table", where, k);
      return;
    }
    if (have != (uint64_t)e->valuedouble)
      fail_msg("%s: %s is %llu, the table says %g", where, k,
               (unsigned long long)have, e->valuedouble);
  }
}

static void check_error(const cJSON *step, int rc, int want_rc) {
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(step, "error");
  if (err == NULL) {
    if (rc != 0)
      fail_msg("%s: failed with %s (%s), the table says it succeeds", where,
               edgert_err_name(rc), edgert_last_error());
    return;
  }
  if (rc != want_rc)
    fail_msg("%s: returned %s, the table says it fails (%s)", where,
             edgert_err_name(rc), err->valuestring);
}

static void run_call(const cJSON *step) {
  double x = number(cJSON_GetObjectItemCaseSensitive(step, "x"));
  const cJSON *sp = step;
  void *args[2] = {&x, &sp};
  union {
    long double align;
    double d;
    unsigned char bytes[16];
  } ret = {0};
  int rc = edgert_kernel_call(kernel, args, &ret);
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(step, "error");
  int want_rc = 0;
  if (err != NULL)
    want_rc = strcmp(err->valuestring, "mismatch") == 0 ? EDGERT_EMISMATCH
                                                        : EDGERT_EFAILED;
  check_error(step, rc, want_rc);
  const cJSON *result = cJSON_GetObjectItemCaseSensitive(step, "result");
  if (result != NULL && rc == 0) {
    double want = number(result);
    if (!(ret.d == want || (isnan(ret.d) && isnan(want))))
      fail_msg("%s: returned %.17g, the table says %.17g", where, ret.d, want);
  }
}

static void run_steps(const cJSON *steps) {
  const cJSON *step;
  int i = 0;
  size_t base = strlen(where);
  cJSON_ArrayForEach(step, steps) {
    snprintf(where + base, sizeof where - base, " / step %d", ++i);
    if (!for_c(step))
      continue;
    if (cJSON_GetObjectItemCaseSensitive(step, "call") != NULL) {
      run_call(step);
    } else if (cJSON_GetObjectItemCaseSensitive(step, "swap") != NULL) {
      check_error(step, edgert_kernel_swap(kernel, &impl, NULL), 0);
    } else if (cJSON_GetObjectItemCaseSensitive(step, "reset") != NULL) {
      edgert_kernel_reset(kernel);
    } else if (cJSON_GetObjectItemCaseSensitive(step, "rollback") != NULL) {
      unsigned steps_back =
          (unsigned)cJSON_GetObjectItemCaseSensitive(step, "rollback")->valuedouble;
      int rc = edgert_kernel_rollback(kernel, steps_back, NULL);
      check_error(step, rc, EDGERT_EINVAL);
      const cJSON *err = cJSON_GetObjectItemCaseSensitive(step, "error");
      if (err != NULL && strstr(edgert_last_error(), err->valuestring) == NULL)
        fail_msg("%s: the message \"%s\" lacks \"%s\"", where,
                 edgert_last_error(), err->valuestring);
    } else {
      fail_msg("%s: a step with nothing to do", where);
    }
    check_expect(step);
  }
  where[base] = '\0';
}

/* The table's options over the defaults. */
static void options_from(const cJSON *json, edgert_nexus_options_t *o) {
  edgert_nexus_options_init(o);
  o->ret_type = EDGERT_CT_DOUBLE;
  const cJSON *v;
  cJSON_ArrayForEach(v, json) {
    const char *k = v->string;
    if (strcmp(k, "fallback_enabled") == 0)
      o->fallback_enabled = cJSON_IsTrue(v);
    else if (strcmp(k, "strict") == 0)
      o->strict = cJSON_IsTrue(v);
    else if (strcmp(k, "max_failures") == 0)
      o->max_failures = (unsigned)number(v);
    else if (strcmp(k, "validate_every") == 0)
      o->validate_every = (unsigned)number(v);
    else if (strcmp(k, "history") == 0)
      o->history = (unsigned)number(v);
    else if (strcmp(k, "tolerance") == 0)
      o->tolerance = number(v);
    else
      fail_msg("%s: unknown option '%s' in the table", where, k);
  }
}

/* ---- tests ------------------------------------------------------------ */

static void every_scenario_holds_for_the_c_nexus(void **state) {
  (void)state;
  cJSON *table = load_table();
  const cJSON *sc;
  int ran = 0;
  cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(table, "scenarios")) {
    const char *name = cJSON_GetObjectItemCaseSensitive(sc, "name")->valuestring;
    snprintf(where, sizeof where, "scenario '%s'", name);
    if (!for_c(sc))
      continue;
    edgert_nexus_options_t o;
    options_from(cJSON_GetObjectItemCaseSensitive(sc, "options"), &o);
    edgert_nexus_t *nx = NULL;
    assert_int_equal(edgert_nexus_new(&nx), 0);
    impl = (edgert_nexus_impl_t){NULL, compiled, guard, NULL, NULL};
    if (edgert_nexus_register(nx, "k", &impl, reference, NULL, &o, &kernel) != 0)
      fail_msg("%s: register failed: %s", where, edgert_last_error());
    run_steps(cJSON_GetObjectItemCaseSensitive(sc, "steps"));
    edgert_nexus_free(nx);
    kernel = NULL;
    ran++;
  }
  assert_true(ran >= 10);
  cJSON_Delete(table);
}

static void every_refused_option_is_refused_with_the_table_message(void **state) {
  (void)state;
  cJSON *table = load_table();
  const cJSON *bad;
  int i = 0;
  cJSON_ArrayForEach(bad, cJSON_GetObjectItemCaseSensitive(table, "invalid_options")) {
    snprintf(where, sizeof where, "invalid_options[%d]", i++);
    if (!for_c(bad))
      continue;
    edgert_nexus_options_t o;
    options_from(cJSON_GetObjectItemCaseSensitive(bad, "options"), &o);
    edgert_nexus_t *nx = NULL;
    assert_int_equal(edgert_nexus_new(&nx), 0);
    impl = (edgert_nexus_impl_t){NULL, compiled, guard, NULL, NULL};
    int rc = edgert_nexus_register(nx, "k", &impl, reference, NULL, &o, NULL);
    const char *want = cJSON_GetObjectItemCaseSensitive(bad, "error")->valuestring;
    if (rc != EDGERT_EINVAL)
      fail_msg("%s: register returned %s, the table says it is refused with \"%s\"",
               where, edgert_err_name(rc), want);
    if (strstr(edgert_last_error(), want) == NULL)
      fail_msg("%s: the message \"%s\" lacks \"%s\"", where, edgert_last_error(), want);
    assert_int_equal(edgert_nexus_count(nx), 0);
    edgert_nexus_free(nx);
  }
  cJSON_Delete(table);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_scenario_holds_for_the_c_nexus),
      cmocka_unit_test(every_refused_option_is_refused_with_the_table_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
