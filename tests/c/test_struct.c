/* test_struct.c: struct layouts (edgert/struct.h): validation, the libffi
 * type that passes them by value, calls through it, and zeroed padding in
 * the custom-type copy path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

typedef struct {
  double x, y;
} vec2_t;
typedef struct {
  double x, y, z;
  int64_t tag;
} big_t;
typedef struct {
  vec2_t a, b;
  int id;
} seg_t;
typedef struct {
  int n;
  float v[3];
  char name[4];
} arr_t;

#define F(n, t, o, c) {n, t, o, c}

static const edgert_struct_t *define_ok(const char *name, const edgert_struct_field_desc_t *f,
                                        size_t n, size_t size, size_t align) {
  const edgert_struct_t *s = NULL;
  if (edgert_struct_define(name, f, n, size, align, &s) != 0)
    fail_msg("define %s: %s", name, edgert_last_error());
  return s;
}

static void expect_refused(int rc, int want, const char *needle) {
  if (rc != want || strstr(edgert_last_error(), needle) == NULL)
    fail_msg("got %d (want %d), message '%s' lacks '%s'", rc, want, edgert_last_error(),
             needle);
}

static void define_vec2(void) {
  edgert_struct_field_desc_t f[] = {F("x", "c_double", 0, 0), F("y", "c_double", 8, 0)};
  define_ok("Vec2", f, 2, sizeof(vec2_t), _Alignof(vec2_t));
}

static void layouts_define_find_and_name(void **state) {
  (void)state;
  define_vec2();
  const edgert_struct_t *s;
  assert_int_equal(edgert_struct_find("Vec2", &s), 0);
  assert_string_equal(edgert_struct_name(s), "Vec2");
  assert_int_equal(edgert_struct_size(s), 16);
  assert_int_equal(edgert_struct_align(s), 8);
  assert_int_equal(edgert_struct_nfields(s), 2);
  assert_string_equal(edgert_struct_field(s, 1)->name, "y");
  assert_int_equal(edgert_struct_field(s, 1)->offset, 8);
  assert_null(edgert_struct_field(s, 2));
  assert_null(edgert_struct_by_value_problem(s));
  /* the same layout again is the same definition */
  const edgert_struct_t *again;
  edgert_struct_field_desc_t f[] = {F("x", "c_double", 0, 0), F("y", "c_double", 8, 0)};
  assert_int_equal(edgert_struct_define("Vec2", f, 2, 16, 8, &again), 0);
  assert_ptr_equal(again, s);
  /* names: "struct Vec2", "LP_struct Vec2", parse back to the layout */
  edgert_abi_type_t t;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  assert_int_equal(edgert_abi_type_parse("LP_struct Vec2", 0, &t), 0);
  assert_int_equal(t.code, EDGERT_CT_POINTER);
  assert_int_equal(t.pointee, EDGERT_CT_STRUCT);
  assert_ptr_equal(t.layout, s);
  assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
  assert_string_equal(buf, "LP_struct Vec2");
  assert_int_equal(edgert_abi_type_parse("struct Vec2", 0, &t), 0);
  assert_int_equal(edgert_abi_type_size(&t), 16);
  /* const keeps to a struct pointer (it was dropped: "const LP_struct Vec2"
   * named "LP_struct Vec2"), and is refused on a struct value */
  assert_int_equal(edgert_abi_type_parse("const LP_struct Vec2", 0, &t), 0);
  assert_int_equal(t.is_const, 1);
  assert_int_equal(edgert_abi_type_name(&t, buf, sizeof buf), 0);
  assert_string_equal(buf, "const LP_struct Vec2");
  expect_refused(edgert_abi_type_parse("const struct Vec2", 0, &t), EDGERT_EINVAL,
                 "const applies to a pointer");
  expect_refused(edgert_abi_type_parse("struct Nope", 0, &t), EDGERT_EINVAL,
                 "no struct Nope is defined");
  expect_refused(edgert_abi_type_parse("union U", 0, &t), EDGERT_EUNSUPPORTED, "unions");
}

static void bad_layouts_are_refused_naming_the_field(void **state) {
  (void)state;
  define_vec2();
  edgert_struct_field_desc_t other[] = {F("x", "c_double", 0, 0), F("y", "c_float", 8, 0)};
  expect_refused(edgert_struct_define("Vec2", other, 2, 16, 8, NULL), EDGERT_EEXIST,
                 "field 1 is 'y' c_double");
  edgert_struct_field_desc_t mis[] = {F("a", "c_char", 0, 0), F("b", "c_int", 2, 0)};
  expect_refused(edgert_struct_define("Mis", mis, 2, 8, 4, NULL), EDGERT_EINVAL,
                 "field 'b' at offset 2 is not aligned to 4");
  edgert_struct_field_desc_t over[] = {F("a", "c_int", 0, 0), F("b", "c_int", 2, 0)};
  expect_refused(edgert_struct_define("Over", over, 2, 8, 2, NULL), EDGERT_EINVAL,
                 "field 'b' at offset 2 overlaps");
  edgert_struct_field_desc_t past[] = {F("a", "c_double", 0, 2)};
  expect_refused(edgert_struct_define("Past", past, 1, 8, 8, NULL), EDGERT_EINVAL,
                 "field 'a' ends at 16, past the size 8");
  expect_refused(edgert_struct_define("Odd", past, 1, 20, 8, NULL), EDGERT_EINVAL,
                 "not a multiple of its alignment");
  expect_refused(edgert_struct_define("Al", past, 1, 16, 3, NULL), EDGERT_EINVAL,
                 "alignment 3");
  edgert_struct_field_desc_t dup[] = {F("a", "c_int", 0, 0), F("a", "c_int", 4, 0)};
  expect_refused(edgert_struct_define("Dup", dup, 2, 8, 4, NULL), EDGERT_EINVAL,
                 "field 'a' appears twice");
  edgert_struct_field_desc_t unk[] = {F("a", "c_flaot", 0, 0)};
  expect_refused(edgert_struct_define("Unk", unk, 1, 8, 4, NULL), EDGERT_EINVAL,
                 "field 'a': unknown type name 'c_flaot'");
  edgert_struct_field_desc_t un[] = {F("a", "union U", 0, 0)};
  expect_refused(edgert_struct_define("Un", un, 1, 8, 4, NULL), EDGERT_EUNSUPPORTED,
                 "field 'a'");
  edgert_struct_field_desc_t nested_unknown[] = {F("in", "struct Later", 0, 0)};
  expect_refused(edgert_struct_define("Outer", nested_unknown, 1, 8, 8, NULL), EDGERT_EINVAL,
                 "no struct Later is defined");
  expect_refused(edgert_struct_define("Empty", NULL, 0, 8, 8, NULL), EDGERT_EINVAL,
                 "no fields");
  expect_refused(edgert_struct_define("not an identifier", past, 1, 16, 8, NULL),
                 EDGERT_EINVAL, "not a C identifier");
  expect_refused(edgert_struct_define("Big", past, 1, EDGERT_STRUCT_MAX_SIZE + 8, 8, NULL),
                 EDGERT_ELIMIT, "size");
  edgert_struct_field_desc_t self[] = {F("me", "struct Vec2", 0, 0)};
  expect_refused(edgert_struct_define("Vec2", self, 1, 16, 8, NULL), EDGERT_EINVAL,
                 "field 'me' contains struct Vec2 itself");
  /* nothing of a refused definition was published */
  const edgert_struct_t *s;
  assert_int_equal(edgert_struct_find("Mis", &s), EDGERT_ENOTFOUND);
}

static void packed_layouts_are_refused_by_value_only(void **state) {
  (void)state;
  edgert_struct_field_desc_t f[] = {F("c", "c_char", 0, 0), F("d", "c_double", 1, 0)};
  const edgert_struct_t *s = define_ok("Packed", f, 2, 9, 1);
  const char *p = edgert_struct_by_value_problem(s);
  assert_non_null(p);
  assert_non_null(strstr(p, "field 'd' at offset 1 is packed"));
  edgert_module_t *m;
  assert_int_equal(edgert_module_load(FX("struct_kernels"), NULL, &m), 0);
  edgert_contract_t c;
  const char *byval[] = {"struct Packed"};
  assert_int_equal(edgert_contract_init(&c, "packed_sum", byval, 1, "c_double", NULL, 1), 0);
  edgert_func_t *fn;
  expect_refused(edgert_module_bind(m, &c, &fn), EDGERT_EUNSUPPORTED,
                 "field 'd' at offset 1 is packed");
  const char *byptr[] = {"LP_struct Packed", "c_size_t"};
  assert_int_equal(edgert_contract_init(&c, "packed_sum", byptr, 2, "c_double", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  unsigned char items[18] = {0};
  double d = 2.5;
  items[0] = 1;
  memcpy(items + 1, &d, 8);
  items[9] = 2;
  memcpy(items + 10, &d, 8);
  void *buf = items;
  size_t n = 2;
  void *args[] = {&buf, &n};
  double r = 0;
  assert_int_equal(edgert_func_call(fn, args, &r), 0);
  assert_true(r == 8.0);
  edgert_module_free(m);
}

static void structs_travel_by_value_both_ways(void **state) {
  (void)state;
  define_vec2();
  edgert_struct_field_desc_t fb[] = {F("x", "c_double", 0, 0), F("y", "c_double", 8, 0),
                                     F("z", "c_double", 16, 0), F("tag", "c_int64", 24, 0)};
  define_ok("Big", fb, 4, sizeof(big_t), 8);
  edgert_struct_field_desc_t fs[] = {F("a", "struct Vec2", 0, 0), F("b", "struct Vec2", 16, 0),
                                     F("id", "c_int", 32, 0)};
  define_ok("Seg", fs, 3, sizeof(seg_t), 8);
  edgert_struct_field_desc_t fa[] = {F("n", "c_int", 0, 0), F("v", "c_float", 4, 3),
                                     F("name", "c_char", 16, 4)};
  define_ok("Arr", fa, 3, sizeof(arr_t), 4);
  edgert_module_t *m;
  assert_int_equal(edgert_module_load(FX("struct_kernels"), NULL, &m), 0);
  edgert_contract_t c;
  edgert_func_t *fn;
  /* small, in registers: vec2_add(a, b) */
  const char *two[] = {"struct Vec2", "struct Vec2"};
  assert_int_equal(edgert_contract_init(&c, "vec2_add", two, 2, "struct Vec2", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  assert_false(edgert_func_is_fast(fn));
  vec2_t a = {1, 2}, b = {10, 20}, r = {0, 0};
  void *args[] = {&a, &b};
  assert_int_equal(edgert_func_call(fn, args, &r), 0);
  assert_true(r.x == 11 && r.y == 22);
  /* the same through widened slots: the slot holds the struct's address */
  edgert_value_t v[2];
  v[0].p = &a;
  v[1].p = &b;
  memset(&r, 0, sizeof r);
  assert_int_equal(edgert_func_call_values(fn, v, &r), 0);
  assert_true(r.x == 11 && r.y == 22);
  memset(&r, 0, sizeof r);
  assert_int_equal(edgert_func_call_serialized(fn, v, &r), 0);
  assert_true(r.x == 11 && r.y == 22);
  /* two doubles by value, a double back: split into registers, no libffi */
  const char *dots[] = {"struct Vec2", "struct Vec2"};
  assert_int_equal(edgert_contract_init(&c, "vec2_dot", dots, 2, "c_double", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  assert_true(edgert_func_is_fast(fn));
  double dot = 0;
  assert_int_equal(edgert_func_call(fn, args, &dot), 0);
  assert_true(dot == 50.0);
  v[0].p = &a;
  v[1].p = &b;
  dot = 0;
  assert_int_equal(edgert_func_call_values(fn, v, &dot), 0);
  assert_true(dot == 50.0);
  /* large, in memory: big_scale(b, k) */
  const char *bs[] = {"struct Big", "c_double"};
  assert_int_equal(edgert_contract_init(&c, "big_scale", bs, 2, "struct Big", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  big_t bb = {1, 2, 3, 41}, br;
  double k = 2;
  void *bargs[] = {&bb, &k};
  assert_int_equal(edgert_func_call(fn, bargs, &br), 0);
  assert_true(br.x == 2 && br.y == 4 && br.z == 6 && br.tag == 42);
  /* a struct result nobody wants: NULL ret */
  assert_int_equal(edgert_func_call(fn, bargs, NULL), 0);
  /* nested */
  const char *ss[] = {"struct Seg"};
  assert_int_equal(edgert_contract_init(&c, "seg_swap", ss, 1, "struct Seg", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  seg_t s = {{1, 2}, {3, 4}, 7}, sr;
  void *sargs[] = {&s};
  assert_int_equal(edgert_func_call(fn, sargs, &sr), 0);
  assert_true(sr.a.x == 3 && sr.b.y == 2 && sr.id == -7);
  /* an array inside */
  const char *as[] = {"struct Arr"};
  assert_int_equal(edgert_contract_init(&c, "arr_total", as, 1, "c_double", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  arr_t ar = {1, {0.5f, 0.25f, 0.25f}, {2, 0, 0, 0}};
  void *aargs[] = {&ar};
  double total = 0;
  assert_int_equal(edgert_func_call(fn, aargs, &total), 0);
  assert_true(total == 4.0);
  edgert_module_free(m);
}

/* A C host's idea of a padded value, copied field by field. */
typedef struct {
  char c;
  double d;
} padded_t;
static size_t sizeof_padded(void) { return sizeof(padded_t); }
static int check_padded(void *obj) { return obj != NULL; }
static void copy_padded(void *dst, void *src) {
  const padded_t *s = src;
  padded_t *d = dst;
  d->c = s->c; /* the 7 padding bytes are not written */
  d->d = s->d;
}

static void custom_copy_zeroes_padding(void **state) {
  (void)state;
  const edgert_type_t *t;
  assert_int_equal(edgert_type_register("Padded", sizeof_padded, check_padded, copy_padded,
                                        NULL, &t),
                   0);
  padded_t v = {'k', 1.5};
  unsigned char a[sizeof(padded_t)], b[sizeof(padded_t)];
  memset(a, 0xAA, sizeof a);
  memset(b, 0x55, sizeof b);
  assert_int_equal(edgert_type_copy(t, a, &v), 0);
  assert_int_equal(edgert_type_copy(t, b, &v), 0);
  assert_memory_equal(a, b, sizeof a);
  for (size_t i = 1; i < offsetof(padded_t, d); i++)
    assert_int_equal(a[i], 0);
  /* so two equal keys are one key of a dict */
  edgert_dict_t *d;
  assert_int_equal(edgert_dict_new(t, edgert_type_builtin(EDGERT_KIND_INT64), &d), 0);
  int64_t one = 1, got = 0;
  assert_int_equal(edgert_dict_set(d, a, &one), 0);
  assert_int_equal(edgert_dict_get(d, b, &got), 0);
  assert_int_equal(got, 1);
  edgert_dict_free(d);
}

static void copy_value_zeroes_padding_of_nested_layouts(void **state) {
  (void)state;
  edgert_struct_field_desc_t fi[] = {F("c", "c_char", 0, 0), F("d", "c_double", 8, 0)};
  define_ok("PadIn", fi, 2, 16, 8);
  edgert_struct_field_desc_t fo[] = {F("s", "c_short", 0, 0), F("in", "struct PadIn", 8, 2),
                                     F("t", "c_char", 40, 0)};
  const edgert_struct_t *s = define_ok("PadOut", fo, 3, 48, 8);
  unsigned char src[48], dst[48];
  memset(src, 0xEE, sizeof src);
  memset(dst, 0x11, sizeof dst);
  edgert_struct_copy_value(s, dst, src);
  static const struct {
    size_t at, n;
  } data[] = {{0, 2}, {8, 1}, {16, 8}, {24, 1}, {32, 8}, {40, 1}};
  size_t k = 0;
  for (size_t i = 0; i < sizeof dst; i++) {
    int in_field = 0;
    for (k = 0; k < sizeof data / sizeof data[0]; k++)
      in_field |= i >= data[k].at && i < data[k].at + data[k].n;
    assert_int_equal(dst[i], in_field ? 0xEE : 0);
  }
}


#define HASH "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""
#define MANIFEST(structs, args)                                                              \
  "{\"schema_version\": 1, \"structs\": " structs ", \"modules\": [{\"path\": \"k.so\", "    \
  "\"sha256\": " HASH ", \"contracts\": [{\"function_name\": \"f\", \"arg_types\": " args    \
  "}]}]}"

static void manifest_expect(const char *json, const char *needle) {
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(json, strlen(json), NULL, &m);
  if (rc != EDGERT_EMANIFEST || strstr(edgert_last_error(), needle) == NULL)
    fail_msg("%s\n  got %d: %s\n  wanted: %s", json, rc, edgert_last_error(), needle);
  assert_null(m);
}

static void manifest_structs_section_defines_checked_layouts(void **state) {
  (void)state;
  const char *ok = MANIFEST(
      "[{\"name\": \"MPt\", \"size\": 16, \"alignment\": 8, \"fields\": ["
      "{\"name\": \"x\", \"type\": \"c_double\", \"offset\": 0},"
      "{\"name\": \"y\", \"type\": \"c_double\", \"offset\": 8}]},"
      "{\"name\": \"MLine\", \"size\": 40, \"alignment\": 8, \"fields\": ["
      "{\"name\": \"ends\", \"type\": \"struct MPt\", \"offset\": 0, \"count\": 2},"
      "{\"name\": \"tag\", \"type\": \"c_char\", \"offset\": 32, \"count\": 8}]}]",
      "[\"struct MLine\", \"LP_struct MPt\"]");
  edgert_manifest_t *m = NULL;
  if (edgert_manifest_parse(ok, strlen(ok), NULL, &m) != 0)
    fail_msg("%s", edgert_last_error());
  const edgert_contract_t *c = edgert_manifest_contract(m, 0, 0);
  assert_non_null(c);
  assert_int_equal(c->args[0].code, EDGERT_CT_STRUCT);
  assert_int_equal(edgert_struct_size(c->args[0].layout), 40);
  assert_int_equal(edgert_struct_field(c->args[0].layout, 0)->count, 2);
  assert_int_equal(c->args[1].pointee, EDGERT_CT_STRUCT);
  edgert_manifest_free(m);

  manifest_expect(MANIFEST("[{\"name\": \"MBad\", \"size\": 8, \"alignment\": 8, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"offset\": 2}]}]", "[]"),
                  "structs[0]: struct MBad: field 'a' at offset 2 is not aligned to 4");
  manifest_expect(MANIFEST("[{\"name\": \"MBad\", \"size\": 2, \"alignment\": 4, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"offset\": 0}]}]", "[]"),
                  "structs[0]: struct MBad: size 2 is not a multiple of its alignment 4");
  manifest_expect(MANIFEST("[{\"name\": \"MBad\", \"size\": 4, \"alignment\": 4, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"offset\": 4}]}]", "[]"),
                  "field 'a' ends at 8, past the size 4");
  manifest_expect(MANIFEST("[{\"name\": \"MBad\", \"size\": 8, \"alignment\": 8, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_dubble\", \"offset\": 0}]}]", "[]"),
                  "structs[0]: struct MBad: field 'a': unknown type name 'c_dubble'");
  manifest_expect(MANIFEST("[{\"name\": \"MRec\", \"size\": 8, \"alignment\": 8, \"fields\": ["
                           "{\"name\": \"me\", \"type\": \"struct MRec\", \"offset\": 0}]}]",
                           "[]"),
                  "structs[0]: struct MRec: field 'me': type 'struct MRec': no struct MRec is "
                  "defined");
  manifest_expect(MANIFEST("[{\"name\": \"MD\", \"size\": 4, \"alignment\": 4, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"offset\": 0}]},"
                           "{\"name\": \"MD\", \"size\": 4, \"alignment\": 4, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"offset\": 0}]}]", "[]"),
                  "structs[1].name: struct 'MD' is already in structs[0]");
  manifest_expect(MANIFEST("[{\"name\": \"MPt\", \"size\": 16, \"alignment\": 8, \"fields\": ["
                           "{\"name\": \"x\", \"type\": \"c_float\", \"offset\": 0}]}]", "[]"),
                  "structs[0]: struct MPt is already defined with another layout");
  manifest_expect(MANIFEST("[{\"name\": \"MK\", \"size\": 4, \"alignment\": 4, \"fields\": ["
                           "{\"name\": \"a\", \"type\": \"c_int\", \"ofset\": 0}]}]", "[]"),
                  "structs[0].fields[0]: unknown key 'ofset'");
  manifest_expect(MANIFEST("[{\"name\": \"MK\", \"size\": -4, \"alignment\": 4, \"fields\": []}]",
                           "[]"),
                  "structs[0].size: expected an integer from 0 to 65536, got -4");
  manifest_expect(MANIFEST("{}", "[]"), "structs: expected an array");
  manifest_expect(MANIFEST("[]", "[\"struct MNever\"]"),
                  "modules[0].contracts[0].arg_types[0]: type 'struct MNever': no struct MNever "
                  "is defined");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(layouts_define_find_and_name),
      cmocka_unit_test(bad_layouts_are_refused_naming_the_field),
      cmocka_unit_test(packed_layouts_are_refused_by_value_only),
      cmocka_unit_test(structs_travel_by_value_both_ways),
      cmocka_unit_test(custom_copy_zeroes_padding),
      cmocka_unit_test(copy_value_zeroes_padding_of_nested_layouts),
      cmocka_unit_test(manifest_structs_section_defines_checked_layouts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
