/*
 * abi.c: the type-name table and contract validation.
 *
 * Invariants: one static table maps every accepted name (canonical names and
 * ctypes aliases) to a code, and one array gives each code its canonical
 * name; every name of one ctypes class on x86-64 Linux maps to one code, so a
 * contract read from JSON, built from Python ctypes types or built by hand in
 * C means the same call. A parsed type is always valid: POINTER types have a
 * pointee that is neither VOID nor POINTER and a depth in
 * 1..EDGERT_MAX_POINTER_DEPTH, every other type has pointee VOID and depth 0.
 * Nothing here allocates, keeps state or runs foreign code; failed calls
 * leave their outputs unchanged.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <wchar.h>

_Static_assert(sizeof(long) == 8 && sizeof(void *) == 8,
               "edgert's type table is written for LP64");

static const char *const canonical[EDGERT_CT__COUNT] = {
    [EDGERT_CT_VOID] = "None",
    [EDGERT_CT_BOOL] = "c_bool",
    [EDGERT_CT_CHAR] = "c_char",
    [EDGERT_CT_WCHAR] = "c_wchar",
    [EDGERT_CT_BYTE] = "c_byte",
    [EDGERT_CT_UBYTE] = "c_ubyte",
    [EDGERT_CT_SHORT] = "c_short",
    [EDGERT_CT_USHORT] = "c_ushort",
    [EDGERT_CT_INT] = "c_int",
    [EDGERT_CT_UINT] = "c_uint",
    [EDGERT_CT_LONG] = "c_ssize_t",
    [EDGERT_CT_ULONG] = "c_size_t",
    [EDGERT_CT_LONGLONG] = "c_longlong",
    [EDGERT_CT_ULONGLONG] = "c_ulonglong",
    [EDGERT_CT_FLOAT] = "c_float",
    [EDGERT_CT_DOUBLE] = "c_double",
    [EDGERT_CT_LONGDOUBLE] = "c_longdouble",
    [EDGERT_CT_CHAR_P] = "c_char_p",
    [EDGERT_CT_WCHAR_P] = "c_wchar_p",
    [EDGERT_CT_VOID_P] = "c_void_p",
    [EDGERT_CT_POINTER] = NULL, /* written as "LP_" + the pointee's name */
    [EDGERT_CT_STRUCT] = NULL,  /* written as "struct " + the layout's name */
    [EDGERT_CT_FUNCPTR] = NULL, /* written as "CFUNCTYPE(...)" (callback.c) */
};

typedef struct {
  const char *name;
  edgert_ctype_t code;
} alias_t;

/* Every accepted name without "LP_". Canonical names first, then aliases;
 * c_longlong is c_long in ctypes on LP64, so it parses to EDGERT_CT_LONG. */
static const alias_t aliases[] = {
    {"None", EDGERT_CT_VOID},
    {"c_bool", EDGERT_CT_BOOL},
    {"c_char", EDGERT_CT_CHAR},
    {"c_wchar", EDGERT_CT_WCHAR},
    {"c_byte", EDGERT_CT_BYTE},
    {"c_ubyte", EDGERT_CT_UBYTE},
    {"c_short", EDGERT_CT_SHORT},
    {"c_ushort", EDGERT_CT_USHORT},
    {"c_int", EDGERT_CT_INT},
    {"c_uint", EDGERT_CT_UINT},
    {"c_ssize_t", EDGERT_CT_LONG},
    {"c_size_t", EDGERT_CT_ULONG},
    {"c_float", EDGERT_CT_FLOAT},
    {"c_double", EDGERT_CT_DOUBLE},
    {"c_longdouble", EDGERT_CT_LONGDOUBLE},
    {"c_char_p", EDGERT_CT_CHAR_P},
    {"c_wchar_p", EDGERT_CT_WCHAR_P},
    {"c_void_p", EDGERT_CT_VOID_P},
    /* aliases */
    {"c_int8", EDGERT_CT_BYTE},
    {"c_uint8", EDGERT_CT_UBYTE},
    {"c_int16", EDGERT_CT_SHORT},
    {"c_uint16", EDGERT_CT_USHORT},
    {"c_int32", EDGERT_CT_INT},
    {"c_uint32", EDGERT_CT_UINT},
    {"c_long", EDGERT_CT_LONG},
    {"c_longlong", EDGERT_CT_LONG},
    {"c_int64", EDGERT_CT_LONG},
    {"c_time_t", EDGERT_CT_LONG},
    {"c_ulong", EDGERT_CT_ULONG},
    {"c_ulonglong", EDGERT_CT_ULONG},
    {"c_uint64", EDGERT_CT_ULONG},
    {"c_voidp", EDGERT_CT_VOID_P},
};
#define N_ALIASES (sizeof aliases / sizeof aliases[0])

/* Writes `s` quoted for a message: printable ASCII as is, other bytes as
 * \xNN, cut at 64 bytes with "..." so a hostile name cannot flood it. */
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
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
      buf[o++] = (char)ch;
    } else {
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
    }
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

#define QUOTE_SIZE 300

static int lookup(const char *name, edgert_ctype_t *code) {
  for (size_t i = 0; i < N_ALIASES; i++) {
    if (strcmp(aliases[i].name, name) == 0) {
      *code = aliases[i].code;
      return 1;
    }
  }
  return 0;
}

/* Stores *t in *out, made const when the name said "const " (a pointer
 * only: "const LP_c_double", "const c_void_p", "const LP_struct S"). */
static int finish_const(const char *name, int is_const, edgert_abi_type_t *t,
                        edgert_abi_type_t *out) {
  char q[QUOTE_SIZE];
  if (is_const) {
    if (t->code != EDGERT_CT_POINTER && t->code != EDGERT_CT_VOID_P)
      return edgert__error(EDGERT_EINVAL,
                           "type name %s: const applies to a pointer "
                           "(\"const LP_c_double\", \"const c_void_p\"), "
                           "not to a value type",
                           quote(name, q, sizeof q));
    t->is_const = 1;
  }
  *out = *t;
  return 0;
}

int edgert_abi_type_parse(const char *name, int allow_void,
                          edgert_abi_type_t *out) {
  char q[QUOTE_SIZE];
  if (name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_abi_type_parse: name and out must not be NULL");
  const char *base = name;
  int is_const = 0;
  if (strncmp(base, "const ", 6) == 0) {
    is_const = 1;
    base += 6;
  }
  unsigned depth = 0;
  while (strncmp(base, "LP_", 3) == 0) {
    base += 3;
    if (++depth > EDGERT_MAX_POINTER_DEPTH)
      return edgert__error(EDGERT_ELIMIT,
                           "type name %s has more than %d POINTER levels",
                           quote(name, q, sizeof q), EDGERT_MAX_POINTER_DEPTH);
  }
  if (strncmp(base, "CFUNCTYPE(", 10) == 0) {
    if (depth > 0)
      return edgert__error(EDGERT_EUNSUPPORTED,
                           "type name %s: a POINTER to a function pointer is "
                           "not supported; pass the function pointer itself "
                           "(a CFUNCTYPE type)",
                           quote(name, q, sizeof q));
    return edgert__fnsig_parse(name, out);
  }
  if (strncmp(base, "union ", 6) == 0)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "type %s: unions are not supported, by value or by "
                         "POINTER (pass its address as c_void_p)",
                         quote(name, q, sizeof q));
  if (strncmp(base, "struct ", 7) == 0) {
    const edgert_struct_t *layout;
    if (edgert_struct_find(base + 7, &layout) < 0)
      return edgert__error(EDGERT_EINVAL,
                           "type %s: no struct %.40s is defined (a manifest's "
                           "\"structs\" section, a ctypes.Structure, or "
                           "edgert_struct_define defines it)",
                           quote(name, q, sizeof q), base + 7);
    edgert_abi_type_t t = {.code = EDGERT_CT_STRUCT, .pointee = EDGERT_CT_VOID, .depth = 0, .layout = layout};
    if (depth > 0) {
      t.code = EDGERT_CT_POINTER;
      t.pointee = EDGERT_CT_STRUCT;
      t.depth = (unsigned char)depth;
    }
    return finish_const(name, is_const, &t, out);
  }
  if (strcmp(base, "py_object") == 0)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "type %s is not supported: kernels take C values, "
                         "not Python objects",
                         quote(name, q, sizeof q));
  edgert_ctype_t code;
  if (!lookup(base, &code))
    return edgert__error(EDGERT_EINVAL, "unknown type name %s",
                         quote(name, q, sizeof q));
  edgert_abi_type_t t = {.code = code, .pointee = EDGERT_CT_VOID, .depth = 0};
  if (code == EDGERT_CT_VOID) {
    if (depth > 0)
      return edgert__error(EDGERT_EINVAL,
                           "type name %s: POINTER(None) is not a type; "
                           "use c_void_p",
                           quote(name, q, sizeof q));
    if (!allow_void)
      return edgert__error(EDGERT_EINVAL,
                           "None (void) is only a return type, not an "
                           "argument type");
  }
  if (depth > 0) {
    t.code = EDGERT_CT_POINTER;
    t.pointee = code;
    t.depth = (unsigned char)depth;
  }
  return finish_const(name, is_const, &t, out);
}

static int type_valid(const edgert_abi_type_t *t) {
  if ((unsigned)t->code >= EDGERT_CT__COUNT || t->is_const > 1)
    return 0;
  if (t->is_const && t->code != EDGERT_CT_POINTER && t->code != EDGERT_CT_VOID_P)
    return 0;
  if (t->code == EDGERT_CT_FUNCPTR)
    return t->sig != NULL && t->pointee == EDGERT_CT_VOID && t->depth == 0;
  if (t->code == EDGERT_CT_POINTER)
    return (unsigned)t->pointee < EDGERT_CT__COUNT &&
           t->pointee != EDGERT_CT_VOID && t->pointee != EDGERT_CT_POINTER &&
           t->pointee != EDGERT_CT_FUNCPTR &&
           t->depth >= 1 && t->depth <= EDGERT_MAX_POINTER_DEPTH &&
           (t->pointee == EDGERT_CT_STRUCT) == (t->layout != NULL);
  return t->pointee == EDGERT_CT_VOID && t->depth == 0 &&
         (t->code == EDGERT_CT_STRUCT) == (t->layout != NULL);
}

int edgert_abi_type_name(const edgert_abi_type_t *t, char *buf, size_t size) {
  if (t == NULL || buf == NULL || size == 0)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_abi_type_name: t and buf must not be NULL");
  if (!type_valid(t))
    return edgert__error(EDGERT_EINVAL,
                         "edgert_abi_type_name: invalid type (code %d, "
                         "pointee %d, depth %u)",
                         (int)t->code, (int)t->pointee, (unsigned)t->depth);
  if (t->code == EDGERT_CT_FUNCPTR)
    return edgert__fnsig_name(t->sig, buf, size);
  unsigned depth = t->code == EDGERT_CT_POINTER ? t->depth : 0;
  const char *base = canonical[depth ? t->pointee : t->code];
  char sname[8 + EDGERT_STRUCT_NAME_MAX];
  if (t->layout != NULL) {
    snprintf(sname, sizeof sname, "struct %s", edgert_struct_name(t->layout));
    base = sname;
  }
  size_t need = (t->is_const ? 6 : 0) + 3 * depth + strlen(base) + 1;
  if (need > size)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_abi_type_name: buffer of %zu bytes is too "
                         "small for %zu",
                         size, need);
  char *p = buf;
  if (t->is_const) {
    memcpy(p, "const ", 6);
    p += 6;
  }
  for (unsigned i = 0; i < depth; i++, p += 3)
    memcpy(p, "LP_", 3);
  memcpy(p, base, strlen(base) + 1);
  return 0;
}

size_t edgert_abi_type_size(const edgert_abi_type_t *t) {
  if (t == NULL || !type_valid(t))
    return 0;
  switch (t->code) {
  case EDGERT_CT_VOID:
    return 0;
  case EDGERT_CT_BOOL:
    return sizeof(_Bool);
  case EDGERT_CT_CHAR:
  case EDGERT_CT_BYTE:
  case EDGERT_CT_UBYTE:
    return 1;
  case EDGERT_CT_WCHAR:
    return sizeof(wchar_t);
  case EDGERT_CT_SHORT:
  case EDGERT_CT_USHORT:
    return sizeof(short);
  case EDGERT_CT_INT:
  case EDGERT_CT_UINT:
    return sizeof(int);
  case EDGERT_CT_LONG:
  case EDGERT_CT_ULONG:
    return sizeof(long);
  case EDGERT_CT_LONGLONG:
  case EDGERT_CT_ULONGLONG:
    return sizeof(long long);
  case EDGERT_CT_FLOAT:
    return sizeof(float);
  case EDGERT_CT_DOUBLE:
    return sizeof(double);
  case EDGERT_CT_LONGDOUBLE:
    return sizeof(long double);
  case EDGERT_CT_CHAR_P:
  case EDGERT_CT_WCHAR_P:
  case EDGERT_CT_VOID_P:
  case EDGERT_CT_POINTER:
  case EDGERT_CT_FUNCPTR:
    return sizeof(void *);
  case EDGERT_CT_STRUCT:
    return edgert_struct_size(t->layout);
  default:
    return 0;
  }
}

const char *edgert_abi_type_alias(size_t index) {
  return index < N_ALIASES ? aliases[index].name : NULL;
}

static int is_identifier(const char *s) {
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
        s[0] == '_'))
    return 0;
  for (size_t i = 1; s[i]; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_'))
      return 0;
  }
  return 1;
}

/* Re-prefixes this thread's message with the field: "arg_types[2]: ...". */
static int field_error(int err, const char *field) {
  char msg[800];
  snprintf(msg, sizeof msg, "%s", edgert_last_error());
  return edgert__error(err, "%s: %s", field, msg);
}

int edgert_contract_init(edgert_contract_t *c, const char *function_name,
                         const char *const *arg_types, size_t nargs,
                         const char *return_type,
                         const char *calling_convention, int release_gil) {
  char q[QUOTE_SIZE];
  if (c == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_contract_init: c is NULL");
  if (function_name == NULL)
    return edgert__error(EDGERT_EINVAL, "function_name: missing (NULL)");
  size_t len = strlen(function_name);
  if (len > EDGERT_MAX_NAME)
    return edgert__error(EDGERT_ELIMIT,
                         "function_name: %zu bytes is longer than the "
                         "limit of %d",
                         len, EDGERT_MAX_NAME);
  if (!is_identifier(function_name))
    return edgert__error(EDGERT_EINVAL,
                         "function_name: %s is not a C identifier",
                         quote(function_name, q, sizeof q));
  if (nargs > EDGERT_MAX_ARGS)
    return edgert__error(EDGERT_ELIMIT,
                         "arg_types: %zu arguments is more than the limit "
                         "of %d",
                         nargs, EDGERT_MAX_ARGS);
  if (nargs > 0 && arg_types == NULL)
    return edgert__error(EDGERT_EINVAL, "arg_types: NULL with %zu arguments",
                         nargs);
  edgert_contract_t tmp;
  memset(&tmp, 0, sizeof tmp);
  memcpy(tmp.function_name, function_name, len + 1);
  tmp.nargs = (unsigned)nargs;
  for (size_t i = 0; i < nargs; i++) {
    char field[32];
    snprintf(field, sizeof field, "arg_types[%zu]", i);
    if (arg_types[i] == NULL)
      return edgert__error(EDGERT_EINVAL, "%s: missing (NULL)", field);
    int rc = edgert_abi_type_parse(arg_types[i], 0, &tmp.args[i]);
    if (rc < 0)
      return field_error(rc, field);
  }
  if (return_type == NULL) {
    tmp.ret.code = EDGERT_CT_VOID;
  } else {
    int rc = edgert_abi_type_parse(return_type, 1, &tmp.ret);
    if (rc < 0)
      return field_error(rc, "return_type");
  }
  if (calling_convention != NULL && strcmp(calling_convention, "cdecl") != 0)
    return edgert__error(EDGERT_EINVAL,
                         "calling_convention: %s is not supported; only "
                         "'cdecl' (the x86-64 System V convention)",
                         quote(calling_convention, q, sizeof q));
  tmp.release_gil = release_gil ? 1 : 0;
  *c = tmp;
  return 0;
}

int edgert_contract_set_variadic(edgert_contract_t *c, unsigned nfixed) {
  if (c == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_contract_set_variadic: c is NULL");
  if (nfixed == 0)
    return edgert__error(EDGERT_EINVAL,
                         "variadic: 0 fixed arguments; C needs at least one "
                         "named parameter before '...'");
  if (nfixed != c->nargs)
    return edgert__error(EDGERT_EINVAL,
                         "variadic: %u fixed arguments, but arg_types lists "
                         "%u (list exactly the fixed ones)",
                         nfixed, c->nargs);
  c->variadic = 1;
  return 0;
}

edgert_abi_type_t edgert_abi_type_promote(const edgert_abi_type_t *t) {
  edgert_abi_type_t r = *t;
  r.is_const = 0;
  switch (t->code) {
  case EDGERT_CT_FLOAT:
    r.code = EDGERT_CT_DOUBLE;
    break;
  case EDGERT_CT_BOOL:
  case EDGERT_CT_CHAR:
  case EDGERT_CT_BYTE:
  case EDGERT_CT_UBYTE:
  case EDGERT_CT_SHORT:
  case EDGERT_CT_USHORT:
  case EDGERT_CT_WCHAR:
    r.code = EDGERT_CT_INT;
    break;
  default:
    break;
  }
  return r;
}

int edgert_contract_format(const edgert_contract_t *c, char *buf,
                           size_t size) {
  if (c == NULL || buf == NULL || size == 0)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_contract_format: c and buf must not be NULL");
  buf[0] = '\0';
  if (c->nargs > EDGERT_MAX_ARGS)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_contract_format: nargs %u is over the limit",
                         c->nargs);
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  size_t o = 0;
  int rc = edgert_abi_type_name(&c->ret, name, sizeof name);
  if (rc < 0)
    return rc;
  int n = snprintf(buf, size, "%s %.*s(", name, EDGERT_MAX_NAME,
                   c->function_name);
  if (n < 0 || (size_t)n >= size)
    goto small;
  o = (size_t)n;
  for (unsigned i = 0; i < c->nargs; i++) {
    rc = edgert_abi_type_name(&c->args[i], name, sizeof name);
    if (rc < 0)
      return rc;
    n = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", name);
    if (n < 0 || (size_t)n >= size - o)
      goto small;
    o += (size_t)n;
  }
  n = snprintf(buf + o, size - o, "%s)", c->variadic ? ", ..." : "");
  if (n < 0 || (size_t)n >= size - o)
    goto small;
  return 0;
small:
  return edgert__error(EDGERT_EINVAL,
                       "edgert_contract_format: buffer of %zu bytes is too "
                       "small",
                       size);
}

/* ---- buffer item formats ---------------------------------------------- */

/* One code letter: kind, native size, standard size (0: none, the letter is
 * native-only in the struct module). Indexed by the letter, so the loader's
 * per-call check is one load. */
typedef struct {
  char letter;
  edgert_item_kind_t kind;
  unsigned char native;
  unsigned char standard;
} item_code_t;

#define IC(ch, k, nat, std) [ch] = {ch, k, nat, std}
static const item_code_t item_codes[128] = {
    IC('b', EDGERT_ITEM_SIGNED, 1, 1),
    IC('h', EDGERT_ITEM_SIGNED, sizeof(short), 2),
    IC('i', EDGERT_ITEM_SIGNED, sizeof(int), 4),
    IC('l', EDGERT_ITEM_SIGNED, sizeof(long), 4),
    IC('q', EDGERT_ITEM_SIGNED, sizeof(long long), 8),
    IC('n', EDGERT_ITEM_SIGNED, sizeof(size_t), 0),
    IC('B', EDGERT_ITEM_UNSIGNED, 1, 1),
    IC('H', EDGERT_ITEM_UNSIGNED, sizeof(short), 2),
    IC('I', EDGERT_ITEM_UNSIGNED, sizeof(int), 4),
    IC('L', EDGERT_ITEM_UNSIGNED, sizeof(long), 4),
    IC('Q', EDGERT_ITEM_UNSIGNED, sizeof(long long), 8),
    IC('N', EDGERT_ITEM_UNSIGNED, sizeof(size_t), 0),
    IC('e', EDGERT_ITEM_FLOAT, 2, 2),
    IC('f', EDGERT_ITEM_FLOAT, sizeof(float), 4),
    IC('d', EDGERT_ITEM_FLOAT, sizeof(double), 8),
    IC('g', EDGERT_ITEM_FLOAT, sizeof(long double), 0),
    IC('?', EDGERT_ITEM_BOOL, sizeof(_Bool), 1),
    IC('c', EDGERT_ITEM_CHAR, 1, 1),
    IC('u', EDGERT_ITEM_WCHAR, sizeof(wchar_t), 0),
    IC('w', EDGERT_ITEM_WCHAR, sizeof(wchar_t), 4),
    IC('P', EDGERT_ITEM_POINTER, sizeof(void *), 0),
};
#undef IC

static int host_little_endian(void) {
  const unsigned one = 1;
  return *(const unsigned char *)&one == 1;
}

static int item_none(edgert_buffer_item_t *out, const char *reason) {
  out->kind = EDGERT_ITEM_NONE;
  out->code = EDGERT_CT_VOID;
  out->letter = 0;
  out->reason = reason;
  return 0;
}

/* The C type of an item of `kind` and `size` bytes (VOID: none). */
static edgert_ctype_t item_ctype(edgert_item_kind_t kind, char letter, size_t size) {
  static const edgert_ctype_t sint[9] = {
      [1] = EDGERT_CT_BYTE, [2] = EDGERT_CT_SHORT, [4] = EDGERT_CT_INT,
      [8] = EDGERT_CT_LONG};
  static const edgert_ctype_t uint[9] = {
      [1] = EDGERT_CT_UBYTE, [2] = EDGERT_CT_USHORT, [4] = EDGERT_CT_UINT,
      [8] = EDGERT_CT_ULONG};
  switch (kind) {
  case EDGERT_ITEM_SIGNED:
    return size <= 8 ? sint[size] : EDGERT_CT_VOID;
  case EDGERT_ITEM_UNSIGNED:
    return size <= 8 ? uint[size] : EDGERT_CT_VOID;
  case EDGERT_ITEM_FLOAT:
    if (letter == 'g' && size == sizeof(long double))
      return EDGERT_CT_LONGDOUBLE;
    return size == sizeof(double)  ? EDGERT_CT_DOUBLE
           : size == sizeof(float) ? EDGERT_CT_FLOAT
                                   : EDGERT_CT_VOID;
  case EDGERT_ITEM_BOOL:
    return EDGERT_CT_BOOL;
  case EDGERT_ITEM_CHAR:
    return EDGERT_CT_CHAR;
  case EDGERT_ITEM_WCHAR:
    return EDGERT_CT_WCHAR;
  case EDGERT_ITEM_POINTER:
    return EDGERT_CT_VOID_P;
  default:
    return EDGERT_CT_VOID;
  }
}

int edgert_buffer_item_parse(const char *format, size_t itemsize,
                             edgert_buffer_item_t *out) {
  if (out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_buffer_item_parse: out is NULL");
  const char *f = format != NULL ? format : "B";
  out->size = itemsize;
  if (f[0] == '&') {
    /* PEP 3118 pointer: what it points to does not change the item. */
    if (f[1] == '\0')
      return item_none(out, "pointer format '&' names no target");
    if (itemsize != sizeof(void *))
      return item_none(out, "pointer items are not pointer-sized");
    out->kind = EDGERT_ITEM_POINTER;
    out->code = EDGERT_CT_VOID_P;
    out->letter = '&';
    out->reason = NULL;
    return 0;
  }
  char order = '@';
  if (f[0] == '@' || f[0] == '=' || f[0] == '<' || f[0] == '>' || f[0] == '!')
    order = *f++;
  if (f[0] == '\0')
    return item_none(out, "empty format");
  if (f[1] != '\0')
    return item_none(out, "not one item (a struct, a repeat count or a string)");
  unsigned char ch = (unsigned char)f[0];
  const item_code_t *c = ch < 128 ? &item_codes[ch] : NULL;
  if (c == NULL || c->letter == 0)
    return item_none(out, "unknown item code");
  int native = order == '@';
  if (native ? itemsize != c->native
             : (itemsize != c->native && (c->standard == 0 || itemsize != c->standard)))
    return item_none(out, "item size does not fit the code");
  if (itemsize > 1 && ((order == '<' && !host_little_endian()) ||
                       ((order == '>' || order == '!') && host_little_endian())))
    return item_none(out, "byte order is not the host's");
  edgert_ctype_t code = item_ctype(c->kind, c->letter, itemsize);
  if (code == EDGERT_CT_VOID && !(c->kind == EDGERT_ITEM_FLOAT && itemsize == 2))
    return item_none(out, "item size does not fit the code");
  out->kind = c->kind;
  out->code = code;
  out->letter = c->letter;
  out->reason = NULL;
  return 0;
}
