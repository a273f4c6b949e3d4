/*
 * test_sign.c: signed manifests. Keys made here (and one by `openssl
 * genpkey`), manifests listing the marker fixture (its constructor writes
 * $EDGERT_LOADER_MARKER), and every refusal checked to leave no marker:
 * nothing of the module ran. The .sig reader is run over every one-byte
 * mutation, truncation and insertion of a valid file and over random bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define FUTURE "2099-01-01T00:00:00Z"
#define PAST "2001-01-01T00:00:00Z"

static char dir[256];
static char marker[300];
static char lib[300];
static char sha[65];
static char key_id[EDGERT_KEY_ID_SIZE], other_id[EDGERT_KEY_ID_SIZE];

/* ---- helpers ------------------------------------------------------------ */

/* dir/name in a static rotating buffer. */
static const char *P(const char *name) {
  static char bufs[16][400];
  static int i;
  char *b = bufs[i++ % 16];
  snprintf(b, 400, "%s/%s", dir, name);
  return b;
}

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *buf = malloc(65536);
  size_t n = fread(buf, 1, 65535, f);
  fclose(f);
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

/* Writes dir/name: a manifest of the marker module with this version and
 * expiry (version 0 / expires NULL: left out). Signs it with `key` unless
 * NULL. Returns the manifest's path. */
static const char *manifest(const char *name, int version, const char *expires,
                            const char *key) {
  char text[2048], extra[128] = "";
  size_t o = 0;
  if (version > 0)
    o += (size_t)snprintf(extra + o, sizeof extra - o, ", \"version\": %d", version);
  if (expires != NULL)
    snprintf(extra + o, sizeof extra - o, ", \"expires\": \"%s\"", expires);
  int n = snprintf(text, sizeof text,
                   "{\"schema_version\": 1%s, \"modules\": [{\"path\": \"%s\", "
                   "\"sha256\": \"%s\", \"contracts\": [{\"function_name\": "
                   "\"marker_answer\", \"arg_types\": [], \"return_type\": "
                   "\"c_int\"}]}]}\n",
                   extra, lib, sha);
  static char paths[32][400]; /* the returned path outlives later P() calls */
  static int next;
  char *path = paths[next++ % 32];
  snprintf(path, 400, "%s", P(name));
  write_bytes(path, text, (size_t)n);
  if (key != NULL) {
    char id[EDGERT_KEY_ID_SIZE];
    if (edgert_manifest_sign(path, key, NULL, id) != 0)
      fail_msg("sign: %s", edgert_last_error());
  }
  return path;
}

static edgert_keyset_t *trusted(void) {
  edgert_keyset_t *ks = NULL;
  assert_int_equal(edgert_keyset_new(&ks), 0);
  assert_int_equal(edgert_keyset_add_file(ks, P("key.pub"), NULL), 0);
  return ks;
}

static int ran(void) { return access(marker, F_OK) == 0; }

/* Loads `path` with the trusted key (and `state`), expecting `err` and a
 * message containing `want`; nothing may have run. */
static void expect_refused(const char *path, const char *state, int err,
                           const char *want) {
  unlink(marker);
  edgert_keyset_t *ks = trusted();
  edgert_verify_options_t opt = {.keys = ks, .state_file = state};
  edgert_manifest_t *m = (edgert_manifest_t *)0x1;
  int rc = edgert_manifest_load_signed(path, &opt, &m, NULL);
  edgert_keyset_free(ks);
  if (rc != err)
    fail_msg("%s: rc %d (%s), wanted %s; %s", path, rc, edgert_err_name(rc),
             edgert_err_name(err), edgert_last_error());
  if (strstr(edgert_last_error(), want) == NULL)
    fail_msg("message: %s\n  wanted it to contain: %s", edgert_last_error(), want);
  assert_ptr_equal(m, (edgert_manifest_t *)0x1);
  assert_false(ran());
}

static edgert_manifest_t *load_ok(const char *path, const char *state,
                                  edgert_verify_result_t *r) {
  unlink(marker);
  edgert_keyset_t *ks = trusted();
  edgert_verify_options_t opt = {.keys = ks, .state_file = state};
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_load_signed(path, &opt, &m, r);
  edgert_keyset_free(ks);
  if (rc != 0)
    fail_msg("%s: rc %d: %s", path, rc, edgert_last_error());
  assert_true(ran());
  return m;
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/edgert_test_sign_XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(marker, sizeof marker, "%s/ran", dir);
  setenv("EDGERT_LOADER_MARKER", marker, 1);
  snprintf(lib, sizeof lib, "%s/libloader_marker.so", EDGERT_FIXTURE_DIR);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", lib);
  FILE *p = popen(cmd, "r");
  if (p == NULL || fscanf(p, "%64s", sha) != 1)
    return -1;
  pclose(p);
  if (edgert_key_generate(P("key"), P("key.pub"), key_id) != 0 ||
      edgert_key_generate(P("other"), P("other.pub"), other_id) != 0)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- keys --------------------------------------------------------------- */

static void keys_are_pem_with_a_private_mode_and_a_stable_id(void **state) {
  (void)state;
  struct stat st;
  assert_int_equal(stat(P("key"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *pub = read_text(P("key.pub"), NULL);
  assert_memory_equal(pub, "-----BEGIN PUBLIC KEY-----\n", 27);
  free(pub);
  char a[EDGERT_KEY_ID_SIZE], b[EDGERT_KEY_ID_SIZE];
  assert_int_equal(edgert_key_id_file(P("key.pub"), a), 0);
  assert_int_equal(edgert_key_id_file(P("key"), b), 0);
  assert_string_equal(a, key_id);
  assert_string_equal(b, key_id);
  assert_int_equal(strlen(key_id), 16);
  assert_string_not_equal(key_id, other_id);
  /* Never overwritten. */
  assert_int_equal(edgert_key_generate(P("key"), P("new.pub"), NULL), EDGERT_EEXIST);
  assert_int_equal(edgert_key_generate(P("new"), P("key.pub"), NULL), EDGERT_EEXIST);
  assert_int_equal(access(P("new"), F_OK), -1);
  assert_int_equal(access(P("new.pub"), F_OK), -1);
}

static void key_sets_take_public_ed25519_keys_only(void **state) {
  (void)state;
  edgert_keyset_t *ks = NULL;
  assert_int_equal(edgert_keyset_new(&ks), 0);
  char id[EDGERT_KEY_ID_SIZE];
  assert_int_equal(edgert_keyset_add_file(ks, P("key.pub"), id), 0);
  assert_string_equal(id, key_id);
  assert_int_equal(edgert_keyset_add_file(ks, P("key.pub"), id), 0); /* once */
  assert_int_equal(edgert_keyset_count(ks), 1);
  assert_int_equal(edgert_keyset_add_file(ks, P("key"), id), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "is a private key"));
  const char junk[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  assert_int_equal(edgert_keyset_add_pem(ks, junk, sizeof junk - 1, id), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not a PEM public key"));
  assert_int_equal(edgert_keyset_add_file(ks, P("missing.pub"), id), EDGERT_EIO);
  assert_int_equal(edgert_keyset_count(ks), 1);
  assert_string_equal(edgert_keyset_key_id(ks, 0), key_id);
  assert_null(edgert_keyset_key_id(ks, 1));
  edgert_keyset_free(ks);
  edgert_keyset_free(NULL);
}

/* ---- verification ------------------------------------------------------- */

static void good_signature_loads(void **state) {
  (void)state;
  const char *m = manifest("good.json", 3, FUTURE, P("key"));
  char *sig = read_text(P("good.json.sig"), NULL);
  char head[80];
  snprintf(head, sizeof head, "edgert-signature-v1\nkey-id: %s\nsignature: ", key_id);
  assert_memory_equal(sig, head, strlen(head));
  assert_int_equal(strlen(sig), strlen(head) + 128 + 1);
  free(sig);
  edgert_verify_result_t r;
  edgert_manifest_t *man = load_ok(m, NULL, &r);
  assert_string_equal(r.key_id, key_id);
  assert_int_equal(r.version, 3);
  assert_string_equal(r.expires, FUTURE);
  assert_int_equal(edgert_manifest_version(man), 3);
  edgert_func_t *f = NULL;
  assert_int_equal(edgert_manifest_function(man, "marker_answer", &f), 0);
  edgert_manifest_free(man);
  /* Verify alone reads no module. */
  unlink(marker);
  edgert_keyset_t *ks = trusted();
  edgert_verify_options_t opt = {.keys = ks};
  assert_int_equal(edgert_manifest_verify(m, &opt, &r), 0);
  edgert_keyset_free(ks);
  assert_false(ran());
}

static void missing_signature_file(void **state) {
  (void)state;
  const char *m = manifest("unsigned.json", 1, FUTURE, NULL);
  expect_refused(m, NULL, EDGERT_ESIGNATURE, "is not signed: no signature file");
}

static void one_changed_byte_in_the_manifest(void **state) {
  (void)state;
  const char *m = manifest("tamper.json", 1, FUTURE, P("key"));
  size_t len;
  char *text = read_text(m, &len);
  for (size_t i = 0; i < len; i += len / 7) {
    text[i] ^= 1;
    write_bytes(m, text, len);
    expect_refused(m, NULL, EDGERT_ESIGNATURE, "does not match its bytes");
    text[i] ^= 1;
  }
  write_bytes(m, text, len);
  edgert_manifest_free(load_ok(m, NULL, NULL)); /* restored: fine again */
  free(text);
}

static void signature_by_an_unknown_key(void **state) {
  (void)state;
  const char *m = manifest("unknown.json", 1, FUTURE, P("other"));
  char want[200];
  snprintf(want, sizeof want, "signed by key %s, which is not a trusted key (trusted: %s)",
           other_id, key_id);
  expect_refused(m, NULL, EDGERT_EUNKNOWNKEY, want);
  /* Forging the key-id line to name the trusted key does not help. */
  size_t len;
  char *sig = read_text(P("unknown.json.sig"), &len);
  char *at = strstr(sig, other_id);
  memcpy(at, key_id, 16);
  write_bytes(P("unknown.json.sig"), sig, len);
  expect_refused(m, NULL, EDGERT_ESIGNATURE, "does not match its bytes");
  free(sig);
}

static void truncated_signature_file(void **state) {
  (void)state;
  const char *m = manifest("trunc.json", 1, FUTURE, P("key"));
  size_t len;
  char *sig = read_text(P("trunc.json.sig"), &len);
  for (size_t cut = 0; cut < len; cut++) {
    write_bytes(P("trunc.json.sig"), sig, cut);
    expect_refused(m, NULL, EDGERT_ESIGNATURE, "signature file");
  }
  free(sig);
}

static void expired_manifest(void **state) {
  (void)state;
  const char *m = manifest("expired.json", 1, PAST, P("key"));
  expect_refused(m, NULL, EDGERT_EEXPIRED, "expired at " PAST);
  /* One second before the time it verifies; at the time it does not. */
  edgert_keyset_t *ks = trusted();
  edgert_verify_options_t opt = {.keys = ks, .now = 978307199};
  edgert_verify_result_t r;
  assert_int_equal(edgert_manifest_verify(m, &opt, &r), 0);
  assert_int_equal(r.expires_at, 978307200);
  opt.now = 978307200;
  assert_int_equal(edgert_manifest_verify(m, &opt, &r), EDGERT_EEXPIRED);
  edgert_keyset_free(ks);
}

static void rollback_and_replay_against_the_state_file(void **state) {
  (void)state;
  const char *st = P("state");
  unlink(st);
  edgert_verify_result_t r;
  const char *v1 = manifest("v1.json", 1, FUTURE, P("key"));
  size_t v1len, v1siglen;
  char *v1text = read_text(v1, &v1len), *v1sig = read_text(P("v1.json.sig"), &v1siglen);
  edgert_manifest_free(load_ok(v1, st, &r));
  assert_int_equal(r.previous_version, 0);
  char *s = read_text(st, NULL);
  assert_string_equal(s, "edgert-state-v1\nhighest-version: 1\n");
  free(s);
  const char *v5 = manifest("v5.json", 5, FUTURE, P("key"));
  edgert_manifest_free(load_ok(v5, st, &r));
  assert_int_equal(r.previous_version, 1);
  edgert_manifest_free(load_ok(v5, st, &r)); /* the same release again */
  /* Rollback to an older signed release. */
  const char *v3 = manifest("v3.json", 3, FUTURE, P("key"));
  expect_refused(v3, st, EDGERT_EROLLBACK,
                 "version 3 is older than version 5, which this device has "
                 "already accepted");
  /* Replay: v1's bytes and signature where v5 was. */
  write_bytes(v5, v1text, v1len);
  write_bytes(P("v5.json.sig"), v1sig, v1siglen);
  expect_refused(v5, st, EDGERT_EROLLBACK, "version 1 is older than version 5");
  s = read_text(st, NULL);
  assert_string_equal(s, "edgert-state-v1\nhighest-version: 5\n");
  free(s);
  free(v1text);
  free(v1sig);
}

static void a_state_file_that_cannot_be_written_loads_nothing(void **state) {
  (void)state;
  const char *m = manifest("state.json", 2, FUTURE, P("key"));
  write_bytes(P("blocker"), "x\n", 2);
  expect_refused(m, P("blocker/state"), EDGERT_ESTATE, "cannot be opened");
  assert_int_equal(mkdir(P("dirstate"), 0700), 0); /* a folder where the state file should be */
  expect_refused(m, P("dirstate"), EDGERT_ESTATE, "state file");
  write_bytes(P("badstate"), "edgert-state-v1\nhighest-version: x\n", 35);
  expect_refused(m, P("badstate"), EDGERT_ESTATE, "is malformed");
}

static void missing_release_fields_are_refused_by_sign(void **state) {
  (void)state;
  const char *m = manifest("noversion.json", 0, FUTURE, NULL);
  assert_int_equal(edgert_manifest_sign(m, P("key"), NULL, NULL), EDGERT_EMANIFEST);
  assert_non_null(strstr(edgert_last_error(), "version: a signed manifest must carry"));
  m = manifest("noexpires.json", 1, NULL, NULL);
  assert_int_equal(edgert_manifest_sign(m, P("key"), NULL, NULL), EDGERT_EMANIFEST);
  assert_int_equal(edgert_manifest_sign(m, P("key.pub"), NULL, NULL) < 0, 1);
  assert_int_equal(access(P("noexpires.json.sig"), F_OK), -1);
}

static void openssl_genpkey_keys_work(void **state) {
  (void)state;
  if (system("command -v openssl >/dev/null 2>&1") != 0)
    skip();
  char cmd[1200];
  snprintf(cmd, sizeof cmd,
           "openssl genpkey -algorithm ed25519 -out '%s' && "
           "openssl pkey -in '%s' -pubout -out '%s'",
           P("std.pem"), P("std.pem"), P("std.pub.pem"));
  assert_int_equal(system(cmd), 0);
  const char *m = manifest("std.json", 1, FUTURE, P("std.pem"));
  edgert_keyset_t *ks = NULL;
  assert_int_equal(edgert_keyset_new(&ks), 0);
  char id[EDGERT_KEY_ID_SIZE];
  assert_int_equal(edgert_keyset_add_file(ks, P("std.pub.pem"), id), 0);
  edgert_verify_options_t opt = {.keys = ks};
  edgert_verify_result_t r;
  assert_int_equal(edgert_manifest_verify(m, &opt, &r), 0);
  assert_string_equal(r.key_id, id);
  edgert_keyset_free(ks);
}

/* ---- the .sig reader over mutated input ---------------------------------- */

static void check_parse(const char *data, size_t len, long *accepted) {
  edgert_signature_t s;
  memset(&s, 0x5a, sizeof s);
  int rc = edgert_signature_parse(data, len, &s);
  if (rc == 0) {
    /* Accepted: it must be exactly the format again. */
    char again[300], hex[129];
    for (int i = 0; i < 64; i++)
      snprintf(hex + 2 * i, 3, "%02x", s.sig[i]);
    int n = snprintf(again, sizeof again,
                     "edgert-signature-v1\nkey-id: %s\nsignature: %s\n", s.key_id, hex);
    assert_int_equal((size_t)n, len);
    assert_memory_equal(again, data, len);
    (*accepted)++;
  } else {
    assert_int_equal(rc, EDGERT_ESIGNATURE);
    assert_memory_equal(edgert_last_error(), "signature file: ", 16);
  }
}

static void signature_reader_survives_mutations(void **state) {
  (void)state;
  const char *m = manifest("fuzz.json", 1, FUTURE, P("key"));
  (void)m;
  size_t len;
  char *sig = read_text(P("fuzz.json.sig"), &len);
  char *buf = malloc(len + 64);
  long accepted = 0, runs = 0;
  /* Every byte replaced by every value. */
  for (size_t i = 0; i < len; i++)
    for (int v = 0; v < 256; v++) {
      memcpy(buf, sig, len);
      buf[i] = (char)v;
      check_parse(buf, len, &accepted);
      runs++;
    }
  /* Every truncation, every deletion, every insertion of a few bytes. */
  for (size_t i = 0; i <= len; i++) {
    check_parse(sig, i, &accepted);
    memcpy(buf, sig, i);
    if (i < len) {
      memcpy(buf + i, sig + i + 1, len - i - 1);
      check_parse(buf, len - 1, &accepted);
    }
    static const char ins[] = {'\n', '\0', ' ', 'a', '\r', (char)0xff};
    for (size_t k = 0; k < sizeof ins; k++) {
      memcpy(buf, sig, i);
      buf[i] = ins[k];
      memcpy(buf + i + 1, sig + i, len - i);
      check_parse(buf, len + 1, &accepted);
      runs++;
    }
    runs += 2;
  }
  /* Random bytes of random lengths (a fixed seed: reproducible). */
  unsigned long x = 88172645463325252ul;
  char rnd[EDGERT_SIGNATURE_MAX_BYTES + 16];
  for (int t = 0; t < 20000; t++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = x % sizeof rnd;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* Mostly the format's own alphabet, so the reader gets deep. */
      rnd[i] = (x & 3) ? "edgrt-sinau1v\nkey-id: 0123456789abcdef"[x % 38] : (char)(x >> 8);
    }
    check_parse(rnd, n, &accepted);
    runs++;
  }
  /* Byte-for-byte mutations that keep hex digits hex are accepted; the
   * verifier then refuses them (one test above); everything else is a clean
   * refusal. */
  assert_true(accepted > 0);
  print_message("signature reader: %ld inputs, %ld accepted\n", runs, accepted);
  free(buf);
  free(sig);
}

/* ---- allocation failures --------------------------------------------------- */

static const char *oom_manifest;

static void *oom_keyset_setup(void) {
  edgert_keyset_t *ks = NULL;
  assert_int_equal(edgert_keyset_new(&ks), 0);
  return ks;
}
static int oom_keyset_run(void *st) {
  return edgert_keyset_add_file(st, P("key.pub"), NULL);
}
static void oom_keyset_unchanged(void *st) {
  assert_int_equal(edgert_keyset_count(st), 0);
}
static void oom_keyset_teardown(void *st) { edgert_keyset_free(st); }

static void *oom_verify_setup(void) { return trusted(); }
static int oom_verify_run(void *st) {
  edgert_verify_options_t opt = {.keys = st};
  edgert_verify_result_t r;
  return edgert_manifest_verify(oom_manifest, &opt, &r);
}

static void every_allocation_failure_is_enomem(void **state) {
  (void)state;
  oom_manifest = manifest("oom.json", 1, FUTURE, P("key"));
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t add = {"edgert_keyset_add_file", oom_keyset_setup,
                                oom_keyset_run, oom_keyset_unchanged,
                                oom_keyset_teardown, 0};
  edgert_test_oom_case_t verify = {"edgert_manifest_verify", oom_verify_setup,
                                   oom_verify_run, NULL, oom_keyset_teardown, 0};
  assert_true(edgert_test_failalloc_sweep(&add) >= 2);
  assert_true(edgert_test_failalloc_sweep(&verify) >= 4);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keys_are_pem_with_a_private_mode_and_a_stable_id),
      cmocka_unit_test(key_sets_take_public_ed25519_keys_only),
      cmocka_unit_test(good_signature_loads),
      cmocka_unit_test(missing_signature_file),
      cmocka_unit_test(one_changed_byte_in_the_manifest),
      cmocka_unit_test(signature_by_an_unknown_key),
      cmocka_unit_test(truncated_signature_file),
      cmocka_unit_test(expired_manifest),
      cmocka_unit_test(rollback_and_replay_against_the_state_file),
      cmocka_unit_test(a_state_file_that_cannot_be_written_loads_nothing),
      cmocka_unit_test(missing_release_fields_are_refused_by_sign),
      cmocka_unit_test(openssl_genpkey_keys_work),
      cmocka_unit_test(signature_reader_survives_mutations),
      cmocka_unit_test(every_allocation_failure_is_enomem),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
