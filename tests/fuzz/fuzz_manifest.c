/*
 * fuzz_manifest.c: the JSON manifest reader (include/edgert/manifest.h).
 *
 * Input: manifest text, as a file would hold it. Parsed three ways: as a
 * manifest with no base directory (a syntax and schema check), as a
 * manifest whose relative paths resolve against a directory that does not
 * exist, and as a single contract object (edgert_contract_parse_json).
 * Invariants checked: success gives a manifest whose accessors agree with
 * each other (counts, 64 lowercase hex digits, contracts that format and
 * whose type names parse back, struct layouts from a "structs" section
 * whose own buffer format reads back as them), refusal is EDGERT_EMANIFEST with a message
 * and leaves the output untouched, and nothing leaks (LeakSanitizer).
 */
#include "fuzz_common.h"

#include "edgert.h"

static int is_lower_hex64(const char *s) {
  if (s == NULL || strlen(s) != 64)
    return 0;
  for (size_t i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

static void check_contract(const edgert_contract_t *c) {
  FUZZ_CHECK(c != NULL);
  FUZZ_CHECK(c->nargs <= EDGERT_MAX_ARGS);
  FUZZ_CHECK(memchr(c->function_name, '\0', sizeof c->function_name) != NULL);
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t back;
  for (unsigned i = 0; i < c->nargs; i++) {
    FUZZ_CHECK(edgert_abi_type_name(&c->args[i], buf, sizeof buf) == 0);
    FUZZ_CHECK(edgert_abi_type_parse(buf, 0, &back) == 0);
    FUZZ_CHECK(back.layout == c->args[i].layout);
    /* a struct layout's own buffer format reads back as the layout */
    const edgert_struct_t *L = c->args[i].layout;
    if (L != NULL)
      FUZZ_CHECK(edgert_struct_check_format(L, edgert_struct_format(L), edgert_struct_size(L)) ==
                 0);
  }
  FUZZ_CHECK(edgert_abi_type_name(&c->ret, buf, sizeof buf) == 0);
  FUZZ_CHECK(edgert_abi_type_parse(buf, 1, &back) == 0);
  char text[4096];
  FUZZ_CHECK(edgert_contract_format(c, text, sizeof text) == 0);
  /* A valid contract validates again through the public constructor. */
  const char *names[EDGERT_MAX_ARGS];
  char storage[EDGERT_MAX_ARGS][EDGERT_ABI_TYPE_NAME_MAX];
  for (unsigned i = 0; i < c->nargs; i++) {
    FUZZ_CHECK(edgert_abi_type_name(&c->args[i], storage[i], sizeof storage[i]) == 0);
    names[i] = storage[i];
  }
  char ret[EDGERT_ABI_TYPE_NAME_MAX];
  FUZZ_CHECK(edgert_abi_type_name(&c->ret, ret, sizeof ret) == 0);
  edgert_contract_t again;
  FUZZ_CHECK(edgert_contract_init(&again, c->function_name, names, c->nargs,
                                  ret, "cdecl", c->release_gil) == 0);
  FUZZ_CHECK(again.nargs == c->nargs);
}

static void walk(const edgert_manifest_t *m) {
  size_t n = edgert_manifest_module_count(m);
  FUZZ_CHECK(n <= EDGERT_MANIFEST_MAX_MODULES);
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(edgert_manifest_module_path(m, i) != NULL);
    FUZZ_CHECK(edgert_manifest_module_file(m, i) != NULL);
    FUZZ_CHECK(is_lower_hex64(edgert_manifest_module_sha256(m, i)));
    FUZZ_CHECK(edgert_manifest_module(m, i) == NULL); /* nothing loaded */
    size_t k = edgert_manifest_contract_count(m, i);
    for (size_t j = 0; j < k; j++)
      check_contract(edgert_manifest_contract(m, i, j));
    FUZZ_CHECK(edgert_manifest_contract(m, i, k) == NULL);
  }
  FUZZ_CHECK(edgert_manifest_module_path(m, n) == NULL);
  FUZZ_CHECK(edgert_manifest_module_sha256(m, n) == NULL);
  FUZZ_CHECK(edgert_manifest_contract_count(m, n) == 0);
}

static void parse_as_manifest(const uint8_t *data, size_t size,
                              const char *base_dir) {
  edgert_manifest_t *m = (edgert_manifest_t *)&m; /* a sentinel */
  edgert_clear_error();
  int rc = edgert_manifest_parse((const char *)data, size, base_dir, &m);
  if (rc == 0) {
    FUZZ_CHECK(m != NULL && m != (edgert_manifest_t *)&m);
    walk(m);
    edgert_manifest_free(m);
  } else {
    FUZZ_CHECK(rc == EDGERT_EMANIFEST || rc == EDGERT_ENOMEM);
    FUZZ_CHECK(m == (edgert_manifest_t *)&m);
    FUZZ_CHECK(edgert_last_error()[0] != '\0');
  }
}

int edgert_fuzz_manifest(const uint8_t *data, size_t size) {
  /* libFuzzer's buffer is exactly `size` bytes: no terminator to lean on. */
  parse_as_manifest(data, size, NULL);
  parse_as_manifest(data, size, "/nonexistent-edgert-fuzz-dir");

  edgert_contract_t c, before;
  memset(&c, 0x3C, sizeof c);
  memcpy(&before, &c, sizeof c);
  edgert_clear_error();
  int rc = edgert_contract_parse_json((const char *)data, size, &c);
  if (rc == 0) {
    check_contract(&c);
  } else {
    FUZZ_CHECK(rc == EDGERT_EMANIFEST || rc == EDGERT_ENOMEM);
    FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0);
    FUZZ_CHECK(edgert_last_error()[0] != '\0');
  }
  return 0;
}

#ifndef EDGERT_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return edgert_fuzz_manifest(data, size);
}
#endif
