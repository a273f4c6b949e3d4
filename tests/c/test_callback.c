/*
 * test_callback.c: callback signatures (CFUNCTYPE type names, interning,
 * edgert_fnsig_check_contract), closures (edgert_closure_*), and the
 * manifest's callback forms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edgert.h"
#include "helpers/failalloc.h"

static edgert_abi_type_t parse_ok(const char *name) {
  edgert_abi_type_t t;
  int rc = edgert_abi_type_parse(name, 0, &t);
  if (rc != 0)
    fail_msg("%s: rc %d: %s", name, rc, edgert_last_error());
  return t;
}

static void expect_refused(const char *name, int err, const char *message) {
  edgert_abi_type_t t = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0};
  int rc = edgert_abi_type_parse(name, 0, &t);
  if (rc != err)
    fail_msg("%s: rc %d, wanted %d (%s)", name, rc, err, edgert_last_error());
  if (strstr(edgert_last_error(), message) == NULL)
    fail_msg("%s\n  message: %s\n  wanted:  %s", name, edgert_last_error(), message);
  assert_int_equal(t.code, EDGERT_CT_INT); /* untouched */
}

/* ---- signatures ----------------------------------------------------------- */

static void cfunctype_names_parse_and_round_trip(void **state) {
  (void)state;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  const char *names[] = {
      "CFUNCTYPE(c_int, LP_c_int, LP_c_int)", "CFUNCTYPE(None)",
      "CFUNCTYPE(c_double, c_double, LP_LP_c_float, c_char_p, c_void_p)",
      "CFUNCTYPE(c_void_p, c_size_t)", "CFUNCTYPE(c_longdouble, c_bool, c_wchar_p)"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    edgert_abi_type_t t = parse_ok(names[i]);
    assert_int_equal(t.code, EDGERT_CT_FUNCPTR);
    assert_non_null(t.sig);
    assert_int_equal(edgert_abi_type_size(&t), sizeof(void *));
    assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
    assert_string_equal(buf, names[i]);
  }
  edgert_abi_type_t q = parse_ok("CFUNCTYPE(c_int, LP_c_int, LP_c_int)");
  assert_int_equal(q.sig->nargs, 2);
  assert_int_equal(q.sig->ret.code, EDGERT_CT_INT);
  assert_int_equal(q.sig->args[1].code, EDGERT_CT_POINTER);
  assert_int_equal(q.sig->args[1].pointee, EDGERT_CT_INT);
}

static void equal_signatures_are_one_interned_copy(void **state) {
  (void)state;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t a = parse_ok("CFUNCTYPE(c_int, LP_c_int32, c_uint64)");
  edgert_abi_type_t b = parse_ok("CFUNCTYPE(c_int32,LP_c_int,  c_size_t )");
  edgert_abi_type_t c = parse_ok("CFUNCTYPE(c_int, LP_c_int, c_ssize_t)");
  assert_ptr_equal(a.sig, b.sig);
  assert_ptr_not_equal(a.sig, c.sig);
  assert_int_equal(edgert_abi_type_name(&b, buf, sizeof buf), 0);
  assert_string_equal(buf, "CFUNCTYPE(c_int, LP_c_int, c_size_t)");
  /* a contract with a callback argument: formatted with its canonical name */
  const char *args[] = {"c_void_p", "c_size_t", "c_size_t", "CFUNCTYPE(c_int,LP_c_int,LP_c_int)"};
  edgert_contract_t k;
  assert_int_equal(edgert_contract_init(&k, "qsort", args, 4, NULL, NULL, 1), 0);
  assert_int_equal(k.args[3].code, EDGERT_CT_FUNCPTR);
  char sig[1024];
  assert_int_equal(edgert_contract_format(&k, sig, sizeof sig), 0);
  assert_string_equal(sig, "None qsort(c_void_p, c_size_t, c_size_t, "
                           "CFUNCTYPE(c_int, LP_c_int, LP_c_int))");
}

static void bad_cfunctype_names_are_refused(void **state) {
  (void)state;
  expect_refused("CFUNCTYPE(c_int", EDGERT_EINVAL, "must end with ')'");
  expect_refused("CFUNCTYPE()", EDGERT_EINVAL, "the callback return type is empty");
  expect_refused("CFUNCTYPE(c_int,)", EDGERT_EINVAL, "callback argument 1 is empty");
  expect_refused("CFUNCTYPE(c_int,,c_int)", EDGERT_EINVAL, "callback argument 1 is empty");
  expect_refused("CFUNCTYPE(c_flaot)", EDGERT_EINVAL,
                 "callback return type: unknown type name 'c_flaot'");
  expect_refused("CFUNCTYPE(c_int, None)", EDGERT_EINVAL,
                 "callback argument 1: None (void) is only a return type");
  expect_refused("CFUNCTYPE(c_int, CFUNCTYPE(c_int))", EDGERT_EUNSUPPORTED,
                 "itself a callback");
  expect_refused("LP_CFUNCTYPE(c_int)", EDGERT_EUNSUPPORTED, "POINTER to a function pointer");
  expect_refused("CFUNCTYPE(c_int, struct P)", EDGERT_EUNSUPPORTED, "callback argument 1: type");
  char many[512] = "CFUNCTYPE(c_int";
  for (int i = 0; i < EDGERT_MAX_CALLBACK_ARGS + 1; i++)
    strcat(many, ", c_int");
  strcat(many, ")");
  expect_refused(many, EDGERT_ELIMIT, "a callback has at most 16 arguments");
  /* a callback type is not a return type's None, and not a POINTER pointee */
  edgert_abi_type_t bad = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0};
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  assert_int_equal(edgert_abi_type_name(&bad, buf, sizeof buf), EDGERT_EINVAL);
  edgert_abi_type_t ok = parse_ok("CFUNCTYPE(c_int, c_int)");
  assert_int_equal(edgert_abi_type_name(&ok, buf, 10), EDGERT_EINVAL);
}

static void a_contract_matches_a_signature_or_names_the_difference(void **state) {
  (void)state;
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_int, LP_c_int, LP_c_int)");
  const char *same[] = {"LP_c_int32", "LP_c_int"};
  const char *other[] = {"LP_c_double", "LP_c_double"};
  const char *one[] = {"c_int"};
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "cmp_int", same, 2, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_fnsig_check_contract(t.sig, &c), 0);
  assert_int_equal(edgert_contract_init(&c, "cmp_double", other, 2, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_fnsig_check_contract(t.sig, &c), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "cmp_double: argument 1 is LP_c_double, the callback type has LP_c_int");
  assert_int_equal(edgert_contract_init(&c, "f", same, 2, "c_long", NULL, 1), 0);
  assert_int_equal(edgert_fnsig_check_contract(t.sig, &c), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(), "f returns c_ssize_t, the callback type c_int");
  assert_int_equal(edgert_contract_init(&c, "g", one, 1, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_fnsig_check_contract(t.sig, &c), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(), "g takes 1 argument, the callback type 2");
  assert_int_equal(edgert_fnsig_check_contract(NULL, &c), EDGERT_EINVAL);
  assert_int_equal(edgert_fnsig_check_contract(t.sig, NULL), EDGERT_EINVAL);
}

/* ---- closures --------------------------------------------------------------- */

typedef struct {
  int offset;
  int calls;
} user_t;

static void add_offset(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  user_t *u = user;
  assert_int_equal(sig->nargs, 2);
  u->calls++;
  *(int *)ret = *(const int *)args[0] + *(const int *)args[1] + u->offset;
}

static void closures_call_the_handler_with_its_user_data(void **state) {
  (void)state;
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_int, c_int, c_int)");
  user_t u1 = {100, 0}, u2 = {-100, 0};
  edgert_closure_t *c1 = NULL, *c2 = NULL;
  assert_int_equal(edgert_closure_new(&c1, &t, add_offset, &u1), 0);
  assert_int_equal(edgert_closure_new(&c2, &t, add_offset, &u2), 0);
  assert_ptr_equal(edgert_closure_sig(c1), t.sig);
  int (*f1)(int, int) = (int (*)(int, int))edgert_closure_code(c1);
  int (*f2)(int, int) = (int (*)(int, int))edgert_closure_code(c2);
  assert_ptr_not_equal((void *)f1, (void *)f2);
  assert_int_equal(f1(1, 2), 103);
  assert_int_equal(f2(1, 2), -97);
  assert_int_equal(f1(-5, 5), 100);
  assert_int_equal(u1.calls, 2);
  assert_int_equal(u2.calls, 1);
  edgert_closure_free(c1);
  edgert_closure_free(c2);
  edgert_closure_free(NULL);
  assert_null(edgert_closure_code(NULL));
  assert_null(edgert_closure_sig(NULL));
}

static void negative_sc(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  (void)sig, (void)args, (void)user;
  *(signed char *)ret = -3;
}
static void nothing(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  (void)sig, (void)ret, (void)args;
  ++*(int *)user;
}
static void half(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  (void)sig, (void)user;
  *(double *)ret = *(const double *)args[0] / 2 + *(const float *)args[1];
}
static void mixed(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  (void)sig, (void)user;
  long s = *(const signed char *)args[0] + *(const unsigned short *)args[1] +
           *(const long *)args[2] + (long)*(const long double *)args[3];
  *(long *)ret = s;
}

static void narrow_and_float_returns_reach_c_exactly(void **state) {
  (void)state;
  edgert_closure_t *c;
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_byte)");
  assert_int_equal(edgert_closure_new(&c, &t, negative_sc, NULL), 0);
  /* a caller that reads the full register sees the sign-extended value */
  assert_int_equal(((signed char (*)(void))edgert_closure_code(c))(), -3);
  edgert_closure_free(c);

  int count = 0;
  t = parse_ok("CFUNCTYPE(None, c_int)");
  assert_int_equal(edgert_closure_new(&c, &t, nothing, &count), 0);
  ((void (*)(int))edgert_closure_code(c))(1);
  ((void (*)(int))edgert_closure_code(c))(2);
  assert_int_equal(count, 2);
  edgert_closure_free(c);

  t = parse_ok("CFUNCTYPE(c_double, c_double, c_float)");
  assert_int_equal(edgert_closure_new(&c, &t, half, NULL), 0);
  assert_true(((double (*)(double, float))edgert_closure_code(c))(5.0, 0.25f) == 2.75);
  edgert_closure_free(c);

  t = parse_ok("CFUNCTYPE(c_long, c_byte, c_ushort, c_long, c_longdouble)");
  assert_int_equal(edgert_closure_new(&c, &t, mixed, NULL), 0);
  long r = ((long (*)(signed char, unsigned short, long, long double))edgert_closure_code(c))(
      -1, 65535, -9000000000L, 2.0L);
  assert_int_equal(r, -1 + 65535 - 9000000000L + 2);
  edgert_closure_free(c);
}

static int cmp_via(const void *a, const void *b) {
  return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}
static void cmp_handler(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  (void)sig;
  ++*(int *)user;
  *(int *)ret = cmp_via(*(void *const *)args[0], *(void *const *)args[1]);
}

static void qsort_through_a_closure(void **state) {
  (void)state;
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_int, c_void_p, c_void_p)");
  int calls = 0;
  edgert_closure_t *c;
  assert_int_equal(edgert_closure_new(&c, &t, cmp_handler, &calls), 0);
  int a[64];
  for (int i = 0; i < 64; i++)
    a[i] = (i * 37) % 64 - 20;
  qsort(a, 64, sizeof a[0], (int (*)(const void *, const void *))edgert_closure_code(c));
  for (int i = 1; i < 64; i++)
    assert_true(a[i - 1] <= a[i]);
  assert_true(calls > 64);
  edgert_closure_free(c);
}

static void closure_new_refuses_bad_arguments(void **state) {
  (void)state;
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_int, c_int, c_int)");
  edgert_abi_type_t i = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0};
  edgert_closure_t *c = (edgert_closure_t *)0x1;
  assert_int_equal(edgert_closure_new(NULL, &t, add_offset, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_closure_new(&c, NULL, add_offset, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_closure_new(&c, &t, NULL, NULL), EDGERT_EINVAL);
  assert_int_equal(edgert_closure_new(&c, &i, add_offset, NULL), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not a callback type"));
  assert_ptr_equal(c, (edgert_closure_t *)0x1);
}

static void out_of_memory_fails_cleanly(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_abi_type_t t = parse_ok("CFUNCTYPE(c_int, c_int, c_int)");
  long live = edgert_test_failalloc_live();
  edgert_closure_t *c = NULL;
  edgert_test_failalloc_fail_at(1);
  assert_int_equal(edgert_closure_new(&c, &t, add_offset, NULL), EDGERT_ENOMEM);
  assert_null(c);
  assert_int_equal(edgert_test_failalloc_live(), live);
  /* a new signature's interned copy */
  edgert_abi_type_t keep = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0};
  edgert_test_failalloc_fail_at(1);
  assert_int_equal(edgert_abi_type_parse("CFUNCTYPE(c_short, c_short, c_ubyte, c_float)", 0,
                                         &keep),
                   EDGERT_ENOMEM);
  assert_int_equal(keep.code, EDGERT_CT_INT);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_disarm();
  edgert_test_failalloc_uninstall();
}

/* ---- manifests ------------------------------------------------------------------ */

static const char *HEAD = "{\"schema_version\": 1, \"modules\": [{\"path\": \"x.so\", "
                          "\"sha256\": "
                          "\"0000000000000000000000000000000000000000000000000000000000000000\", "
                          "\"contracts\": [{\"function_name\": \"f\", \"arg_types\": [";
static const char *TAIL = "]}]}]}";

static int parse_args(const char *args, edgert_manifest_t **m) {
  char json[2048];
  snprintf(json, sizeof json, "%s%s%s", HEAD, args, TAIL);
  return edgert_manifest_parse(json, strlen(json), NULL, m);
}

static void manifest_reads_both_callback_forms(void **state) {
  (void)state;
  edgert_manifest_t *m = NULL;
  const char *forms[] = {
      "\"CFUNCTYPE(c_int, LP_c_int, LP_c_int)\"",
      "{\"callback\": {\"restype\": \"c_int\", \"argtypes\": [\"LP_c_int\", \"LP_c_int32\"]}}"};
  const edgert_fnsig_t *seen = NULL;
  for (int k = 0; k < 2; k++) {
    if (parse_args(forms[k], &m) != 0)
      fail_msg("%s: %s", forms[k], edgert_last_error());
    const edgert_contract_t *c = edgert_manifest_contract(m, 0, 0);
    assert_int_equal(c->args[0].code, EDGERT_CT_FUNCPTR);
    if (seen != NULL)
      assert_ptr_equal(c->args[0].sig, seen);
    seen = c->args[0].sig;
    edgert_manifest_free(m);
  }
  /* restype null or absent: None; argtypes absent: none */
  assert_int_equal(parse_args("{\"callback\": {\"restype\": null}}", &m), 0);
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  assert_int_equal(edgert_abi_type_name(&edgert_manifest_contract(m, 0, 0)->args[0], buf,
                                        sizeof buf),
                   0);
  assert_string_equal(buf, "CFUNCTYPE(None)");
  edgert_manifest_free(m);
  assert_int_equal(parse_args("{\"callback\": {}}", &m), 0);
  edgert_manifest_free(m);
}

static void manifest_refuses_bad_callback_forms(void **state) {
  (void)state;
  struct {
    const char *args, *message;
  } bad[] = {
      {"{\"callback\": {\"restype\": 3}}",
       "modules[0].contracts[0].arg_types[0].callback.restype: expected a type name (string) or null, "
       "got a number"},
      {"{\"callback\": {\"argtypes\": \"c_int\"}}", "callback.argtypes: expected an array"},
      {"{\"callback\": {\"argtypes\": [{\"callback\": {}}]}}",
       "callback.argtypes[0]: expected a type name (string); a callback's arguments cannot be "
       "callbacks, got an object"},
      {"{\"callback\": {\"ret\": \"c_int\"}}", "unknown key 'ret'"},
      {"{\"callbak\": {}}", "unknown key 'callbak'"},
      {"{\"callback\": {}, \"x\": 1}", "unknown key 'x'"},
      {"{\"callback\": []}", "expected an object with restype and argtypes"},
      {"{\"callback\": {\"restype\": \"c_flaot\"}}", "callback return type: unknown type name"},
      {"{\"callback\": {\"argtypes\": [\"None\"]}}", "callback argument 1: None"},
      {"3", "expected a type name (string) or a {\"callback\": ...} object, got a number"},
      {"\"CFUNCTYPE(c_int, CFUNCTYPE(c_int))\"", "itself a callback"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    edgert_manifest_t *m = (edgert_manifest_t *)0x1;
    int rc = parse_args(bad[i].args, &m);
    if (rc != EDGERT_EMANIFEST)
      fail_msg("%s: rc %d (%s)", bad[i].args, rc, edgert_last_error());
    if (strstr(edgert_last_error(), bad[i].message) == NULL)
      fail_msg("%s\n  message: %s\n  wanted:  %s", bad[i].args, edgert_last_error(),
               bad[i].message);
  }
  char many[1024] = "{\"callback\": {\"argtypes\": [\"c_int\"";
  for (int i = 0; i < EDGERT_MAX_CALLBACK_ARGS; i++)
    strcat(many, ", \"c_int\"");
  strcat(many, "]}}");
  edgert_manifest_t *m = NULL;
  assert_int_equal(parse_args(many, &m), EDGERT_EMANIFEST);
  assert_non_null(strstr(edgert_last_error(), "a callback has at most 16 arguments"));
}

static void manifest_callback_form_frees_what_it_builds(void **state) {
  (void)state;
  parse_ok("CFUNCTYPE(c_int)"); /* interned once, for good: not a leak */
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_manifest_t *m = NULL;
  long live = edgert_test_failalloc_live();
  assert_int_equal(parse_args("{\"callback\": {\"restype\": \"c_int\", \"argtypes\": "
                              "[\"c_flaot\"]}}",
                              &m),
                   EDGERT_EMANIFEST);
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(parse_args("{\"callback\": {\"restype\": \"c_int\"}}, 7", &m),
                   EDGERT_EMANIFEST);
  assert_int_equal(edgert_test_failalloc_live(), live);
  assert_int_equal(parse_args("{\"callback\": {\"restype\": \"c_int\"}}", &m), 0);
  edgert_manifest_free(m);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cfunctype_names_parse_and_round_trip),
      cmocka_unit_test(equal_signatures_are_one_interned_copy),
      cmocka_unit_test(bad_cfunctype_names_are_refused),
      cmocka_unit_test(a_contract_matches_a_signature_or_names_the_difference),
      cmocka_unit_test(closures_call_the_handler_with_its_user_data),
      cmocka_unit_test(narrow_and_float_returns_reach_c_exactly),
      cmocka_unit_test(qsort_through_a_closure),
      cmocka_unit_test(closure_new_refuses_bad_arguments),
      cmocka_unit_test(out_of_memory_fails_cleanly),
      cmocka_unit_test(manifest_reads_both_callback_forms),
      cmocka_unit_test(manifest_refuses_bad_callback_forms),
      cmocka_unit_test(manifest_callback_form_frees_what_it_builds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
