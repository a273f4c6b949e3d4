/*
 * edgert/sign.h: signed manifests (Ed25519 through OpenSSL's libcrypto).
 *
 * A manifest's SHA-256 entries protect its modules only as far as the
 * manifest itself is trusted. A signed manifest is one whose exact bytes
 * carry a detached Ed25519 signature in a text file beside it,
 * "<manifest>.sig":
 *
 *   edgert-signature-v1\n
 *   key-id: <16 lowercase hex digits>\n
 *   signature: <128 lowercase hex digits: the 64-byte Ed25519 signature>\n
 *
 * exactly these three lines, each ending in "\n", nothing else. The key id
 * is the first 16 hex digits of the SHA-256 of the raw 32-byte Ed25519
 * public key. A signed manifest also carries, at top level, "version" (a
 * positive integer that rises with each release) and "expires" (RFC 3339
 * UTC, "2027-01-01T00:00:00Z"). Keys are standard PEM files: `openssl
 * genpkey -algorithm ed25519` makes a private key, `openssl pkey -pubout`
 * its public key. docs/signing.md has the format and what it protects
 * against.
 *
 * Verification (edgert_manifest_load_signed and friends) reads the
 * manifest's bytes once, checks the signature over exactly those bytes,
 * parses those same bytes, and refuses, before any module is read:
 *   EDGERT_ESIGNATURE   no .sig file, a malformed or truncated .sig, or a
 *                       signature that does not match the bytes
 *   EDGERT_EUNKNOWNKEY  a .sig by a key id that is not in the key set
 *   EDGERT_EMANIFEST    a signed manifest without "version" or "expires"
 *                       (or anything the manifest reader refuses)
 *   EDGERT_EEXPIRED     "expires" is not after now
 *   EDGERT_EROLLBACK    "version" is lower than the highest version this
 *                       device accepted (the state file's)
 *   EDGERT_ESTATE       the state file cannot be read, is malformed, or a
 *                       higher version cannot be recorded in it
 * each with a message that names the file and says what to do.
 *
 * The state file (optional, named by the caller) records the highest
 * version accepted, as "edgert-state-v1\nhighest-version: N\n". A missing
 * file means no version accepted yet. When a manifest's version is higher
 * than the recorded one, the new version is written before the manifest is
 * returned (and before any module loads): a temporary file in the same
 * folder, fsync, rename over the state file, fsync of the folder; the
 * read-compare-write holds an exclusive flock on the folder, so two
 * processes verifying at once cannot lower it. An equal version is the same
 * release again and is accepted without a write.
 *
 * Ownership: a key set belongs to the caller (edgert_keyset_free). Threads:
 * a key set is read-only once its keys are added, and may then be used by
 * any number of threads at once; adding keys must not race with anything on
 * the same set. Nothing here runs foreign code except
 * edgert_manifest_load_signed (module constructors).
 */
#ifndef EDGERT_SIGN_H
#define EDGERT_SIGN_H

#include "common.h"
#include "manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A key id is 16 lowercase hex digits; buffers for one hold this many bytes
 * (with the terminating NUL). */
#define EDGERT_KEY_ID_SIZE 17
/* The most keys in one key set. */
#define EDGERT_KEYSET_MAX_KEYS 256
/* Signature files larger than this are refused unread. */
#define EDGERT_SIGNATURE_MAX_BYTES 1024

typedef struct edgert_keyset_s edgert_keyset_t;

/* A new, empty key set in *out. Returns 0, EDGERT_EINVAL, EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_keyset_new(edgert_keyset_t **out);
/* Frees the set and its keys. NULL is ignored. */
EDGERT_EXTERN void edgert_keyset_free(edgert_keyset_t *ks);

/*
 * Adds the Ed25519 public key in PEM text (`len` bytes at `pem`,
 * "-----BEGIN PUBLIC KEY-----", as `openssl pkey -pubout` writes). The key
 * is parsed once, here. `id_out` (may be NULL) receives its key id. A key
 * already in the set is not added twice (0, same id). Returns 0, or
 * EDGERT_EINVAL (not a PEM public key, a private key, a key of another
 * algorithm: the message says which), EDGERT_ELIMIT (more than
 * EDGERT_KEYSET_MAX_KEYS), EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_keyset_add_pem(edgert_keyset_t *ks, const char *pem,
                                        size_t len,
                                        char id_out[EDGERT_KEY_ID_SIZE]);
/* edgert_keyset_add_pem with the contents of the file at `path`; also
 * EDGERT_EIO naming the file when it cannot be read. */
EDGERT_EXTERN int edgert_keyset_add_file(edgert_keyset_t *ks, const char *path,
                                         char id_out[EDGERT_KEY_ID_SIZE]);
/* The number of keys in the set (0 for NULL). */
EDGERT_EXTERN size_t edgert_keyset_count(const edgert_keyset_t *ks);
/* Key i's id (borrowed from the set), or NULL if i is out of range. */
EDGERT_EXTERN const char *edgert_keyset_key_id(const edgert_keyset_t *ks,
                                               size_t i);

/*
 * Makes a new Ed25519 key pair and writes it as PEM: the private key
 * (PKCS#8, unencrypted) to `private_path` with mode 0600, the public key
 * (SubjectPublicKeyInfo) to `public_path`. Neither file may exist yet
 * (EDGERT_EEXIST naming it: keys are never overwritten). `id_out` (may be
 * NULL) receives the key id. Returns 0, EDGERT_EINVAL, EDGERT_EEXIST,
 * EDGERT_EIO (nothing is left behind), EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_key_generate(const char *private_path,
                                      const char *public_path,
                                      char id_out[EDGERT_KEY_ID_SIZE]);

/* The key id of the Ed25519 key in the PEM file at `path` (a public key, or
 * a private key: the id is its public key's). Returns 0, EDGERT_EIO,
 * EDGERT_EINVAL (not an Ed25519 PEM key). */
EDGERT_EXTERN int edgert_key_id_file(const char *path,
                                     char id_out[EDGERT_KEY_ID_SIZE]);

/*
 * Signs the exact bytes of the manifest file at `manifest_path` with the
 * Ed25519 private key in the PEM file `private_key_path` and writes the
 * signature file (atomically: temporary file, fsync, rename) to `sig_path`,
 * or to "<manifest_path>.sig" when sig_path is NULL. The manifest must be
 * one the reader accepts and carry "version" and "expires" (EDGERT_EMANIFEST
 * naming the field otherwise): what is signed is what verification
 * accepts. `id_out` (may be NULL) receives the key id. Returns 0,
 * EDGERT_EINVAL (bad key), EDGERT_EMANIFEST, EDGERT_EIO, EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_manifest_sign(const char *manifest_path,
                                       const char *private_key_path,
                                       const char *sig_path,
                                       char id_out[EDGERT_KEY_ID_SIZE]);

/* A parsed signature file. */
typedef struct edgert_signature_s {
  char key_id[EDGERT_KEY_ID_SIZE];
  unsigned char sig[64];
} edgert_signature_t;

/*
 * Parses the text of a signature file (`len` bytes, no terminator needed)
 * in the format above. Returns 0 and *out, or EDGERT_ESIGNATURE with a
 * message naming the line and what is wrong ("truncated" when the text ends
 * early), EDGERT_EINVAL for NULL arguments. Runs no foreign code; *out is
 * untouched on failure.
 */
EDGERT_EXTERN int edgert_signature_parse(const char *text, size_t len,
                                         edgert_signature_t *out);

/* What verification needs. Zero-initialize, then set `keys`. */
typedef struct edgert_verify_options_s {
  const edgert_keyset_t *keys; /* required: the trusted keys */
  const char *sig_path;        /* NULL: "<manifest>.sig" */
  const char *state_file;      /* NULL: no version check or record */
  int64_t now;                 /* 0: the clock; else seconds since the epoch */
} edgert_verify_options_t;

/* What verification found. */
typedef struct edgert_verify_result_s {
  char key_id[EDGERT_KEY_ID_SIZE]; /* the key that signed */
  int64_t version;                 /* the manifest's "version" */
  char expires[32];                /* "expires" as written */
  int64_t expires_at;              /* the same, seconds since the epoch */
  int64_t previous_version;        /* the state file's before: 0 for none */
} edgert_verify_result_t;

/*
 * Verifies the signed manifest at `path` as described above and returns it
 * parsed (module paths resolved against its directory; nothing loaded) in
 * *out. With opt->state_file, the version is checked against it and
 * recorded in it. `res` (may be NULL) receives what was verified. Returns
 * 0, or EDGERT_ESIGNATURE, EDGERT_EUNKNOWNKEY, EDGERT_EEXPIRED,
 * EDGERT_EROLLBACK, EDGERT_ESTATE, EDGERT_EMANIFEST, EDGERT_EIO (the
 * manifest or .sig cannot be read), EDGERT_EINVAL, EDGERT_ENOMEM; *out is
 * untouched on failure.
 */
EDGERT_EXTERN int edgert_manifest_read_signed(const char *path,
                                              const edgert_verify_options_t *opt,
                                              edgert_manifest_t **out,
                                              edgert_verify_result_t *res);

/* edgert_manifest_read_signed without keeping the manifest. */
EDGERT_EXTERN int edgert_manifest_verify(const char *path,
                                         const edgert_verify_options_t *opt,
                                         edgert_verify_result_t *res);

/*
 * edgert_manifest_read_signed + edgert_manifest_load_modules: the signed
 * counterpart of edgert_manifest_load. No module file is opened before the
 * signature, expiry and version checks pass (and the state file is
 * written). Returns as the two (nothing stays loaded on failure; a version
 * recorded before a module failed to load stays recorded: the release was
 * genuinely signed). May run foreign code: module constructors.
 */
EDGERT_EXTERN int edgert_manifest_load_signed(const char *path,
                                              const edgert_verify_options_t *opt,
                                              edgert_manifest_t **out,
                                              edgert_verify_result_t *res);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_SIGN_H */
