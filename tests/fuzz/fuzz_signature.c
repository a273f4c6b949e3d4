/*
 * fuzz_signature.c: the signature file reader (include/edgert/sign.h,
 * edgert_signature_parse) and the manifest's "version"/"expires" fields.
 *
 * Input: the bytes of a .sig file, as read from disk. Invariants checked:
 * an accepted file is exactly the three-line format (re-serializing the
 * result gives the input back, byte for byte); a refused one is
 * EDGERT_ESIGNATURE with a message starting "signature file: " and leaves
 * the output untouched. The same bytes are then spliced into a manifest's
 * "expires" string, which the reader accepts only as a valid RFC 3339 UTC
 * time of the one form, else refuses with EDGERT_EMANIFEST naming the field.
 */
#include "fuzz_common.h"

#include "edgert.h"

static void check_signature(const uint8_t *data, size_t size) {
  edgert_signature_t s, before;
  memset(&s, 0x5A, sizeof s);
  memcpy(&before, &s, sizeof s);
  edgert_clear_error();
  int rc = edgert_signature_parse((const char *)data, size, &s);
  if (rc == 0) {
    char again[300], hex[129];
    for (int i = 0; i < 64; i++)
      snprintf(hex + 2 * i, 3, "%02x", s.sig[i]);
    int n = snprintf(again, sizeof again,
                     "edgert-signature-v1\nkey-id: %s\nsignature: %s\n",
                     s.key_id, hex);
    FUZZ_CHECK(n > 0 && (size_t)n == size);
    FUZZ_CHECK(memcmp(again, data, size) == 0);
  } else {
    FUZZ_CHECK(rc == EDGERT_ESIGNATURE);
    FUZZ_CHECK(memcmp(&s, &before, sizeof s) == 0);
    FUZZ_CHECK(strncmp(edgert_last_error(), "signature file: ", 16) == 0);
  }
}

static void check_expires(const uint8_t *data, size_t size) {
  if (size > 64)
    return;
  for (size_t i = 0; i < size; i++) /* keep it one JSON string */
    if (data[i] < 0x20 || data[i] == '"' || data[i] == '\\' || data[i] >= 0x7f)
      return;
  char json[256];
  int n = snprintf(json, sizeof json,
                   "{\"schema_version\": 1, \"expires\": \"%.*s\", \"modules\": []}",
                   (int)size, (const char *)data);
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(json, (size_t)n, NULL, &m);
  if (rc == 0) {
    int64_t at = 0;
    const char *e = edgert_manifest_expires(m, &at);
    FUZZ_CHECK(e != NULL && strlen(e) == 20 && e[19] == 'Z' && e[10] == 'T');
    FUZZ_CHECK(memcmp(e, data, size) == 0 && size == 20);
    edgert_manifest_free(m);
  } else {
    FUZZ_CHECK(rc == EDGERT_EMANIFEST);
    FUZZ_CHECK(strncmp(edgert_last_error(), "expires: ", 9) == 0);
    FUZZ_CHECK(m == NULL);
  }
}

int edgert_fuzz_signature(const uint8_t *data, size_t size) {
  check_signature(data, size);
  check_expires(data, size);
  return 0;
}

#ifndef EDGERT_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return edgert_fuzz_signature(data, size);
}
#endif
