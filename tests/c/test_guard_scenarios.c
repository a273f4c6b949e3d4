/*
 * test_guard_scenarios.c: the guarded-call policy's scenario table
 * (tests/scenarios/guard_policy.json) run against edgert_guard_call.
 *
 * tests/python/test_guard_scenarios.py runs the same table against
 * ExplicitFallback: a change to the policy made in one host and not the
 * other fails one of the two runners. Each scenario loads the guard_crashy
 * fixture afresh and zeroes the counters (edgert_guard_counts_reset), then
 * runs its steps in order, checking each step's outcome, the value of the
 * result and every counter (edgert_guard_counts) afterwards. The table's
 * format is described in its "about" entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/fixture_path.h"

#ifndef EDGERT_FIXTURE_DIR
#error "EDGERT_FIXTURE_DIR must be defined by the build"
#endif
#ifndef EDGERT_SCENARIO_DIR
#error "EDGERT_SCENARIO_DIR must be defined by the build"
#endif


static cJSON *table; /* the whole file, parsed once */

/* A number of the table: a JSON number, or "nan", "inf", "-inf". */
static double number(const cJSON *item, const char *what) {
  if (cJSON_IsNumber(item))
    return item->valuedouble;
  if (cJSON_IsString(item)) {
    char *end = NULL;
    double v = strtod(item->valuestring, &end);
    if (end != item->valuestring && *end == '\0')
      return v;
  }
  fail_msg("guard_policy.json: %s is not a number", what);
  return 0;
}

/* A step's field, else the table's default. */
static const cJSON *field(const cJSON *step, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, name);
  if (v == NULL)
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(table, "defaults"),
                                         name);
  return v;
}

typedef struct ref_s {
  int fails;
  double value;
  int runs;
} ref_t;

/* The scripted reference: a value, or EDGERT_EIO (its own error, kept). */
static int scripted_reference(void *ud, void **args, void *ret) {
  (void)args;
  ref_t *r = ud;
  r->runs++;
  if (r->fails)
    return EDGERT_EIO;
  memcpy(ret, &r->value, sizeof r->value);
  return 0;
}

static int same_double(double a, double b) {
  return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static const char *const counter_names[] = {"calls",       "compiled",  "failures",
                                            "crashes",     "fallbacks", "reference_failures",
                                            "validations", "matches",   "mismatches"};

static uint64_t counter(const edgert_guard_counts_t *c, size_t i) {
  const uint64_t v[] = {c->calls,       c->compiled, c->failures,  c->crashes, c->fallbacks,
                        c->reference_failures, c->validations, c->matches, c->mismatches};
  return v[i];
}

static int uses_crash(const cJSON *scenario) {
  const cJSON *step;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(scenario, "steps")) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(step, "compiled");
    if (cJSON_IsString(c) && strcmp(c->valuestring, "crash") == 0)
      return 1;
  }
  return 0;
}

typedef union result_u {
  long double ld;
  double d;
} result_t;

static void run_scenario(const cJSON *scenario) {
  const char *name = cJSON_GetObjectItemCaseSensitive(scenario, "name")->valuestring;
  if (!edgert_guard_enabled() && uses_crash(scenario)) {
    print_message("skipped (EDGERT_CRASH_GUARD=0 and it crashes): %s\n", name);
    return;
  }
  assert_int_equal(edgert_guard_install(), edgert_guard_enabled() ? 0 : EDGERT_EUNSUPPORTED);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(crashy_path(), NULL, &m), 0);
  const char *types[] = {"c_double"};
  edgert_contract_t c;
  edgert_func_t *identity = NULL, *crash = NULL;
  assert_int_equal(edgert_contract_init(&c, "guard_identity", types, 1, "c_double", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &identity), 0);
  assert_int_equal(edgert_contract_init(&c, "guard_null_deref", types, 1, "c_double", NULL, 1),
                   0);
  assert_int_equal(edgert_module_bind(m, &c, &crash), 0);
  edgert_guard_counts_reset();
  int stepno = 0;
  const cJSON *step;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(scenario, "steps")) {
    stepno++;
    const char *compiled = field(step, "compiled")->valuestring;
    const char *expect = field(step, "expect")->valuestring;
    edgert_func_t *fn = identity;
    if (strcmp(compiled, "crash") == 0)
      fn = crash;
    else if (strcmp(compiled, "unloaded") == 0)
      edgert_module_unload(m);
    else if (strcmp(compiled, "identity") != 0)
      fail_msg("%s, step %d: unknown compiled side '%s'", name, stepno, compiled);
    ref_t ref = {0, 0.0, 0};
    const cJSON *rv = field(step, "ref");
    if (cJSON_IsString(rv) && strcmp(rv->valuestring, "error") == 0)
      ref.fails = 1;
    else
      ref.value = number(rv, "ref");
    edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
    p.strict = (int)number(field(step, "strict"), "strict");
    p.fallback_enabled = (int)number(field(step, "fallback"), "fallback");
    p.tolerance = number(field(step, "tolerance"), "tolerance");
    p.ud = &ref;
    double x = number(field(step, "x"), "x");
    void *args[] = {&x};
    result_t r;
    memset(&r, 0, sizeof r);
    r.d = -12345.0; /* neither side's value in any scenario */
    int rc = edgert_guard_call(fn, args, &r, scripted_reference, &p);
    print_message("%s, step %d: rc %s, result %g (%s)\n", name, stepno, edgert_err_name(rc), r.d,
                  rc < 0 ? edgert_last_error() : "");
    if (strcmp(expect, "compiled") == 0) {
      assert_int_equal(rc, 0);
      if (!same_double(r.d, x))
        fail_msg("%s, step %d: returned %.17g, not the compiled result %.17g", name, stepno, r.d,
                 x);
    } else if (strcmp(expect, "reference") == 0) {
      assert_int_equal(rc, 0);
      if (!same_double(r.d, ref.value))
        fail_msg("%s, step %d: returned %.17g, not the reference's %.17g", name, stepno, r.d,
                 ref.value);
    } else if (strcmp(expect, "failure") == 0) {
      assert_int_equal(rc, EDGERT_EFAILED);
      assert_non_null(strstr(edgert_last_error(), "fallback is disabled"));
    } else if (strcmp(expect, "mismatch") == 0) {
      assert_int_equal(rc, EDGERT_EMISMATCH);
      assert_non_null(strstr(edgert_last_error(), "differs from reference result"));
    } else if (strcmp(expect, "reference_error") == 0) {
      assert_int_equal(rc, EDGERT_EIO);
      assert_int_equal(ref.runs, 1);
    } else if (strcmp(expect, "option") == 0) {
      assert_int_equal(rc, EDGERT_EINVAL);
      assert_non_null(strstr(edgert_last_error(), "tolerance must be"));
      assert_int_equal(ref.runs, 0);
    } else {
      fail_msg("%s, step %d: unknown expectation '%s'", name, stepno, expect);
    }
    edgert_guard_counts_t got;
    edgert_guard_counts(&got);
    const cJSON *want = field(step, "counts");
    for (size_t i = 0; i < sizeof counter_names / sizeof *counter_names; i++) {
      const cJSON *w = cJSON_GetObjectItemCaseSensitive(want, counter_names[i]);
      uint64_t expected = w != NULL ? (uint64_t)number(w, counter_names[i]) : 0;
      if (counter(&got, i) != expected)
        fail_msg("%s, step %d: counter %s is %llu, expected %llu", name, stepno,
                 counter_names[i], (unsigned long long)counter(&got, i),
                 (unsigned long long)expected);
    }
  }
  edgert_module_free(m);
}

static void every_scenario_of_the_table(void **state) {
  (void)state;
  const cJSON *scenario;
  int n = 0;
  cJSON_ArrayForEach(scenario, cJSON_GetObjectItemCaseSensitive(table, "scenarios")) {
    run_scenario(scenario);
    n++;
  }
  assert_true(n >= 16);
}

/* The legacy view (edgert_guard_stats) is the same counters. */
static void guard_stats_reads_the_same_counters(void **state) {
  (void)state;
  edgert_guard_counts_reset();
  edgert_guard_counts_t *shared = edgert_guard_counts_block(0), *host = edgert_guard_counts_block(1);
  assert_ptr_not_equal(shared, host);
  edgert_guard_enter(shared, 0, 0);
  edgert_guard_enter(host, 0, 1);
  assert_int_equal(edgert_guard_compiled_returned(host, 0, 1), EDGERT_GUARD_RETURN_COMPILED);
  assert_int_equal(edgert_guard_compiled_failed(shared, 1, 1, 0), EDGERT_GUARD_RUN_FALLBACK);
  edgert_guard_stats_t s;
  edgert_guard_stats(&s);
  assert_true(s.calls == 2 && s.compiled == 1 && s.failures == 1 && s.fallbacks == 1);
  edgert_guard_counts_t c;
  edgert_guard_counts(&c);
  assert_true(c.calls == 2 && c.crashes == 1);
  edgert_guard_counts(NULL); /* ignored */
  edgert_guard_counts_reset();
  edgert_guard_counts(&c);
  assert_true(c.calls == 0 && c.compiled == 0 && c.failures == 0 && c.fallbacks == 0);
}

static int load_table(void **state) {
  (void)state;
  const char *path = EDGERT_SCENARIO_DIR "/guard_policy.json";
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return -1;
  }
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  int too_big = !feof(f);
  fclose(f);
  if (too_big) {
    fprintf(stderr, "%s is larger than %zu bytes\n", path, sizeof buf - 1);
    return -1;
  }
  buf[n] = '\0';
  table = cJSON_Parse(buf);
  if (table == NULL) {
    fprintf(stderr, "%s: not JSON near '%.40s'\n", path, cJSON_GetErrorPtr());
    return -1;
  }
  return 0;
}

static int free_table(void **state) {
  (void)state;
  cJSON_Delete(table);
  table = NULL;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_scenario_of_the_table),
      cmocka_unit_test(guard_stats_reads_the_same_counters),
  };
  return cmocka_run_group_tests(tests, load_table, free_table);
}
