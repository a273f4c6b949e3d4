/*
 * test_bad_input.c: every malformed thing a C host can hand libedgert, in one
 * place, each with the exact error code it must give and a fragment of the
 * message that names the problem: type names, contracts, files that are not
 * modules (damaged copies of a real one), hashes, symbols, calls after
 * unload, manifests, type registrations, container misuse and the nexus.
 * EDGERT_SHOW_MESSAGES=1 prints every message checked. Also replays the fuzzers' committed seeds
 * and regression inputs (tests/fuzz/corpus/NAME/, tests/fuzz/regressions/NAME/)
 * through the harnesses' own entry points, built here with gcc and no
 * libFuzzer, so a fixed crash stays fixed in `make test`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgert.h"

/* The harnesses, compiled without their libFuzzer entry points. */
#define EDGERT_FUZZ_REPLAY 1
#include "../fuzz/fuzz_abi.c"
#include "../fuzz/fuzz_containers.c"
#include "../fuzz/fuzz_manifest.c"
#include "../fuzz/fuzz_module.c"
#include "../fuzz/fuzz_signature.c"

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
    if (getenv("EDGERT_SHOW_MESSAGES"))                                       \
      print_message("%-48.48s -> %s: %s\n", #call, edgert_err_name(rc_),    \
                    edgert_last_error());                                      \
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
      {"struct point", 0, EDGERT_EINVAL, "no struct point is defined"},
      {"LP_struct point", 0, EDGERT_EINVAL, "no struct point is defined"},
      {"union u", 0, EDGERT_EUNSUPPORTED, "unions are not supported, by value or by POINTER"},
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
  edgert_abi_type_t bad_code = {.code = (edgert_ctype_t)99, .pointee = EDGERT_CT_VOID, .depth = 0};
  expect_error(edgert_abi_type_name(&bad_code, buf, sizeof buf), EDGERT_EINVAL,
               "invalid type (code 99");
  edgert_abi_type_t ptr_to_void = {.code = EDGERT_CT_POINTER, .pointee = EDGERT_CT_VOID, .depth = 1};
  expect_error(edgert_abi_type_name(&ptr_to_void, buf, sizeof buf),
               EDGERT_EINVAL, "invalid type");
  edgert_abi_type_t deep = {.code = EDGERT_CT_POINTER, .pointee = EDGERT_CT_INT, .depth = 200};
  expect_error(edgert_abi_type_name(&deep, buf, sizeof buf), EDGERT_EINVAL,
               "depth 200");
  edgert_abi_type_t int_with_depth = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 1};
  expect_error(edgert_abi_type_name(&int_with_depth, buf, sizeof buf),
               EDGERT_EINVAL, "invalid type");
  edgert_abi_type_t ok = {.code = EDGERT_CT_POINTER, .pointee = EDGERT_CT_FLOAT, .depth = 2};
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
               EDGERT_EINVAL, "arg_types[0]: type 'struct s': no struct s is defined");
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


/* A return slot as edgert_func_call wants it: 16 bytes, aligned for long double. */
typedef union {
  int i;
  double d;
  long double ld;
  unsigned char bytes[16];
} ret_t;

/* ---- modules -------------------------------------------------------------- */

#define KERNELS EDGERT_FIXTURE_DIR "/libquality_kernels.so"

/* Reads the kernels' bytes, so tests can write damaged copies of them. */
static unsigned char *read_kernels(size_t *len) {
  FILE *f = fopen(KERNELS, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static char tmpdir[256];

static const char *write_tmp(const char *name, const void *data, size_t len) {
  static char path[512];
  if (tmpdir[0] == '\0') {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/edgert-bad-input-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
  }
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  return path;
}

static void expect_load(const char *path, const char *sha, int want,
                        const char *fragment) {
  edgert_module_t *m = (edgert_module_t *)&m;
  expect_error(edgert_module_load(path, sha, &m), want, fragment);
  assert_ptr_equal(m, (edgert_module_t *)&m); /* *out untouched */
}

/* A machine that is not this one, and how a module built for it is refused. */
#if defined(__aarch64__)
#define FOREIGN_MACHINE 62 /* EM_X86_64 */
#define FOREIGN_MACHINE_REFUSAL "is built for x86-64 (e_machine 62); this machine is AArch64"
#elif defined(__x86_64__)
#define FOREIGN_MACHINE 183 /* EM_AARCH64 */
#define FOREIGN_MACHINE_REFUSAL "is built for AArch64 (e_machine 183); this machine is x86-64"
#else
#define FOREIGN_MACHINE 62 /* EM_X86_64 */
#define FOREIGN_MACHINE_REFUSAL "is built for x86-64 (e_machine 62); this machine is"
#endif

static void files_that_are_not_modules(void **state) {
  (void)state;
  size_t len;
  unsigned char *so = read_kernels(&len);
  unsigned char *bad = malloc(len);
  assert_non_null(bad);

  expect_load(NULL, NULL, EDGERT_EINVAL, "edgert_module_load: path and out must not be NULL");
  expect_load("/nonexistent-edgert.so", NULL, EDGERT_EIO,
              "cannot open module /nonexistent-edgert.so: No such file or directory");
  expect_load("/tmp", NULL, EDGERT_EIO, "/tmp is a directory, not a regular file");
  expect_load("/dev/null", NULL, EDGERT_EIO, "/dev/null is a character device, not a regular file");
  expect_load(write_tmp("empty.so", "", 0), NULL, EDGERT_EFORMAT, "is empty, not a shared object");
  expect_load(write_tmp("text.so", "hello\n", 6), NULL, EDGERT_EFORMAT, "is not an ELF file (no ELF magic)");
  expect_load(write_tmp("magic.so", "\x7f" "ELF", 4), NULL, EDGERT_EFORMAT, "is a truncated ELF file");

  memcpy(bad, so, len);
  bad[4] = 1; /* EI_CLASS: ELFCLASS32 */
  expect_load(write_tmp("class32.so", bad, len), NULL, EDGERT_EFORMAT,
              "is a 32-bit ELF file; this machine loads 64-bit shared objects");
  memcpy(bad, so, len);
  bad[5] = 2; /* EI_DATA: big-endian */
  expect_load(write_tmp("bigendian.so", bad, len), NULL, EDGERT_EFORMAT,
              "is an ELF file of the wrong byte order for this machine");
  memcpy(bad, so, len);
  bad[16] = 2; /* e_type: ET_EXEC */
  bad[17] = 0;
  expect_load(write_tmp("exec.so", bad, len), NULL, EDGERT_EFORMAT,
              "is an executable (ET_EXEC), not a shared object (ET_DYN)");
  memcpy(bad, so, len);
  bad[18] = FOREIGN_MACHINE; /* e_machine (little-endian, fits a byte) */
  bad[19] = 0;
  expect_load(write_tmp("foreign.so", bad, len), NULL, EDGERT_EFORMAT, FOREIGN_MACHINE_REFUSAL);
  /* Cut short: the header is fine, the rest is missing. */
  expect_load(write_tmp("truncated.so", so, 200), NULL, EDGERT_EFORMAT,
              "has a malformed or truncated program header table");

  /* Hashes. */
  expect_load(KERNELS, "zz", EDGERT_EINVAL, "must be 64 hex digits (a SHA-256), got 2 characters");
  char hex[65];
  memset(hex, 'g', 64);
  hex[64] = '\0';
  expect_load(KERNELS, hex, EDGERT_EINVAL, "character 1 is not a hex digit");
  memset(hex, '0', 64);
  expect_load(KERNELS, hex, EDGERT_EINTEGRITY,
              "failed its integrity check: SHA-256 is ");
  assert_non_null(strstr(edgert_last_error(), "none of its code ran"));
  char longer[80];
  memset(longer, 'a', 79);
  longer[79] = '\0';
  expect_load(KERNELS, longer, EDGERT_EINVAL, "must be 64 hex digits (a SHA-256), got more than 64 characters");

  /* A size limit below the file's size. */
  edgert_load_options_t o = {.max_size = 100};
  edgert_module_t *m = NULL;
  expect_error(edgert_module_load_ex(KERNELS, NULL, &o, &m), EDGERT_ELIMIT,
               "bytes, more than the module size limit of 100 bytes");
  assert_null(m);
  free(bad);
  free(so);
}

static void symbols_and_calls_that_are_refused(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  edgert_contract_t c;
  const char *args[] = {"c_char_p"};
  assert_int_equal(edgert_contract_init(&c, "missing_fn", NULL, 0, NULL, NULL, 1), 0);
  expect_error(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND, "symbol 'missing_fn' is not defined in module");
  assert_int_equal(edgert_contract_init(&c, "system", args, 1, "c_int", NULL, 1), 0);
  expect_error(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND, "symbol 'system' is not defined in module");
  expect_error(edgert_module_bind(m, NULL, NULL), EDGERT_EINVAL, "module and contract must not be NULL");
  /* A data object is not a function. */
  assert_int_equal(edgert_contract_init(&c, "q_counter", NULL, 0, "c_int", NULL, 1), 0);
  expect_error(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND,
               "'q_counter' in module");
  assert_non_null(strstr(edgert_last_error(), "is a data object, not a function"));
  void *addr = NULL;
  expect_error(edgert_module_address_of(m, "nope", &addr), EDGERT_ENOTFOUND, "symbol 'nope' is not defined in module");
  expect_error(edgert_module_address_of(m, "printf", &addr), EDGERT_ENOTFOUND,
               "a dependency or another object; only symbols the module defines itself are available");
  expect_error(edgert_module_verify(m, "xyz"), EDGERT_EINVAL,
               "the SHA-256 to verify must be 64 hex digits (a SHA-256), got 3 characters");
  assert_int_equal(edgert_module_verify(m, edgert_module_sha256(m)), 1);

  const char *ii[] = {"c_int", "c_int"};
  assert_int_equal(edgert_contract_init(&c, "q_add_i32", ii, 2, "c_int", NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  edgert_module_unload(m);
  int a = 1, b = 2;
  ret_t out; /* edgert_func_call writes up to 16 bytes */
  void *av[] = {&a, &b};
  expect_error(edgert_func_call(fn, av, &out), EDGERT_EUNLOADED, "cannot call 'q_add_i32': module");
  edgert_value_t vals[2];
  vals[0].i = 1;
  vals[1].i = 2;
  expect_error(edgert_func_call_values(fn, vals, &out), EDGERT_EUNLOADED, "is unloaded");
  expect_error(edgert_module_bind(m, &c, NULL), EDGERT_EUNLOADED, "unloaded");
  expect_error(edgert_module_address_of(m, "q_add_i32", &addr), EDGERT_EUNLOADED, "unloaded");
  edgert_module_free(m);
}

/* ---- manifests --------------------------------------------------------------- */

static void manifests_that_are_refused(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *fragment;
  } cases[] = {
      {"", "manifest: invalid JSON: unexpected end at line 1, column 1"},
      {"{schema_version: 1}", "manifest: invalid JSON at line 1, column 3"},
      {"{\"schema_version\": 1, \"modules\": []} x", "trailing data after the JSON value"},
      {"[]", "manifest: expected an object, got an array"},
      {"{\"modules\": []}", "missing required key 'schema_version'"},
      {"{\"schema_version\": 2, \"modules\": []}", "schema_version: 2 is not supported"},
      {"{\"schema_version\": 1e300, \"modules\": []}", "schema_version: expected the integer 1, got 1e+300"},
      {"{\"schema_version\": -1e300, \"modules\": []}", "schema_version: expected the integer 1"},
      {"{\"schema_version\": 1, \"modules\": {}}", "modules: expected an array, got an object"},
      {"{\"schema_version\": 1, \"modules\": [], \"x\": 0}", "manifest: unknown key 'x'"},
      {"{\"schema_version\": 1, \"schema_version\": 1, \"modules\": []}", "duplicate key 'schema_version'"},
      {"{\"schema_version\": 1, \"MODULES\": [], \"modules\": []}", "keys are case-sensitive"},
      {"{\"schema_version\": 1, \"modules\": [{\"path\": \"a.so\", \"sha256\": \"xyz\", \"contracts\": []}]}",
       "modules[0].sha256: 'xyz' is not 64 hexadecimal digits"},
      {"{\"schema_version\": 1, \"modules\": [{\"path\": \"a\\u0000.so\", \"sha256\": \"xyz\", \"contracts\": []}]}",
       "modules[0].path: escaped NUL (\\u0000) in a string"},
      {"{\"schema_version\": 1, \"modules\": [{\"path\": 5, \"sha256\": \"xyz\", \"contracts\": []}]}",
       "modules[0].path: expected a string, got a number"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    edgert_manifest_t *m = NULL;
    expect_error(edgert_manifest_parse(cases[i].text, strlen(cases[i].text), NULL, &m),
                 EDGERT_EMANIFEST, cases[i].fragment);
    assert_null(m);
  }
  /* A NUL byte inside the given length. */
  edgert_manifest_t *m = NULL;
  static const char nul[] = "{\"schema_version\": 1,\0 \"modules\": []}";
  expect_error(edgert_manifest_parse(nul, sizeof nul - 1, NULL, &m), EDGERT_EMANIFEST, "NUL byte at line 1");
  expect_error(edgert_manifest_parse(NULL, 0, NULL, &m), EDGERT_EINVAL,
               "edgert_manifest_parse: json and out must not be NULL");
  expect_error(edgert_manifest_read("/nonexistent-edgert.json", &m), EDGERT_EIO,
               "manifest '/nonexistent-edgert.json': No such file or directory");
  expect_error(edgert_manifest_read("/tmp", &m), EDGERT_EIO, "not a regular file");

  edgert_contract_t c;
  static const char bad_contract[] = "{\"function_name\": \"f\", \"arg_types\": [\"c_int\", \"c_flaot\"]}";
  expect_error(edgert_contract_parse_json(bad_contract, sizeof bad_contract - 1, &c), EDGERT_EMANIFEST,
               "arg_types[1]: unknown type name 'c_flaot'");
  static const char no_name[] = "{\"arg_types\": []}";
  expect_error(edgert_contract_parse_json(no_name, sizeof no_name - 1, &c), EDGERT_EMANIFEST,
               "contract: missing required key 'function_name'");
}

/* ---- containers and types ----------------------------------------------------------- */

static size_t zero_size(void) { return 0; }
static size_t huge_size(void) { return (size_t)EDGERT_TYPE_MAX_SIZE + 1; }
static size_t ok_size(void) { return 16; }
static int any_check(void *obj) { return obj != NULL; }
static void any_copy(void *dst, void *src) { memcpy(dst, src, 16); }

static void type_registrations_that_are_refused(void **state) {
  (void)state;
  const edgert_type_t *t = NULL;
  expect_error(edgert_type_find("flaot", &t), EDGERT_ENOTFOUND, "no element type named 'flaot' is registered");
  expect_error(edgert_type_find(NULL, &t), EDGERT_EINVAL, "name and out must not be NULL");
  static const char *const bad_names[] = {"", "9lives", "a b", "a-b", "a/b", "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
    expect_error(edgert_type_register(bad_names[i], ok_size, any_check, any_copy, NULL, &t),
                 EDGERT_EINVAL, "register type: invalid type name '");
  static const char *const builtin_names[] = {"int", "int64", "float", "float64", "bool", "str", "bytes", "object"};
  for (size_t i = 0; i < sizeof builtin_names / sizeof builtin_names[0]; i++)
    expect_error(edgert_type_register(builtin_names[i], ok_size, any_check, any_copy, NULL, &t),
                 EDGERT_EEXIST, "is a built-in type name");
  char longname[EDGERT_TYPE_NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  expect_error(edgert_type_register(longname, ok_size, any_check, any_copy, NULL, &t), EDGERT_EINVAL,
               "(1 to 63 characters");
  expect_error(edgert_type_register("QNoSize", NULL, any_check, any_copy, NULL, &t), EDGERT_EINVAL,
               "edgert_type_register: sizeof_fn is NULL (type 'QNoSize' needs its sizeof callback)");
  expect_error(edgert_type_register("QNoCheck", ok_size, NULL, any_copy, NULL, &t), EDGERT_EINVAL,
               "edgert_type_register: check_fn is NULL (type 'QNoCheck' needs its check callback)");
  expect_error(edgert_type_register("QNoCopy", ok_size, any_check, NULL, NULL, &t), EDGERT_EINVAL,
               "edgert_type_register: copy_fn is NULL (type 'QNoCopy' needs its copy callback)");
  expect_error(edgert_type_register("QZero", zero_size, any_check, any_copy, NULL, &t), EDGERT_EINVAL,
               "register type 'QZero': sizeof returned 0 (must be 1 to 65536)");
  expect_error(edgert_type_register("QHuge", huge_size, any_check, any_copy, NULL, &t), EDGERT_EINVAL,
               "sizeof returned 65537 (must be 1 to 65536)");
  assert_int_equal(edgert_type_register("QBadInputOnce", ok_size, any_check, any_copy, NULL, &t), 0);
  expect_error(edgert_type_register("QBadInputOnce", ok_size, any_check, any_copy, NULL, &t), EDGERT_EEXIST,
               "a type named 'QBadInputOnce' is already registered");
  const edgert_type_t *i64 = edgert_type_builtin(EDGERT_KIND_INT64);
  expect_error(edgert_type_check(i64, &t), EDGERT_ETYPE, "type 'int64' has no check callback");
}

static void container_misuse_is_refused(void **state) {
  (void)state;
  const edgert_type_t *i64 = edgert_type_builtin(EDGERT_KIND_INT64);
  const edgert_type_t *by = edgert_type_builtin(EDGERT_KIND_BYTES);
  edgert_dict_t *d = NULL;
  expect_error(edgert_dict_new(NULL, i64, &d), EDGERT_EINVAL, "edgert_dict_new: types and out must not be NULL");
  assert_int_equal(edgert_dict_new(i64, i64, &d), 0);
  int64_t k = 1, v = 2, out;
  expect_error(edgert_dict_get(d, &k, &out), EDGERT_EKEY, "key 1 not found in the dict");
  expect_error(edgert_dict_del(d, &k), EDGERT_EKEY, "key 1 not found in the dict");
  {
    edgert_dict_t *sd = NULL;
    assert_int_equal(edgert_dict_new(by, i64, &sd), 0);
    edgert_bytes_t missing = {(char *)"sensor-7", 8};
    expect_error(edgert_dict_get(sd, &missing, &out), EDGERT_EKEY,
                 "key 'sensor-7' not found in the dict");
    edgert_dict_free(sd);
  }
  expect_error(edgert_dict_popitem(d, &k, &out), EDGERT_EKEY, "popitem(): the dict is empty");
  expect_error(edgert_dict_unpin(d), EDGERT_EINVAL,
               "edgert_dict_unpin: the dict is not pinned (each unpin must match an earlier "
               "edgert_dict_pin)");
  expect_error(edgert_dict_set_cache(d, 7), EDGERT_EINVAL, "dict: unknown cache mode 7");
  assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  edgert_dict_pin(d);
  int64_t k2 = 2;
  expect_error(edgert_dict_set(d, &k2, &v), EDGERT_EBUSY, "dict: cannot insert while its values buffer is exported");
  expect_error(edgert_dict_del(d, &k), EDGERT_EBUSY, "dict: cannot delete while");
  expect_error(edgert_dict_clear(d), EDGERT_EBUSY, "dict: cannot clear while");
  assert_int_equal(edgert_dict_unpin(d), 0);
  edgert_dict_iter_t it;
  edgert_dict_iter_init(d, &it);
  const void *ik;
  void *iv;
  assert_int_equal(edgert_dict_iter_next(&it, &ik, &iv), 1);
  assert_int_equal(edgert_dict_set(d, &k2, &v), 0);
  expect_error(edgert_dict_iter_next(&it, &ik, &iv), EDGERT_ECHANGED, "dictionary changed size during iteration");
  edgert_dict_free(d);

  edgert_list_t *l = NULL, *lb = NULL;
  expect_error(edgert_list_new(NULL, 0, &l), EDGERT_EINVAL, "edgert_list_new: type and out must not be NULL");
  assert_int_equal(edgert_list_new(i64, 0, &l), 0);
  assert_int_equal(edgert_list_new(by, 0, &lb), 0);
  expect_error(edgert_list_get(l, 0, &out), EDGERT_ERANGE, "list index 0 out of range (length 0)");
  expect_error(edgert_list_set(l, 3, &v), EDGERT_ERANGE, "list assignment index 3 out of range (length 0)");
  expect_error(edgert_list_pop(l, 0, &out), EDGERT_ERANGE, "pop index 0 out of range (length 0)");
  expect_error(edgert_list_splice(l, 1, 0, NULL, 0), EDGERT_ERANGE, "list splice [1, 1) out of range (length 0)");
  expect_error(edgert_list_unpin(l), EDGERT_EINVAL,
               "edgert_list_unpin: the list is not pinned (each unpin must match an earlier "
               "edgert_list_pin)");
  expect_error(edgert_list_swap(l, lb), EDGERT_ETYPE, "list swap: element types differ (int64, bytes)");
  expect_error(edgert_list_sort(lb, 0), EDGERT_ETYPE, "sort needs int64, float64 or bool elements, not bytes");
  edgert_list_pin(l);
  expect_error(edgert_list_append(l, &v), EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  assert_int_equal(edgert_list_unpin(l), 0);
  edgert_list_free(l);
  edgert_list_free(lb);
}

/* ---- NULL handles and required pointers: containers and types ----------------------- */

/*
 * Every public function of dict.h, list.h and types.h, called with one NULL
 * handle or required pointer (the other arguments valid), must refuse it
 * without touching anything: the exact value its header names (EDGERT_EINVAL,
 * NULL as 0, 0, -1, EDGERT_KIND_NONE) and a message naming the function and
 * the argument. The handles the cases use besides the NULL one:
 */
static edgert_dict_t *nd;       /* int64 -> int64, one entry 1 -> 2 */
static edgert_list_t *nl;       /* int64, one element 7 */
static const edgert_type_t *nt; /* int64 */
static int64_t nk = 1, nv = 2, nout;
static edgert_dict_t *ndcopy;
static edgert_list_t *nlcopy;
static const edgert_type_t *ntype;
static edgert_dict_iter_t nit;
static edgert_dict_cache_stats_t nstats;
static const void *nik;
static void *niv, *nbox;
static int nerr, nins;

#define P(x) ((long long)(intptr_t)(x))
/* A pointer-returning call with `int *err`: *err when it returned NULL and
 * left *inserted alone, 1 otherwise (so the case wants EDGERT_EINVAL). */
#define NULL_ERR(call) (nerr = 0, nins = 7, ((call) == NULL && nins == 7) ? nerr : 1)
/* cache_stats into a filled struct: how many bytes it left non-zero. */
static long long stats_nonzero_bytes(void) {
  const unsigned char *b = (const unsigned char *)&nstats;
  long long n = 0;
  for (size_t i = 0; i < sizeof nstats; i++)
    n += b[i] != 0;
  return n;
}
#define EINV EDGERT_EINVAL

#define NULL_CASES(X)                                                                            \
  /* dict.h */                                                                                   \
  X(d_new, edgert_dict_new(nt, nt, NULL), EINV, "edgert_dict_new: types and out must not be NULL") \
  X(d_key_type, P(edgert_dict_key_type(NULL)), 0, "edgert_dict_key_type: d is NULL")             \
  X(d_value_type, P(edgert_dict_value_type(NULL)), 0, "edgert_dict_value_type: d is NULL")       \
  X(d_len, (long long)edgert_dict_len(NULL), 0, "edgert_dict_len: d is NULL")                    \
  X(d_version, (long long)edgert_dict_version(NULL), 0, "edgert_dict_version: d is NULL")        \
  X(d_memory, (long long)edgert_dict_memory(NULL), 0, "edgert_dict_memory: d is NULL")           \
  X(d_find, P(edgert_dict_find(NULL, &nk)), 0, "edgert_dict_find: d is NULL")                    \
  X(d_find_key, P(edgert_dict_find(nd, NULL)), 0, "edgert_dict_find: key is NULL")               \
  X(d_find_i64, P(edgert_dict_find_i64(NULL, 1)), 0, "edgert_dict_find_i64: d is NULL")          \
  X(d_find_tagged, P(edgert_dict_find_tagged(NULL, &nk, 9)), 0,                                  \
    "edgert_dict_find_tagged: d is NULL")                                                        \
  X(d_find_tagged_key, P(edgert_dict_find_tagged(nd, NULL, 9)), 0,                               \
    "edgert_dict_find_tagged: key is NULL")                                                      \
  X(d_set_hasher, edgert_dict_set_hasher(NULL, NULL, NULL), EINV,                                \
    "edgert_dict_set_hasher: d is NULL")                                                         \
  X(d_find_hashed, P(edgert_dict_find_hashed(NULL, &nk, 9)), 0,                                  \
    "edgert_dict_find_hashed: d is NULL")                                                        \
  X(d_find_hashed_key, P(edgert_dict_find_hashed(nd, NULL, 9)), 0,                               \
    "edgert_dict_find_hashed: key is NULL")                                                      \
  X(d_set_hashed, edgert_dict_set_hashed(NULL, &nk, 9, &nv), EINV,                               \
    "edgert_dict_set_hashed: d is NULL")                                                         \
  X(d_set_hashed_key, edgert_dict_set_hashed(nd, NULL, 9, &nv), EINV,                            \
    "edgert_dict_set_hashed: key is NULL")                                                       \
  X(d_set_hashed_value, edgert_dict_set_hashed(nd, &nk, 9, NULL), EINV,                          \
    "edgert_dict_set_hashed: value is NULL")                                                     \
  X(d_pop_hashed, edgert_dict_pop_hashed(NULL, &nk, 9, &nout), EINV,                             \
    "edgert_dict_pop_hashed: d is NULL")                                                         \
  X(d_pop_hashed_key, edgert_dict_pop_hashed(nd, NULL, 9, &nout), EINV,                          \
    "edgert_dict_pop_hashed: key is NULL")                                                       \
  X(d_index, (long long)edgert_dict_index(NULL, &nk), -1, "edgert_dict_index: d is NULL")        \
  X(d_index_key, (long long)edgert_dict_index(nd, NULL), -1, "edgert_dict_index: key is NULL")   \
  X(d_view, P(edgert_dict_view(NULL)), 0, "edgert_dict_view: d is NULL")                         \
  X(d_get, edgert_dict_get(NULL, &nk, &nout), EINV, "edgert_dict_get: d is NULL")                \
  X(d_get_key, edgert_dict_get(nd, NULL, &nout), EINV, "edgert_dict_get: key is NULL")           \
  X(d_get_out, edgert_dict_get(nd, &nk, NULL), EINV, "edgert_dict_get: value_out is NULL")       \
  X(d_set, edgert_dict_set(NULL, &nk, &nv), EINV, "edgert_dict_set: d is NULL")                  \
  X(d_set_key, edgert_dict_set(nd, NULL, &nv), EINV, "edgert_dict_set: key is NULL")             \
  X(d_set_value, edgert_dict_set(nd, &nk, NULL), EINV, "edgert_dict_set: value is NULL")         \
  X(d_upsert, NULL_ERR(edgert_dict_upsert(NULL, &nk, &nins, &nerr)), EINV,                       \
    "edgert_dict_upsert: d is NULL")                                                             \
  X(d_upsert_no_err, P(edgert_dict_upsert(NULL, &nk, NULL, NULL)), 0,                            \
    "edgert_dict_upsert: d is NULL")                                                             \
  X(d_upsert_key, NULL_ERR(edgert_dict_upsert(nd, NULL, &nins, &nerr)), EINV,                    \
    "edgert_dict_upsert: key is NULL")                                                           \
  X(d_upsert_i64, NULL_ERR(edgert_dict_upsert_i64(NULL, 5, &nins, &nerr)), EINV,                 \
    "edgert_dict_upsert_i64: d is NULL")                                                         \
  X(d_insert_i64_probed, NULL_ERR(edgert_dict_insert_i64_probed(NULL, 5, NULL, &nerr)), EINV,    \
    "edgert_dict_insert_i64_probed: d is NULL")                                                  \
  X(d_del, edgert_dict_del(NULL, &nk), EINV, "edgert_dict_del: d is NULL")                       \
  X(d_del_key, edgert_dict_del(nd, NULL), EINV, "edgert_dict_del: key is NULL")                  \
  X(d_pop, edgert_dict_pop(NULL, &nk, &nout), EINV, "edgert_dict_pop: d is NULL")                \
  X(d_pop_key, edgert_dict_pop(nd, NULL, &nout), EINV, "edgert_dict_pop: key is NULL")           \
  X(d_popitem, edgert_dict_popitem(NULL, &nk, &nout), EINV, "edgert_dict_popitem: d is NULL")    \
  X(d_clear, edgert_dict_clear(NULL), EINV, "edgert_dict_clear: d is NULL")                      \
  X(d_reserve, edgert_dict_reserve(NULL, 8), EINV, "edgert_dict_reserve: d is NULL")             \
  X(d_copy, edgert_dict_copy(NULL, &ndcopy), EINV, "edgert_dict_copy: d is NULL")                \
  X(d_copy_out, edgert_dict_copy(nd, NULL), EINV, "edgert_dict_copy: out is NULL")               \
  X(d_set_many, edgert_dict_set_many(NULL, &nk, &nv, 1), EINV, "edgert_dict_set_many: d is NULL") \
  X(d_set_many_empty, edgert_dict_set_many(NULL, NULL, NULL, 0), EINV,                           \
    "edgert_dict_set_many: d is NULL")                                                           \
  X(d_set_many_keys, edgert_dict_set_many(nd, NULL, &nv, 1), EINV,                               \
    "edgert_dict_set_many: keys is NULL (with n = 1)")                                           \
  X(d_set_many_values, edgert_dict_set_many(nd, &nk, NULL, 1), EINV,                             \
    "edgert_dict_set_many: values is NULL (with n = 1)")                                         \
  X(d_get_many, edgert_dict_get_many(NULL, &nk, 1, &nout, NULL, NULL), EINV,                     \
    "edgert_dict_get_many: d is NULL")                                                           \
  X(d_get_many_keys, edgert_dict_get_many(nd, NULL, 1, &nout, NULL, NULL), EINV,                 \
    "edgert_dict_get_many: keys is NULL (with n = 1)")                                           \
  X(d_get_many_out, edgert_dict_get_many(nd, &nk, 1, NULL, NULL, NULL), EINV,                    \
    "edgert_dict_get_many: values_out is NULL (with n = 1)")                                     \
  X(d_key_at, P(edgert_dict_key_at(NULL, 0)), 0, "edgert_dict_key_at: d is NULL")                \
  X(d_value_at, P(edgert_dict_value_at(NULL, 0)), 0, "edgert_dict_value_at: d is NULL")          \
  X(d_values, P(edgert_dict_values(NULL)), 0, "edgert_dict_values: d is NULL")                   \
  X(d_pin, (edgert_dict_pin(NULL), 0), 0, "edgert_dict_pin: d is NULL")                          \
  X(d_unpin, edgert_dict_unpin(NULL), EINV, "edgert_dict_unpin: d is NULL")                      \
  X(d_pins, (long long)edgert_dict_pins(NULL), 0, "edgert_dict_pins: d is NULL")                 \
  /* an iterator over no dict is at its end */                                                   \
  X(d_iter_init, (edgert_dict_iter_init(NULL, &nit), edgert_dict_iter_next(&nit, &nik, &niv)), 0, \
    "edgert_dict_iter_init: d is NULL")                                                          \
  X(d_iter_init_it, (edgert_dict_iter_init(nd, NULL), 0), 0, "edgert_dict_iter_init: it is NULL") \
  X(d_iter_next, edgert_dict_iter_next(NULL, &nik, &niv), EINV, "edgert_dict_iter_next: it is NULL") \
  X(d_iter_prev, edgert_dict_iter_prev(NULL, &nik, &niv), EINV, "edgert_dict_iter_prev: it is NULL") \
  X(d_set_cache, edgert_dict_set_cache(NULL, EDGERT_DICT_CACHE_ON), EINV,                        \
    "edgert_dict_set_cache: d is NULL")                                                          \
  /* a NULL dict's stats are all zero */                                                         \
  X(d_cache_stats,                                                                               \
    (memset(&nstats, 0x5A, sizeof nstats), edgert_dict_cache_stats(NULL, &nstats),               \
     stats_nonzero_bytes()),                                                                     \
    0, "edgert_dict_cache_stats: d is NULL")                                                     \
  X(d_cache_stats_out, (edgert_dict_cache_stats(nd, NULL), 0), 0,                                \
    "edgert_dict_cache_stats: out is NULL")                                                      \
  /* list.h */                                                                                   \
  X(l_view, P(edgert_list_view(NULL)), 0, "edgert_list_view: l is NULL")                         \
  X(l_new, edgert_list_new(nt, 0, NULL), EINV, "edgert_list_new: type and out must not be NULL") \
  X(l_new_shared, edgert_list_new_shared(nt, 0, NULL), EINV,                                     \
    "edgert_list_new_shared: type and out must not be NULL")                                     \
  X(l_is_shared, (long long)edgert_list_is_shared(NULL), 0, "edgert_list_is_shared: l is NULL")  \
  X(l_type, P(edgert_list_type(NULL)), 0, "edgert_list_type: l is NULL")                         \
  X(l_len, (long long)edgert_list_len(NULL), 0, "edgert_list_len: l is NULL")                    \
  X(l_capacity, (long long)edgert_list_capacity(NULL), 0, "edgert_list_capacity: l is NULL")     \
  X(l_itemsize, (long long)edgert_list_itemsize(NULL), 0, "edgert_list_itemsize: l is NULL")     \
  X(l_memory, (long long)edgert_list_memory(NULL), 0, "edgert_list_memory: l is NULL")           \
  X(l_data, P(edgert_list_data(NULL)), 0, "edgert_list_data: l is NULL")                         \
  X(l_at, P(edgert_list_at(NULL, 0)), 0, "edgert_list_at: l is NULL")                            \
  X(l_get, edgert_list_get(NULL, 0, &nout), EINV, "edgert_list_get: l is NULL")                  \
  X(l_get_out, edgert_list_get(nl, 0, NULL), EINV, "edgert_list_get: out is NULL")               \
  X(l_set, edgert_list_set(NULL, 0, &nv), EINV, "edgert_list_set: l is NULL")                    \
  X(l_set_value, edgert_list_set(nl, 0, NULL), EINV, "edgert_list_set: value is NULL")           \
  X(l_append, edgert_list_append(NULL, &nv), EINV, "edgert_list_append: l is NULL")              \
  X(l_append_value, edgert_list_append(nl, NULL), EINV, "edgert_list_append: value is NULL")     \
  X(l_insert, edgert_list_insert(NULL, 0, &nv), EINV, "edgert_list_insert: l is NULL")           \
  X(l_insert_value, edgert_list_insert(nl, 0, NULL), EINV, "edgert_list_insert: value is NULL")  \
  X(l_pop, edgert_list_pop(NULL, 0, &nout), EINV, "edgert_list_pop: l is NULL")                  \
  X(l_splice, edgert_list_splice(NULL, 0, 0, &nv, 1), EINV, "edgert_list_splice: l is NULL")     \
  X(l_splice_items, edgert_list_splice(nl, 0, 0, NULL, 1), EINV,                                 \
    "edgert_list_splice: items is NULL (with n = 1)")                                            \
  X(l_delete_strided, edgert_list_delete_strided(NULL, 0, 2, 1), EINV,                         \
    "edgert_list_delete_strided: l is NULL")                                                     \
  X(l_assign_strided, edgert_list_assign_strided(NULL, 0, 2, 1, &nv, 1), EINV,                   \
    "edgert_list_assign_strided: l is NULL")                                                     \
  X(l_assign_strided_items, edgert_list_assign_strided(nl, 0, 2, 0, NULL, 1), EINV,              \
    "edgert_list_assign_strided: items is NULL (with n = 1)")                                    \
  X(l_repeat, edgert_list_repeat(NULL, 2), EINV, "edgert_list_repeat: l is NULL")                \
  X(l_reserve, edgert_list_reserve(NULL, 8), EINV, "edgert_list_reserve: l is NULL")             \
  X(l_clear, edgert_list_clear(NULL), EINV, "edgert_list_clear: l is NULL")                      \
  X(l_reverse, edgert_list_reverse(NULL), EINV, "edgert_list_reverse: l is NULL")                \
  X(l_sort, edgert_list_sort(NULL, 0), EINV, "edgert_list_sort: l is NULL")                      \
  X(l_copy, edgert_list_copy(NULL, &nlcopy), EINV, "edgert_list_copy: l is NULL")                \
  X(l_copy_out, edgert_list_copy(nl, NULL), EINV, "edgert_list_copy: out is NULL")               \
  X(l_swap_a, edgert_list_swap(NULL, nl), EINV, "edgert_list_swap: a is NULL")                   \
  X(l_swap_b, edgert_list_swap(nl, NULL), EINV, "edgert_list_swap: b is NULL")                   \
  X(l_pin, (edgert_list_pin(NULL), 0), 0, "edgert_list_pin: l is NULL")                          \
  X(l_unpin, edgert_list_unpin(NULL), EINV, "edgert_list_unpin: l is NULL")                      \
  X(l_pins, (long long)edgert_list_pins(NULL), 0, "edgert_list_pins: l is NULL")                 \
  /* types.h */                                                                                  \
  X(t_find, edgert_type_find("int", NULL), EINV, "edgert_type_find: name and out must not be NULL") \
  X(t_register, edgert_type_register(NULL, ok_size, any_check, any_copy, NULL, &ntype), EINV,    \
    "edgert_type_register: name is NULL")                                                        \
  X(t_register_custom_type, edgert_register_custom_type(NULL, NULL, NULL, NULL), EINV,           \
    "edgert_register_custom_type: name is NULL")                                                 \
  X(t_register_custom_type_fn, edgert_register_custom_type("QNullAddr", NULL, NULL, NULL), EINV, \
    "edgert_register_custom_type: sizeof_fn is NULL (type 'QNullAddr' needs its sizeof callback)") \
  X(t_register_custom_type_boxed, edgert_register_custom_type_boxed(NULL, NULL, NULL, NULL, NULL), \
    EINV, "edgert_register_custom_type_boxed: name is NULL")                                     \
  X(t_register_custom_type_boxed_fn,                                                             \
    edgert_register_custom_type_boxed("QNullAddr", NULL, NULL, NULL, NULL), EINV,                \
    "edgert_register_custom_type_boxed: sizeof_fn is NULL")                                      \
  X(t_name, P(edgert_type_name(NULL)), 0, "edgert_type_name: t is NULL")                         \
  X(t_kind, (long long)edgert_type_kind(NULL), EDGERT_KIND_NONE, "edgert_type_kind: t is NULL")  \
  X(t_size, (long long)edgert_type_size(NULL), 0, "edgert_type_size: t is NULL")                 \
  X(t_has_box, edgert_type_has_box(NULL), 0, "edgert_type_has_box: t is NULL")                   \
  X(t_check, edgert_type_check(NULL, &nk), EINV, "edgert_type_check: t is NULL")                 \
  X(t_copy, edgert_type_copy(NULL, &nout, &nk), EINV, "edgert_type_copy: t is NULL")             \
  X(t_copy_dst, edgert_type_copy(nt, NULL, &nk), EINV, "edgert_type_copy: dst is NULL")          \
  X(t_box, edgert_type_box(NULL, &nk, &nbox), EINV, "edgert_type_box: t is NULL")                \
  X(t_box_src, edgert_type_box(nt, NULL, &nbox), EINV, "edgert_type_box: src is NULL")           \
  X(t_box_out, edgert_type_box(nt, &nk, NULL), EINV, "edgert_type_box: out is NULL")            \
  X(t_register_struct, edgert_type_register_struct(NULL, NULL), EINV,                            \
    "edgert_type_register_struct: layout is NULL")                                               \
  X(t_layout, P(edgert_type_layout(NULL)), 0, "edgert_type_layout: t is NULL")                   \
  X(s_define, edgert_struct_define(NULL, NULL, 0, 8, 8, NULL), EINV,                             \
    "edgert_struct_define: name and fields must not be NULL")                                    \
  X(s_find, edgert_struct_find(NULL, NULL), EINV, "edgert_struct_find: name and out")            \
  X(s_name, P(edgert_struct_name(NULL)), 0, "edgert_struct_name: s is NULL")                     \
  X(s_size, (long long)edgert_struct_size(NULL), 0, "edgert_struct_size: s is NULL")             \
  X(s_align, (long long)edgert_struct_align(NULL), 0, "edgert_struct_align: s is NULL")          \
  X(s_nfields, (long long)edgert_struct_nfields(NULL), 0, "edgert_struct_nfields: s is NULL")    \
  X(s_field, P(edgert_struct_field(NULL, 0)), 0, "edgert_struct_field: s is NULL")               \
  X(s_problem, P(edgert_struct_by_value_problem(NULL)), 0,                                       \
    "edgert_struct_by_value_problem: s is NULL")                                                 \
  X(s_format, P(edgert_struct_format(NULL)), 0, "edgert_struct_format: s is NULL")               \
  X(s_check_format, edgert_struct_check_format(NULL, "d", 8), EINV,                              \
    "edgert_struct_check_format: s is NULL")                                                  \
  X(t_unregister, edgert_type_unregister(NULL), EINV, "edgert_type_unregister: name is NULL")    \
  X(t_containers, (long long)edgert_type_containers(NULL), 0, "edgert_type_containers: t is NULL")

#define NULL_CASE_THUNK(id, expr, want, fragment)                                                \
  static long long null_case_##id(void) { return (long long)(expr); }
NULL_CASES(NULL_CASE_THUNK)

static const struct {
  const char *call;
  long long (*run)(void);
  long long want;
  const char *fragment;
} null_cases[] = {
#define NULL_CASE_ROW(id, expr, want, fragment) {#expr, null_case_##id, (want), (fragment)},
    NULL_CASES(NULL_CASE_ROW)
#undef NULL_CASE_ROW
};

/* Functions that take no handle nor required pointer, or whose NULL is legal
 * (freeing NULL does nothing; a kind is any integer). */
static const char *const null_exempt[] = {"edgert_dict_free", "edgert_list_free",
                                          "edgert_bytes_release", "edgert_type_builtin",
                                          "edgert_struct_copy_value"};

/* Every EDGERT_EXTERN function of include/edgert/<header> has a NULL case
 * (or is exempt), so a function added later without one fails here. */
static void every_function_has_a_null_case(const char *header) {
  char path[512];
  snprintf(path, sizeof path, "%s/include/edgert/%s", EDGERT_SOURCE_DIR, header);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char text[64 * 1024];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  int seen = 0;
  for (const char *p = strstr(text, "EDGERT_EXTERN "); p; p = strstr(p + 1, "EDGERT_EXTERN ")) {
    const char *paren = strchr(p, '(');
    assert_non_null(paren);
    const char *start = paren;
    while (start > p && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                         (start[-1] >= '0' && start[-1] <= '9')))
      start--;
    char name[128];
    snprintf(name, sizeof name, "%.*s(", (int)(paren - start), start);
    seen++;
    int covered = 0;
    for (size_t i = 0; i < sizeof null_exempt / sizeof null_exempt[0] && !covered; i++)
      covered = strncmp(name, null_exempt[i], strlen(name) - 1) == 0 &&
                strlen(null_exempt[i]) == strlen(name) - 1;
    for (size_t i = 0; i < sizeof null_cases / sizeof null_cases[0] && !covered; i++)
      covered = strstr(null_cases[i].call, name) != NULL;
    if (!covered)
      fail_msg("%s: %.*s has no NULL case", header, (int)strlen(name) - 1, name);
  }
  assert_true(seen > 0);
}

static void container_and_type_nulls_are_refused(void **state) {
  (void)state;
  nt = edgert_type_builtin(EDGERT_KIND_INT64);
  assert_int_equal(edgert_dict_new(nt, nt, &nd), 0);
  assert_int_equal(edgert_dict_set(nd, &nk, &nv), 0);
  assert_int_equal(edgert_list_new(nt, 0, &nl), 0);
  int64_t seven = 7;
  assert_int_equal(edgert_list_append(nl, &seven), 0);
  uint64_t version = edgert_dict_version(nd);
  for (size_t i = 0; i < sizeof null_cases / sizeof null_cases[0]; i++) {
    edgert_clear_error();
    long long got = null_cases[i].run();
    bad_inputs_tried++;
    if (getenv("EDGERT_SHOW_MESSAGES"))
      print_message("%-48.48s -> %lld: %s\n", null_cases[i].call, got, edgert_last_error());
    if (got != null_cases[i].want)
      fail_msg("%s: got %lld, want %lld; message \"%s\"", null_cases[i].call, got,
               null_cases[i].want, edgert_last_error());
    if (strstr(edgert_last_error(), null_cases[i].fragment) == NULL)
      fail_msg("%s: message \"%s\" lacks \"%s\"", null_cases[i].call, edgert_last_error(),
               null_cases[i].fragment);
  }
  every_function_has_a_null_case("dict.h");
  every_function_has_a_null_case("list.h");
  every_function_has_a_null_case("types.h");
  every_function_has_a_null_case("struct.h");
  /* Nothing was touched: the valid handles are as they were, nothing was
   * copied or registered. */
  assert_int_equal(edgert_dict_len(nd), 1);
  assert_int_equal(edgert_dict_version(nd), version);
  assert_int_equal(edgert_dict_pins(nd), 0);
  assert_int_equal(*(int64_t *)edgert_dict_find(nd, &nk), 2);
  assert_int_equal(edgert_list_len(nl), 1);
  assert_int_equal(edgert_list_pins(nl), 0);
  assert_int_equal(*(int64_t *)edgert_list_at(nl, 0), 7);
  assert_null(ndcopy);
  assert_null(nlcopy);
  assert_null(ntype);
  assert_null(nbox);
  const edgert_type_t *t;
  assert_int_equal(edgert_type_find("QNullAddr", &t), EDGERT_ENOTFOUND);
  edgert_dict_free(nd);
  edgert_list_free(nl);
  nd = NULL;
  nl = NULL;
}

/* A custom type whose callbacks accept a NULL host object. */
static int null_obj_check(void *obj) { return obj == NULL; }
static void null_obj_copy(void *dst, void *src) { memset(dst, src == NULL ? 0xAB : 0, 16); }

static void legal_nulls_still_work(void **state) {
  (void)state;
  const edgert_type_t *i64 = edgert_type_builtin(EDGERT_KIND_INT64);
  const edgert_type_t *str = edgert_type_builtin(EDGERT_KIND_STR);
  edgert_dict_t *d = NULL;
  edgert_list_t *l = NULL;
  assert_int_equal(edgert_dict_new(i64, i64, &d), 0);
  assert_int_equal(edgert_list_new(i64, 0, &l), 0);
  int64_t k = 1, v = 10, out = 0;
  /* Arrays may be NULL when their count is 0. */
  assert_int_equal(edgert_dict_set_many(d, NULL, NULL, 0), 0);
  assert_int_equal(edgert_dict_get_many(d, NULL, 0, NULL, NULL, NULL), 0);
  assert_int_equal(edgert_list_splice(l, 0, 0, NULL, 0), 0);
  assert_int_equal(edgert_list_len(l), 0);
  /* Optional out-parameters. */
  int *no_err = NULL, *no_inserted = NULL;
  int64_t *slot = edgert_dict_upsert(d, &k, no_inserted, no_err);
  assert_non_null(slot);
  *slot = v;
  assert_non_null(edgert_dict_insert_i64_probed(d, 2, NULL, NULL));
  assert_int_equal(edgert_dict_len(d), 2);
  edgert_dict_iter_t it;
  edgert_dict_iter_init(d, &it);
  assert_int_equal(edgert_dict_iter_next(&it, NULL, NULL), 1);
  int64_t absent = 99;
  size_t *no_missing = NULL;
  expect_error(edgert_dict_get_many(d, &absent, 1, &out, NULL, no_missing), EDGERT_EKEY,
               "key 99 not found in the dict");
  assert_int_equal(edgert_dict_pop(d, &k, NULL), 0);
  assert_int_equal(edgert_dict_popitem(d, NULL, NULL), 0);
  assert_int_equal(edgert_dict_len(d), 0);
  /* A zero-filled iterator is at its end. */
  edgert_dict_iter_t zero;
  memset(&zero, 0, sizeof zero);
  assert_int_equal(edgert_dict_iter_next(&zero, NULL, NULL), 0);
  assert_int_equal(edgert_list_append(l, &v), 0);
  assert_int_equal(edgert_list_pop(l, 0, NULL), 0);
  /* A NULL hasher restores the dict's own hash. */
  edgert_dict_t *sd = NULL;
  assert_int_equal(edgert_dict_new(str, i64, &sd), 0);
  assert_int_equal(edgert_dict_set_hasher(sd, NULL, NULL), 0);
  edgert_bytes_t key = {(char *)"k", 1};
  assert_int_equal(edgert_dict_set(sd, &key, &v), 0);
  assert_int_equal(edgert_dict_get(sd, &key, &out), 0);
  assert_int_equal(out, 10);
  edgert_dict_free(sd);
  /* Registration without `out` or a box callback; the host object of
   * check and copy is passed through, NULL included. */
  assert_int_equal(edgert_type_register("QNullObj", ok_size, null_obj_check, null_obj_copy, NULL, NULL), 0);
  const edgert_type_t *t = NULL;
  assert_int_equal(edgert_type_find("QNullObj", &t), 0);
  assert_int_equal(edgert_type_check(t, NULL), 1);
  unsigned char dst[16] = {0};
  assert_int_equal(edgert_type_copy(t, dst, NULL), 0);
  assert_int_equal(dst[0], 0xAB);
  assert_int_equal(dst[15], 0xAB);
  edgert_dict_free(d);
  edgert_list_free(l);
}

/* ---- nexus and guard ------------------------------------------------------------- */

static int ref_fn(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  (void)ret;
  return 0;
}

static void nexus_misuse_is_refused(void **state) {
  (void)state;
  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_impl_t fn_only = {NULL, ref_fn, NULL, NULL, NULL};
  edgert_nexus_impl_t neither = {NULL, NULL, NULL, NULL, NULL};
  edgert_func_t *fake = (edgert_func_t *)(void *)&fn_only;
  edgert_nexus_impl_t both = {fake, ref_fn, NULL, NULL, NULL};
  expect_error(edgert_nexus_register(nx, "", &fn_only, ref_fn, NULL, NULL, NULL), EDGERT_EINVAL,
               "the kernel name is empty");
  expect_error(edgert_nexus_register(nx, NULL, &fn_only, ref_fn, NULL, NULL, NULL), EDGERT_EINVAL,
               "edgert_nexus_register: the kernel name");
  expect_error(edgert_nexus_register(nx, "k", &fn_only, NULL, NULL, NULL, NULL), EDGERT_EINVAL,
               "kernel 'k': the reference is NULL");
  expect_error(edgert_nexus_register(nx, "k", &neither, ref_fn, NULL, NULL, NULL), EDGERT_EINVAL,
               "the compiled side must set exactly one of func and fn");
  expect_error(edgert_nexus_register(nx, "k", &both, ref_fn, NULL, NULL, NULL), EDGERT_EINVAL,
               "the compiled side must set exactly one of func and fn");
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.history = 0;
  expect_error(edgert_nexus_register(nx, "k", &fn_only, ref_fn, NULL, &o, NULL), EDGERT_EINVAL,
               "kernel 'k': history must be between 1 and 1024, not 0");
  o.history = 5000;
  expect_error(edgert_nexus_register(nx, "k", &fn_only, ref_fn, NULL, &o, NULL), EDGERT_EINVAL,
               "history must be between 1 and 1024, not 5000");
  edgert_nexus_options_init(&o);
  o.tolerance = -1.0;
  expect_error(edgert_nexus_register(nx, "k", &fn_only, ref_fn, NULL, &o, NULL), EDGERT_EINVAL,
               "kernel 'k': tolerance must be >= 0");
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "k", &fn_only, ref_fn, NULL, NULL, &k), 0);
  expect_error(edgert_nexus_register(nx, "k", &fn_only, ref_fn, NULL, NULL, NULL), EDGERT_EEXIST,
               "kernel 'k' is already registered");
  edgert_kernel_t *found = NULL;
  expect_error(edgert_nexus_find(nx, "nope", &found), EDGERT_ENOTFOUND, "no kernel named 'nope'");
  expect_error(edgert_nexus_call(nx, "nope", NULL, NULL), EDGERT_ENOTFOUND, "no kernel named 'nope'");
  uint64_t ver = 0;
  expect_error(edgert_kernel_rollback(k, 1, &ver), EDGERT_EINVAL,
               "kernel 'k': cannot roll back 1 step(s): the history holds 1 version(s)");
  expect_error(edgert_kernel_swap(k, &neither, &ver), EDGERT_EINVAL,
               "the compiled side must set exactly one of func and fn");
  edgert_nexus_free(nx);
  expect_error(edgert_guard_run(NULL, NULL, "nothing"), EDGERT_EINVAL, "edgert_guard_run: fn is NULL");
}

/* ---- NULL where a handle or an argument belongs ------------------------------- */

static void null_arguments_are_refused_where_checked(void **state) {
  (void)state;
  ret_t out;
  edgert_value_t v[2];
  void *addr;
  edgert_contract_t c;
  expect_error(edgert_func_call(NULL, NULL, &out), EDGERT_EINVAL, "edgert_func_call: NULL function or arguments");
  expect_error(edgert_func_call_values(NULL, v, &out), EDGERT_EINVAL,
               "edgert_func_call_values: NULL function or values");
  expect_error(edgert_guard_call(NULL, NULL, &out, NULL, NULL), EDGERT_EINVAL, "edgert_guard_call: fn is NULL");
  expect_error(edgert_module_bind(NULL, &c, NULL), EDGERT_EINVAL, "module and contract must not be NULL");
  expect_error(edgert_module_verify(NULL, "ab"), EDGERT_EINVAL, "module and hash must not be NULL");
  expect_error(edgert_module_address_of(NULL, "x", &addr), EDGERT_EINVAL, "NULL argument");
  expect_error(edgert_nexus_register(NULL, "k", NULL, NULL, NULL, NULL, NULL), EDGERT_EINVAL,
               "edgert_nexus_register: nexus is NULL");
  expect_error(edgert_nexus_call(NULL, "k", NULL, NULL), EDGERT_EINVAL, "NULL argument");
  edgert_func_t *fn;
  expect_error(edgert_manifest_function(NULL, "x", &fn), EDGERT_EINVAL, "NULL argument");
  expect_error(edgert_contract_parse_json("{}", 2, NULL), EDGERT_EINVAL, "json and out must not be NULL");
  /* Accessors answer NULL or 0 for a NULL handle. */
  assert_null(edgert_module_sha256(NULL));
  assert_int_equal(edgert_manifest_module_count(NULL), 0);
  /* Freeing NULL does nothing. */
  edgert_module_free(NULL);
  edgert_module_unload(NULL);
  edgert_manifest_free(NULL);
  edgert_nexus_free(NULL);
  edgert_dict_free(NULL);
  edgert_list_free(NULL);
  edgert_bytes_release(NULL);
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
  n += replay_dir("fuzz_manifest", edgert_fuzz_manifest);
  n += replay_dir("fuzz_containers", edgert_fuzz_containers);
  n += replay_dir("fuzz_module", edgert_fuzz_module);
  n += replay_dir("fuzz_signature", edgert_fuzz_signature);
  assert_true(n > 0);
  print_message("replayed %d committed fuzz input(s)\n", n);
}

static int report(void **state) {
  (void)state;
  if (tmpdir[0]) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[600];
      snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
      unlink(path);
    }
    if (d)
      closedir(d);
    rmdir(tmpdir);
  }
  print_message("bad inputs tried: %d\n", bad_inputs_tried);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(type_names_that_are_refused),
      cmocka_unit_test(a_huge_type_name_is_quoted_short),
      cmocka_unit_test(invalid_types_are_not_named),
      cmocka_unit_test(contracts_that_are_refused),
      cmocka_unit_test(files_that_are_not_modules),
      cmocka_unit_test(symbols_and_calls_that_are_refused),
      cmocka_unit_test(manifests_that_are_refused),
      cmocka_unit_test(type_registrations_that_are_refused),
      cmocka_unit_test(container_misuse_is_refused),
      cmocka_unit_test(container_and_type_nulls_are_refused),
      cmocka_unit_test(legal_nulls_still_work),
      cmocka_unit_test(nexus_misuse_is_refused),
      cmocka_unit_test(null_arguments_are_refused_where_checked),
      cmocka_unit_test(fuzz_inputs_replay_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, report);
}
