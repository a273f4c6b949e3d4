/* test_abi.c: the type-name table, canonical names and contract validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "edgert.h"

static edgert_abi_type_t parse_ok(const char *name) {
  edgert_abi_type_t t;
  memset(&t, 0xAB, sizeof t);
  int rc = edgert_abi_type_parse(name, 1, &t);
  if (rc != 0)
    fail_msg("%s: %s", name, edgert_last_error());
  return t;
}

static void every_ctypes_name_parses_to_its_code(void **state) {
  (void)state;
  static const struct {
    const char *name;
    edgert_ctype_t code;
  } cases[] = {
      {"c_bool", EDGERT_CT_BOOL},         {"c_char", EDGERT_CT_CHAR},
      {"c_wchar", EDGERT_CT_WCHAR},       {"c_byte", EDGERT_CT_BYTE},
      {"c_int8", EDGERT_CT_BYTE},         {"c_ubyte", EDGERT_CT_UBYTE},
      {"c_uint8", EDGERT_CT_UBYTE},       {"c_short", EDGERT_CT_SHORT},
      {"c_int16", EDGERT_CT_SHORT},       {"c_ushort", EDGERT_CT_USHORT},
      {"c_uint16", EDGERT_CT_USHORT},     {"c_int", EDGERT_CT_INT},
      {"c_int32", EDGERT_CT_INT},         {"c_uint", EDGERT_CT_UINT},
      {"c_uint32", EDGERT_CT_UINT},       {"c_long", EDGERT_CT_LONG},
      {"c_ssize_t", EDGERT_CT_LONG},      {"c_longlong", EDGERT_CT_LONG},
      {"c_int64", EDGERT_CT_LONG},        {"c_time_t", EDGERT_CT_LONG},
      {"c_ulong", EDGERT_CT_ULONG},       {"c_size_t", EDGERT_CT_ULONG},
      {"c_ulonglong", EDGERT_CT_ULONG},   {"c_uint64", EDGERT_CT_ULONG},
      {"c_float", EDGERT_CT_FLOAT},       {"c_double", EDGERT_CT_DOUBLE},
      {"c_longdouble", EDGERT_CT_LONGDOUBLE},
      {"c_char_p", EDGERT_CT_CHAR_P},     {"c_wchar_p", EDGERT_CT_WCHAR_P},
      {"c_void_p", EDGERT_CT_VOID_P},     {"c_voidp", EDGERT_CT_VOID_P},
      {"None", EDGERT_CT_VOID},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    edgert_abi_type_t t = parse_ok(cases[i].name);
    assert_int_equal(t.code, cases[i].code);
    assert_int_equal(t.pointee, EDGERT_CT_VOID);
    assert_int_equal(t.depth, 0);
  }
}

static void canonical_names_are_what_to_dict_writes(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"c_size_t", "c_size_t"},      {"c_ulong", "c_size_t"},
      {"c_uint64", "c_size_t"},      {"c_ulonglong", "c_size_t"},
      {"c_long", "c_ssize_t"},       {"c_int64", "c_ssize_t"},
      {"c_longlong", "c_ssize_t"},   {"c_time_t", "c_ssize_t"},
      {"c_int32", "c_int"},          {"c_uint8", "c_ubyte"},
      {"c_int8", "c_byte"},          {"c_voidp", "c_void_p"},
      {"LP_c_float", "LP_c_float"},  {"LP_c_ulong", "LP_c_size_t"},
      {"LP_LP_c_char", "LP_LP_c_char"}, {"LP_c_char_p", "LP_c_char_p"},
      {"LP_c_void_p", "LP_c_void_p"}, {"None", "None"},
  };
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    edgert_abi_type_t t = parse_ok(cases[i].in);
    assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
    assert_string_equal(buf, cases[i].out);
  }
}

static void pointer_names_give_pointee_and_depth(void **state) {
  (void)state;
  edgert_abi_type_t t = parse_ok("LP_c_float");
  assert_int_equal(t.code, EDGERT_CT_POINTER);
  assert_int_equal(t.pointee, EDGERT_CT_FLOAT);
  assert_int_equal(t.depth, 1);
  t = parse_ok("LP_LP_c_uint64");
  assert_int_equal(t.code, EDGERT_CT_POINTER);
  assert_int_equal(t.pointee, EDGERT_CT_ULONG);
  assert_int_equal(t.depth, 2);
  char name[64] = "";
  for (int d = 0; d < EDGERT_MAX_POINTER_DEPTH; d++)
    strcat(name, "LP_");
  strcat(name, "c_double");
  t = parse_ok(name);
  assert_int_equal(t.depth, EDGERT_MAX_POINTER_DEPTH);
  char deeper[70] = "LP_";
  strcat(deeper, name);
  edgert_abi_type_t keep = {EDGERT_CT_INT, EDGERT_CT_VOID, 0, 0};
  assert_int_equal(edgert_abi_type_parse(deeper, 0, &keep), EDGERT_ELIMIT);
  assert_non_null(strstr(edgert_last_error(), "POINTER levels"));
  assert_int_equal(keep.code, EDGERT_CT_INT); /* unchanged on failure */
}

/* Every code and depth: name(t) parses back to t. */
static void names_round_trip_for_every_type(void **state) {
  (void)state;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  for (int code = EDGERT_CT_VOID; code < EDGERT_CT_POINTER; code++) {
    edgert_abi_type_t t = {(edgert_ctype_t)code, EDGERT_CT_VOID, 0, 0};
    assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
    edgert_abi_type_t back = parse_ok(buf);
    if (code == EDGERT_CT_LONGLONG)
      assert_int_equal(back.code, EDGERT_CT_LONG); /* one ctypes class on LP64 */
    else if (code == EDGERT_CT_ULONGLONG)
      assert_int_equal(back.code, EDGERT_CT_ULONG);
    else
      assert_int_equal(back.code, code);
    if (code == EDGERT_CT_VOID)
      continue;
    for (int d = 1; d <= EDGERT_MAX_POINTER_DEPTH; d++) {
      edgert_abi_type_t p = {EDGERT_CT_POINTER, (edgert_ctype_t)code,
                             (unsigned char)d, 0};
      assert_int_equal(edgert_abi_type_name(&p, buf, sizeof buf), 0);
      back = parse_ok(buf);
      assert_int_equal(back.code, EDGERT_CT_POINTER);
      assert_int_equal(back.depth, d);
      assert_int_equal(edgert_abi_type_size(&back), sizeof(void *));
    }
  }
}

static void every_listed_alias_parses(void **state) {
  (void)state;
  size_t n = 0;
  for (const char *a; (a = edgert_abi_type_alias(n)) != NULL; n++)
    parse_ok(a);
  assert_true(n >= 32);
  assert_null(edgert_abi_type_alias(n));
  assert_null(edgert_abi_type_alias((size_t)-1));
}

static void unknown_names_are_refused_by_name(void **state) {
  (void)state;
  static const char *const bad[] = {
      "c_flaot", "", "LP_", "c_int ", " c_int", "C_INT", "int", "float",
      "LP_c_flaot", "lp_c_int", "LPc_int", "c_size", "c_void", "void",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    edgert_abi_type_t t;
    assert_int_equal(edgert_abi_type_parse(bad[i], 1, &t), EDGERT_EINVAL);
    char want[80];
    snprintf(want, sizeof want, "unknown type name '%s'", bad[i]);
    assert_string_equal(edgert_last_error(), want);
  }
  edgert_abi_type_t t;
  assert_int_equal(edgert_abi_type_parse("c_\x01\xff'", 0, &t), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "unknown type name 'c_\\x01\\xff\\x27'");
  assert_int_equal(edgert_abi_type_parse(NULL, 0, &t), EDGERT_EINVAL);
  assert_int_equal(edgert_abi_type_parse("c_int", 0, NULL), EDGERT_EINVAL);
}

static void void_is_a_return_type_only(void **state) {
  (void)state;
  edgert_abi_type_t t;
  assert_int_equal(edgert_abi_type_parse("None", 0, &t), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "only a return type"));
  assert_int_equal(edgert_abi_type_parse("LP_None", 1, &t), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "use c_void_p"));
}

static void struct_by_value_is_not_supported_yet(void **state) {
  (void)state;
  edgert_abi_type_t t;
  assert_int_equal(edgert_abi_type_parse("struct Point", 0, &t),
                   EDGERT_EUNSUPPORTED);
  assert_string_equal(edgert_last_error(),
                      "type 'struct Point': struct by value or by POINTER is "
                      "not supported yet (pass its address as c_void_p)");
  assert_int_equal(edgert_abi_type_parse("LP_union U", 0, &t),
                   EDGERT_EUNSUPPORTED);
  assert_non_null(strstr(edgert_last_error(), "not supported yet"));
  assert_int_equal(edgert_abi_type_parse("py_object", 1, &t),
                   EDGERT_EUNSUPPORTED);
  assert_non_null(strstr(edgert_last_error(), "'py_object' is not supported"));
}

static void sizes_match_the_c_types(void **state) {
  (void)state;
  static const struct {
    const char *name;
    size_t size;
  } cases[] = {
      {"c_bool", sizeof(_Bool)},  {"c_char", 1},
      {"c_wchar", sizeof(wchar_t)}, {"c_byte", 1},
      {"c_short", sizeof(short)}, {"c_int", sizeof(int)},
      {"c_long", sizeof(long)},   {"c_size_t", sizeof(size_t)},
      {"c_float", sizeof(float)}, {"c_double", sizeof(double)},
      {"c_longdouble", sizeof(long double)}, {"c_char_p", sizeof(char *)},
      {"LP_c_double", sizeof(double *)}, {"None", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    edgert_abi_type_t t = parse_ok(cases[i].name);
    assert_int_equal(edgert_abi_type_size(&t), cases[i].size);
  }
  edgert_abi_type_t invalid = {EDGERT_CT__COUNT, EDGERT_CT_VOID, 0, 0};
  assert_int_equal(edgert_abi_type_size(&invalid), 0);
  assert_int_equal(edgert_abi_type_size(NULL), 0);
}

static void invalid_types_have_no_name(void **state) {
  (void)state;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t bad[] = {
      {EDGERT_CT__COUNT, EDGERT_CT_VOID, 0, 0},
      {EDGERT_CT_POINTER, EDGERT_CT_VOID, 1, 0},
      {EDGERT_CT_POINTER, EDGERT_CT_POINTER, 1, 0},
      {EDGERT_CT_POINTER, EDGERT_CT_INT, 0, 0},
      {EDGERT_CT_POINTER, EDGERT_CT_INT, EDGERT_MAX_POINTER_DEPTH + 1, 0},
      {EDGERT_CT_INT, EDGERT_CT_INT, 0, 0},
      {EDGERT_CT_INT, EDGERT_CT_VOID, 1, 0},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(edgert_abi_type_name(&bad[i], buf, sizeof buf),
                     EDGERT_EINVAL);
  edgert_abi_type_t t = parse_ok("LP_c_longdouble");
  char small[15]; /* "LP_c_longdouble" needs 16 */
  assert_int_equal(edgert_abi_type_name(&t, small, sizeof small), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "too small"));
  char exact[16];
  assert_int_equal(edgert_abi_type_name(&t, exact, sizeof exact), 0);
  assert_string_equal(exact, "LP_c_longdouble");
}

static void contract_init_fills_the_contract(void **state) {
  (void)state;
  const char *args[] = {"LP_c_float", "c_size_t"};
  edgert_contract_t c;
  assert_int_equal(
      edgert_contract_init(&c, "vec_add_f32", args, 2, NULL, NULL, 1), 0);
  assert_string_equal(c.function_name, "vec_add_f32");
  assert_int_equal(c.nargs, 2);
  assert_int_equal(c.args[0].code, EDGERT_CT_POINTER);
  assert_int_equal(c.args[0].pointee, EDGERT_CT_FLOAT);
  assert_int_equal(c.args[1].code, EDGERT_CT_ULONG);
  assert_int_equal(c.ret.code, EDGERT_CT_VOID);
  assert_int_equal(c.release_gil, 1);
  char sig[200];
  assert_int_equal(edgert_contract_format(&c, sig, sizeof sig), 0);
  assert_string_equal(sig, "None vec_add_f32(LP_c_float, c_size_t)");

  assert_int_equal(edgert_contract_init(&c, "noop", NULL, 0, "None", "cdecl", 7), 0);
  assert_int_equal(c.nargs, 0);
  assert_int_equal(c.release_gil, 1);
  assert_int_equal(edgert_contract_format(&c, sig, sizeof sig), 0);
  assert_string_equal(sig, "None noop()");
  assert_int_equal(edgert_contract_format(&c, sig, 5), EDGERT_EINVAL);
  assert_int_equal(strlen(sig) < 5, 1);

  const char *d[] = {"c_double", "c_double"};
  assert_int_equal(edgert_contract_init(&c, "_add2", d, 2, "c_double", "cdecl", 0), 0);
  assert_int_equal(c.ret.code, EDGERT_CT_DOUBLE);
  assert_int_equal(c.release_gil, 0);
}

/* Each failure names its field and leaves the contract as it was. */
static void check_refused(const char *name, const char *const *args, size_t n,
                          const char *ret, const char *cc, int want_rc,
                          const char *want_msg) {
  edgert_contract_t c;
  memset(&c, 0x5A, sizeof c);
  edgert_contract_t before = c;
  int rc = edgert_contract_init(&c, name, args, n, ret, cc, 1);
  if (rc != want_rc)
    fail_msg("rc %d (%s), wanted %d", rc, edgert_last_error(), want_rc);
  if (strstr(edgert_last_error(), want_msg) != edgert_last_error())
    fail_msg("message '%s' does not start with '%s'", edgert_last_error(),
             want_msg);
  assert_memory_equal(&c, &before, sizeof c);
}

static void contract_init_refuses_bad_fields_by_name(void **state) {
  (void)state;
  const char *ok[] = {"c_int"};
  const char *typo[] = {"c_int", "c_double", "c_flaot"};
  const char *voidarg[] = {"None"};
  const char *nullarg[] = {"c_int", NULL};
  const char *st[] = {"struct Point"};
  check_refused("f", typo, 3, NULL, NULL, EDGERT_EINVAL,
                "arg_types[2]: unknown type name 'c_flaot'");
  check_refused("f", voidarg, 1, NULL, NULL, EDGERT_EINVAL,
                "arg_types[0]: None (void) is only a return type");
  check_refused("f", nullarg, 2, NULL, NULL, EDGERT_EINVAL,
                "arg_types[1]: missing");
  check_refused("f", NULL, 1, NULL, NULL, EDGERT_EINVAL, "arg_types: NULL");
  check_refused("f", st, 1, NULL, NULL, EDGERT_EUNSUPPORTED,
                "arg_types[0]: type 'struct Point': struct by value");
  check_refused("f", ok, 1, "c_dobule", NULL, EDGERT_EINVAL,
                "return_type: unknown type name 'c_dobule'");
  check_refused("f", ok, 1, "struct P", NULL, EDGERT_EUNSUPPORTED,
                "return_type: type 'struct P'");
  check_refused("f", ok, 1, NULL, "stdcall", EDGERT_EINVAL,
                "calling_convention: 'stdcall' is not supported");
  check_refused("f", ok, 1, NULL, "", EDGERT_EINVAL,
                "calling_convention: '' is not supported");
  check_refused(NULL, ok, 1, NULL, NULL, EDGERT_EINVAL, "function_name: missing");
  static const char *const names[] = {"", "1abc", "a-b", "a b", "a.b", "é",
                                      "f\n"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    check_refused(names[i], ok, 1, NULL, NULL, EDGERT_EINVAL, "function_name: '");
  check_refused("a-b", ok, 1, NULL, NULL, EDGERT_EINVAL,
                "function_name: 'a-b' is not a C identifier");
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(NULL, "f", ok, 1, NULL, NULL, 1),
                   EDGERT_EINVAL);
  assert_int_equal(edgert_contract_init(&c, "_", ok, 1, NULL, NULL, 1), 0);
}

static void contract_limits_are_32_args_and_255_byte_names(void **state) {
  (void)state;
  const char *args[EDGERT_MAX_ARGS + 1];
  for (int i = 0; i <= EDGERT_MAX_ARGS; i++)
    args[i] = "c_int";
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "f", args, 32, NULL, NULL, 1), 0);
  assert_int_equal(c.nargs, 32);
  check_refused("f", args, 33, NULL, NULL, EDGERT_ELIMIT,
                "arg_types: 33 arguments is more than the limit of 32");
  char name[EDGERT_MAX_NAME + 2];
  memset(name, 'x', EDGERT_MAX_NAME);
  name[EDGERT_MAX_NAME] = '\0';
  assert_int_equal(edgert_contract_init(&c, name, args, 1, NULL, NULL, 1), 0);
  assert_string_equal(c.function_name, name);
  name[EDGERT_MAX_NAME] = 'x';
  name[EDGERT_MAX_NAME + 1] = '\0';
  check_refused(name, args, 1, NULL, NULL, EDGERT_ELIMIT,
                "function_name: 256 bytes is longer than the limit of 255");
}

/* ---- buffer item formats (edgert_buffer_item_parse) ------------------- */

static edgert_buffer_item_t item(const char *f, size_t size) {
  edgert_buffer_item_t it;
  memset(&it, 0xAB, sizeof it);
  assert_int_equal(edgert_buffer_item_parse(f, size, &it), 0);
  return it;
}

static void item_is(const char *f, size_t size, edgert_item_kind_t kind,
                    edgert_ctype_t code) {
  edgert_buffer_item_t it = item(f, size);
  if (it.kind != kind || it.code != code)
    fail_msg("'%s' size %zu: kind %d code %d (%s), want kind %d code %d", f, size,
             (int)it.kind, (int)it.code, it.reason ? it.reason : "-", (int)kind,
             (int)code);
  assert_null(it.reason);
  assert_int_equal(it.size, size);
}

static void item_refused(const char *f, size_t size, const char *why) {
  edgert_buffer_item_t it = item(f, size);
  if (it.kind != EDGERT_ITEM_NONE)
    fail_msg("'%s' size %zu was taken as kind %d", f ? f : "(null)", size, (int)it.kind);
  assert_int_equal(it.code, EDGERT_CT_VOID);
  assert_non_null(it.reason);
  if (strstr(it.reason, why) == NULL)
    fail_msg("'%s': reason '%s' does not say '%s'", f, it.reason, why);
}

static int little(void) {
  const unsigned one = 1;
  return *(const unsigned char *)&one == 1;
}

static void every_code_letter_reads_with_its_native_size(void **state) {
  (void)state;
  static const struct {
    const char *f;
    size_t size;
    edgert_item_kind_t kind;
    edgert_ctype_t code;
  } cases[] = {
      {"b", 1, EDGERT_ITEM_SIGNED, EDGERT_CT_BYTE},
      {"h", 2, EDGERT_ITEM_SIGNED, EDGERT_CT_SHORT},
      {"i", 4, EDGERT_ITEM_SIGNED, EDGERT_CT_INT},
      {"l", 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG},
      {"q", 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG},
      {"n", 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG},
      {"B", 1, EDGERT_ITEM_UNSIGNED, EDGERT_CT_UBYTE},
      {"H", 2, EDGERT_ITEM_UNSIGNED, EDGERT_CT_USHORT},
      {"I", 4, EDGERT_ITEM_UNSIGNED, EDGERT_CT_UINT},
      {"L", 8, EDGERT_ITEM_UNSIGNED, EDGERT_CT_ULONG},
      {"Q", 8, EDGERT_ITEM_UNSIGNED, EDGERT_CT_ULONG},
      {"N", 8, EDGERT_ITEM_UNSIGNED, EDGERT_CT_ULONG},
      {"e", 2, EDGERT_ITEM_FLOAT, EDGERT_CT_VOID},
      {"f", 4, EDGERT_ITEM_FLOAT, EDGERT_CT_FLOAT},
      {"d", 8, EDGERT_ITEM_FLOAT, EDGERT_CT_DOUBLE},
      {"g", sizeof(long double), EDGERT_ITEM_FLOAT, EDGERT_CT_LONGDOUBLE},
      {"?", 1, EDGERT_ITEM_BOOL, EDGERT_CT_BOOL},
      {"c", 1, EDGERT_ITEM_CHAR, EDGERT_CT_CHAR},
      {"u", sizeof(wchar_t), EDGERT_ITEM_WCHAR, EDGERT_CT_WCHAR},
      {"w", sizeof(wchar_t), EDGERT_ITEM_WCHAR, EDGERT_CT_WCHAR},
      {"P", sizeof(void *), EDGERT_ITEM_POINTER, EDGERT_CT_VOID_P},
      {"&<f", sizeof(void *), EDGERT_ITEM_POINTER, EDGERT_CT_VOID_P},
      {"&&d", sizeof(void *), EDGERT_ITEM_POINTER, EDGERT_CT_VOID_P},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    item_is(cases[i].f, cases[i].size, cases[i].kind, cases[i].code);
    if (cases[i].f[0] != '&') {
      char at[4] = {'@', cases[i].f[0], 0, 0};
      item_is(at, cases[i].size, cases[i].kind, cases[i].code);
    }
  }
  /* PEP 3118: no format means unsigned bytes */
  item_is(NULL, 1, EDGERT_ITEM_UNSIGNED, EDGERT_CT_UBYTE);
  edgert_buffer_item_t it = item("<q", 8);
  assert_int_equal(it.letter, 'q');
}

static void every_prefix_reads_host_order_and_standard_sizes(void **state) {
  (void)state;
  const char *host = little() ? "<" : ">";
  const char *foreign = little() ? ">" : "<";
  const char *prefixes[] = {"", "@", "=", host};
  for (size_t p = 0; p < 4; p++) {
    char f[4];
    snprintf(f, sizeof f, "%sq", prefixes[p]);
    item_is(f, 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG);
    snprintf(f, sizeof f, "%sd", prefixes[p]);
    item_is(f, 8, EDGERT_ITEM_FLOAT, EDGERT_CT_DOUBLE);
    snprintf(f, sizeof f, "%s?", prefixes[p]);
    item_is(f, 1, EDGERT_ITEM_BOOL, EDGERT_CT_BOOL);
  }
  /* standard sizes under '=', '<', '>', '!': 'l' is 4 bytes ... */
  item_is("=l", 4, EDGERT_ITEM_SIGNED, EDGERT_CT_INT);
  item_is(little() ? "<L" : ">L", 4, EDGERT_ITEM_UNSIGNED, EDGERT_CT_UINT);
  /* ... or the native size, as ctypes writes its c_long arrays: "<l", 8 */
  item_is(little() ? "<l" : ">l", 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG);
  item_is("=l", 8, EDGERT_ITEM_SIGNED, EDGERT_CT_LONG);
  /* native-only letters take their native size under any host prefix */
  item_is(little() ? "<P" : ">P", 8, EDGERT_ITEM_POINTER, EDGERT_CT_VOID_P);
  item_is(little() ? "<g" : ">g", sizeof(long double), EDGERT_ITEM_FLOAT,
          EDGERT_CT_LONGDOUBLE);
  /* the other byte order: refused for wide items, fine for bytes */
  char f[4];
  snprintf(f, sizeof f, "%sq", foreign);
  item_refused(f, 8, "byte order");
  item_refused("!i", little() ? 4 : 0, little() ? "byte order" : "does not fit");
  snprintf(f, sizeof f, "%sb", foreign);
  item_is(f, 1, EDGERT_ITEM_SIGNED, EDGERT_CT_BYTE);
  item_is("!B", 1, EDGERT_ITEM_UNSIGNED, EDGERT_CT_UBYTE);
  item_is("!?", 1, EDGERT_ITEM_BOOL, EDGERT_CT_BOOL);
}

static void sizes_that_do_not_fit_the_letter_are_refused(void **state) {
  (void)state;
  item_refused("@l", 4, "does not fit");  /* native 'l' is 8 bytes */
  item_refused("l", 4, "does not fit");
  item_refused("b", 8, "does not fit");
  item_refused("<b", 2, "does not fit");
  item_refused("d", 4, "does not fit");
  item_refused("f", 8, "does not fit");
  item_refused("=e", 4, "does not fit");
  item_refused("?", 4, "does not fit");
  item_refused("<n", 4, "does not fit"); /* 'n' has no standard size */
  item_refused("q", 0, "does not fit");
  item_refused("q", (size_t)-1, "does not fit");
  item_refused("&<f", 4, "pointer-sized");
  item_refused("P", 4, "does not fit");
}

static void bad_formats_are_refused_with_a_reason(void **state) {
  (void)state;
  item_refused("", 1, "empty format");
  item_refused("@", 1, "empty format");
  item_refused("<", 8, "empty format");
  item_refused("&", 8, "names no target");
  item_refused("2d", 16, "not one item");
  item_refused("1d", 8, "not one item");
  item_refused("dd", 16, "not one item");
  item_refused("T{d:x:}", 8, "not one item");
  item_refused("<<q", 8, "not one item");
  item_refused("3s", 3, "not one item");
  item_refused("Zd", 16, "not one item");
  item_refused("s", 1, "unknown item code");
  item_refused("x", 1, "unknown item code");
  item_refused("O", 8, "unknown item code");
  item_refused("p", 1, "unknown item code");
  item_refused("Z", 8, "unknown item code");
  item_refused("\x80", 1, "unknown item code");
  item_refused("\xff", 1, "unknown item code");
  /* every byte that is not a code letter, after every prefix */
  const char *known = "bhilqnBHILQNefdg?cuwP&";
  for (int ch = 1; ch < 256; ch++) {
    if (strchr(known, ch) != NULL || strchr("@=<>!", ch) != NULL)
      continue;
    char f[3] = {(char)ch, 0, 0};
    for (size_t size = 0; size <= 16; size++) {
      edgert_buffer_item_t it = item(f, size);
      if (it.kind != EDGERT_ITEM_NONE)
        fail_msg("byte 0x%02x size %zu was taken", ch, size);
    }
  }
  assert_int_equal(edgert_buffer_item_parse("q", 8, NULL), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "out is NULL"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_ctypes_name_parses_to_its_code),
      cmocka_unit_test(canonical_names_are_what_to_dict_writes),
      cmocka_unit_test(pointer_names_give_pointee_and_depth),
      cmocka_unit_test(names_round_trip_for_every_type),
      cmocka_unit_test(every_listed_alias_parses),
      cmocka_unit_test(unknown_names_are_refused_by_name),
      cmocka_unit_test(void_is_a_return_type_only),
      cmocka_unit_test(struct_by_value_is_not_supported_yet),
      cmocka_unit_test(sizes_match_the_c_types),
      cmocka_unit_test(invalid_types_have_no_name),
      cmocka_unit_test(contract_init_fills_the_contract),
      cmocka_unit_test(contract_init_refuses_bad_fields_by_name),
      cmocka_unit_test(contract_limits_are_32_args_and_255_byte_names),
      cmocka_unit_test(every_code_letter_reads_with_its_native_size),
      cmocka_unit_test(every_prefix_reads_host_order_and_standard_sizes),
      cmocka_unit_test(sizes_that_do_not_fit_the_letter_are_refused),
      cmocka_unit_test(bad_formats_are_refused_with_a_reason),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
