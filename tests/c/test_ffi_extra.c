/* test_ffi_extra.c: issue 13 in the core: variadic cifs, the errno flag,
 * const pointer types, and the manifest fields that carry them. Fixture:
 * tests/fixtures/ffi_extra_kernels.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

/* Integer argument registers: 6 on x86-64, 8 on AArch64 (more: libffi). */
#if defined(__x86_64__)
#define INT_ARGS_IN_REGISTERS 6
#else
#define INT_ARGS_IN_REGISTERS 8
#endif

static edgert_module_t *mod;

static int setup(void **state) {
  (void)state;
  return edgert_module_load(FX("ffi_extra_kernels"), NULL, &mod) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  edgert_module_free(mod);
  return 0;
}

static edgert_abi_type_t type(const char *name) {
  edgert_abi_type_t t;
  if (edgert_abi_type_parse(name, 1, &t) != 0)
    fail_msg("parse %s: %s", name, edgert_last_error());
  return t;
}

/* Binds `name` (ret, args...) with the options. */
static edgert_func_t *bind(const char *name, const char *ret, unsigned variadic, int use_errno,
                           size_t n, ...) {
  const char *args[EDGERT_MAX_ARGS];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, const char *);
  va_end(ap);
  edgert_contract_t c;
  if (edgert_contract_init(&c, name, args, n, ret, NULL, 1) != 0)
    fail_msg("contract %s: %s", name, edgert_last_error());
  if (variadic && edgert_contract_set_variadic(&c, variadic) != 0)
    fail_msg("variadic %s: %s", name, edgert_last_error());
  c.use_errno = (unsigned char)use_errno;
  edgert_func_t *fn = NULL;
  if (edgert_module_bind(mod, &c, &fn) != 0)
    fail_msg("bind %s: %s", name, edgert_last_error());
  return fn;
}

typedef union {
  long double ld;
  int64_t i;
  double d;
  int32_t i32;
} ret_t;

/* ---- const ------------------------------------------------------------------ */

static void const_names_parse_and_round_trip(void **state) {
  (void)state;
  const char *names[] = {"const LP_c_double", "const LP_LP_c_float", "const c_void_p",
                         "const LP_c_size_t"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    edgert_abi_type_t t = type(names[i]);
    assert_int_equal(t.is_const, 1);
    char buf[EDGERT_ABI_TYPE_NAME_MAX];
    assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
    assert_string_equal(buf, names[i]);
  }
  edgert_abi_type_t a = type("const LP_c_uint64");
  assert_int_equal(a.code, EDGERT_CT_POINTER);
  assert_int_equal(a.pointee, EDGERT_CT_ULONG);
  assert_int_equal(type("LP_c_double").is_const, 0);
}

static void const_of_a_value_type_is_refused(void **state) {
  (void)state;
  edgert_abi_type_t t = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0};
  const char *bad[] = {"const c_int", "const c_char_p", "const None", "const ", "constLP_c_int",
                       "const const LP_c_int"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(edgert_abi_type_parse(bad[i], 1, &t), EDGERT_EINVAL);
    assert_int_equal(t.code, EDGERT_CT_INT); /* unchanged */
  }
  assert_non_null(strstr(edgert_last_error(), "'const const LP_c_int'"));
  edgert_abi_type_parse("const c_int", 0, &t);
  assert_non_null(strstr(edgert_last_error(), "const applies to a pointer"));
  /* an invalid const flag has no name */
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t v = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0, .is_const = 1};
  assert_int_equal(edgert_abi_type_name(&v, buf, sizeof buf), EDGERT_EINVAL);
  edgert_abi_type_t w = {.code = EDGERT_CT_POINTER, .pointee = EDGERT_CT_INT, .depth = 1, .is_const = 2};
  assert_int_equal(edgert_abi_type_name(&w, buf, sizeof buf), EDGERT_EINVAL);
}

/* ---- errno ------------------------------------------------------------------ */

static void errno_is_saved_only_when_asked(void **state) {
  (void)state;
  edgert_func_t *with = bind("try_open", "c_int", 0, 1, 1, "c_char_p");
  edgert_func_t *without = bind("set_errno_to", "c_int", 0, 0, 2, "c_int", "LP_c_int");
  const char *missing = "/nonexistent/edgert/x";
  void *args[1] = {&missing};
  ret_t r;
  edgert_set_errno(0);
  assert_int_equal(edgert_func_call(with, args, &r), 0);
  assert_int_equal(r.i32, -1);
  assert_int_equal(edgert_get_errno(), ENOENT);
  /* a contract without use_errno leaves the saved copy alone */
  int v = 77;
  int *none = NULL;
  void *args2[2] = {&v, &none};
  assert_int_equal(edgert_func_call(without, args2, &r), 0);
  assert_int_equal(edgert_get_errno(), ENOENT);
}

static void set_errno_is_swapped_in_before_the_call(void **state) {
  (void)state;
  /* two arguments, both integers: a precompiled trampoline, wrapped */
  edgert_func_t *fn = bind("set_errno_to", "c_int", 0, 1, 2, "c_int", "LP_c_int");
  assert_true(edgert_func_is_fast(fn));
  int before = -1, v = 9;
  int *pb = &before;
  edgert_value_t vals[2];
  vals[0].i = v;
  vals[1].p = pb;
  edgert_set_errno(31);
  assert_int_equal(edgert_set_errno(32), 31);
  ret_t r;
  assert_int_equal(edgert_func_call_values(fn, vals, &r), 0);
  assert_int_equal(before, 32);
  assert_int_equal(edgert_get_errno(), 9);
  vals[0].i = 10;
  assert_int_equal(edgert_func_call_serialized(fn, vals, &r), 0);
  assert_int_equal(before, 9);
  assert_int_equal(edgert_get_errno(), 10);
}

static void errno_on_the_libffi_path(void **state) {
  (void)state;
  edgert_func_t *fn = bind("set_errno_8", "c_int", 0, 1, 8, "c_int", "c_int", "c_int", "c_int",
                           "c_int", "c_int", "c_int", "c_int");
  assert_int_equal(edgert_func_is_fast(fn), INT_ARGS_IN_REGISTERS >= 8);
  int x[8] = {1, 2, 3, 4, 5, 6, 7, 55};
  void *args[8];
  for (int i = 0; i < 8; i++)
    args[i] = &x[i];
  ret_t r;
  edgert_set_errno(0);
  assert_int_equal(edgert_func_call(fn, args, &r), 0);
  assert_int_equal(r.i32, 28);
  assert_int_equal(edgert_get_errno(), 55);
  edgert_value_t v[8];
  for (int i = 0; i < 8; i++)
    v[i].i = x[i] + 1;
  assert_int_equal(edgert_func_call_values(fn, v, &r), 0);
  assert_int_equal(edgert_get_errno(), 56);
  /* without use_errno, the same function leaves the copy alone */
  edgert_func_t *plain = bind("set_errno_8", "c_int", 0, 0, 8, "c_int", "c_int", "c_int",
                              "c_int", "c_int", "c_int", "c_int", "c_int");
  assert_int_equal(edgert_func_call(plain, args, &r), 0);
  assert_int_equal(edgert_get_errno(), 56);
}

static edgert_func_t *thread_fn;

static void *errno_thread(void *arg) {
  int v = (int)(intptr_t)arg;
  for (int i = 0; i < 100; i++) {
    edgert_value_t vals[2];
    vals[0].i = v;
    vals[1].p = NULL;
    ret_t r;
    if (edgert_func_call_values(thread_fn, vals, &r) != 0 || edgert_get_errno() != v)
      return (void *)1;
  }
  return NULL;
}

static void errno_is_per_thread(void **state) {
  (void)state;
  thread_fn = bind("set_errno_to", "c_int", 0, 1, 2, "c_int", "LP_c_int");
  edgert_set_errno(0);
  pthread_t t[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(pthread_create(&t[i], NULL, errno_thread, (void *)(intptr_t)(100 + i)), 0);
  for (int i = 0; i < 3; i++) {
    void *res;
    pthread_join(t[i], &res);
    assert_null(res);
  }
  assert_int_equal(edgert_get_errno(), 0);
}

/* ---- variadic --------------------------------------------------------------- */

static void variadic_contracts_are_checked(void **state) {
  (void)state;
  const char *one[] = {"c_int"};
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "sum_ints", one, 1, "c_long", NULL, 1), 0);
  edgert_contract_t keep = c;
  assert_int_equal(edgert_contract_set_variadic(&c, 2), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "variadic: 2 fixed arguments, but arg_types lists 1 (list exactly the "
                      "fixed ones)");
  assert_memory_equal(&c, &keep, sizeof c);
  assert_int_equal(edgert_contract_set_variadic(&c, 0), EDGERT_EINVAL);
  assert_int_equal(edgert_contract_set_variadic(NULL, 1), EDGERT_EINVAL);
  assert_int_equal(edgert_contract_set_variadic(&c, 1), 0);
  char buf[128];
  assert_int_equal(edgert_contract_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, "c_ssize_t sum_ints(c_int, ...)");
}

static void variadic_calls_promote_and_cache(void **state) {
  (void)state;
  edgert_func_t *ints = bind("sum_ints", "c_long", 1, 0, 1, "c_int");
  edgert_func_t *dbl = bind("sum_doubles", "c_double", 1, 0, 1, "c_int");
  assert_false(edgert_func_is_fast(ints)); /* always libffi */
  edgert_value_t v[8];
  edgert_abi_type_t ex[7];
  ret_t r;
  /* c_short and c_ubyte promote to int */
  v[0].i = 3;
  v[1].i = -2;
  v[2].u = 200;
  v[3].i = 5;
  ex[0] = type("c_short");
  ex[1] = type("c_ubyte");
  ex[2] = type("c_int");
  assert_int_equal(edgert_func_call_variadic(ints, v, 4, ex, &r), 0);
  assert_int_equal(r.i, 203);
  /* no extras: the bind-time cif (also through edgert_func_call_values) */
  v[0].i = 0;
  assert_int_equal(edgert_func_call_variadic(ints, v, 1, NULL, &r), 0);
  assert_int_equal(r.i, 0);
  assert_int_equal(edgert_func_call_values(ints, v, &r), 0);
  assert_int_equal(r.i, 0);
  /* c_float promotes to double: its slot's `f` is what arrives */
  v[0].i = 2;
  v[1].f = 2.5f;
  v[2].d = 0.25;
  ex[0] = type("c_float");
  ex[1] = type("c_double");
  assert_int_equal(edgert_func_call_variadic(dbl, v, 3, ex, &r), 0);
  assert_true(r.d == 2.75);
  /* more distinct lists than the cache keeps: still right */
  for (int n = 1; n <= 7; n++) {
    for (int rep = 0; rep < 3; rep++) {
      v[0].i = n;
      for (int i = 0; i < n; i++) {
        v[1 + i].d = i + 1;
        ex[i] = type(i % 2 ? "c_double" : "c_float");
        if (i % 2 == 0)
          v[1 + i].f = (float)(i + 1);
      }
      assert_int_equal(edgert_func_call_variadic(dbl, v, (size_t)n + 1, ex, &r), 0);
      assert_true(r.d == n * (n + 1) / 2.0);
    }
  }
}

static void variadic_calls_save_errno_when_asked(void **state) {
  (void)state;
  edgert_func_t *fn = bind("errno_sum", "c_int", 2, 1, 2, "c_int", "c_int");
  edgert_value_t v[4];
  edgert_abi_type_t ex[2] = {type("c_int"), type("c_short")};
  v[0].i = 100;
  v[1].i = 2;
  v[2].i = 20;
  v[3].i = 3;
  ret_t r;
  assert_false(edgert_func_is_fast(fn));
  edgert_set_errno(0);
  assert_int_equal(edgert_func_call_variadic(fn, v, 4, ex, &r), 0);
  assert_int_equal(r.i32, 2);
  assert_int_equal(edgert_get_errno(), 123);
  v[1].i = 0; /* no extras: the bind-time cif, through the plain entry */
  assert_int_equal(edgert_func_call_values(fn, v, &r), 0);
  assert_int_equal(edgert_get_errno(), 100);
  edgert_func_t *plain = bind("errno_sum", "c_int", 2, 0, 2, "c_int", "c_int");
  v[1].i = 1;
  assert_int_equal(edgert_func_call_variadic(plain, v, 3, ex, &r), 0);
  assert_int_equal(edgert_get_errno(), 100);
}

static void variadic_format_into_a_buffer(void **state) {
  (void)state;
  edgert_func_t *fmt = bind("fmt", "c_int", 3, 0, 3, "LP_c_char", "c_size_t", "c_char_p");
  char buf[64];
  edgert_value_t v[6];
  edgert_abi_type_t ex[3] = {type("c_int"), type("c_char_p"), type("c_double")};
  v[0].p = buf;
  v[1].u = sizeof buf;
  v[2].p = "%d %s %.2f";
  v[3].i = 42;
  v[4].p = "x";
  v[5].d = 1.5;
  ret_t r;
  assert_int_equal(edgert_func_call_variadic(fmt, v, 6, ex, &r), 0);
  assert_int_equal(r.i32, 9);
  assert_string_equal(buf, "42 x 1.50");
}

static void bad_variadic_calls_are_refused(void **state) {
  (void)state;
  edgert_func_t *ints = bind("sum_ints", "c_long", 1, 0, 1, "c_int");
  edgert_func_t *plain = bind("sum_const", "c_double", 0, 0, 2, "const LP_c_double", "c_size_t");
  edgert_value_t v[EDGERT_MAX_ARGS + 1] = {{0}};
  edgert_abi_type_t ex[EDGERT_MAX_ARGS] = {{0}};
  ret_t r;
  assert_int_equal(edgert_func_call_variadic(plain, v, 2, NULL, &r), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not variadic"));
  assert_int_equal(edgert_func_call_variadic(ints, v, 0, NULL, &r), EDGERT_EINVAL);
  assert_int_equal(edgert_func_call_variadic(ints, v, 2, NULL, &r), EDGERT_EINVAL);
  ex[0].code = EDGERT_CT_VOID;
  assert_int_equal(edgert_func_call_variadic(ints, v, 2, ex, &r), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "extra argument 1 (argument 2)"));
  ex[0].code = (edgert_ctype_t)99;
  assert_int_equal(edgert_func_call_variadic(ints, v, 2, ex, &r), EDGERT_EINVAL);
  assert_int_equal(edgert_func_call_variadic(ints, v, EDGERT_MAX_ARGS + 1, ex, &r),
                   EDGERT_ELIMIT);
  assert_int_equal(edgert_func_call_variadic(NULL, v, 1, NULL, &r), EDGERT_EINVAL);
}

/* ---- manifests --------------------------------------------------------------- */

static void manifest_fields_are_read(void **state) {
  (void)state;
  edgert_contract_t c;
  const char *json = "{\"function_name\": \"fmt\", \"arg_types\": [\"LP_c_char\", "
                     "\"c_size_t\", \"c_char_p\"], \"return_type\": \"c_int\", "
                     "\"variadic\": 3, \"use_errno\": true}";
  assert_int_equal(edgert_contract_parse_json(json, strlen(json), &c), 0);
  assert_int_equal(c.variadic, 1);
  assert_int_equal(c.use_errno, 1);
  assert_int_equal(c.nargs, 3);
  const char *cj = "{\"function_name\": \"f\", \"arg_types\": [\"const LP_c_double\"], "
                   "\"variadic\": null}";
  assert_int_equal(edgert_contract_parse_json(cj, strlen(cj), &c), 0);
  assert_int_equal(c.args[0].is_const, 1);
  assert_int_equal(c.variadic, 0);
  assert_int_equal(c.use_errno, 0);
}

static void bad_manifest_fields_are_refused(void **state) {
  (void)state;
  static const struct {
    const char *json, *msg;
  } cases[] = {
      {"{\"function_name\": \"f\", \"arg_types\": [\"c_int\"], \"variadic\": 2}",
       "variadic: 2 fixed arguments, but arg_types lists 1"},
      {"{\"function_name\": \"f\", \"arg_types\": [], \"variadic\": 0}",
       "variadic: 0 fixed arguments"},
      {"{\"function_name\": \"f\", \"arg_types\": [\"c_int\"], \"variadic\": 1.5}",
       "variadic: expected the fixed argument count"},
      {"{\"function_name\": \"f\", \"arg_types\": [\"c_int\"], \"variadic\": -1}",
       "variadic: expected the fixed argument count"},
      {"{\"function_name\": \"f\", \"arg_types\": [\"c_int\"], \"variadic\": 1e300}",
       "variadic: expected the fixed argument count"},
      {"{\"function_name\": \"f\", \"arg_types\": [\"c_int\"], \"variadic\": true}",
       "variadic: expected the fixed argument count"},
      {"{\"function_name\": \"f\", \"arg_types\": [], \"use_errno\": 1}",
       "use_errno: expected true or false"},
      {"{\"function_name\": \"f\", \"arg_types\": [\"const c_int\"]}",
       "const applies to a pointer"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    edgert_contract_t c;
    memset(&c, 0x5a, sizeof c);
    edgert_contract_t keep = c;
    assert_int_equal(edgert_contract_parse_json(cases[i].json, strlen(cases[i].json), &c),
                     EDGERT_EMANIFEST);
    if (strstr(edgert_last_error(), cases[i].msg) == NULL)
      fail_msg("case %zu: '%s' lacks '%s'", i, edgert_last_error(), cases[i].msg);
    assert_memory_equal(&c, &keep, sizeof c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(const_names_parse_and_round_trip),
      cmocka_unit_test(const_of_a_value_type_is_refused),
      cmocka_unit_test(errno_is_saved_only_when_asked),
      cmocka_unit_test(set_errno_is_swapped_in_before_the_call),
      cmocka_unit_test(errno_is_per_thread),
      cmocka_unit_test(errno_on_the_libffi_path),
      cmocka_unit_test(variadic_contracts_are_checked),
      cmocka_unit_test(variadic_calls_promote_and_cache),
      cmocka_unit_test(variadic_calls_save_errno_when_asked),
      cmocka_unit_test(variadic_format_into_a_buffer),
      cmocka_unit_test(bad_variadic_calls_are_refused),
      cmocka_unit_test(manifest_fields_are_read),
      cmocka_unit_test(bad_manifest_fields_are_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
