/*
 * manifest.c: the strict JSON manifest reader and the loading of what it lists.
 *
 * Invariants: cJSON is used only to tokenize; every schema rule is checked
 * here by walking each object's members in document order, so duplicate and
 * case-variant keys (which cJSON_GetObjectItem would hide) are seen, and the
 * raw text is checked before and after cJSON for what cJSON cannot report
 * or lets through: NUL bytes, invalid UTF-8, escaped NULs (cJSON silently
 * cuts a string at "\u0000"), trailing data, and everything outside RFC 8259
 * that cJSON accepts (numbers such as "01", raw control characters in
 * strings, whitespace other than space/tab/CR/LF): what this reader accepts
 * is strict JSON. cJSON's process-global error pointer is never read; error
 * positions come from the parse-end pointer of this call, and calls into
 * cJSON's parser are serialized by one mutex because a failing parse writes
 * that global (two threads refusing manifests at once would race on it).
 * A manifest, once returned, holds only validated data: identifiers, canonical contracts,
 * lowercase 64-digit hashes, and (when parsed with a base directory)
 * absolute paths of regular files that existed at parse time. All memory is
 * ours (edgert__malloc); the cJSON tree never outlives a parse. Every
 * refusal of the document is EDGERT_EMANIFEST with a message that starts
 * with the field it concerns. Loading is all-or-nothing.
 */
#include "internal.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry_s {
  char *path;                   /* as written */
  char *file;                   /* resolved absolute path (or path as written) */
  char sha256[65];              /* lowercase */
  size_t ncontracts;
  edgert_contract_t *contracts; /* ncontracts, validated */
  edgert_module_t *module;      /* after edgert_manifest_load_modules */
  size_t ndeps;                 /* "dependencies" (optional) */
  struct dep_s {
    char *path;                 /* as written */
    char *file;                 /* resolved absolute path (or as written) */
    char sha256[65];            /* lowercase */
  } *deps;
  int isolated;                 /* "isolation" (optional) was given */
  edgert_isolate_options_t iso; /* its options (worker_path NULL) */
} entry_t;

struct edgert_manifest_s {
  size_t nmodules;
  entry_t *modules;
  int resolved; /* parsed with a base directory */
  int loaded;
  int64_t version;     /* top-level "version", 0 when absent (sign.c) */
  int64_t expires_at;  /* top-level "expires" in seconds since the epoch */
  char expires[32];    /* "expires" as written, "" when absent */
};

/* cJSON's parser writes a process-global error record when it fails. */
static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork.c's handlers: cjson_lock is held around one parse. */
void edgert__manifest_fork_prepare(void) { pthread_mutex_lock(&cjson_lock); }
void edgert__manifest_fork_parent(void) { pthread_mutex_unlock(&cjson_lock); }
void edgert__manifest_fork_child(void) { pthread_mutex_unlock(&cjson_lock); }

#define FIELD_MAX 160 /* longest field path we write: deeper ones are cut */
#define QUOTE_SIZE 200

/* ---- messages ----------------------------------------------------------- */

/* `s` quoted for a message: printable ASCII as is, other bytes \xNN, at
 * most 64 bytes then "..." (a hostile key cannot flood the message). */
static const char *quote(const char *s, char *buf, size_t size) {
  size_t o = 0;
  buf[o++] = '\'';
  for (size_t i = 0; s[i] && o + 8 < size; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (i >= 64) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'')
      buf[o++] = (char)ch;
    else
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

static const char *json_type(const cJSON *v) {
  if (cJSON_IsObject(v))
    return "an object";
  if (cJSON_IsArray(v))
    return "an array";
  if (cJSON_IsString(v))
    return "a string";
  if (cJSON_IsNumber(v))
    return "a number";
  if (cJSON_IsBool(v))
    return "a boolean";
  if (cJSON_IsNull(v))
    return "null";
  return "an invalid value";
}

static int wrong_type(const char *field, const char *want, const cJSON *v) {
  return edgert__error(EDGERT_EMANIFEST, "%s: expected %s, got %s", field,
                       want, json_type(v));
}

/* snprintf for field paths, which are cut (never overflowed) when long. */
static void fieldf(char *out, size_t size, const char *fmt, ...)
    EDGERT__PRINTF(3, 4);
static void fieldf(char *out, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, size, fmt, ap);
  va_end(ap);
}

/* "where" + "." + "key" (or just "key" at the root). */
static void join(char *out, const char *where, const char *key) {
  if (where[0])
    fieldf(out, FIELD_MAX, "%s.%s", where, key);
  else
    fieldf(out, FIELD_MAX, "%s", key);
}

/* ---- raw-text checks ---------------------------------------------------- */

static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

/*
 * The lexical check: cJSON is lenient where JSON (RFC 8259) is not, and
 * blind to "\u0000" (it cuts the string there). This walk over the text
 * cJSON accepted (so well-formed in structure) tracks the field path of
 * object keys and array indexes and stops at the first token that strict
 * JSON refuses or that would read as something else: an escaped NUL, a raw
 * control character in a string, a number outside JSON's grammar ("01",
 * "1.", ".5"), whitespace other than space, tab, CR and LF.
 */
typedef enum { LX_OK, LX_NUL_ESCAPE, LX_CONTROL, LX_NUMBER, LX_SPACE } lexerr_t;

typedef struct lexscan_s {
  const char *p, *end;
  char path[FIELD_MAX];
  lexerr_t err;
  int in_key;
  const char *at; /* the offending byte or token */
} lexscan_t;

static int lx_fail(lexscan_t *s, lexerr_t err, const char *at) {
  s->err = err;
  s->at = at;
  return -1;
}

static int lx_ws(lexscan_t *s) {
  while (s->p < s->end && (unsigned char)*s->p <= 32) {
    char c = *s->p;
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      return lx_fail(s, LX_SPACE, s->p);
    s->p++;
  }
  return 0;
}

/* Skips the string at s->p (on its opening quote); its raw text is
 * start[0 .. len). */
static int lx_string(lexscan_t *s, const char **start, size_t *len) {
  s->p++;
  *start = s->p;
  while (s->p < s->end && *s->p != '"') {
    if ((unsigned char)*s->p < 0x20)
      return lx_fail(s, LX_CONTROL, s->p);
    if (*s->p == '\\' && s->p + 1 < s->end) {
      if (s->p[1] == 'u' && s->end - s->p >= 6 &&
          memcmp(s->p + 2, "0000", 4) == 0)
        return lx_fail(s, LX_NUL_ESCAPE, s->p);
      s->p += 2;
    } else {
      s->p++;
    }
  }
  *len = (size_t)(s->p - *start);
  if (s->p < s->end)
    s->p++;
  return 0;
}

static int is_digit(const char *q, const char *end) {
  return q < end && *q >= '0' && *q <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? then a delimiter. */
static int lx_number(lexscan_t *s) {
  const char *q = s->p, *end = s->end;
  if (q < end && *q == '-')
    q++;
  if (q < end && *q == '0')
    q++;
  else if (is_digit(q, end))
    while (is_digit(q, end))
      q++;
  else
    return lx_fail(s, LX_NUMBER, s->p);
  if (q < end && *q == '.') {
    q++;
    if (!is_digit(q, end))
      return lx_fail(s, LX_NUMBER, s->p);
    while (is_digit(q, end))
      q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (!is_digit(q, end))
      return lx_fail(s, LX_NUMBER, s->p);
    while (is_digit(q, end))
      q++;
  }
  if (q < end && *q != ',' && *q != ']' && *q != '}' &&
      (unsigned char)*q > 32)
    return lx_fail(s, LX_NUMBER, s->p);
  s->p = q;
  return 0;
}

static int lx_value(lexscan_t *s, int depth) {
  if (lx_ws(s) < 0)
    return -1;
  if (s->p >= s->end || depth > CJSON_NESTING_LIMIT)
    return 0;
  size_t plen = strlen(s->path);
  const char *str;
  size_t len;
  char c = *s->p;
  if (c == '"')
    return lx_string(s, &str, &len);
  if (c == '{' || c == '[') {
    int obj = c == '{';
    s->p++;
    for (size_t i = 0;; i++) {
      if (lx_ws(s) < 0)
        return -1;
      if (s->p >= s->end || *s->p == (obj ? '}' : ']'))
        break;
      if (*s->p == ',') {
        s->p++;
        if (lx_ws(s) < 0)
          return -1;
      }
      if (obj) {
        if (s->p >= s->end || *s->p != '"')
          break;
        if (lx_string(s, &str, &len) < 0) {
          s->in_key = 1;
          return -1;
        }
        fieldf(s->path + plen, sizeof s->path - plen, "%s%.*s",
               plen ? "." : "", (int)(len > 64 ? 64 : len), str);
        if (lx_ws(s) < 0)
          return -1;
        if (s->p < s->end && *s->p == ':')
          s->p++;
      } else {
        fieldf(s->path + plen, sizeof s->path - plen, "[%zu]", i);
      }
      if (lx_value(s, depth + 1) < 0)
        return -1;
      s->path[plen] = '\0';
    }
    if (s->p < s->end)
      s->p++;
    return 0;
  }
  if (c == '-' || (c >= '0' && c <= '9'))
    return lx_number(s);
  /* true, false, null: cJSON checked their spelling */
  while (s->p < s->end && *s->p >= 'a' && *s->p <= 'z')
    s->p++;
  return 0;
}

/* Offset of the first byte of `text` that does not continue valid UTF-8
 * (no overlongs, surrogates or code points above U+10FFFF), or len. */
static size_t utf8_invalid_at(const unsigned char *t, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = t[i];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0)
        lo = 0xA0;
      if (c == 0xED)
        hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0)
        lo = 0x90;
      if (c == 0xF4)
        hi = 0x8F;
    } else {
      return i;
    }
    if (i + n >= len) /* cut short by the end */
      return i;
    if (t[i + 1] < lo || t[i + 1] > hi)
      return i;
    for (size_t k = 2; k <= n; k++)
      if (t[i + k] < 0x80 || t[i + k] > 0xBF)
        return i;
    i += n + 1;
  }
  return len;
}

/*
 * Parses `len` bytes of JSON (NUL-terminated copy in `buf`) with every raw
 * check. `what` names the document in messages ("manifest", "contract").
 */
static int parse_json(const char *buf, size_t len, const char *what,
                      cJSON **out) {
  const char *nul = memchr(buf, '\0', len);
  if (nul != NULL) {
    size_t line, col;
    line_col(buf, (size_t)(nul - buf), &line, &col);
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: NUL byte at line %zu, column %zu", what, line,
                         col);
  }
  size_t bad = utf8_invalid_at((const unsigned char *)buf, len);
  if (bad < len) {
    size_t line, col;
    line_col(buf, bad, &line, &col);
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: invalid UTF-8 at line %zu, column %zu", what,
                         line, col);
  }
  const char *end = NULL;
  pthread_mutex_lock(&cjson_lock);
  cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  pthread_mutex_unlock(&cjson_lock);
  if (root == NULL) {
    size_t off = (end != NULL && end >= buf && end <= buf + len)
                     ? (size_t)(end - buf)
                     : 0;
    size_t line, col;
    line_col(buf, off, &line, &col);
    if (len == 0 || off >= len)
      return edgert__error(EDGERT_EMANIFEST,
                           "%s: invalid JSON: unexpected end at line %zu, "
                           "column %zu",
                           what, line, col);
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: invalid JSON at line %zu, column %zu", what,
                         line, col);
  }
  size_t off = (size_t)(end - buf);
  while (off < len && (unsigned char)buf[off] <= 32)
    off++;
  if (off < len) {
    size_t line, col;
    line_col(buf, off, &line, &col);
    cJSON_Delete(root);
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: trailing data after the JSON value at line "
                         "%zu, column %zu",
                         what, line, col);
  }
  lexscan_t s;
  memset(&s, 0, sizeof s);
  s.p = buf;
  s.end = buf + len;
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
    s.p += 3;
  if (lx_value(&s, 0) == 0)
    lx_ws(&s); /* what follows the value: whitespace only (checked above) */
  if (s.err != LX_OK) {
    size_t line, col;
    line_col(buf, (size_t)(s.at - buf), &line, &col);
    cJSON_Delete(root);
    const char *field = s.path[0] ? s.path : what;
    const char *cut = strlen(s.path) + 1 >= sizeof s.path ? "..." : "";
    const char *kind = s.in_key ? "a key" : "a string";
    switch (s.err) {
    case LX_NUL_ESCAPE:
      return edgert__error(EDGERT_EMANIFEST, "%s%s: escaped NUL (\\u0000) in %s",
                           field, cut, kind);
    case LX_CONTROL:
      return edgert__error(EDGERT_EMANIFEST,
                           "%s%s: unescaped control character 0x%02x in %s "
                           "at line %zu, column %zu",
                           field, cut, (unsigned char)*s.at, kind, line, col);
    case LX_NUMBER: {
      size_t n = 0;
      while (s.at + n < s.end && n < 24 && s.at[n] != ',' && s.at[n] != ']' &&
             s.at[n] != '}' && (unsigned char)s.at[n] > 32)
        n++;
      char tok[32];
      memcpy(tok, s.at, n);
      tok[n] = '\0';
      char q[QUOTE_SIZE];
      return edgert__error(EDGERT_EMANIFEST,
                           "%s%s: %s is not a JSON number, at line %zu, "
                           "column %zu",
                           field, cut, quote(tok, q, sizeof q), line, col);
    }
    default:
      return edgert__error(EDGERT_EMANIFEST,
                           "%s: control character 0x%02x outside a string at "
                           "line %zu, column %zu",
                           what, (unsigned char)*s.at, line, col);
    }
  }
  *out = root;
  return 0;
}

/* ---- schema ------------------------------------------------------------- */

/*
 * Checks the members of object `obj` (at field `where`) against `keys`:
 * unknown, case-variant and duplicate keys are refused; the keys in
 * `required` (bit i for keys[i]) must be present. found[i] receives the
 * member for keys[i] or NULL.
 */
static int check_keys(const cJSON *obj, const char *where,
                      const char *const *keys, size_t nkeys,
                      unsigned required, const cJSON **found) {
  char q[QUOTE_SIZE];
  const char *at = where[0] ? where : "manifest";
  for (size_t i = 0; i < nkeys; i++)
    found[i] = NULL;
  for (const cJSON *it = obj->child; it != NULL; it = it->next) {
    const char *k = it->string ? it->string : "";
    size_t i;
    for (i = 0; i < nkeys; i++)
      if (strcmp(k, keys[i]) == 0)
        break;
    if (i == nkeys) {
      for (i = 0; i < nkeys; i++)
        if (strcasecmp(k, keys[i]) == 0)
          return edgert__error(EDGERT_EMANIFEST,
                               "%s: unknown key %s (keys are case-sensitive: "
                               "did you mean '%s'?)",
                               at, quote(k, q, sizeof q), keys[i]);
      char list[200];
      size_t o = 0;
      for (i = 0; i < nkeys && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s",
                              i ? ", " : "", keys[i]);
      return edgert__error(EDGERT_EMANIFEST,
                           "%s: unknown key %s (expected: %s)", at,
                           quote(k, q, sizeof q), list);
    }
    if (found[i] != NULL)
      return edgert__error(EDGERT_EMANIFEST, "%s: duplicate key '%s'", at,
                           keys[i]);
    found[i] = it;
  }
  for (size_t i = 0; i < nkeys; i++)
    if ((required & (1u << i)) && found[i] == NULL)
      return edgert__error(EDGERT_EMANIFEST, "%s: missing required key '%s'",
                           at, keys[i]);
  return 0;
}

enum { C_NAME, C_ARGS, C_RET, C_CC, C_GIL, C_ERRNO, C_VAR, C__N };
static const char *const contract_keys[C__N] = {
    "function_name", "arg_types", "return_type", "calling_convention",
    "release_gil", "use_errno", "variadic"};

/*
 * An argument type in the structured callback form,
 * {"callback": {"restype": "c_int", "argtypes": ["LP_c_int", "LP_c_int"]}}
 * (restype null or absent: None; argtypes absent: none), at `field`: *out
 * receives its type name "CFUNCTYPE(c_int, LP_c_int, LP_c_int)", allocated
 * (the caller frees it), which edgert_contract_init then checks like any
 * other name. Nested callbacks are refused here.
 */
enum { CB_RET, CB_ARGS, CB__N };
static const char *const callback_keys[CB__N] = {"restype", "argtypes"};

static int callback_form(const cJSON *a, const char *field, char **out) {
  static const char *const outer[1] = {"callback"};
  const cJSON *f[1], *g[CB__N];
  char at[FIELD_MAX + 16], item[FIELD_MAX + 48];
  int rc = check_keys(a, field, outer, 1, 1u, f);
  if (rc < 0)
    return rc;
  fieldf(at, sizeof at, "%s.callback", field);
  if (!cJSON_IsObject(f[0]))
    return wrong_type(at, "an object with restype and argtypes", f[0]);
  if ((rc = check_keys(f[0], at, callback_keys, CB__N, 0, g)) < 0)
    return rc;
  const char *ret = "None";
  if (g[CB_RET] != NULL && !cJSON_IsNull(g[CB_RET])) {
    if (!cJSON_IsString(g[CB_RET])) {
      fieldf(item, sizeof item, "%s.restype", at);
      return wrong_type(item, "a type name (string) or null", g[CB_RET]);
    }
    ret = g[CB_RET]->valuestring;
  }
  size_t need = strlen("CFUNCTYPE()") + strlen(ret) + 1, n = 0;
  if (g[CB_ARGS] != NULL) {
    if (!cJSON_IsArray(g[CB_ARGS])) {
      fieldf(item, sizeof item, "%s.argtypes", at);
      return wrong_type(item, "an array", g[CB_ARGS]);
    }
    for (const cJSON *x = g[CB_ARGS]->child; x != NULL; x = x->next, n++) {
      if (!cJSON_IsString(x)) {
        fieldf(item, sizeof item, "%s.argtypes[%zu]", at, n);
        return wrong_type(item, "a type name (string); a callback's arguments cannot "
                          "be callbacks", x);
      }
      if (n >= EDGERT_MAX_CALLBACK_ARGS)
        return edgert__error(EDGERT_EMANIFEST, "%s.argtypes: a callback has at most %d "
                             "arguments", at, EDGERT_MAX_CALLBACK_ARGS);
      need += 2 + strlen(x->valuestring);
    }
  }
  char *s = edgert__malloc(need);
  if (s == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", at);
  size_t o = (size_t)snprintf(s, need, "CFUNCTYPE(%s", ret);
  if (g[CB_ARGS] != NULL)
    for (const cJSON *x = g[CB_ARGS]->child; x != NULL; x = x->next)
      o += (size_t)snprintf(s + o, need - o, ", %s", x->valuestring);
  snprintf(s + o, need - o, ")");
  *out = s;
  return 0;
}

/* Reads contract object `obj` at field `where` ("" standalone). */
static int read_contract(const cJSON *obj, const char *where,
                         edgert_contract_t *out) {
  char field[FIELD_MAX];
  const char *at = where[0] ? where : "contract";
  if (!cJSON_IsObject(obj))
    return wrong_type(at, "an object", obj);
  const cJSON *f[C__N];
  int rc = check_keys(obj, where[0] ? where : "contract", contract_keys, C__N,
                      (1u << C_NAME) | (1u << C_ARGS), f);
  if (rc < 0)
    return rc;
  join(field, where, "function_name");
  if (!cJSON_IsString(f[C_NAME]))
    return wrong_type(field, "a string", f[C_NAME]);
  join(field, where, "arg_types");
  if (!cJSON_IsArray(f[C_ARGS]))
    return wrong_type(field, "an array", f[C_ARGS]);
  const char *args[EDGERT_MAX_ARGS];
  char *owned[EDGERT_MAX_ARGS] = {NULL}; /* callback forms' names */
  size_t nargs = 0;
  for (const cJSON *a = f[C_ARGS]->child; a != NULL; a = a->next, nargs++) {
    if (nargs >= EDGERT_MAX_ARGS) {
      size_t total = (size_t)cJSON_GetArraySize(f[C_ARGS]);
      rc = edgert__error(EDGERT_EMANIFEST,
                         "%s: %zu arguments is more than the limit of %d",
                         field, total, EDGERT_MAX_ARGS);
      goto out;
    }
    char item[FIELD_MAX + 16];
    fieldf(item, sizeof item, "%s[%zu]", field, nargs);
    if (cJSON_IsObject(a)) {
      if ((rc = callback_form(a, item, &owned[nargs])) < 0)
        goto out;
      args[nargs] = owned[nargs];
      continue;
    }
    if (!cJSON_IsString(a)) {
      rc = wrong_type(item, "a type name (string) or a {\"callback\": ...} object", a);
      goto out;
    }
    args[nargs] = a->valuestring;
  }
  const char *ret = NULL;
  if (f[C_RET] != NULL && !cJSON_IsNull(f[C_RET])) {
    join(field, where, "return_type");
    if (!cJSON_IsString(f[C_RET])) {
      rc = wrong_type(field, "a type name (string) or null", f[C_RET]);
      goto out;
    }
    ret = f[C_RET]->valuestring;
  }
  const char *cc = NULL;
  if (f[C_CC] != NULL) {
    join(field, where, "calling_convention");
    if (!cJSON_IsString(f[C_CC])) {
      rc = wrong_type(field, "a string", f[C_CC]);
      goto out;
    }
    cc = f[C_CC]->valuestring;
  }
  int release = 1;
  if (f[C_GIL] != NULL) {
    join(field, where, "release_gil");
    if (!cJSON_IsBool(f[C_GIL])) {
      rc = wrong_type(field, "true or false", f[C_GIL]);
      goto out;
    }
    release = cJSON_IsTrue(f[C_GIL]);
  }
  int use_errno = 0;
  if (f[C_ERRNO] != NULL) {
    join(field, where, "use_errno");
    if (!cJSON_IsBool(f[C_ERRNO]))
      return wrong_type(field, "true or false", f[C_ERRNO]);
    use_errno = cJSON_IsTrue(f[C_ERRNO]);
  }
  double nfixed = -1;
  if (f[C_VAR] != NULL && !cJSON_IsNull(f[C_VAR])) {
    join(field, where, "variadic");
    if (!cJSON_IsNumber(f[C_VAR]) || !(f[C_VAR]->valuedouble >= 0) ||
        f[C_VAR]->valuedouble > EDGERT_MAX_ARGS ||
        f[C_VAR]->valuedouble != (double)(int)f[C_VAR]->valuedouble)
      return wrong_type(field, "the fixed argument count (an integer 1..32) or null", f[C_VAR]);
    nfixed = f[C_VAR]->valuedouble;
  }
  edgert_contract_t tmp;
  rc = edgert_contract_init(&tmp, f[C_NAME]->valuestring, args, nargs, ret, cc,
                            release);
  if (rc == 0 && nfixed >= 0)
    rc = edgert_contract_set_variadic(&tmp, (unsigned)nfixed);
  if (rc == 0) {
    tmp.use_errno = (unsigned char)use_errno;
    *out = tmp;
  }
  if (rc < 0) {
    char msg[900];
    snprintf(msg, sizeof msg, "%s", edgert_last_error());
    if (where[0])
      rc = edgert__error(EDGERT_EMANIFEST, "%s.%s", where, msg);
    else
      rc = edgert__error(EDGERT_EMANIFEST, "%s", msg);
  }
out:
  for (size_t i = 0; i < EDGERT_MAX_ARGS; i++)
    edgert__free(owned[i]);
  return rc < 0 ? rc : 0;
}

static int is_hex64(const char *s) {
  size_t i;
  for (i = 0; s[i]; i++) {
    char ch = s[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
          (ch >= 'A' && ch <= 'F')))
      return 0;
  }
  return i == 64;
}

/* The resolved absolute path of module `rel`, or an error naming `field`. */
static int resolve(const char *base_dir, const char *rel, const char *field,
                   char **out) {
  char q[QUOTE_SIZE];
  if (base_dir[0] == '\0') /* "" is the current directory, not the root */
    base_dir = ".";
  size_t blen = strlen(base_dir), rlen = strlen(rel);
  char *joined;
  if (rel[0] == '/') {
    joined = edgert__strdup(rel);
  } else {
    joined = edgert__malloc(blen + rlen + 2);
    if (joined != NULL) {
      memcpy(joined, base_dir, blen);
      joined[blen] = '/';
      memcpy(joined + blen + 1, rel, rlen + 1);
    }
  }
  if (joined == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", field);
  char *real = realpath(joined, NULL);
  if (real == NULL) {
    int e = errno;
    if (e == ENOMEM) {
      edgert__free(joined);
      return edgert__error(EDGERT_ENOMEM, "%s: out of memory", field);
    }
    edgert__error(EDGERT_EMANIFEST, "%s: %s not found (%s: %s)", field,
                  quote(rel, q, sizeof q), joined, strerror(e));
    edgert__free(joined);
    return EDGERT_EMANIFEST;
  }
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
    edgert__error(EDGERT_EMANIFEST, "%s: %s is not a regular file (%s)",
                  field, quote(rel, q, sizeof q), real);
    free(real);
    edgert__free(joined);
    return EDGERT_EMANIFEST;
  }
  edgert__free(joined);
  /* realpath's buffer comes from malloc; ours must come from the hook. */
  *out = edgert__strdup(real);
  free(real);
  if (*out == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", field);
  return 0;
}

enum { M_PATH, M_SHA, M_CONTRACTS, M_DEPS, M_ISO, M__N };
static const char *const module_keys[M__N] = {"path", "sha256", "contracts", "dependencies",
                                              "isolation"};

enum { I_MODE, I_TIMEOUT, I_MEM, I_SANDBOX, I_WORKERS, I__N };
static const char *const iso_keys[I__N] = {"mode", "timeout", "memory_limit", "sandbox",
                                           "workers"};

/* Reads a module entry's optional "isolation" object (edgert/isolate.h):
 * {"mode": "process", "timeout": seconds, "memory_limit": bytes,
 *  "sandbox": "none" | "strict", "workers": 1..EDGERT_ISOLATE_MAX_WORKERS};
 * only "mode" is required. */
static int read_isolation(const cJSON *obj, const char *where, edgert_isolate_options_t *o) {
  char field[FIELD_MAX], q[QUOTE_SIZE];
  if (!cJSON_IsObject(obj))
    return wrong_type(where, "an object", obj);
  const cJSON *f[I__N];
  int rc = check_keys(obj, where, iso_keys, I__N, 1u, f);
  if (rc < 0)
    return rc;
  memset(o, 0, sizeof *o);
  join(field, where, "mode");
  if (!cJSON_IsString(f[I_MODE]))
    return wrong_type(field, "a string", f[I_MODE]);
  if (strcmp(f[I_MODE]->valuestring, "process") != 0)
    return edgert__error(EDGERT_EMANIFEST, "%s: %s is not an isolation mode (expected "
                         "\"process\")", field, quote(f[I_MODE]->valuestring, q, sizeof q));
  if (f[I_TIMEOUT] != NULL) {
    join(field, where, "timeout");
    if (!cJSON_IsNumber(f[I_TIMEOUT]))
      return wrong_type(field, "a number of seconds", f[I_TIMEOUT]);
    double t = f[I_TIMEOUT]->valuedouble;
    if (!(t >= 0) || t > 1e9)
      return edgert__error(EDGERT_EMANIFEST, "%s: %g is not a number of seconds >= 0",
                           field, t);
    o->timeout = t;
  }
  if (f[I_MEM] != NULL) {
    join(field, where, "memory_limit");
    double b = cJSON_IsNumber(f[I_MEM]) ? f[I_MEM]->valuedouble : -1;
    if (!cJSON_IsNumber(f[I_MEM]))
      return wrong_type(field, "a number of bytes", f[I_MEM]);
    if (!(b >= 1 << 20) || b > 9.0e15 || b != (double)(int64_t)b)
      return edgert__error(EDGERT_EMANIFEST, "%s: %g is not a whole number of bytes of at "
                           "least 1 MiB", field, b);
    o->memory_limit = (size_t)b;
  }
  if (f[I_SANDBOX] != NULL) {
    join(field, where, "sandbox");
    if (!cJSON_IsString(f[I_SANDBOX]))
      return wrong_type(field, "a string", f[I_SANDBOX]);
    const char *sb = f[I_SANDBOX]->valuestring;
    if (strcmp(sb, "strict") == 0)
      o->sandbox = EDGERT_SANDBOX_STRICT;
    else if (strcmp(sb, "none") != 0)
      return edgert__error(EDGERT_EMANIFEST, "%s: %s is not a sandbox (expected \"none\" or "
                           "\"strict\")", field, quote(sb, q, sizeof q));
  }
  o->workers = 1;
  if (f[I_WORKERS] != NULL) {
    join(field, where, "workers");
    if (!cJSON_IsNumber(f[I_WORKERS]))
      return wrong_type(field, "a whole number", f[I_WORKERS]);
    double w = f[I_WORKERS]->valuedouble;
    if (!(w >= 1) || w > EDGERT_ISOLATE_MAX_WORKERS || w != (double)(int)w)
      return edgert__error(EDGERT_EMANIFEST, "%s: %g is not a whole number from 1 to %u",
                           field, w, EDGERT_ISOLATE_MAX_WORKERS);
    o->workers = (unsigned)w;
  }
  return 0;
}

static void entry_clear(entry_t *e) {
  for (size_t i = 0; i < e->ndeps; i++) {
    edgert__free(e->deps[i].path);
    edgert__free(e->deps[i].file);
  }
  edgert__free(e->deps);
  edgert__free(e->path);
  edgert__free(e->file);
  edgert__free(e->contracts);
  memset(e, 0, sizeof *e);
}

/* The most dependencies one module entry may list. */
#define MAX_DEPENDENCIES 256

enum { D_PATH, D_SHA, D__N };
static const char *const dep_keys[D__N] = {"path", "sha256"};

/* Reads the optional "dependencies" list of a module entry (`field` names
 * it) into e->deps: each an object {"path": ..., "sha256": ...}, the path
 * resolved against base_dir as the module's own. */
static int read_deps(const cJSON *list, const char *field, const char *base_dir, entry_t *e) {
  char q[QUOTE_SIZE], where[FIELD_MAX], f[FIELD_MAX];
  if (!cJSON_IsArray(list))
    return wrong_type(field, "an array", list);
  int n = cJSON_GetArraySize(list);
  if (n > MAX_DEPENDENCIES)
    return edgert__error(EDGERT_EMANIFEST, "%s: %d dependencies is more than the limit of %d",
                         field, n, MAX_DEPENDENCIES);
  if (n == 0)
    return 0;
  e->deps = edgert__calloc((size_t)n, sizeof *e->deps);
  if (e->deps == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", field);
  size_t j = 0;
  for (const cJSON *d = list->child; d != NULL; d = d->next, j++) {
    fieldf(where, sizeof where, "%s[%zu]", field, j);
    if (!cJSON_IsObject(d))
      return wrong_type(where, "an object {\"path\": ..., \"sha256\": ...}", d);
    const cJSON *k[D__N];
    int rc = check_keys(d, where, dep_keys, D__N, 3u, k);
    if (rc < 0)
      return rc;
    join(f, where, "path");
    if (!cJSON_IsString(k[D_PATH]))
      return wrong_type(f, "a string", k[D_PATH]);
    const char *path = k[D_PATH]->valuestring;
    if (path[0] == '\0')
      return edgert__error(EDGERT_EMANIFEST, "%s: empty", f);
    if (strlen(path) >= PATH_MAX)
      return edgert__error(EDGERT_EMANIFEST, "%s: longer than %d bytes", f, PATH_MAX - 1);
    join(f, where, "sha256");
    if (!cJSON_IsString(k[D_SHA]))
      return wrong_type(f, "a string", k[D_SHA]);
    const char *sha = k[D_SHA]->valuestring;
    if (!is_hex64(sha))
      return edgert__error(EDGERT_EMANIFEST, "%s: %s is not 64 hexadecimal digits", f,
                           quote(sha, q, sizeof q));
    struct dep_s *dp = &e->deps[j];
    for (int i = 0; i < 64; i++)
      dp->sha256[i] = (char)((sha[i] >= 'A' && sha[i] <= 'F') ? sha[i] + 32 : sha[i]);
    if ((dp->path = edgert__strdup(path)) == NULL)
      return edgert__error(EDGERT_ENOMEM, "%s: out of memory", where);
    e->ndeps = j + 1;
    join(f, where, "path");
    if (base_dir != NULL)
      rc = resolve(base_dir, path, f, &dp->file);
    else if ((dp->file = edgert__strdup(path)) == NULL)
      rc = edgert__error(EDGERT_ENOMEM, "%s: out of memory", f);
    if (rc < 0)
      return rc;
    for (size_t i = 0; i < j; i++)
      if (strcmp(e->deps[i].file, dp->file) == 0)
        return edgert__error(EDGERT_EMANIFEST, "%s: %s is already listed as %s[%zu]", f,
                             quote(path, q, sizeof q), field, i);
  }
  return 0;
}

static int read_module(const cJSON *obj, size_t index, const char *base_dir,
                       const edgert_manifest_t *done, entry_t *e) {
  char where[FIELD_MAX], field[FIELD_MAX], q[QUOTE_SIZE];
  snprintf(where, sizeof where, "modules[%zu]", index);
  if (!cJSON_IsObject(obj))
    return wrong_type(where, "an object", obj);
  const cJSON *f[M__N];
  int rc = check_keys(obj, where, module_keys, M__N, 7u, f);
  if (rc < 0)
    return rc;
  join(field, where, "path");
  if (!cJSON_IsString(f[M_PATH]))
    return wrong_type(field, "a string", f[M_PATH]);
  const char *path = f[M_PATH]->valuestring;
  if (path[0] == '\0')
    return edgert__error(EDGERT_EMANIFEST, "%s: empty", field);
  if (strlen(path) >= PATH_MAX)
    return edgert__error(EDGERT_EMANIFEST, "%s: longer than %d bytes", field,
                         PATH_MAX - 1);
  for (size_t i = 0; i < done->nmodules; i++)
    if (strcmp(done->modules[i].path, path) == 0)
      return edgert__error(EDGERT_EMANIFEST,
                           "%s: %s is already listed as modules[%zu]", field,
                           quote(path, q, sizeof q), i);
  join(field, where, "sha256");
  if (!cJSON_IsString(f[M_SHA]))
    return wrong_type(field, "a string", f[M_SHA]);
  const char *sha = f[M_SHA]->valuestring;
  if (!is_hex64(sha))
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: %s is not 64 hexadecimal digits", field,
                         quote(sha, q, sizeof q));
  join(field, where, "contracts");
  if (!cJSON_IsArray(f[M_CONTRACTS]))
    return wrong_type(field, "an array", f[M_CONTRACTS]);
  int n = cJSON_GetArraySize(f[M_CONTRACTS]);
  if (n > EDGERT_MANIFEST_MAX_CONTRACTS)
    return edgert__error(EDGERT_EMANIFEST,
                         "%s: %d contracts is more than the limit of %d",
                         field, n, EDGERT_MANIFEST_MAX_CONTRACTS);

  entry_t tmp;
  memset(&tmp, 0, sizeof tmp);
  for (int i = 0; i < 64; i++)
    tmp.sha256[i] = (char)((sha[i] >= 'A' && sha[i] <= 'F') ? sha[i] + 32 : sha[i]);
  tmp.path = edgert__strdup(path);
  if (tmp.path == NULL)
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", where);
  if (n > 0) {
    tmp.contracts = edgert__calloc((size_t)n, sizeof(edgert_contract_t));
    if (tmp.contracts == NULL) {
      entry_clear(&tmp);
      return edgert__error(EDGERT_ENOMEM, "%s: out of memory for %d contracts",
                           field, n);
    }
  }
  size_t j = 0;
  for (const cJSON *c = f[M_CONTRACTS]->child; c != NULL; c = c->next, j++) {
    char cw[FIELD_MAX];
    fieldf(cw, sizeof cw, "%s[%zu]", field, j);
    rc = read_contract(c, cw, &tmp.contracts[j]);
    if (rc == 0) {
      for (size_t k = 0; k < j; k++)
        if (strcmp(tmp.contracts[k].function_name,
                   tmp.contracts[j].function_name) == 0) {
          rc = edgert__error(EDGERT_EMANIFEST,
                             "%s.function_name: '%s' is already bound by "
                             "%s[%zu]",
                             cw, tmp.contracts[j].function_name, field, k);
          break;
        }
    }
    if (rc < 0) {
      entry_clear(&tmp);
      return rc;
    }
  }
  tmp.ncontracts = j;
  if (f[M_ISO] != NULL) {
    join(field, where, "isolation");
    rc = read_isolation(f[M_ISO], field, &tmp.iso);
    if (rc < 0) {
      entry_clear(&tmp);
      return rc;
    }
    tmp.isolated = 1;
  }
  if (f[M_DEPS] != NULL) {
    join(field, where, "dependencies");
    rc = read_deps(f[M_DEPS], field, base_dir, &tmp);
    if (rc < 0) {
      entry_clear(&tmp);
      return rc;
    }
  }
  join(field, where, "path");
  if (base_dir != NULL)
    rc = resolve(base_dir, path, field, &tmp.file);
  else if ((tmp.file = edgert__strdup(path)) == NULL)
    rc = edgert__error(EDGERT_ENOMEM, "%s: out of memory", field);
  if (rc < 0) {
    entry_clear(&tmp);
    return rc;
  }
  *e = tmp;
  return 0;
}

void edgert_manifest_free(edgert_manifest_t *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nmodules; i++) {
    edgert_module_free(m->modules[i].module);
    entry_clear(&m->modules[i]);
  }
  edgert__free(m->modules);
  edgert__free(m);
}

enum { R_VERSION, R_MODULES, R_RELEASE, R_EXPIRES, R_STRUCTS, R__N };
static const char *const root_keys[R__N] = {"schema_version", "modules",
                                            "version", "expires", "structs"};

/* ---- the "structs" section ---------------------------------------------- */

enum { S_NAME, S_SIZE, S_ALIGN, S_FIELDS, S__N };
static const char *const struct_keys[S__N] = {"name", "size", "alignment", "fields"};
enum { F_NAME, F_TYPE, F_OFFSET, F_COUNT, F__N };
static const char *const field_keys[F__N] = {"name", "type", "offset", "count"};

/* A JSON number that is an integer in 0..max, else EDGERT_EMANIFEST. */
static int read_size(const cJSON *v, const char *field, size_t max, size_t *out) {
  if (!cJSON_IsNumber(v))
    return wrong_type(field, "a non-negative integer", v);
  double d = v->valuedouble;
  if (!(d >= 0 && d <= (double)max) || d != (double)(size_t)d)
    return edgert__error(EDGERT_EMANIFEST, "%s: expected an integer from 0 to %zu, got %g",
                         field, max, d);
  *out = (size_t)d;
  return 0;
}

/*
 * Defines the structs of the "structs" array, in order (a struct's fields
 * may use the structs before it, so nesting is ordered and recursion
 * impossible): each {"name", "size", "alignment", "fields": [{"name",
 * "type", "offset", "count"?}]}, validated by edgert_struct_define, whose
 * message gets the field prefix ("structs[1]: struct Seg: field 'b' ...").
 * A name twice in the array is refused; a name the process already defined
 * (another manifest, a Python class) must have the same layout.
 */
static int read_structs(const cJSON *arr) {
  char field[FIELD_MAX], q[QUOTE_SIZE];
  if (!cJSON_IsArray(arr))
    return wrong_type("structs", "an array", arr);
  int n = cJSON_GetArraySize(arr);
  if (n > EDGERT_STRUCT_MAX_FIELDS)
    return edgert__error(EDGERT_EMANIFEST, "structs: %d structs is more than the limit of %d", n,
                         EDGERT_STRUCT_MAX_FIELDS);
  size_t i = 0;
  for (const cJSON *st = arr->child; st != NULL; st = st->next, i++) {
    fieldf(field, sizeof field, "structs[%zu]", i);
    if (!cJSON_IsObject(st))
      return wrong_type(field, "an object", st);
    const cJSON *f[S__N];
    int rc = check_keys(st, field, struct_keys, S__N, 0xfu, f);
    if (rc < 0)
      return rc;
    char sub[FIELD_MAX];
    join(sub, field, "name");
    if (!cJSON_IsString(f[S_NAME]))
      return wrong_type(sub, "a string", f[S_NAME]);
    const char *name = f[S_NAME]->valuestring;
    size_t at = 0;
    for (const cJSON *prev = arr->child; prev != st; prev = prev->next, at++) {
      const cJSON *pn = cJSON_GetObjectItemCaseSensitive(prev, "name");
      if (cJSON_IsString(pn) && strcmp(pn->valuestring, name) == 0)
        return edgert__error(EDGERT_EMANIFEST, "%s: struct %s is already in structs[%zu]", sub,
                             quote(name, q, sizeof q), at);
    }
    size_t size, align;
    join(sub, field, "size");
    if ((rc = read_size(f[S_SIZE], sub, EDGERT_STRUCT_MAX_SIZE, &size)) < 0)
      return rc;
    join(sub, field, "alignment");
    if ((rc = read_size(f[S_ALIGN], sub, 64, &align)) < 0)
      return rc;
    join(sub, field, "fields");
    if (!cJSON_IsArray(f[S_FIELDS]))
      return wrong_type(sub, "an array", f[S_FIELDS]);
    int nf = cJSON_GetArraySize(f[S_FIELDS]);
    if (nf > EDGERT_STRUCT_MAX_FIELDS)
      return edgert__error(EDGERT_EMANIFEST, "%s: %d fields is more than the limit of %d", sub,
                           nf, EDGERT_STRUCT_MAX_FIELDS);
    edgert_struct_field_desc_t *d = edgert__calloc((size_t)(nf ? nf : 1), sizeof *d);
    if (d == NULL)
      return edgert__error(EDGERT_ENOMEM, "%s: out of memory", sub);
    size_t j = 0;
    rc = 0;
    for (const cJSON *fd = f[S_FIELDS]->child; fd != NULL && rc == 0; fd = fd->next, j++) {
      char ff[FIELD_MAX], fk[FIELD_MAX];
      fieldf(ff, sizeof ff, "%s.fields[%zu]", field, j);
      const cJSON *g[F__N];
      if (!cJSON_IsObject(fd)) {
        rc = wrong_type(ff, "an object", fd);
        break;
      }
      if ((rc = check_keys(fd, ff, field_keys, F__N, 0x7u, g)) < 0)
        break;
      join(fk, ff, "name");
      if (!cJSON_IsString(g[F_NAME])) {
        rc = wrong_type(fk, "a string", g[F_NAME]);
        break;
      }
      join(fk, ff, "type");
      if (!cJSON_IsString(g[F_TYPE])) {
        rc = wrong_type(fk, "a type name (string)", g[F_TYPE]);
        break;
      }
      d[j].name = g[F_NAME]->valuestring;
      d[j].type = g[F_TYPE]->valuestring;
      join(fk, ff, "offset");
      if ((rc = read_size(g[F_OFFSET], fk, EDGERT_STRUCT_MAX_SIZE, &d[j].offset)) < 0)
        break;
      d[j].count = 0;
      join(fk, ff, "count");
      if (g[F_COUNT] != NULL &&
          (rc = read_size(g[F_COUNT], fk, EDGERT_STRUCT_MAX_SIZE, &d[j].count)) < 0)
        break;
    }
    if (rc == 0) {
      rc = edgert_struct_define(name, d, (size_t)nf, size, align, NULL);
      if (rc < 0) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", edgert_last_error());
        rc = edgert__error(EDGERT_EMANIFEST, "%s: %s", field, msg);
      }
    }
    edgert__free(d);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* The optional release fields a signed manifest must carry (docs/signing.md):
 * "version", a positive integer below 2^53, and "expires", an RFC 3339 UTC
 * time in the one form "YYYY-MM-DDTHH:MM:SSZ". Checked here for every
 * manifest, so an unsigned one that carries them carries them well-formed. */
static int read_release(const cJSON *version, const cJSON *expires,
                        edgert_manifest_t *m) {
  char q[QUOTE_SIZE];
  if (version != NULL) {
    if (!cJSON_IsNumber(version))
      return wrong_type("version", "a positive integer", version);
    double v = version->valuedouble;
    if (!(v >= 1 && v <= 9007199254740991.0) || v != (double)(int64_t)v)
      return edgert__error(EDGERT_EMANIFEST,
                           "version: expected a positive integer (at most "
                           "2^53-1), got %g",
                           v);
    m->version = (int64_t)v;
  }
  if (expires != NULL) {
    if (!cJSON_IsString(expires))
      return wrong_type("expires", "an RFC 3339 UTC time string", expires);
    const char *t = expires->valuestring;
    if (edgert__rfc3339_parse(t, &m->expires_at) < 0)
      return edgert__error(EDGERT_EMANIFEST,
                           "expires: %s is not an RFC 3339 UTC time of the "
                           "form 2027-01-01T00:00:00Z",
                           quote(t, q, sizeof q));
    snprintf(m->expires, sizeof m->expires, "%s", t);
  }
  return 0;
}

static int read_manifest(const cJSON *root, const char *base_dir,
                         edgert_manifest_t *m) {
  if (!cJSON_IsObject(root))
    return wrong_type("manifest", "an object", root);
  const cJSON *f[R__N];
  int rc = check_keys(root, "", root_keys, R__N, 3u, f);
  if (rc < 0)
    return rc;
  if (!cJSON_IsNumber(f[R_VERSION]))
    return wrong_type("schema_version", "the number 1", f[R_VERSION]);
  double v = f[R_VERSION]->valuedouble;
  if (v != (double)EDGERT_MANIFEST_SCHEMA_VERSION) {
    /* Range first: casting a double outside long long's range is UB. */
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
      return edgert__error(EDGERT_EMANIFEST,
                           "schema_version: %lld is not supported (this "
                           "edgert reads schema_version %d)",
                           (long long)v, EDGERT_MANIFEST_SCHEMA_VERSION);
    return edgert__error(EDGERT_EMANIFEST,
                         "schema_version: expected the integer %d, got %g",
                         EDGERT_MANIFEST_SCHEMA_VERSION, v);
  }
  rc = read_release(f[R_RELEASE], f[R_EXPIRES], m);
  if (rc < 0)
    return rc;
  if (f[R_STRUCTS] != NULL && (rc = read_structs(f[R_STRUCTS])) < 0)
    return rc;
  if (!cJSON_IsArray(f[R_MODULES]))
    return wrong_type("modules", "an array", f[R_MODULES]);
  int n = cJSON_GetArraySize(f[R_MODULES]);
  if (n > EDGERT_MANIFEST_MAX_MODULES)
    return edgert__error(EDGERT_EMANIFEST,
                         "modules: %d modules is more than the limit of %d", n,
                         EDGERT_MANIFEST_MAX_MODULES);
  if (n > 0) {
    m->modules = edgert__calloc((size_t)n, sizeof(entry_t));
    if (m->modules == NULL)
      return edgert__error(EDGERT_ENOMEM, "modules: out of memory for %d "
                                          "modules", n);
  }
  size_t i = 0;
  for (const cJSON *it = f[R_MODULES]->child; it != NULL; it = it->next, i++) {
    rc = read_module(it, i, base_dir, m, &m->modules[i]);
    if (rc < 0)
      return rc;
    m->nmodules = i + 1;
  }
  return 0;
}

int edgert_manifest_parse(const char *json, size_t len, const char *base_dir,
                          edgert_manifest_t **out) {
  if (json == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_parse: json and out must not be NULL");
  if (len > EDGERT_MANIFEST_MAX_BYTES)
    return edgert__error(EDGERT_EMANIFEST,
                         "manifest: %zu bytes is larger than the limit of %zu",
                         len, EDGERT_MANIFEST_MAX_BYTES);
  /* cJSON reads a terminated buffer; the caller's need not be. */
  char *buf = edgert__malloc(len + 1);
  if (buf == NULL)
    return edgert__error(EDGERT_ENOMEM, "manifest: out of memory for %zu bytes",
                         len);
  memcpy(buf, json, len);
  buf[len] = '\0';
  cJSON *root = NULL;
  int rc = parse_json(buf, len, "manifest", &root);
  if (rc < 0) {
    edgert__free(buf);
    return rc;
  }
  edgert_manifest_t *m = edgert__calloc(1, sizeof *m);
  if (m == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "manifest: out of memory");
  } else {
    m->resolved = base_dir != NULL;
    rc = read_manifest(root, base_dir, m);
  }
  cJSON_Delete(root);
  edgert__free(buf);
  if (rc < 0) {
    edgert_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int edgert_contract_parse_json(const char *json, size_t len,
                               edgert_contract_t *out) {
  if (json == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_contract_parse_json: json and "
                                        "out must not be NULL");
  if (len > EDGERT_MANIFEST_MAX_BYTES)
    return edgert__error(EDGERT_EMANIFEST,
                         "contract: %zu bytes is larger than the limit of %zu",
                         len, EDGERT_MANIFEST_MAX_BYTES);
  char *buf = edgert__malloc(len + 1);
  if (buf == NULL)
    return edgert__error(EDGERT_ENOMEM, "contract: out of memory");
  memcpy(buf, json, len);
  buf[len] = '\0';
  cJSON *root = NULL;
  int rc = parse_json(buf, len, "contract", &root);
  if (rc == 0) {
    edgert_contract_t c;
    rc = read_contract(root, "", &c);
    if (rc == 0)
      *out = c;
    cJSON_Delete(root);
  }
  edgert__free(buf);
  return rc;
}

int edgert_manifest_read(const char *path, edgert_manifest_t **out) {
  if (path == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_read: path and out must not be NULL");
  char *buf = NULL;
  size_t len = 0;
  int e;
  int rc = edgert__read_file(path, "manifest", EDGERT_MANIFEST_MAX_BYTES, EDGERT_EMANIFEST, &buf,
                             &len, &e);
  if (rc != 0)
    return rc;
  char *dir = edgert__dir_of(path);
  if (dir == NULL) {
    edgert__free(buf);
    return edgert__error(EDGERT_ENOMEM, "manifest: out of memory");
  }
  rc = edgert_manifest_parse(buf, len, dir, out);
  edgert__free(dir);
  edgert__free(buf);
  return rc;
}

int edgert_manifest_load_modules(edgert_manifest_t *m) {
  if (m == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_manifest_load_modules: NULL");
  if (!m->resolved)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_load_modules: the manifest was "
                         "parsed without a base directory");
  if (m->loaded)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_load_modules: already loaded");
  char q[QUOTE_SIZE], msg[900];
  size_t i;
  int rc = 0;
  for (i = 0; i < m->nmodules; i++) {
    entry_t *e = &m->modules[i];
    edgert_dependency_t *deps = NULL;
    if (e->ndeps > 0) {
      deps = edgert__calloc(e->ndeps, sizeof *deps);
      if (deps == NULL) {
        rc = edgert__error(EDGERT_ENOMEM, "modules[%zu]: out of memory", i);
        break;
      }
      for (size_t j = 0; j < e->ndeps; j++) {
        deps[j].name = e->deps[j].file;
        deps[j].sha256_hex = e->deps[j].sha256;
      }
    }
    edgert_load_options_t o = {.dependencies = deps, .ndependencies = e->ndeps,
                               .isolation = e->isolated ? &e->iso : NULL};
    rc = edgert_module_load_ex(e->file, e->sha256, &o, &e->module);
    edgert__free(deps);
    if (rc < 0) {
      e->module = NULL;
      snprintf(msg, sizeof msg, "%s", edgert_last_error());
      edgert__error(rc, "modules[%zu] (%s): %s", i, quote(e->path, q, sizeof q),
                    msg);
      break;
    }
    for (size_t j = 0; j < e->ncontracts; j++) {
      rc = edgert_module_bind(e->module, &e->contracts[j], NULL);
      if (rc < 0) {
        snprintf(msg, sizeof msg, "%s", edgert_last_error());
        edgert__error(rc, "modules[%zu].contracts[%zu] (%s in %s): %s", i, j,
                      e->contracts[j].function_name,
                      quote(e->path, q, sizeof q), msg);
        break;
      }
    }
    if (rc < 0) {
      i++; /* this one is loaded: free it too */
      break;
    }
  }
  if (rc < 0) {
    while (i-- > 0) {
      edgert_module_free(m->modules[i].module);
      m->modules[i].module = NULL;
    }
    return rc;
  }
  m->loaded = 1;
  return 0;
}

int edgert_manifest_load(const char *path, edgert_manifest_t **out) {
  if (out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_manifest_load: out is NULL");
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_read(path, &m);
  if (rc < 0)
    return rc;
  rc = edgert_manifest_load_modules(m);
  if (rc < 0) {
    edgert_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

/* ---- accessors ---------------------------------------------------------- */

int64_t edgert_manifest_version(const edgert_manifest_t *m) {
  return m == NULL ? 0 : m->version;
}

const char *edgert_manifest_expires(const edgert_manifest_t *m,
                                    int64_t *seconds) {
  if (m == NULL || m->expires[0] == '\0')
    return NULL;
  if (seconds != NULL)
    *seconds = m->expires_at;
  return m->expires;
}

size_t edgert_manifest_module_count(const edgert_manifest_t *m) {
  return m ? m->nmodules : 0;
}

static const entry_t *entry(const edgert_manifest_t *m, size_t i) {
  return (m != NULL && i < m->nmodules) ? &m->modules[i] : NULL;
}

const char *edgert_manifest_module_path(const edgert_manifest_t *m, size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->path : NULL;
}

const char *edgert_manifest_module_file(const edgert_manifest_t *m, size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->file : NULL;
}

const char *edgert_manifest_module_sha256(const edgert_manifest_t *m,
                                          size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->sha256 : NULL;
}

size_t edgert_manifest_dependency_count(const edgert_manifest_t *m, size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->ndeps : 0;
}

const char *edgert_manifest_dependency(const edgert_manifest_t *m, size_t i, size_t j,
                                       const char **file, const char **sha256) {
  const entry_t *e = entry(m, i);
  if (e == NULL || j >= e->ndeps)
    return NULL;
  if (file != NULL)
    *file = e->deps[j].file;
  if (sha256 != NULL)
    *sha256 = e->deps[j].sha256;
  return e->deps[j].path;
}

size_t edgert_manifest_contract_count(const edgert_manifest_t *m, size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->ncontracts : 0;
}

const edgert_contract_t *edgert_manifest_contract(const edgert_manifest_t *m,
                                                  size_t i, size_t j) {
  const entry_t *e = entry(m, i);
  return (e && j < e->ncontracts) ? &e->contracts[j] : NULL;
}

edgert_module_t *edgert_manifest_module(const edgert_manifest_t *m, size_t i) {
  const entry_t *e = entry(m, i);
  return e ? e->module : NULL;
}

edgert_module_t *edgert_manifest_module_by_path(const edgert_manifest_t *m,
                                                const char *path) {
  if (m == NULL || path == NULL)
    return NULL;
  for (size_t i = 0; i < m->nmodules; i++)
    if (strcmp(m->modules[i].path, path) == 0)
      return m->modules[i].module;
  return NULL;
}

int edgert_manifest_function(const edgert_manifest_t *m, const char *name,
                             edgert_func_t **out) {
  char q[QUOTE_SIZE];
  if (m == NULL || name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_function: NULL argument");
  if (!m->loaded)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_manifest_function: the manifest's modules "
                         "are not loaded");
  edgert_func_t *found = NULL;
  size_t where = 0;
  for (size_t i = 0; i < m->nmodules; i++) {
    edgert_func_t *fn = edgert_module_function(m->modules[i].module, name);
    if (fn == NULL)
      continue;
    if (found != NULL)
      return edgert__error(EDGERT_EINVAL,
                           "function %s is bound in modules[%zu] and "
                           "modules[%zu]: pick one with edgert_manifest_module",
                           quote(name, q, sizeof q), where, i);
    found = fn;
    where = i;
  }
  if (found == NULL)
    return edgert__error(EDGERT_ENOTFOUND,
                         "function %s: no module of the manifest binds it",
                         quote(name, q, sizeof q));
  *out = found;
  return 0;
}

int edgert_manifest_module_isolation(const edgert_manifest_t *m, size_t i,
                                     edgert_isolate_options_t *out) {
  if (m == NULL || i >= m->nmodules || !m->modules[i].isolated)
    return 0;
  if (out != NULL)
    *out = m->modules[i].iso;
  return 1;
}
