/*
 * test_bad_input.c: every malformed thing a C host can hand libedgert, in one
 * place, each with the exact error code it must give and a fragment of the
 * message that names the problem. Also replays the fuzzers' committed seeds
 * and regression inputs (tests/fuzz/corpus/NAME/, tests/fuzz/regressions/NAME/)
 * through the harnesses' own entry points, built here with gcc and no
 * libFuzzer, so a fixed crash stays fixed in `make test`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgert.h"

/* The harnesses, compiled without their libFuzzer entry points. */
#define EDGERT_FUZZ_REPLAY 1
#include "../fuzz/fuzz_abi.c"

static int bad_inputs_tried;

/* Asserts rc is `want` and this thread's message holds `fragment`. */
#define expect_error(call, want, fragment)                                     \
  do {                                                                         \
    edgert_clear_error();                                                      \
    int rc_ = (call);                                                          \
    bad_inputs_tried++;                                                        \
    if (rc_ != (want))                                                         \
      fail_msg("%s: got %s (%d), want %s; message \"%s\"", #call,            \
               edgert_err_name(rc_), rc_, edgert_err_name(want),               \
               edgert_last_error());                                           \
    if (strstr(edgert_last_error(), (fragment)) == NULL)                       \
      fail_msg("%s: message \"%s\" lacks \"%s\"", #call, edgert_last_error(), \
               (fragment));                                                    \
  } while (0)

/* ---- ABI type names ---------------------------------------------------- */

static void type_names_that_are_refused(void **state) {
  (void)state;
  edgert_abi_type_t t, before;
  memset(&t, 0x5A, sizeof t);
  memcpy(&before, &t, sizeof t);
  static const struct {
    const char *name;
    int allow_void;
    int rc;
    const char *fragment;
  } cases[] = {
      {"c_flaot", 0, EDGERT_EINVAL, "unknown type name 'c_flaot'"},
      {"", 0, EDGERT_EINVAL, "unknown type name ''"},
      {"LP_", 0, EDGERT_EINVAL, "unknown type name 'LP_'"},
      {"C_DOUBLE", 0, EDGERT_EINVAL, "unknown type name 'C_DOUBLE'"},
      {"c_double ", 0, EDGERT_EINVAL, "unknown type name 'c_double '"},
      {" c_double", 0, EDGERT_EINVAL, "unknown type name ' c_double'"},
      {"double", 0, EDGERT_EINVAL, "unknown type name 'double'"},
      {"float*", 0, EDGERT_EINVAL, "unknown type name 'float*'"},
      {"POINTER(c_float)", 0, EDGERT_EINVAL, "unknown type name 'POINTER(c_float)'"},
      {"lp_c_float", 0, EDGERT_EINVAL, "unknown type name 'lp_c_float'"},
      {"LP_c_flaot", 0, EDGERT_EINVAL, "unknown type name 'LP_c_flaot'"},
      {"c_int\x01", 0, EDGERT_EINVAL, "unknown type name 'c_int\\x01'"},
      {"c_\xff\xfe", 0, EDGERT_EINVAL, "'c_\\xff\\xfe'"},
      {"None", 0, EDGERT_EINVAL, "None (void) is only a return type"},
      {"LP_None", 1, EDGERT_EINVAL, "POINTER(None) is not a type; use c_void_p"},
      {"LP_LP_LP_LP_LP_LP_LP_LP_LP_c_int", 0, EDGERT_ELIMIT,
       "more than 8 POINTER levels"},
      {"struct point", 0, EDGERT_EUNSUPPORTED, "struct by value or by POINTER is not supported"},
      {"LP_struct point", 0, EDGERT_EUNSUPPORTED, "struct by value or by POINTER"},
      {"union u", 0, EDGERT_EUNSUPPORTED, "union by value or by POINTER"},
      {"py_object", 0, EDGERT_EUNSUPPORTED, "kernels take C values, not Python objects"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    expect_error(edgert_abi_type_parse(cases[i].name, cases[i].allow_void, &t),
                 cases[i].rc, cases[i].fragment);
    assert_memory_equal(&t, &before, sizeof t); /* output untouched */
  }
  expect_error(edgert_abi_type_parse(NULL, 1, &t), EDGERT_EINVAL,
               "name and out must not be NULL");
  expect_error(edgert_abi_type_parse("c_int", 1, NULL), EDGERT_EINVAL,
               "name and out must not be NULL");
}

static void a_huge_type_name_is_quoted_short(void **state) {
  (void)state;
  size_t n = 100000;
  char *name = malloc(n + 1);
  assert_non_null(name);
  memset(name, 'x', n);
  name[n] = '\0';
  edgert_abi_type_t t;
  expect_error(edgert_abi_type_parse(name, 0, &t), EDGERT_EINVAL,
               "unknown type name 'xxxxxxxx");
  assert_non_null(strstr(edgert_last_error(), "...'"));
  assert_true(strlen(edgert_last_error()) < 200);
  free(name);
}

static void invalid_types_are_not_named(void **state) {
  (void)state;
  char buf[64];
  edgert_abi_type_t bad_code = {(edgert_ctype_t)99, EDGERT_CT_VOID, 0};
  expect_error(edgert_abi_type_name(&bad_code, buf, sizeof buf), EDGERT_EINVAL,
               "invalid type (code 99");
  edgert_abi_type_t ptr_to_void = {EDGERT_CT_POINTER, EDGERT_CT_VOID, 1};
  expect_error(edgert_abi_type_name(&ptr_to_void, buf, sizeof buf),
               EDGERT_EINVAL, "invalid type");
  edgert_abi_type_t deep = {EDGERT_CT_POINTER, EDGERT_CT_INT, 200};
  expect_error(edgert_abi_type_name(&deep, buf, sizeof buf), EDGERT_EINVAL,
               "depth 200");
  edgert_abi_type_t int_with_depth = {EDGERT_CT_INT, EDGERT_CT_VOID, 1};
  expect_error(edgert_abi_type_name(&int_with_depth, buf, sizeof buf),
               EDGERT_EINVAL, "invalid type");
  edgert_abi_type_t ok = {EDGERT_CT_POINTER, EDGERT_CT_FLOAT, 2};
  expect_error(edgert_abi_type_name(&ok, buf, 5), EDGERT_EINVAL,
               "buffer of 5 bytes is too small");
  expect_error(edgert_abi_type_name(&ok, NULL, 64), EDGERT_EINVAL,
               "must not be NULL");
  expect_error(edgert_abi_type_name(&ok, buf, 0), EDGERT_EINVAL,
               "must not be NULL");
  assert_int_equal(edgert_abi_type_size(&bad_code), 0);
  assert_int_equal(edgert_abi_type_size(NULL), 0);
}

/* ---- ABI contracts ------------------------------------------------------- */

static void contracts_that_are_refused(void **state) {
  (void)state;
  edgert_contract_t c, before;
  memset(&c, 0x5A, sizeof c);
  memcpy(&before, &c, sizeof c);
  const char *two[] = {"LP_c_float", "c_size_t"};
  const char *with_null[] = {"c_int", NULL};
  const char *with_void[] = {"None"};
  const char *with_typo[] = {"c_int", "c_int", "c_flaot"};
  const char *with_struct[] = {"struct s"};
  const char *many[EDGERT_MAX_ARGS + 1];
  for (size_t i = 0; i < EDGERT_MAX_ARGS + 1; i++)
    many[i] = "c_int";
  char long_name[EDGERT_MAX_NAME + 2];
  memset(long_name, 'f', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  expect_error(edgert_contract_init(NULL, "f", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "c is NULL");
  expect_error(edgert_contract_init(&c, NULL, two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "function_name: missing (NULL)");
  expect_error(edgert_contract_init(&c, "", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "function_name: '' is not a C identifier");
  expect_error(edgert_contract_init(&c, "9lives", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "function_name: '9lives' is not a C identifier");
  expect_error(edgert_contract_init(&c, "vec-add", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "function_name: 'vec-add' is not a C identifier");
  expect_error(edgert_contract_init(&c, "vec add", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "'vec add' is not a C identifier");
  expect_error(edgert_contract_init(&c, "f\n", two, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "'f\\x0a' is not a C identifier");
  expect_error(edgert_contract_init(&c, long_name, two, 2, NULL, NULL, 1),
               EDGERT_ELIMIT,
               "function_name: 256 bytes is longer than the limit of 255");
  expect_error(edgert_contract_init(&c, "f", many, EDGERT_MAX_ARGS + 1, NULL,
                                    NULL, 1),
               EDGERT_ELIMIT, "arg_types: 33 arguments is more than the limit of 32");
  expect_error(edgert_contract_init(&c, "f", NULL, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "arg_types: NULL with 2 arguments");
  expect_error(edgert_contract_init(&c, "f", with_null, 2, NULL, NULL, 1),
               EDGERT_EINVAL, "arg_types[1]: missing (NULL)");
  expect_error(edgert_contract_init(&c, "f", with_void, 1, NULL, NULL, 1),
               EDGERT_EINVAL, "arg_types[0]: None (void) is only a return type");
  expect_error(edgert_contract_init(&c, "f", with_typo, 3, NULL, NULL, 1),
               EDGERT_EINVAL, "arg_types[2]: unknown type name 'c_flaot'");
  expect_error(edgert_contract_init(&c, "f", with_struct, 1, NULL, NULL, 1),
               EDGERT_EUNSUPPORTED, "arg_types[0]: type 'struct s'");
  expect_error(edgert_contract_init(&c, "f", two, 2, "c_dobule", NULL, 1),
               EDGERT_EINVAL, "return_type: unknown type name 'c_dobule'");
  expect_error(edgert_contract_init(&c, "f", two, 2, "LP_None", NULL, 1),
               EDGERT_EINVAL, "return_type: type name 'LP_None'");
  expect_error(edgert_contract_init(&c, "f", two, 2, "py_object", NULL, 1),
               EDGERT_EUNSUPPORTED, "return_type: type 'py_object' is not supported");
  expect_error(edgert_contract_init(&c, "f", two, 2, NULL, "stdcall", 1),
               EDGERT_EINVAL, "calling_convention: 'stdcall' is not supported");
  expect_error(edgert_contract_init(&c, "f", two, 2, NULL, "", 1),
               EDGERT_EINVAL, "calling_convention: '' is not supported");
  expect_error(edgert_contract_init(&c, "f", two, 2, NULL, "CDECL", 1),
               EDGERT_EINVAL, "calling_convention: 'CDECL'");
  /* Every refusal left the contract as it was. */
  assert_memory_equal(&c, &before, sizeof c);
}

/* ---- fuzz regressions ---------------------------------------------------- */

typedef int (*harness_fn)(const uint8_t *, size_t);

/* Runs every file in tests/fuzz/{corpus,regressions}/<name>/ through fn. */
static int replay_dir(const char *name, harness_fn fn) {
  static const char *const kinds[] = {"corpus", "regressions"};
  int replayed = 0;
  for (size_t k = 0; k < 2; k++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", EDGERT_SOURCE_DIR,
             kinds[k], name);
    DIR *d = opendir(dir);
    if (d == NULL)
      continue;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[8192];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      FILE *f = fopen(path, "rb");
      assert_non_null(f);
      uint8_t *buf = NULL;
      size_t len = 0, cap = 0;
      for (;;) {
        if (len == cap) {
          cap = cap ? cap * 2 : 4096;
          buf = realloc(buf, cap);
          assert_non_null(buf);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0)
          break;
        len += got;
      }
      fclose(f);
      fn(buf, len); /* aborts on a broken invariant */
      free(buf);
      replayed++;
    }
    closedir(d);
  }
  return replayed;
}

static void fuzz_inputs_replay_cleanly(void **state) {
  (void)state;
  int n = replay_dir("fuzz_abi", edgert_fuzz_abi);
  assert_true(n > 0);
  print_message("replayed %d committed fuzz input(s)\n", n);
}

static int report(void **state) {
  (void)state;
  print_message("bad inputs tried: %d\n", bad_inputs_tried);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(type_names_that_are_refused),
      cmocka_unit_test(a_huge_type_name_is_quoted_short),
      cmocka_unit_test(invalid_types_are_not_named),
      cmocka_unit_test(contracts_that_are_refused),
      cmocka_unit_test(fuzz_inputs_replay_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, report);
}
