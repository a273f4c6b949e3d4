/*
 * sign.c: Ed25519 key sets, signature files, signed-manifest verification
 * and the version state file (the format and rules: include/edgert/sign.h).
 *
 * Invariants: every cryptographic operation is OpenSSL's (EVP_DigestSign /
 * EVP_DigestVerify on EVP_PKEYs read from PEM); this file only frames
 * bytes. A key set holds keys parsed once, when added, and is read-only
 * afterwards, so concurrent verifications share it without a lock (each
 * uses its own EVP_MD_CTX). Verification reads the manifest's bytes exactly
 * once and parses the very buffer whose signature it checked, so a file
 * swapped between the check and the parse cannot slip in. Every refusal
 * happens before any module file is opened, and leaves OpenSSL's per-thread
 * error queue empty. The state file is only ever replaced whole (temporary
 * file, fsync, rename, fsync of the folder) under an exclusive flock of its
 * folder; its version never goes down.
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIG_MAGIC "edgert-signature-v1"
#define STATE_MAGIC "edgert-state-v1"
#define STATE_MAX_BYTES 256
#define PEM_MAX_BYTES 16384
#define ED25519_SIG_BYTES 64
#define ED25519_PUB_BYTES 32

typedef struct {
  EVP_PKEY *pkey;
  char id[EDGERT_KEY_ID_SIZE];
} key_t_;

struct edgert_keyset_s {
  size_t n, cap;
  key_t_ *keys;
};

/* ---- small helpers ------------------------------------------------------ */

/* OpenSSL's reason for the last failure on this thread, and the queue
 * emptied (a later, unrelated call must not report a stale error). */
static const char *ssl_reason(char *buf, size_t size) {
  unsigned long e = ERR_peek_last_error();
  if (e == 0)
    snprintf(buf, size, "no reason given");
  else
    ERR_error_string_n(e, buf, size);
  ERR_clear_error();
  return buf;
}

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexdigits[in[i] >> 4];
    out[2 * i + 1] = hexdigits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* fsync of the folder that holds `path`, so a rename in it is durable. */
static int sync_dir_of(const char *path) {
  char *dir = edgert__dir_of(path);
  if (dir == NULL)
    return -1;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  edgert__free(dir);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/*
 * Writes `len` bytes to `path` atomically: a new temporary file beside it
 * (mode `mode`), fsync, rename over `path`, fsync of the folder. On failure
 * the temporary file is removed, `path` is as before, and errno says why.
 */
static int write_atomic(const char *path, const char *data, size_t len,
                        mode_t mode) {
  static unsigned counter;
  size_t plen = strlen(path);
  char *tmp = edgert__malloc(plen + 48);
  if (tmp == NULL) {
    errno = ENOMEM;
    return -1;
  }
  snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(),
           __atomic_fetch_add(&counter, 1u, __ATOMIC_RELAXED));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    int e = errno;
    edgert__free(tmp);
    errno = e;
    return -1;
  }
  size_t off = 0;
  int e = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      e = errno;
      break;
    }
    off += (size_t)w;
  }
  if (e == 0 && fsync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && e == 0)
    e = errno;
  if (e == 0 && rename(tmp, path) != 0)
    e = errno;
  if (e != 0) {
    unlink(tmp);
    edgert__free(tmp);
    errno = e;
    return -1;
  }
  edgert__free(tmp);
  return sync_dir_of(path);
}

/* ---- RFC 3339 ----------------------------------------------------------- */

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int edgert__rfc3339_parse(const char *t, int64_t *seconds) {
  int y, mo, d, h, mi, s;
  if (t == NULL || strlen(t) != 20 || t[4] != '-' || t[7] != '-' ||
      t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != 'Z' ||
      digits(t, 4, &y) || digits(t + 5, 2, &mo) || digits(t + 8, 2, &d) ||
      digits(t + 11, 2, &h) || digits(t + 14, 2, &mi) ||
      digits(t + 17, 2, &s))
    return -1;
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) ||
      h > 23 || mi > 59 || s > 59)
    return -1;
  *seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  return 0;
}

/* ---- keys --------------------------------------------------------------- */

/* The key id of an Ed25519 key (public or private). */
static int key_id_of(EVP_PKEY *pkey, char id[EDGERT_KEY_ID_SIZE]) {
  unsigned char raw[ED25519_PUB_BYTES], md[EVP_MAX_MD_SIZE];
  size_t rawlen = sizeof raw;
  unsigned int mdlen = 0;
  char why[160];
  if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 ||
      rawlen != ED25519_PUB_BYTES ||
      EVP_Digest(raw, rawlen, md, &mdlen, EVP_sha256(), NULL) != 1)
    return edgert__error(EDGERT_EINVAL, "key: cannot read its public key: %s",
                         ssl_reason(why, sizeof why));
  to_hex(md, (EDGERT_KEY_ID_SIZE - 1) / 2, id);
  return 0;
}

enum { KEY_PUBLIC, KEY_ANY, KEY_PRIVATE };

/*
 * The common case, fast: a public key PEM exactly as `openssl pkey -pubout`
 * and edgert_key_generate write it ("-----BEGIN PUBLIC KEY-----", one line
 * of 60 base64 characters, "-----END PUBLIC KEY-----", final newline
 * optional) whose DER is the 44-byte SubjectPublicKeyInfo of an Ed25519 key
 * (RFC 8410: the fixed 12-byte header, then the raw 32-byte key). OpenSSL
 * decodes the base64 and makes the key from the raw bytes: 3-5 us, where
 * OpenSSL 3's generic PEM decoder chain takes about 350 us. Anything else
 * returns NULL and goes through that generic decoder, which then accepts or
 * refuses it with its reason.
 */
static EVP_PKEY *fast_ed25519_public(const char *pem, size_t len) {
  static const char head[] = "-----BEGIN PUBLIC KEY-----\n";
  static const char tail[] = "\n-----END PUBLIC KEY-----";
  static const unsigned char spki[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                         0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
  const size_t hl = sizeof head - 1, tl = sizeof tail - 1, bl = 60;
  if (len < hl + bl + tl || len > hl + bl + tl + 1 ||
      memcmp(pem, head, hl) != 0 || memcmp(pem + hl + bl, tail, tl) != 0 ||
      (len == hl + bl + tl + 1 && pem[len - 1] != '\n'))
    return NULL;
  const unsigned char *b64 = (const unsigned char *)pem + hl;
  unsigned char der[48];
  /* 44 bytes are 60 characters with one '=' of padding; EVP_DecodeBlock
   * counts the padding as a decoded zero byte (45). */
  if (b64[59] != '=' || b64[58] == '=' || EVP_DecodeBlock(der, b64, 60) != 45 ||
      memcmp(der, spki, sizeof spki) != 0)
    return NULL;
  EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
                                               der + sizeof spki, 32);
  if (pkey == NULL)
    ERR_clear_error();
  return pkey;
}

/*
 * Parses PEM text as an Ed25519 key: `want` says whether a public key, a
 * private key or either is asked for. `what` names the source in messages.
 */
static int parse_pem_key(const char *pem, size_t len, int want,
                         const char *what, EVP_PKEY **out) {
  char why[160];
  if (len > PEM_MAX_BYTES)
    return edgert__error(EDGERT_EINVAL, "%s: %zu bytes is too large for a PEM "
                                        "key",
                         what, len);
  int is_private = memmem(pem, len, "PRIVATE KEY-----", 16) != NULL;
  if (is_private && want == KEY_PUBLIC)
    return edgert__error(EDGERT_EINVAL,
                         "%s: is a private key; trust the public key instead "
                         "(openssl pkey -in KEY -pubout -out KEY.pub)",
                         what);
  if (!is_private && want == KEY_PRIVATE)
    return edgert__error(EDGERT_EINVAL,
                         "%s: is not a private key: signing needs the private "
                         "key (the public one is for verifying)",
                         what);
  if (!is_private) {
    EVP_PKEY *fast = fast_ed25519_public(pem, len);
    if (fast != NULL) {
      *out = fast;
      return 0;
    }
  }
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", what);
  EVP_PKEY *pkey = is_private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                              : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (pkey == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "%s: not a PEM %s key (%s); keys are made with "
                         "`edgert keygen` or `openssl genpkey -algorithm "
                         "ed25519`",
                         what, is_private ? "private" : "public",
                         ssl_reason(why, sizeof why));
  if (EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return edgert__error(EDGERT_EINVAL,
                         "%s: an %s key, not Ed25519; edgert signs and "
                         "verifies with Ed25519 keys only",
                         what, OBJ_nid2sn(EVP_PKEY_id(pkey)));
  }
  *out = pkey;
  return 0;
}

static int read_key_file(const char *path, int want, EVP_PKEY **out) {
  char q[220], what[260];
  char *buf = NULL;
  size_t len = 0;
  int e;
  snprintf(what, sizeof what, "key %s", edgert__quote_path(path, q, sizeof q));
  int rc = edgert__read_file(path, "key", PEM_MAX_BYTES, EDGERT_EINVAL, &buf, &len, &e);
  if (rc < 0)
    return rc;
  rc = parse_pem_key(buf, len, want, what, out);
  OPENSSL_cleanse(buf, len);
  edgert__free(buf);
  return rc;
}

int edgert_keyset_new(edgert_keyset_t **out) {
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  edgert_keyset_t *ks = edgert__calloc(1, sizeof *ks);
  if (ks == NULL)
    return edgert__error(EDGERT_ENOMEM, "key set: out of memory");
  *out = ks;
  return 0;
}

void edgert_keyset_free(edgert_keyset_t *ks) {
  if (ks == NULL)
    return;
  for (size_t i = 0; i < ks->n; i++)
    EVP_PKEY_free(ks->keys[i].pkey);
  edgert__free(ks->keys);
  edgert__free(ks);
}

/* Adds a parsed key (taking it) unless its id is there already. */
static int keyset_take(edgert_keyset_t *ks, EVP_PKEY *pkey,
                       char id_out[EDGERT_KEY_ID_SIZE]) {
  char id[EDGERT_KEY_ID_SIZE];
  int rc = key_id_of(pkey, id);
  if (rc < 0) {
    EVP_PKEY_free(pkey);
    return rc;
  }
  for (size_t i = 0; i < ks->n; i++)
    if (strcmp(ks->keys[i].id, id) == 0) {
      EVP_PKEY_free(pkey);
      if (id_out != NULL)
        memcpy(id_out, id, EDGERT_KEY_ID_SIZE);
      return 0;
    }
  if (ks->n == EDGERT_KEYSET_MAX_KEYS) {
    EVP_PKEY_free(pkey);
    return edgert__error(EDGERT_ELIMIT, "key set: more than %d keys",
                         EDGERT_KEYSET_MAX_KEYS);
  }
  if (ks->n == ks->cap) {
    size_t ncap = ks->cap ? ks->cap * 2 : 4;
    key_t_ *nk = edgert__realloc(ks->keys, ncap * sizeof *nk);
    if (nk == NULL) {
      EVP_PKEY_free(pkey);
      return edgert__error(EDGERT_ENOMEM, "key set: out of memory");
    }
    ks->keys = nk;
    ks->cap = ncap;
  }
  ks->keys[ks->n].pkey = pkey;
  memcpy(ks->keys[ks->n].id, id, EDGERT_KEY_ID_SIZE);
  ks->n++;
  if (id_out != NULL)
    memcpy(id_out, id, EDGERT_KEY_ID_SIZE);
  return 0;
}

int edgert_keyset_add_pem(edgert_keyset_t *ks, const char *pem, size_t len,
                          char id_out[EDGERT_KEY_ID_SIZE]) {
  EDGERT__RETURN_IF_NULL(ks, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(pem, EDGERT_EINVAL);
  EVP_PKEY *pkey = NULL;
  int rc = parse_pem_key(pem, len, KEY_PUBLIC, "public key", &pkey);
  if (rc < 0)
    return rc;
  return keyset_take(ks, pkey, id_out);
}

int edgert_keyset_add_file(edgert_keyset_t *ks, const char *path,
                           char id_out[EDGERT_KEY_ID_SIZE]) {
  EDGERT__RETURN_IF_NULL(ks, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(path, EDGERT_EINVAL);
  EVP_PKEY *pkey = NULL;
  int rc = read_key_file(path, KEY_PUBLIC, &pkey);
  if (rc < 0)
    return rc;
  return keyset_take(ks, pkey, id_out);
}

size_t edgert_keyset_count(const edgert_keyset_t *ks) {
  return ks == NULL ? 0 : ks->n;
}

const char *edgert_keyset_key_id(const edgert_keyset_t *ks, size_t i) {
  return ks == NULL || i >= ks->n ? NULL : ks->keys[i].id;
}

int edgert_key_id_file(const char *path, char id_out[EDGERT_KEY_ID_SIZE]) {
  EDGERT__RETURN_IF_NULL(path, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(id_out, EDGERT_EINVAL);
  EVP_PKEY *pkey = NULL;
  int rc = read_key_file(path, KEY_ANY, &pkey);
  if (rc < 0)
    return rc;
  rc = key_id_of(pkey, id_out);
  EVP_PKEY_free(pkey);
  return rc;
}

/* The PEM text of `pkey` (private or public) in a new buffer. */
static int pem_text(EVP_PKEY *pkey, int private_key, char **out, size_t *len) {
  char why[160];
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio == NULL)
    return edgert__error(EDGERT_ENOMEM, "keygen: out of memory");
  int ok = private_key
               ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
               : PEM_write_bio_PUBKEY(bio, pkey);
  char *data = NULL;
  long n = ok == 1 ? BIO_get_mem_data(bio, &data) : 0;
  if (ok != 1 || n <= 0) {
    BIO_free(bio);
    return edgert__error(EDGERT_ENOMEM, "keygen: cannot write the key as PEM: "
                                        "%s",
                         ssl_reason(why, sizeof why));
  }
  char *copy = edgert__malloc((size_t)n);
  if (copy == NULL) {
    BIO_free(bio);
    return edgert__error(EDGERT_ENOMEM, "keygen: out of memory");
  }
  memcpy(copy, data, (size_t)n);
  OPENSSL_cleanse(data, (size_t)n);
  BIO_free(bio);
  *out = copy;
  *len = (size_t)n;
  return 0;
}

/* Creates `path` (which must not exist) with `mode` and writes `data`. */
static int write_new_file(const char *path, const char *data, size_t len,
                          mode_t mode, const char *what) {
  char q[220];
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST)
      return edgert__error(EDGERT_EEXIST,
                           "%s %s already exists: keys are never overwritten; "
                           "remove it or choose another path",
                           what, edgert__quote_path(path, q, sizeof q));
    return edgert__error(EDGERT_EIO, "%s %s: %s", what,
                         edgert__quote_path(path, q, sizeof q), strerror(e));
  }
  int e = 0;
  if (fchmod(fd, mode) != 0)
    e = errno;
  size_t off = 0;
  while (e == 0 && off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      e = errno;
    else
      off += (size_t)w;
  }
  if (e == 0 && fsync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && e == 0)
    e = errno;
  if (e != 0) {
    unlink(path);
    return edgert__error(EDGERT_EIO, "%s %s: %s", what,
                         edgert__quote_path(path, q, sizeof q), strerror(e));
  }
  return 0;
}

int edgert_key_generate(const char *private_path, const char *public_path,
                        char id_out[EDGERT_KEY_ID_SIZE]) {
  EDGERT__RETURN_IF_NULL(private_path, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(public_path, EDGERT_EINVAL);
  char why[160], q[220];
  if (strcmp(private_path, public_path) == 0)
    return edgert__error(EDGERT_EINVAL,
                         "keygen: the private and public key paths are the "
                         "same (%s)",
                         edgert__quote_path(private_path, q, sizeof q));
  /* Both must be free before anything is written. */
  struct stat st;
  if (lstat(public_path, &st) == 0)
    return edgert__error(EDGERT_EEXIST,
                         "public key %s already exists: keys are never "
                         "overwritten; remove it or choose another path",
                         edgert__quote_path(public_path, q, sizeof q));
  EVP_PKEY *pkey = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 ||
      EVP_PKEY_keygen(ctx, &pkey) != 1) {
    EVP_PKEY_CTX_free(ctx);
    return edgert__error(EDGERT_ENOMEM, "keygen: OpenSSL could not make an "
                                        "Ed25519 key: %s",
                         ssl_reason(why, sizeof why));
  }
  EVP_PKEY_CTX_free(ctx);
  char *priv = NULL, *pub = NULL;
  size_t privlen = 0, publen = 0;
  char id[EDGERT_KEY_ID_SIZE];
  int rc = key_id_of(pkey, id);
  if (rc == 0)
    rc = pem_text(pkey, 1, &priv, &privlen);
  if (rc == 0)
    rc = pem_text(pkey, 0, &pub, &publen);
  EVP_PKEY_free(pkey);
  if (rc == 0)
    rc = write_new_file(private_path, priv, privlen, 0600, "private key");
  if (rc == 0) {
    rc = write_new_file(public_path, pub, publen, 0644, "public key");
    if (rc < 0)
      unlink(private_path);
  }
  if (priv != NULL) {
    OPENSSL_cleanse(priv, privlen);
    edgert__free(priv);
  }
  edgert__free(pub);
  if (rc == 0 && sync_dir_of(private_path) != 0)
    rc = edgert__error(EDGERT_EIO, "keygen: cannot sync the folder of %s: %s",
                       edgert__quote_path(private_path, q, sizeof q), strerror(errno));
  if (rc == 0 && id_out != NULL)
    memcpy(id_out, id, EDGERT_KEY_ID_SIZE);
  return rc;
}

/* ---- signature files ---------------------------------------------------- */

/* Line `n` of the text starting at *p: its bytes without the "\n" in
 * [*start, *start + *len); *p moves past the "\n". -1 when no "\n" ends it
 * (the file is truncated). */
static int next_line(const char **p, const char *end, const char **start,
                     size_t *len) {
  const char *nl = memchr(*p, '\n', (size_t)(end - *p));
  if (nl == NULL)
    return -1;
  *start = *p;
  *len = (size_t)(nl - *p);
  *p = nl + 1;
  return 0;
}

/* A message-safe excerpt of untrusted bytes: printable ASCII, others as ?. */
static const char *excerpt(const char *s, size_t n, char *buf, size_t size) {
  size_t o = 0;
  buf[o++] = '\'';
  for (size_t i = 0; i < n && o + 6 < size; i++) {
    if (i == 40) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    unsigned char c = (unsigned char)s[i];
    buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

/* "<field>: <hex digits>" on one line into `out` (nbytes bytes). */
static int hex_field(const char *line, size_t len, int lineno,
                     const char *field, unsigned char *out, size_t nbytes,
                     char *id_text) {
  char ex[64];
  size_t flen = strlen(field);
  if (len < flen + 2 || memcmp(line, field, flen) != 0 || line[flen] != ':' ||
      line[flen + 1] != ' ')
    return edgert__error(EDGERT_ESIGNATURE,
                         "signature file: line %d: expected '%s: ...', got %s; "
                         "sign the manifest again (edgert sign)",
                         lineno, field, excerpt(line, len, ex, sizeof ex));
  const char *h = line + flen + 2;
  size_t hl = len - flen - 2;
  if (hl != 2 * nbytes)
    return edgert__error(EDGERT_ESIGNATURE,
                         "signature file: line %d: %s: expected %zu hex digits, "
                         "got %zu%s; sign the manifest again (edgert sign)",
                         lineno, field, 2 * nbytes, hl,
                         hl < 2 * nbytes ? " (truncated)" : "");
  for (size_t i = 0; i < nbytes; i++) {
    int hi = hex_value(h[2 * i]), lo = hex_value(h[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return edgert__error(EDGERT_ESIGNATURE,
                           "signature file: line %d: %s: character %zu is not "
                           "a lowercase hex digit; sign the manifest again "
                           "(edgert sign)",
                           lineno, field, hi < 0 ? 2 * i + 1 : 2 * i + 2);
    if (out != NULL)
      out[i] = (unsigned char)(hi << 4 | lo);
  }
  if (id_text != NULL) {
    memcpy(id_text, h, hl);
    id_text[hl] = '\0';
  }
  return 0;
}

int edgert_signature_parse(const char *text, size_t len,
                           edgert_signature_t *out) {
  EDGERT__RETURN_IF_NULL(text, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  char ex[64];
  if (len > EDGERT_SIGNATURE_MAX_BYTES)
    return edgert__error(EDGERT_ESIGNATURE,
                         "signature file: %zu bytes, more than a signature "
                         "file holds (%d)",
                         len, EDGERT_SIGNATURE_MAX_BYTES);
  if (len == 0)
    return edgert__error(EDGERT_ESIGNATURE,
                         "signature file: empty; sign the manifest again "
                         "(edgert sign)");
  const char *p = text, *end = text + len, *line;
  size_t ll;
  edgert_signature_t s;
  static const char *const what[3] = {"the first line", "the key-id line",
                                      "the signature line"};
  for (int i = 0; i < 3; i++) {
    if (next_line(&p, end, &line, &ll) < 0)
      return edgert__error(EDGERT_ESIGNATURE,
                           "signature file: truncated: it ends before the end "
                           "of %s; sign the manifest again (edgert sign)",
                           what[i]);
    int rc = 0;
    if (i == 0) {
      if (ll != strlen(SIG_MAGIC) || memcmp(line, SIG_MAGIC, ll) != 0)
        return edgert__error(EDGERT_ESIGNATURE,
                             "signature file: line 1: expected '" SIG_MAGIC
                             "', got %s: not an edgert signature file",
                             excerpt(line, ll, ex, sizeof ex));
    } else if (i == 1) {
      rc = hex_field(line, ll, 2, "key-id", NULL, (EDGERT_KEY_ID_SIZE - 1) / 2,
                     s.key_id);
    } else {
      rc = hex_field(line, ll, 3, "signature", s.sig, ED25519_SIG_BYTES, NULL);
    }
    if (rc < 0)
      return rc;
  }
  if (p != end)
    return edgert__error(EDGERT_ESIGNATURE,
                         "signature file: %zu bytes after the signature line; "
                         "a signature file has exactly three lines",
                         (size_t)(end - p));
  *out = s;
  return 0;
}

/* "<manifest>.sig" in a new string, or sig_path copied. */
static char *sig_path_for(const char *manifest, const char *sig_path) {
  if (sig_path != NULL)
    return edgert__strdup(sig_path);
  size_t n = strlen(manifest);
  char *s = edgert__malloc(n + 5);
  if (s != NULL) {
    memcpy(s, manifest, n);
    memcpy(s + n, ".sig", 5);
  }
  return s;
}

int edgert_manifest_sign(const char *manifest_path,
                         const char *private_key_path, const char *sig_path,
                         char id_out[EDGERT_KEY_ID_SIZE]) {
  EDGERT__RETURN_IF_NULL(manifest_path, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(private_key_path, EDGERT_EINVAL);
  char why[160], q[220];
  char *buf = NULL, *dir = NULL, *out_path = NULL;
  size_t len = 0;
  int e;
  int rc = edgert__read_file(manifest_path, "manifest", EDGERT_MANIFEST_MAX_BYTES,
                    EDGERT_EMANIFEST, &buf, &len, &e);
  if (rc < 0)
    return rc;
  /* Sign only what verification would accept. */
  edgert_manifest_t *m = NULL;
  dir = edgert__dir_of(manifest_path);
  if (dir == NULL) {
    edgert__free(buf);
    return edgert__error(EDGERT_ENOMEM, "sign: out of memory");
  }
  rc = edgert_manifest_parse(buf, len, dir, &m);
  edgert__free(dir);
  if (rc == 0 && edgert_manifest_version(m) == 0)
    rc = edgert__error(EDGERT_EMANIFEST,
                       "version: a signed manifest must carry \"version\", a "
                       "positive integer that rises with each release; add "
                       "it, then sign");
  else if (rc == 0 && edgert_manifest_expires(m, NULL) == NULL)
    rc = edgert__error(EDGERT_EMANIFEST,
                       "expires: a signed manifest must carry \"expires\", an "
                       "RFC 3339 UTC time such as \"2027-01-01T00:00:00Z\"; "
                       "add it, then sign");
  edgert_manifest_free(m);
  EVP_PKEY *pkey = NULL;
  if (rc == 0)
    rc = read_key_file(private_key_path, KEY_PRIVATE, &pkey);
  char id[EDGERT_KEY_ID_SIZE];
  unsigned char sig[ED25519_SIG_BYTES];
  size_t siglen = sizeof sig;
  if (rc == 0)
    rc = key_id_of(pkey, id);
  if (rc == 0) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)buf, len) != 1 ||
        siglen != ED25519_SIG_BYTES)
      rc = edgert__error(EDGERT_EINVAL,
                         "sign: key %s cannot sign (%s); give the private key "
                         "made by `edgert keygen`",
                         edgert__quote_path(private_key_path, q, sizeof q),
                         ssl_reason(why, sizeof why));
    EVP_MD_CTX_free(ctx);
  }
  EVP_PKEY_free(pkey);
  edgert__free(buf);
  if (rc < 0)
    return rc;
  char text[sizeof SIG_MAGIC + 16 + EDGERT_KEY_ID_SIZE + 12 +
            2 * ED25519_SIG_BYTES + 4];
  char sighex[2 * ED25519_SIG_BYTES + 1];
  to_hex(sig, sizeof sig, sighex);
  int n = snprintf(text, sizeof text, SIG_MAGIC "\nkey-id: %s\nsignature: %s\n",
                   id, sighex);
  out_path = sig_path_for(manifest_path, sig_path);
  if (out_path == NULL)
    return edgert__error(EDGERT_ENOMEM, "sign: out of memory");
  if (write_atomic(out_path, text, (size_t)n, 0644) != 0)
    rc = edgert__error(EDGERT_EIO, "signature file %s: %s",
                       edgert__quote_path(out_path, q, sizeof q), strerror(errno));
  edgert__free(out_path);
  if (rc == 0 && id_out != NULL)
    memcpy(id_out, id, EDGERT_KEY_ID_SIZE);
  return rc;
}

/* ---- the state file ----------------------------------------------------- */

/* The highest version recorded in the state file, 0 when it does not
 * exist. EDGERT_ESTATE when it cannot be read or is malformed. */
static int state_read(const char *path, int64_t *version) {
  char q[220];
  char *buf = NULL;
  size_t len = 0;
  int e;
  int rc = edgert__read_file(path, "state file", STATE_MAX_BYTES, EDGERT_ESTATE, &buf,
                    &len, &e);
  if (rc < 0) {
    if (e == ENOENT) {
      *version = 0;
      return 0;
    }
    if (rc == EDGERT_ENOMEM)
      return rc;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", edgert_last_error());
    return edgert__error(EDGERT_ESTATE,
                         "%s; the highest accepted version cannot be read, so "
                         "nothing is loaded: fix the state file's path or "
                         "permissions",
                         msg);
  }
  static const char head[] = STATE_MAGIC "\nhighest-version: ";
  size_t hl = sizeof head - 1;
  int64_t v = 0;
  size_t i = hl, nd = 0;
  int ok = len > hl && memcmp(buf, head, hl) == 0;
  while (ok && i < len && buf[i] >= '0' && buf[i] <= '9' && nd < 16) {
    v = v * 10 + (buf[i] - '0');
    i++;
    nd++;
  }
  ok = ok && nd > 0 && !(nd > 1 && buf[hl] == '0') && i + 1 == len &&
       buf[i] == '\n' && v >= 1;
  edgert__free(buf);
  if (!ok)
    return edgert__error(EDGERT_ESTATE,
                         "state file %s is malformed (expected '" STATE_MAGIC
                         "' and 'highest-version: N'), so nothing is loaded: "
                         "restore it from a backup, or remove it to accept "
                         "any signed version again",
                         edgert__quote_path(path, q, sizeof q));
  *version = v;
  return 0;
}

/*
 * Checks `version` against the state file and records it when higher,
 * holding an exclusive flock on the folder throughout. *previous receives
 * the version recorded before.
 */
static int state_check_and_record(const char *path, int64_t version,
                                  int64_t *previous) {
  char q[220];
  char *dir = edgert__dir_of(path);
  if (dir == NULL)
    return edgert__error(EDGERT_ENOMEM, "state file: out of memory");
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int e = errno;
    int rc = edgert__error(EDGERT_ESTATE,
                           "state file %s: its folder %s cannot be opened "
                           "(%s), so nothing is loaded: give a state file in "
                           "an existing, writable folder",
                           edgert__quote_path(path, q, sizeof q), dir, strerror(e));
    edgert__free(dir);
    return rc;
  }
  edgert__free(dir);
  while (flock(dfd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int e = errno;
      close(dfd);
      return edgert__error(EDGERT_ESTATE, "state file %s: cannot lock its "
                                          "folder: %s",
                           edgert__quote_path(path, q, sizeof q), strerror(e));
    }
  }
  int64_t highest = 0;
  int rc = state_read(path, &highest);
  if (rc == 0)
    *previous = highest;
  if (rc == 0 && version < highest)
    rc = edgert__error(EDGERT_EROLLBACK,
                       "manifest version %" PRId64 " is older than version "
                       "%" PRId64 ", which this device has already accepted "
                       "(state file %s): an old release was replayed or "
                       "rolled back; install version %" PRId64 " or newer",
                       version, highest, edgert__quote_path(path, q, sizeof q), highest);
  if (rc == 0 && version > highest) {
    char text[80];
    int n = snprintf(text, sizeof text, STATE_MAGIC "\nhighest-version: %" PRId64
                     "\n", version);
    if (write_atomic(path, text, (size_t)n, 0644) != 0)
      rc = edgert__error(EDGERT_ESTATE,
                         "state file %s: cannot record version %" PRId64
                         " (%s), so nothing is loaded: give a state file in "
                         "a writable folder",
                         edgert__quote_path(path, q, sizeof q), version, strerror(errno));
  }
  flock(dfd, LOCK_UN);
  close(dfd);
  return rc;
}

/* ---- verification ------------------------------------------------------- */

static const key_t_ *find_key(const edgert_keyset_t *ks, const char *id) {
  for (size_t i = 0; i < ks->n; i++)
    if (strcmp(ks->keys[i].id, id) == 0)
      return &ks->keys[i];
  return NULL;
}

/* The first few trusted ids, for a message. */
static const char *id_list(const edgert_keyset_t *ks, char *buf, size_t size) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < ks->n && o + EDGERT_KEY_ID_SIZE + 8 < size; i++)
    o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "",
                          ks->keys[i].id);
  if (ks->n == 0)
    snprintf(buf, size, "none");
  return buf;
}

int edgert_manifest_read_signed(const char *path,
                                const edgert_verify_options_t *opt,
                                edgert_manifest_t **out,
                                edgert_verify_result_t *res) {
  EDGERT__RETURN_IF_NULL(path, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(opt, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  if (opt->keys == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_manifest_read_signed: "
                                        "opt->keys is NULL");
  if (opt->keys->n == 0)
    return edgert__error(EDGERT_EINVAL, "verify: the key set is empty: add the "
                                        "public keys to trust");
  char q[220], q2[220], why[160];
  char *buf = NULL, *sigtext = NULL, *spath = NULL, *dir = NULL;
  size_t len = 0, siglen = 0;
  edgert_manifest_t *m = NULL;
  edgert_signature_t sig;
  edgert_verify_result_t r;
  memset(&r, 0, sizeof r);
  int e;
  int rc = edgert__read_file(path, "manifest", EDGERT_MANIFEST_MAX_BYTES,
                    EDGERT_EMANIFEST, &buf, &len, &e);
  if (rc < 0)
    return rc;
  spath = sig_path_for(path, opt->sig_path);
  if (spath == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "verify: out of memory");
    goto done;
  }
  rc = edgert__read_file(spath, "signature file", EDGERT_SIGNATURE_MAX_BYTES,
                EDGERT_ESIGNATURE, &sigtext, &siglen, &e);
  if (rc < 0) {
    if (e == ENOENT)
      rc = edgert__error(EDGERT_ESIGNATURE,
                         "manifest %s is not signed: no signature file %s; "
                         "sign it (edgert sign MANIFEST --key KEY) or load it "
                         "without trusted keys",
                         edgert__quote_path(path, q, sizeof q), edgert__quote_path(spath, q2, sizeof q2));
    goto done;
  }
  rc = edgert_signature_parse(sigtext, siglen, &sig);
  if (rc < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", edgert_last_error());
    rc = edgert__error(rc, "%s: %s", edgert__quote_path(spath, q, sizeof q), msg);
    goto done;
  }
  const key_t_ *key = find_key(opt->keys, sig.key_id);
  if (key == NULL) {
    char ids[200];
    rc = edgert__error(EDGERT_EUNKNOWNKEY,
                       "manifest %s is signed by key %s, which is not a "
                       "trusted key (trusted: %s): add that key's public key "
                       "to the trusted keys, or sign with a trusted key",
                       edgert__quote_path(path, q, sizeof q), sig.key_id,
                       id_list(opt->keys, ids, sizeof ids));
    goto done;
  }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "verify: out of memory");
    goto done;
  }
  int ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
           EVP_DigestVerify(ctx, sig.sig, sizeof sig.sig,
                            (const unsigned char *)buf, len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    ssl_reason(why, sizeof why);
    rc = edgert__error(EDGERT_ESIGNATURE,
                       "manifest %s: the signature by key %s does not match "
                       "its bytes: the manifest or its signature file was "
                       "changed after signing; restore both from the "
                       "release, or sign again",
                       edgert__quote_path(path, q, sizeof q), sig.key_id);
    goto done;
  }
  /* The bytes are genuine: parse exactly these. */
  dir = edgert__dir_of(path);
  if (dir == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "verify: out of memory");
    goto done;
  }
  rc = edgert_manifest_parse(buf, len, dir, &m);
  if (rc < 0)
    goto done;
  r.version = edgert_manifest_version(m);
  const char *exp = edgert_manifest_expires(m, &r.expires_at);
  if (r.version == 0) {
    rc = edgert__error(EDGERT_EMANIFEST,
                       "version: manifest %s is signed but carries no "
                       "\"version\" (a positive integer that rises with each "
                       "release): add it and sign again",
                       edgert__quote_path(path, q, sizeof q));
    goto done;
  }
  if (exp == NULL) {
    rc = edgert__error(EDGERT_EMANIFEST,
                       "expires: manifest %s is signed but carries no "
                       "\"expires\" (an RFC 3339 UTC time such as "
                       "\"2027-01-01T00:00:00Z\"): add it and sign again",
                       edgert__quote_path(path, q, sizeof q));
    goto done;
  }
  snprintf(r.expires, sizeof r.expires, "%s", exp);
  memcpy(r.key_id, sig.key_id, EDGERT_KEY_ID_SIZE);
  int64_t now = opt->now != 0 ? opt->now : (int64_t)time(NULL);
  if (now >= r.expires_at) {
    rc = edgert__error(EDGERT_EEXPIRED,
                       "manifest %s (version %" PRId64 ") expired at %s: a "
                       "device must not run a release its publisher stopped "
                       "vouching for; install a newly signed manifest",
                       edgert__quote_path(path, q, sizeof q), r.version, r.expires);
    goto done;
  }
  if (opt->state_file != NULL) {
    rc = state_check_and_record(opt->state_file, r.version,
                                &r.previous_version);
    if (rc < 0)
      goto done;
  }
done:
  ERR_clear_error();
  edgert__free(dir);
  edgert__free(spath);
  edgert__free(sigtext);
  edgert__free(buf);
  if (rc < 0) {
    edgert_manifest_free(m);
    return rc;
  }
  *out = m;
  if (res != NULL)
    *res = r;
  return 0;
}

int edgert_manifest_verify(const char *path, const edgert_verify_options_t *opt,
                           edgert_verify_result_t *res) {
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_read_signed(path, opt, &m, res);
  edgert_manifest_free(m);
  return rc;
}

int edgert_manifest_load_signed(const char *path,
                                const edgert_verify_options_t *opt,
                                edgert_manifest_t **out,
                                edgert_verify_result_t *res) {
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  edgert_manifest_t *m = NULL;
  edgert_verify_result_t r;
  int rc = edgert_manifest_read_signed(path, opt, &m, &r);
  if (rc < 0)
    return rc;
  rc = edgert_manifest_load_modules(m);
  if (rc < 0) {
    edgert_manifest_free(m);
    return rc;
  }
  *out = m;
  if (res != NULL)
    *res = r;
  return 0;
}
