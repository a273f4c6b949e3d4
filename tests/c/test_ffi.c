/* test_ffi.c: call paths (trampolines and libffi) give the callee exactly the
 * values of its prototype, and return exactly what it returned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>
#include <wchar.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

/* Integer and pointer argument registers of the machine's C calling
 * convention: 6 on x86-64 (System V), 8 on AArch64 (AAPCS64). A signature
 * with more integer arguments than that has stack arguments: libffi. */
#if defined(__x86_64__)
#define INT_ARG_REGS 6
#else
#define INT_ARG_REGS 8
#endif

static edgert_module_t *mod;

static int setup(void **state) {
  (void)state;
  return edgert_module_load(FX("loader_kernels"), NULL, &mod) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  edgert_module_free(mod);
  return 0;
}

static edgert_func_t *bind(const char *name, const char *ret, size_t n, ...) {
  const char *args[EDGERT_MAX_ARGS];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, const char *);
  va_end(ap);
  edgert_contract_t c;
  if (edgert_contract_init(&c, name, args, n, ret, NULL, 1) != 0)
    fail_msg("contract %s: %s", name, edgert_last_error());
  edgert_func_t *fn = NULL;
  if (edgert_module_bind(mod, &c, &fn) != 0)
    fail_msg("bind %s: %s", name, edgert_last_error());
  return fn;
}

typedef union {
  long double ld;
  unsigned char raw[16];
} ret_t;

static void trampolines_cover_common_scalar_signatures(void **state) {
  (void)state;
  assert_true(edgert_func_is_fast(bind("add", "c_double", 2, "c_double", "c_double")));
  assert_true(edgert_func_is_fast(bind("noop", NULL, 0)));
  assert_true(edgert_func_is_fast(bind("addf", "c_float", 2, "c_float", "c_float")));
  assert_true(edgert_func_is_fast(bind("mix3", "c_double", 3, "c_int32", "c_double", "c_float")));
  assert_true(edgert_func_is_fast(
      bind("narrow", "c_int64", 4, "c_int8", "c_uint8", "c_int16", "c_uint16")));
  assert_true(edgert_func_is_fast(bind("sum6", "c_int64", 6, "c_int64", "c_int64", "c_int64",
                                       "c_int64", "c_int64", "c_int64")));
  assert_true(edgert_func_is_fast(bind("strlen_c", "c_size_t", 1, "c_char_p")));
  assert_true(edgert_func_is_fast(bind("sum_f32", "c_float", 2, "LP_c_float", "c_size_t")));
  /* register-file trampolines: every argument in a register */
  assert_true(edgert_func_is_fast(bind("mix5", "c_double", 5, "c_int32", "c_double",
                                       "c_float", "c_int64", "c_uint8")));
  /* libffi for the rest: stack arguments (past INT_ARG_REGS), long double */
  assert_int_equal(edgert_func_is_fast(bind("seven_ints", "c_int32", 7, "c_int32", "c_int32",
                                            "c_int32", "c_int32", "c_int32", "c_int32",
                                            "c_int32")),
                   7 <= INT_ARG_REGS);
  assert_false(edgert_func_is_fast(bind("half_ld", "c_longdouble", 1, "c_longdouble")));
  assert_int_equal(edgert_func_is_fast(bind("sum8", "c_int64", 8, "c_int64", "c_int64",
                                            "c_int64", "c_int64", "c_int64", "c_int64",
                                            "c_int64", "c_int64")),
                   8 <= INT_ARG_REGS);
}

static void narrow_integers_arrive_exactly(void **state) {
  (void)state;
  edgert_func_t *fn = bind("narrow", "c_int64", 4, "c_int8", "c_uint8", "c_int16", "c_uint16");
  int8_t a = -1;
  uint8_t b = 255;
  int16_t c = -3;
  uint16_t d = 65535;
  void *args[] = {&a, &b, &c, &d};
  ret_t r;
  assert_int_equal(edgert_func_call(fn, args, &r), 0);
  int64_t want = -1000000 + 255 * 10000 - 30 + 65535;
  assert_int_equal(*(int64_t *)r.raw, want);
  edgert_value_t v[4] = {{.i = -1}, {.u = 255}, {.i = -3}, {.u = 65535}};
  assert_int_equal(edgert_func_call_values(fn, v, &r), 0);
  assert_int_equal(*(int64_t *)r.raw, want);
}

#define ID_CASE(fname, ctype, T, value)                                                 \
  do {                                                                                  \
    edgert_func_t *fn = bind(fname, ctype, 1, ctype);                                   \
    T x = (value);                                                                      \
    void *args[] = {&x};                                                                \
    ret_t r;                                                                            \
    memset(&r, 0xAB, sizeof r);                                                         \
    assert_int_equal(edgert_func_call(fn, args, &r), 0);                                \
    T got;                                                                              \
    memcpy(&got, r.raw, sizeof got);                                                    \
    assert_true(got == x);                                                              \
  } while (0)

static void every_integer_width_round_trips(void **state) {
  (void)state;
  ID_CASE("id_i8", "c_int8", int8_t, INT8_MIN);
  ID_CASE("id_i8", "c_int8", int8_t, INT8_MAX);
  ID_CASE("id_u8", "c_uint8", uint8_t, UINT8_MAX);
  ID_CASE("id_i16", "c_int16", int16_t, INT16_MIN);
  ID_CASE("id_u16", "c_uint16", uint16_t, UINT16_MAX);
  ID_CASE("id_i32", "c_int32", int32_t, INT32_MIN);
  ID_CASE("id_u32", "c_uint32", uint32_t, UINT32_MAX);
  ID_CASE("id_i64", "c_int64", int64_t, INT64_MIN);
  ID_CASE("id_u64", "c_uint64", uint64_t, UINT64_MAX);
}

static void floats_bools_chars_and_long_double(void **state) {
  (void)state;
  ret_t r;
  edgert_func_t *nb = bind("not_bool", "c_bool", 1, "c_bool");
  _Bool t = 1;
  void *a1[] = {&t};
  assert_int_equal(edgert_func_call(nb, a1, &r), 0);
  assert_int_equal(r.raw[0], 0);
  edgert_func_t *nc = bind("next_char", "c_char", 1, "c_char");
  char ch = 'a';
  void *a2[] = {&ch};
  assert_int_equal(edgert_func_call(nc, a2, &r), 0);
  assert_int_equal((char)r.raw[0], 'b');
  edgert_func_t *uw = bind("upper_w", "c_wchar", 1, "c_wchar");
  wchar_t w = L'q';
  void *a3[] = {&w};
  assert_int_equal(edgert_func_call(uw, a3, &r), 0);
  assert_true(*(wchar_t *)r.raw == L'Q');
  edgert_func_t *af = bind("addf", "c_float", 2, "c_float", "c_float");
  float x = 1.25f, y = 2.5f;
  void *a4[] = {&x, &y};
  assert_int_equal(edgert_func_call(af, a4, &r), 0);
  assert_true(*(float *)r.raw == 3.75f);
  edgert_func_t *m3 = bind("mix3", "c_double", 3, "c_int32", "c_double", "c_float");
  int32_t i = -7;
  double d = 0.5;
  float f = 0.25f;
  void *a5[] = {&i, &d, &f};
  assert_int_equal(edgert_func_call(m3, a5, &r), 0);
  assert_true(*(double *)r.raw == -6.25);
  edgert_func_t *ld = bind("half_ld", "c_longdouble", 1, "c_longdouble");
  long double l = 3.0L;
  void *a6[] = {&l};
  assert_int_equal(edgert_func_call(ld, a6, &r), 0);
  assert_true(r.ld == 1.5L);
}

static void libffi_path_handles_mixed_and_stack_arguments(void **state) {
  (void)state;
  ret_t r;
  edgert_func_t *m5 = bind("mix5", "c_double", 5, "c_int32", "c_double", "c_float", "c_int64",
                           "c_uint8");
  int32_t a = -1;
  double b = 2.5;
  float c = 0.5f;
  int64_t d = (int64_t)1 << 40;
  uint8_t e = 200;
  void *args[] = {&a, &b, &c, &d, &e};
  assert_int_equal(edgert_func_call(m5, args, &r), 0);
  assert_true(*(double *)r.raw == -1 + 2.5 + 0.5 + (double)((int64_t)1 << 40) + 200);
  edgert_value_t v[5] = {{.i = -1}, {.d = 2.5}, {.f = 0.5f}, {.i = (int64_t)1 << 40}, {.u = 200}};
  assert_int_equal(edgert_func_call_values(m5, v, &r), 0);
  assert_true(*(double *)r.raw == -1 + 2.5 + 0.5 + (double)((int64_t)1 << 40) + 200);
  assert_int_equal(edgert_func_call_serialized(m5, v, &r), 0);
  assert_true(*(double *)r.raw == -1 + 2.5 + 0.5 + (double)((int64_t)1 << 40) + 200);
  edgert_func_t *s8 = bind("sum8", "c_int64", 8, "c_int64", "c_int64", "c_int64", "c_int64",
                           "c_int64", "c_int64", "c_int64", "c_int64");
  edgert_value_t w[8];
  for (int i = 0; i < 8; i++)
    w[i].i = (int64_t)(i + 1) * 1000000000000LL;
  assert_int_equal(edgert_func_call_values(s8, w, &r), 0);
  assert_int_equal(*(int64_t *)r.raw, 36000000000000LL);
  edgert_func_t *s6 = bind("sum6", "c_int64", 6, "c_int64", "c_int64", "c_int64", "c_int64",
                           "c_int64", "c_int64");
  assert_int_equal(edgert_func_call_values(s6, w, &r), 0);
  assert_int_equal(*(int64_t *)r.raw, 21000000000000LL);
}

static void register_file_trampolines_place_every_argument(void **state) {
  (void)state;
  ret_t r;
  edgert_func_t *m10 = bind("many10", "c_double", 10, "c_int8", "c_double", "c_float", "c_int64",
                            "c_uint16", "c_double", "c_float", "c_int32", "c_double",
                            "LP_c_double");
  assert_true(edgert_func_is_fast(m10));
  int8_t a = -3;
  double b = 0.5, f = 0.25, i = 1000.0, pv = 7.0;
  float c = 1.5f, g = -2.0f;
  int64_t d = (int64_t)1 << 33;
  uint16_t e = 65535;
  int32_t h = -100000;
  const double *p = &pv;
  void *args[] = {&a, &b, &c, &d, &e, &f, &g, &h, &i, &p};
  assert_int_equal(edgert_func_call(m10, args, &r), 0);
  double want = -3 + 0.5 + 1.5 + (double)((int64_t)1 << 33) + 65535 + 0.25 - 2.0 - 100000 +
                1000.0 + 7.0;
  assert_true(*(double *)r.raw == want);
  edgert_func_t *a14 = bind("all14", "c_float", 14, "c_int64", "c_int64", "c_int64", "c_int64",
                            "c_int64", "c_int64", "c_double", "c_double", "c_double",
                            "c_double", "c_double", "c_double", "c_float", "c_double");
  assert_true(edgert_func_is_fast(a14));
  edgert_value_t v[14];
  for (int k = 0; k < 6; k++)
    v[k].i = k + 1;
  for (int k = 6; k < 14; k++)
    v[k].d = k + 1;
  v[12].f = 13.0f;
  assert_int_equal(edgert_func_call_values(a14, v, &r), 0);
  assert_true(*(float *)r.raw == (float)(1 - 2 + 3 - 4 + 5 - 6 + 7 - 8 + 9 - 10 + 11 - 12 + 13 - 14));
  edgert_func_t *s7 = bind("seven_ints", "c_int32", 7, "c_int32", "c_int32", "c_int32",
                           "c_int32", "c_int32", "c_int32", "c_int32");
  int32_t xs[7] = {1, 2, 3, 4, 5, 6, -7};
  void *a7[] = {&xs[0], &xs[1], &xs[2], &xs[3], &xs[4], &xs[5], &xs[6]};
  assert_int_equal(edgert_func_call(s7, a7, &r), 0);
  assert_int_equal(*(int32_t *)r.raw, 1 + 4 + 9 + 16 + 25 + 36 - 49);
}

static void pointers_and_strings(void **state) {
  (void)state;
  ret_t r;
  edgert_func_t *sl = bind("strlen_c", "c_size_t", 1, "c_char_p");
  const char *s = "edgert";
  void *a1[] = {&s};
  assert_int_equal(edgert_func_call(sl, a1, &r), 0);
  assert_int_equal(*(size_t *)r.raw, 6);
  edgert_func_t *gr = bind("greet", "c_char_p", 0);
  assert_int_equal(edgert_func_call(gr, NULL, &r), 0);
  assert_string_equal(*(const char **)r.raw, "hello");
  edgert_func_t *sf = bind("sum_f32", "c_float", 2, "LP_c_float", "c_size_t");
  float xs[4] = {1, 2, 3, 4.5f};
  float *p = xs;
  size_t n = 4;
  void *a2[] = {&p, &n};
  assert_int_equal(edgert_func_call(sf, a2, &r), 0);
  assert_true(*(float *)r.raw == 10.5f);
  edgert_func_t *ep = bind("echo_ptr", "c_void_p", 1, "c_void_p");
  void *q = xs;
  void *a3[] = {&q};
  assert_int_equal(edgert_func_call(ep, a3, &r), 0);
  assert_ptr_equal(*(void **)r.raw, xs);
  edgert_func_t *noop = bind("noop", NULL, 0);
  assert_int_equal(edgert_func_call(noop, NULL, NULL), 0); /* void: ret may be NULL */
  assert_int_equal(edgert_func_call_values(noop, NULL, NULL), 0);
  assert_int_equal(edgert_func_call(NULL, NULL, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_func_call(sf, NULL, &r), EDGERT_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trampolines_cover_common_scalar_signatures),
      cmocka_unit_test(narrow_integers_arrive_exactly),
      cmocka_unit_test(every_integer_width_round_trips),
      cmocka_unit_test(floats_bools_chars_and_long_double),
      cmocka_unit_test(libffi_path_handles_mixed_and_stack_arguments),
      cmocka_unit_test(register_file_trampolines_place_every_argument),
      cmocka_unit_test(pointers_and_strings),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
