/* test_manifest.c: the strict manifest reader, and loading what it lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- helpers -------------------------------------------------------------- */

/* The built fixture NAME (NAME.so, or libNAME.so). */
static const char *fixture(const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s.so", EDGERT_FIXTURE_DIR, name);
  if (access(buf, R_OK) != 0)
    snprintf(buf, size, "%s/lib%s.so", EDGERT_FIXTURE_DIR, name);
  return buf;
}

/* JSON written with ' for " (none of the tests needs a real '). */
static char *Q(const char *s) {
  char *out = strdup(s);
  for (char *p = out; *p; p++)
    if (*p == '\'')
      *p = '"';
  return out;
}

static void expect_refused(const char *json_q, const char *message) {
  char *json = Q(json_q);
  edgert_manifest_t *m = (edgert_manifest_t *)0x1;
  int rc = edgert_manifest_parse(json, strlen(json), NULL, &m);
  if (rc != EDGERT_EMANIFEST)
    fail_msg("%s\n  rc %d (%s), wanted EMANIFEST", json, rc, edgert_last_error());
  if (strcmp(edgert_last_error(), message) != 0)
    fail_msg("%s\n  message: %s\n  wanted:  %s", json, edgert_last_error(),
             message);
  assert_ptr_equal(m, (edgert_manifest_t *)0x1); /* untouched */
  free(json);
}

static void expect_refused_prefix(const char *json_q, const char *prefix) {
  char *json = Q(json_q);
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(json, strlen(json), NULL, &m);
  if (rc != EDGERT_EMANIFEST)
    fail_msg("%s\n  rc %d (%s), wanted EMANIFEST", json, rc, edgert_last_error());
  if (strncmp(edgert_last_error(), prefix, strlen(prefix)) != 0)
    fail_msg("%s\n  message: %s\n  wanted a prefix: %s", json,
             edgert_last_error(), prefix);
  assert_null(m);
  free(json);
}

static edgert_manifest_t *parse_ok(const char *json_q) {
  char *json = Q(json_q);
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(json, strlen(json), NULL, &m);
  if (rc != 0)
    fail_msg("%s\n  rc %d: %s", json, rc, edgert_last_error());
  free(json);
  return m;
}

/* One module, one contract, with `contract` spliced in. */
#define ONE(contract)                                                          \
  "{'schema_version': 1, 'modules': [{'path': 'k.so', 'sha256': '" H64        \
  "', 'contracts': [" contract "]}]}"
#define MOD(body) "{'schema_version': 1, 'modules': [" body "]}"

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *to) {
  FILE *f = fopen(from, "rb");
  assert_non_null(f);
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  assert_true(n > 0 && n < sizeof buf);
  fclose(f);
  write_file(to, buf, n);
}

static void sha_of(const char *path, char out[65]) {
  edgert_module_t *mod = NULL;
  int rc = edgert_module_load(path, NULL, &mod);
  if (rc != 0)
    fail_msg("loading %s: %s", path, edgert_last_error());
  strcpy(out, edgert_module_sha256(mod));
  edgert_module_free(mod);
}

/* A temp dir holding kernels/libmanifest_kernels.so and kernels/other.so. */
typedef struct {
  char dir[PATH_MAX];
  char kernels_sha[65], other_sha[65];
} tree_t;

static tree_t tree;

static int make_tree(void **state) {
  (void)state;
  char tmpl[] = "/tmp/edgert-manifest-XXXXXX";
  if (mkdtemp(tmpl) == NULL)
    return -1;
  /* realpath: what the manifest reports for resolved files */
  if (realpath(tmpl, tree.dir) == NULL)
    return -1;
  char p[PATH_MAX + 64], src[PATH_MAX];
  snprintf(p, sizeof p, "%s/kernels", tree.dir);
  if (mkdir(p, 0700) != 0)
    return -1;
  snprintf(p, sizeof p, "%s/kernels/libmanifest_kernels.so", tree.dir);
  copy_file(fixture("manifest_kernels", src, sizeof src), p);
  sha_of(p, tree.kernels_sha);
  snprintf(p, sizeof p, "%s/kernels/other.so", tree.dir);
  copy_file(fixture("manifest_other", src, sizeof src), p);
  sha_of(p, tree.other_sha);
  return 0;
}

static int remove_tree(void **state) {
  (void)state;
  char cmd[PATH_MAX + 32];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree.dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes tree.dir/name with `json_q` (', and %1$s / %2$s for the hashes). */
static void write_manifest(const char *name, const char *fmt_q) {
  char *fmt = Q(fmt_q);
  char text[8192], path[PATH_MAX + 64];
  snprintf(text, sizeof text, fmt, tree.kernels_sha, tree.other_sha);
  snprintf(path, sizeof path, "%s/%s", tree.dir, name);
  write_file(path, text, strlen(text));
  free(fmt);
}

static const char *in_tree(const char *name) {
  static char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", tree.dir, name);
  return path;
}

#define TWO_MODULES                                                            \
  "{'schema_version': 1, 'modules': ["                                         \
  " {'path': 'kernels/libmanifest_kernels.so', 'sha256': '%1$s', 'contracts': [" \
  "   {'function_name': 'vec_add_f32', 'arg_types': ['LP_c_float', 'c_size_t'],"  \
  "    'return_type': null, 'calling_convention': 'cdecl'},"                    \
  "   {'function_name': 'add', 'arg_types': ['c_double', 'c_double'],"          \
  "    'return_type': 'c_double', 'release_gil': false},"                       \
  "   {'function_name': 'scale', 'arg_types': ['c_int64', 'c_int32'], 'return_type': 'c_int64'}," \
  "   {'function_name': 'version', 'arg_types': [], 'return_type': 'c_int'}]},"  \
  " {'path': 'kernels/other.so', 'sha256': '%2$s', 'contracts': ["              \
  "   {'function_name': 'answer', 'arg_types': [], 'return_type': 'c_int32'},"  \
  "   {'function_name': 'version', 'arg_types': [], 'return_type': 'c_int'}]}]}"

/* ---- parsing -------------------------------------------------------------- */

static void parses_the_schema_to_canonical_contracts(void **state) {
  (void)state;
  edgert_manifest_t *m = parse_ok(
      "{'schema_version': 1, 'modules': [{'path': 'lib/k.so', 'sha256': '"
      "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef', "
      "'contracts': [{'function_name': 'vec_add_f32', 'arg_types': "
      "['LP_c_float', 'c_ulong'], 'return_type': null, 'calling_convention': "
      "'cdecl'}, {'function_name': 'f', 'arg_types': [], 'return_type': "
      "'c_double', 'release_gil': false}]}, {'path': '/abs/x.so', 'sha256': '" H64
      "', 'contracts': []}]}");
  assert_int_equal(edgert_manifest_module_count(m), 2);
  assert_string_equal(edgert_manifest_module_path(m, 0), "lib/k.so");
  assert_string_equal(edgert_manifest_module_file(m, 0), "lib/k.so"); /* no base dir */
  assert_string_equal(edgert_manifest_module_sha256(m, 0), H64);      /* lowercased */
  assert_int_equal(edgert_manifest_contract_count(m, 0), 2);
  const edgert_contract_t *c = edgert_manifest_contract(m, 0, 0);
  char sig[200];
  assert_int_equal(edgert_contract_format(c, sig, sizeof sig), 0);
  assert_string_equal(sig, "None vec_add_f32(LP_c_float, c_size_t)");
  assert_int_equal(c->release_gil, 1);
  c = edgert_manifest_contract(m, 0, 1);
  assert_int_equal(c->ret.code, EDGERT_CT_DOUBLE);
  assert_int_equal(c->release_gil, 0);
  assert_int_equal(edgert_manifest_contract_count(m, 1), 0);
  assert_string_equal(edgert_manifest_module_path(m, 1), "/abs/x.so");
  /* out of range */
  assert_null(edgert_manifest_module_path(m, 2));
  assert_null(edgert_manifest_module_file(m, 2));
  assert_null(edgert_manifest_module_sha256(m, 2));
  assert_null(edgert_manifest_contract(m, 0, 2));
  assert_null(edgert_manifest_contract(m, 2, 0));
  assert_int_equal(edgert_manifest_contract_count(m, 5), 0);
  assert_null(edgert_manifest_module(m, 0)); /* nothing loaded */
  assert_null(edgert_manifest_module_by_path(m, "lib/k.so"));
  edgert_func_t *fn;
  assert_int_equal(edgert_manifest_function(m, "f", &fn), EDGERT_EINVAL);
  assert_int_equal(edgert_manifest_load_modules(m), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "without a base directory"));
  edgert_manifest_free(m);
  edgert_manifest_free(NULL);
  assert_int_equal(edgert_manifest_module_count(NULL), 0);

  m = parse_ok("\xEF\xBB\xBF {'schema_version': 1.0, 'modules': []}\n\t ");
  assert_int_equal(edgert_manifest_module_count(m), 0);
  edgert_manifest_free(m);
}

static void the_text_need_not_be_terminated(void **state) {
  (void)state;
  char *json = Q("{'schema_version': 1, 'modules': []}garbage");
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_parse(json, strlen(json) - 7, NULL, &m), 0);
  edgert_manifest_free(m);
  assert_int_equal(edgert_manifest_parse(json, strlen(json), NULL, &m),
                   EDGERT_EMANIFEST);
  assert_string_equal(edgert_last_error(),
                      "manifest: trailing data after the JSON value at line 1, "
                      "column 37");
  assert_int_equal(edgert_manifest_parse(NULL, 0, NULL, &m), EDGERT_EINVAL);
  assert_int_equal(edgert_manifest_parse(json, 1, NULL, NULL), EDGERT_EINVAL);
  free(json);
}

static void syntax_errors_give_line_and_column(void **state) {
  (void)state;
  expect_refused("{'schema_version': 1, 'modules': []}\n{}",
                 "manifest: trailing data after the JSON value at line 2, "
                 "column 1");
  expect_refused("", "manifest: invalid JSON: unexpected end at line 1, column 1");
  expect_refused_prefix("{'schema_version': 1,\n 'modules': [}",
                        "manifest: invalid JSON at line 2");
  expect_refused_prefix("{'schema_version': 1, 'modules': [", "manifest: invalid JSON");
  expect_refused_prefix("{'schema_version': 1 'modules': []}",
                        "manifest: invalid JSON at line 1");
  expect_refused("[]", "manifest: expected an object, got an array");
  expect_refused("null", "manifest: expected an object, got null");
  char nul[] = "{\"schema_version\": 1,\n \"modules\": []\0}";
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_parse(nul, sizeof nul - 1, NULL, &m),
                   EDGERT_EMANIFEST);
  assert_string_equal(edgert_last_error(), "manifest: NUL byte at line 2, column 15");
  assert_null(m);
}

static void only_strict_json_is_accepted(void **state) {
  (void)state;
  /* Numbers in JSON's grammar only (cJSON's strtod takes more). */
  expect_refused("{'schema_version': 01, 'modules': []}",
                 "schema_version: '01' is not a JSON number, at line 1, column 20");
  expect_refused("{'schema_version': 1., 'modules': []}",
                 "schema_version: '1.' is not a JSON number, at line 1, column 20");
  expect_refused("{'schema_version': 1, 'modules': [], 'x': [1, -01e5]}",
                 "x[1]: '-01e5' is not a JSON number, at line 1, column 47");
  expect_refused("{'schema_version': -0, 'modules': []}",
                 "schema_version: 0 is not supported (this edgert reads schema_version 1)");
  edgert_manifest_t *m = parse_ok("{'schema_version': 1E+0, 'modules': []}");
  edgert_manifest_free(m);
  m = parse_ok("{'schema_version': 0.1e1, 'modules': []}");
  edgert_manifest_free(m);
  /* Raw control characters inside strings and keys. */
  expect_refused(MOD("{'path': 'a\tb.so', 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0].path: unescaped control character 0x09 in a "
                 "string at line 1, column 46");
  expect_refused("{'schema_version': 1, 'modules': [], 'k\ney': 1}",
                 "manifest: unescaped control character 0x0a in a key at "
                 "line 1, column 40");
  /* Whitespace is space, tab, CR and LF only. */
  expect_refused("\v{'schema_version': 1, 'modules': []}",
                 "manifest: control character 0x0b outside a string at line "
                 "1, column 1");
  expect_refused("{'schema_version': 1, 'modules': []}\x01",
                 "manifest: control character 0x01 outside a string at line "
                 "1, column 37");
  expect_refused("{'schema_version':\f1, 'modules': []}",
                 "manifest: control character 0x0c outside a string at line "
                 "1, column 19");
  m = parse_ok("\r\n\t {'schema_version':\r\n1, 'modules': []}\n");
  edgert_manifest_free(m);
  /* UTF-8 only: invalid, overlong, surrogate, cut short. */
  static const char *const bad_utf8[] = {"a\xff.so", "a\xc0\xaf.so",
                                         "a\xed\xa0\x80.so", "a\xf4\x90\x80\x80.so"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
    char doc[300];
    snprintf(doc, sizeof doc,
             MOD("{'path': '%s', 'sha256': '" H64 "', 'contracts': []}"),
             bad_utf8[i]);
    expect_refused(doc, "manifest: invalid UTF-8 at line 1, column 46");
  }
  char cut[] = "{\"schema_version\": 1, \"modules\": []} \xe2\x82";
  assert_int_equal(edgert_manifest_parse(cut, strlen(cut), NULL, &m), EDGERT_EMANIFEST);
  assert_string_equal(edgert_last_error(), "manifest: invalid UTF-8 at line 1, column 38");
  m = parse_ok(MOD("{'path': 'k\xc3\xa9rnel-\xe2\x82\xac-\xf0\x9f\x98\x80.so', 'sha256': '" H64
                   "', 'contracts': []}"));
  assert_string_equal(edgert_manifest_module_path(m, 0),
                      "k\xc3\xa9rnel-\xe2\x82\xac-\xf0\x9f\x98\x80.so");
  edgert_manifest_free(m);
}

static void keys_are_exact_unique_and_known(void **state) {
  (void)state;
  expect_refused("{'schema_version': 1, 'modules': [], 'extra': 1}",
                 "manifest: unknown key 'extra' (expected: schema_version, "
                 "modules, version, expires, structs)");
  expect_refused("{'schema_version': 1, 'schema_version': 1, 'modules': []}",
                 "manifest: duplicate key 'schema_version'");
  expect_refused("{'Schema_Version': 1, 'modules': []}",
                 "manifest: unknown key 'Schema_Version' (keys are "
                 "case-sensitive: did you mean 'schema_version'?)");
  expect_refused(MOD("{'path': 'a.so', 'PATH': 'b.so', 'sha256': '" H64
                     "', 'contracts': []}"),
                 "modules[0]: unknown key 'PATH' (keys are case-sensitive: "
                 "did you mean 'path'?)");
  expect_refused(MOD("{'path': 'a.so', 'sha256': '" H64 "', 'sha256': '" H64
                     "', 'contracts': []}"),
                 "modules[0]: duplicate key 'sha256'");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'retrun_type': null}"),
                 "modules[0].contracts[0]: unknown key 'retrun_type' "
                 "(expected: function_name, arg_types, return_type, "
                 "calling_convention, release_gil, use_errno, variadic)");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'arg_types': []}"),
                 "modules[0].contracts[0]: duplicate key 'arg_types'");
  expect_refused(ONE("{'Function_name': 'f', 'arg_types': []}"),
                 "modules[0].contracts[0]: unknown key 'Function_name' (keys "
                 "are case-sensitive: did you mean 'function_name'?)");
  expect_refused("{'schema_version': 1, 'modules': [], '': 1}",
                 "manifest: unknown key '' (expected: schema_version, modules, "
                 "version, expires, structs)");
}

static void required_keys_and_json_types(void **state) {
  (void)state;
  expect_refused("{'schema_version': 1}", "manifest: missing required key 'modules'");
  expect_refused("{'modules': []}", "manifest: missing required key 'schema_version'");
  expect_refused(MOD("{'path': 'a.so', 'contracts': []}"),
                 "modules[0]: missing required key 'sha256'");
  expect_refused(MOD("{'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0]: missing required key 'path'");
  expect_refused(MOD("{'path': 'a.so', 'sha256': '" H64 "'}"),
                 "modules[0]: missing required key 'contracts'");
  expect_refused(ONE("{'arg_types': []}"),
                 "modules[0].contracts[0]: missing required key 'function_name'");
  expect_refused(ONE("{'function_name': 'f'}"),
                 "modules[0].contracts[0]: missing required key 'arg_types'");
  expect_refused("{'schema_version': '1', 'modules': []}",
                 "schema_version: expected the number 1, got a string");
  expect_refused("{'schema_version': 2, 'modules': []}",
                 "schema_version: 2 is not supported (this edgert reads "
                 "schema_version 1)");
  expect_refused("{'schema_version': 1.5, 'modules': []}",
                 "schema_version: expected the integer 1, got 1.5");
  expect_refused("{'schema_version': 1e300, 'modules': []}",
                 "schema_version: expected the integer 1, got 1e+300");
  expect_refused("{'schema_version': -1e999, 'modules': []}",
                 "schema_version: expected the integer 1, got -inf");
  expect_refused("{'schema_version': 1, 'modules': {}}",
                 "modules: expected an array, got an object");
  expect_refused(MOD("'a.so'"), "modules[0]: expected an object, got a string");
  expect_refused(MOD("{'path': 3, 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0].path: expected a string, got a number");
  expect_refused(MOD("{'path': 'a.so', 'sha256': null, 'contracts': []}"),
                 "modules[0].sha256: expected a string, got null");
  expect_refused(MOD("{'path': 'a.so', 'sha256': '" H64 "', 'contracts': {}}"),
                 "modules[0].contracts: expected an array, got an object");
  expect_refused(ONE("[]"), "modules[0].contracts[0]: expected an object, got an array");
  expect_refused(ONE("{'function_name': ['f'], 'arg_types': []}"),
                 "modules[0].contracts[0].function_name: expected a string, "
                 "got an array");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': 'c_int'}"),
                 "modules[0].contracts[0].arg_types: expected an array, got "
                 "a string");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': ['c_int', 1]}"),
                 "modules[0].contracts[0].arg_types[1]: expected a type name "
                 "(string) or a {\"callback\": ...} object, got a number");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'return_type': 5}"),
                 "modules[0].contracts[0].return_type: expected a type name "
                 "(string) or null, got a number");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'calling_convention': null}"),
                 "modules[0].contracts[0].calling_convention: expected a "
                 "string, got null");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'release_gil': 0}"),
                 "modules[0].contracts[0].release_gil: expected true or "
                 "false, got a number");
}

static void contracts_are_validated_by_name(void **state) {
  (void)state;
  expect_refused(ONE("{'function_name': 'f', 'arg_types': []},"
                     "{'function_name': 'g', 'arg_types': ['c_int', 'c_double', 'c_flaot']}"),
                 "modules[0].contracts[1].arg_types[2]: unknown type name "
                 "'c_flaot'");
  expect_refused(ONE("{'function_name': 'vec-add', 'arg_types': []}"),
                 "modules[0].contracts[0].function_name: 'vec-add' is not a "
                 "C identifier");
  expect_refused(ONE("{'function_name': '', 'arg_types': []}"),
                 "modules[0].contracts[0].function_name: '' is not a C "
                 "identifier");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'return_type': 'c_dobule'}"),
                 "modules[0].contracts[0].return_type: unknown type name "
                 "'c_dobule'");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': ['None']}"),
                 "modules[0].contracts[0].arg_types[0]: None (void) is only a "
                 "return type, not an argument type");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': ['struct P']}"),
                 "modules[0].contracts[0].arg_types[0]: type 'struct P': "
                 "no struct P is defined (a manifest's \"structs\" section, "
                 "a ctypes.Structure, or edgert_struct_define defines it)");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': [], 'calling_convention': 'stdcall'}"),
                 "modules[0].contracts[0].calling_convention: 'stdcall' is "
                 "not supported; only 'cdecl' (the x86-64 System V "
                 "convention)");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': []},"
                     "{'function_name': 'f', 'arg_types': ['c_int']}"),
                 "modules[0].contracts[1].function_name: 'f' is already bound "
                 "by modules[0].contracts[0]");
  /* 32 arguments are fine, 33 are not */
  char args[64 * 12] = "", c32[1024], c33[1024];
  for (int i = 0; i < 32; i++)
    strcat(args, i ? ", 'c_int'" : "'c_int'");
  snprintf(c32, sizeof c32, ONE("{'function_name': 'f', 'arg_types': [%s]}"), args);
  edgert_manifest_t *m = parse_ok(c32);
  assert_int_equal(edgert_manifest_contract(m, 0, 0)->nargs, 32);
  edgert_manifest_free(m);
  strcat(args, ", 'c_int'");
  snprintf(c33, sizeof c33, ONE("{'function_name': 'f', 'arg_types': [%s]}"), args);
  expect_refused(c33, "modules[0].contracts[0].arg_types: 33 arguments is "
                      "more than the limit of 32");
}

static void escaped_nuls_are_refused_where_they_are(void **state) {
  (void)state;
  expect_refused(ONE("{'function_name': 'vec\\u0000evil', 'arg_types': []}"),
                 "modules[0].contracts[0].function_name: escaped NUL "
                 "(\\u0000) in a string");
  expect_refused(ONE("{'function_name': 'f', 'arg_types': ['c_int', 'c_int\\u0000x']}"),
                 "modules[0].contracts[0].arg_types[1]: escaped NUL "
                 "(\\u0000) in a string");
  expect_refused(MOD("{'path': 'a.so\\u0000.txt', 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0].path: escaped NUL (\\u0000) in a string");
  expect_refused(MOD("{'pa\\u0000th': 'a.so', 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0]: escaped NUL (\\u0000) in a key");
  expect_refused("{'schema_version': 1, 'modules': [], 'x': {'y': [1, 'a', '\\u0000']}}",
                 "x.y[2]: escaped NUL (\\u0000) in a string");
  /* An escaped backslash before "u0000" is not a NUL. */
  edgert_manifest_t *m = parse_ok(
      MOD("{'path': 'a\\\\u0000.so', 'sha256': '" H64 "', 'contracts': []}"));
  assert_string_equal(edgert_manifest_module_path(m, 0), "a\\u0000.so");
  edgert_manifest_free(m);
}

static void hashes_are_64_hex_digits(void **state) {
  (void)state;
  expect_refused(MOD("{'path': 'a.so', 'sha256': '"
                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
                     "', 'contracts': []}"),
                 "modules[0].sha256: "
                 "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde' "
                 "is not 64 hexadecimal digits");
  expect_refused_prefix(MOD("{'path': 'a.so', 'sha256': '" H64 "0', 'contracts': []}"),
                        "modules[0].sha256: '0123");
  expect_refused(MOD("{'path': 'a.so', 'sha256': 'xyz', 'contracts': []}"),
                 "modules[0].sha256: 'xyz' is not 64 hexadecimal digits");
  expect_refused_prefix(MOD("{'path': 'a.so', 'sha256': "
                            "'g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'"
                            ", 'contracts': []}"),
                        "modules[0].sha256: 'g123");
  expect_refused(MOD("{'path': '', 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[0].path: empty");
  expect_refused(MOD("{'path': 'a.so', 'sha256': '" H64 "', 'contracts': []},"
                     "{'path': 'a.so', 'sha256': '" H64 "', 'contracts': []}"),
                 "modules[1].path: 'a.so' is already listed as modules[0]");
}

static void contract_json_alone(void **state) {
  (void)state;
  char *json = Q("{'function_name': 'vec_add_f32', 'arg_types': ['LP_c_float', "
                 "'c_size_t'], 'return_type': null, 'calling_convention': 'cdecl'}");
  edgert_contract_t c;
  assert_int_equal(edgert_contract_parse_json(json, strlen(json), &c), 0);
  assert_string_equal(c.function_name, "vec_add_f32");
  assert_int_equal(c.nargs, 2);
  free(json);
  static const struct {
    const char *json, *msg;
  } bad[] = {
      {"{'function_name': 'f', 'arg_types': ['c_flaot']}",
       "arg_types[0]: unknown type name 'c_flaot'"},
      {"{'function_name': 'f', 'arg_types': [], 'x': 1}",
       "contract: unknown key 'x' (expected: function_name, arg_types, "
       "return_type, calling_convention, release_gil, use_errno, variadic)"},
      {"{'function_name': 'f'}", "contract: missing required key 'arg_types'"},
      {"[]", "contract: expected an object, got an array"},
      {"{'function_name': 'f', 'arg_types': []} 1",
       "contract: trailing data after the JSON value at line 1, column 41"},
      {"{'function_name': 'f\\u0000', 'arg_types': []}",
       "function_name: escaped NUL (\\u0000) in a string"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json = Q(bad[i].json);
    memset(&c, 0x11, sizeof c);
    edgert_contract_t before = c;
    assert_int_equal(edgert_contract_parse_json(json, strlen(json), &c),
                     EDGERT_EMANIFEST);
    assert_string_equal(edgert_last_error(), bad[i].msg);
    assert_memory_equal(&c, &before, sizeof c);
    free(json);
  }
}

/* ---- files ------------------------------------------------------------- */

static void module_files_must_exist_and_be_regular(void **state) {
  (void)state;
  char want[PATH_MAX * 2];
  write_manifest("missing.json",
                 MOD("{'path': 'kernels/nope.so', 'sha256': '%1$s', 'contracts': []}"));
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_read(in_tree("missing.json"), &m), EDGERT_EMANIFEST);
  snprintf(want, sizeof want,
           "modules[0].path: 'kernels/nope.so' not found (%s/kernels/nope.so: "
           "No such file or directory)",
           tree.dir);
  assert_string_equal(edgert_last_error(), want);
  assert_null(m);

  write_manifest("dir.json", MOD("{'path': 'kernels', 'sha256': '%1$s', 'contracts': []}"));
  assert_int_equal(edgert_manifest_read(in_tree("dir.json"), &m), EDGERT_EMANIFEST);
  snprintf(want, sizeof want,
           "modules[0].path: 'kernels' is not a regular file (%s/kernels)", tree.dir);
  assert_string_equal(edgert_last_error(), want);

  /* Relative to the manifest's directory, wherever the process runs. */
  write_manifest("kernels/rel.json",
                 MOD("{'path': 'other.so', 'sha256': '%2$s', 'contracts': []}"));
  assert_int_equal(edgert_manifest_read(in_tree("kernels/rel.json"), &m), 0);
  snprintf(want, sizeof want, "%s/kernels/other.so", tree.dir);
  assert_string_equal(edgert_manifest_module_file(m, 0), want);
  assert_string_equal(edgert_manifest_module_sha256(m, 0), tree.other_sha);
  edgert_manifest_free(m);

  /* An empty base directory is the current one. */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tree.dir), 0);
  char *rel = Q(MOD("{'path': 'kernels/other.so', 'sha256': '" H64 "', 'contracts': []}"));
  assert_int_equal(edgert_manifest_parse(rel, strlen(rel), "", &m), 0);
  assert_int_equal(chdir(cwd), 0);
  assert_string_equal(edgert_manifest_module_file(m, 0), want);
  edgert_manifest_free(m);
  free(rel);

  assert_int_equal(edgert_manifest_read("/nonexistent/edgert/m.json", &m), EDGERT_EIO);
  assert_string_equal(edgert_last_error(),
                      "manifest '/nonexistent/edgert/m.json': No such file or directory");
  assert_int_equal(edgert_manifest_read(tree.dir, &m), EDGERT_EIO);
  assert_non_null(strstr(edgert_last_error(), "not a regular file"));
  assert_int_equal(edgert_manifest_load("/nonexistent/edgert/m.json", &m), EDGERT_EIO);
  assert_int_equal(edgert_manifest_read(NULL, &m), EDGERT_EINVAL);
}

/* ---- loading ------------------------------------------------------------ */

static void loads_verifies_binds_and_calls(void **state) {
  (void)state;
  write_manifest("two.json", TWO_MODULES);
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_load(in_tree("two.json"), &m);
  if (rc != 0)
    fail_msg("%s", edgert_last_error());
  assert_int_equal(edgert_manifest_module_count(m), 2);
  edgert_module_t *k = edgert_manifest_module(m, 0);
  assert_non_null(k);
  assert_ptr_equal(edgert_manifest_module_by_path(m, "kernels/libmanifest_kernels.so"), k);
  assert_null(edgert_manifest_module_by_path(m, "kernels/nope.so"));
  assert_string_equal(edgert_module_sha256(k), tree.kernels_sha);

  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_manifest_function(m, "vec_add_f32", &fn), 0);
  float xs[3] = {1.0f, 2.5f, -4.0f};
  void *p = xs;
  size_t n = 3;
  void *args[] = {&p, &n};
  assert_int_equal(edgert_func_call(fn, args, NULL), 0);
  assert_true(xs[0] == 2.0f && xs[1] == 5.0f && xs[2] == -8.0f);

  assert_int_equal(edgert_manifest_function(m, "add", &fn), 0);
  assert_int_equal(edgert_func_contract(fn)->release_gil, 0);
  double a = 1.25, b = 2.5;
  void *dargs[] = {&a, &b};
  union {
    long double ld;
    double d;
    int32_t i32;
  } ret;
  assert_int_equal(edgert_func_call(fn, dargs, &ret), 0);
  assert_true(ret.d == 3.75);

  assert_int_equal(edgert_manifest_function(m, "answer", &fn), 0);
  assert_int_equal(edgert_func_call(fn, NULL, &ret), 0);
  assert_int_equal(ret.i32, 42);

  assert_int_equal(edgert_manifest_function(m, "version", &fn), EDGERT_EINVAL);
  assert_string_equal(edgert_last_error(),
                      "function 'version' is bound in modules[0] and modules[1]: "
                      "pick one with edgert_manifest_module");
  fn = edgert_module_function(edgert_manifest_module(m, 1), "version");
  assert_non_null(fn);
  assert_int_equal(edgert_func_call(fn, NULL, &ret), 0);
  assert_int_equal(ret.i32, 2);
  assert_int_equal(edgert_manifest_function(m, "nope", &fn), EDGERT_ENOTFOUND);
  assert_string_equal(edgert_last_error(),
                      "function 'nope': no module of the manifest binds it");
  assert_int_equal(edgert_manifest_load_modules(m), EDGERT_EINVAL); /* already */
  edgert_manifest_free(m);
}

static void a_wrong_hash_loads_nothing(void **state) {
  (void)state;
  /* The second module's hash is the first's: the first loads, the second
   * is refused, and the call as a whole leaves nothing loaded. */
  write_manifest("tampered.json",
                 "{'schema_version': 1, 'modules': ["
                 " {'path': 'kernels/libmanifest_kernels.so', 'sha256': '%1$s', 'contracts': []},"
                 " {'path': 'kernels/other.so', 'sha256': '%1$s', 'contracts': []}]}");
  edgert_manifest_t *m = (edgert_manifest_t *)0x1;
  assert_int_equal(edgert_manifest_load(in_tree("tampered.json"), &m), EDGERT_EINTEGRITY);
  assert_ptr_equal(m, (edgert_manifest_t *)0x1);
  const char *want = "modules[1] ('kernels/other.so'): ";
  if (strncmp(edgert_last_error(), want, strlen(want)) != 0)
    fail_msg("message: %s", edgert_last_error());

  m = NULL;
  assert_int_equal(edgert_manifest_read(in_tree("tampered.json"), &m), 0);
  assert_int_equal(edgert_manifest_load_modules(m), EDGERT_EINTEGRITY);
  assert_null(edgert_manifest_module(m, 0)); /* freed again: all or nothing */
  assert_null(edgert_manifest_module(m, 1));
  edgert_manifest_free(m);
}

static void a_missing_symbol_names_it(void **state) {
  (void)state;
  write_manifest("missing_symbol.json",
                 MOD("{'path': 'kernels/other.so', 'sha256': '%2$s', 'contracts': ["
                     "{'function_name': 'answer', 'arg_types': [], 'return_type': 'c_int'},"
                     "{'function_name': 'no_such_kernel', 'arg_types': []}]}"));
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_load(in_tree("missing_symbol.json"), &m),
                   EDGERT_ENOTFOUND);
  const char *want = "modules[0].contracts[1] (no_such_kernel in 'kernels/other.so'): ";
  if (strncmp(edgert_last_error(), want, strlen(want)) != 0)
    fail_msg("message: %s", edgert_last_error());
  assert_non_null(strstr(edgert_last_error() + strlen(want), "no_such_kernel"));
  assert_null(m);
}


/* ---- threads ------------------------------------------------------------ */

typedef struct {
  int id;
  int failures;
} parser_t;

/* Each thread parses good and bad documents of its own and checks that the
 * message it reads is about its own document. */
static void *parse_many(void *arg) {
  parser_t *p = arg;
  char good[256], bad[256], want[128];
  snprintf(good, sizeof good,
           "{\"schema_version\": 1, \"modules\": [{\"path\": \"t%d.so\", "
           "\"sha256\": \"" H64 "\", \"contracts\": []}]}",
           p->id);
  snprintf(bad, sizeof bad,
           "{\"schema_version\": 1, \"modules\": [], \"key%d\": 1} trailing",
           p->id);
  snprintf(want, sizeof want, "manifest: trailing data after the JSON value at line 1, column %zu",
           strlen(bad) - strlen("trailing") + 1);
  for (int i = 0; i < 300; i++) {
    edgert_manifest_t *m = NULL;
    if (edgert_manifest_parse(good, strlen(good), NULL, &m) != 0 ||
        strncmp(edgert_manifest_module_path(m, 0), "t", 1) != 0 ||
        atoi(edgert_manifest_module_path(m, 0) + 1) != p->id)
      p->failures++;
    edgert_manifest_free(m);
    if (edgert_manifest_parse(bad, strlen(bad), NULL, &m) != EDGERT_EMANIFEST ||
        strcmp(edgert_last_error(), want) != 0)
      p->failures++;
    /* invalid JSON goes through cJSON's failing path (its global error) */
    if (edgert_manifest_parse(bad, 10, NULL, &m) != EDGERT_EMANIFEST ||
        strncmp(edgert_last_error(), "manifest: invalid JSON", 22) != 0)
      p->failures++;
  }
  return NULL;
}

static void parsing_is_thread_safe(void **state) {
  (void)state;
  enum { N = 4 };
  pthread_t t[N];
  parser_t p[N];
  for (int i = 0; i < N; i++) {
    p[i].id = i;
    p[i].failures = 0;
    assert_int_equal(pthread_create(&t[i], NULL, parse_many, &p[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(p[i].failures, 0);
  }
}

/* ---- out of memory ------------------------------------------------------ */

static edgert_manifest_t *oom_result;

static int oom_read(void *state) {
  (void)state;
  oom_result = NULL;
  return edgert_manifest_read(in_tree("two.json"), &oom_result);
}

static int oom_load(void *state) {
  (void)state;
  oom_result = NULL;
  return edgert_manifest_load(in_tree("two.json"), &oom_result);
}

static int oom_contract(void *state) {
  (void)state;
  static const char json[] = "{\"function_name\": \"f\", \"arg_types\": [\"c_int\"]}";
  edgert_contract_t c;
  return edgert_contract_parse_json(json, sizeof json - 1, &c);
}

static void oom_teardown(void *state) {
  (void)state;
  edgert_manifest_free(oom_result);
  oom_result = NULL;
}

static void every_allocation_failure_is_enomem_and_leaks_nothing(void **state) {
  (void)state;
  write_manifest("two.json", TWO_MODULES);
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t read = {.name = "edgert_manifest_read",
                                 .run = oom_read,
                                 .teardown = oom_teardown};
  long points = edgert_test_failalloc_sweep(&read);
  assert_true(points >= 8);
  edgert_test_oom_case_t load = {.name = "edgert_manifest_load",
                                 .run = oom_load,
                                 .teardown = oom_teardown};
  assert_true(edgert_test_failalloc_sweep(&load) > points);
  edgert_test_oom_case_t contract = {.name = "edgert_contract_parse_json",
                                     .run = oom_contract};
  assert_true(edgert_test_failalloc_sweep(&contract) >= 1);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_the_schema_to_canonical_contracts),
      cmocka_unit_test(the_text_need_not_be_terminated),
      cmocka_unit_test(syntax_errors_give_line_and_column),
      cmocka_unit_test(only_strict_json_is_accepted),
      cmocka_unit_test(keys_are_exact_unique_and_known),
      cmocka_unit_test(required_keys_and_json_types),
      cmocka_unit_test(contracts_are_validated_by_name),
      cmocka_unit_test(escaped_nuls_are_refused_where_they_are),
      cmocka_unit_test(hashes_are_64_hex_digits),
      cmocka_unit_test(contract_json_alone),
      cmocka_unit_test(module_files_must_exist_and_be_regular),
      cmocka_unit_test(loads_verifies_binds_and_calls),
      cmocka_unit_test(a_wrong_hash_loads_nothing),
      cmocka_unit_test(a_missing_symbol_names_it),
      cmocka_unit_test(parsing_is_thread_safe),
      cmocka_unit_test(every_allocation_failure_is_enomem_and_leaks_nothing),
  };
  return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
