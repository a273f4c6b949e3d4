/*
 * fuzz_abi.c: ABI type names and contracts (include/edgert/abi.h).
 *
 * Input: one mode byte, then fields separated by '\n'.
 *   mode % 3 == 0  every field is a type name for edgert_abi_type_parse
 *                  (bit 2 of the mode byte: allow_void), callback types
 *                  "CFUNCTYPE(...)" included;
 *   mode % 3 == 1  a contract: function_name, return_type, calling
 *                  convention, then the argument type names (bit 2: return
 *                  type NULL, bit 3: calling convention NULL);
 *   mode % 3 == 2  raw edgert_abi_type_t values and buffer sizes for
 *                  edgert_abi_type_name / _size / edgert_contract_format.
 * Invariants checked: a parsed type's canonical name parses back to the same
 * type; failed calls leave their outputs unchanged and set a message; a
 * contract that validates holds exactly the fields it was given; names are
 * written within the buffer given, NUL-terminated.
 */
#include "fuzz_common.h"

#include "edgert.h"

static const edgert_abi_type_t sentinel_type = {.code = (edgert_ctype_t)77, .pointee = (edgert_ctype_t)88, .depth = 99};

/* On LP64 ctypes' c_longlong is c_long: the LONGLONG codes (for contracts
 * built by hand in C) are written "c_longlong", which parses to LONG. */
static int same_class(edgert_ctype_t a, edgert_ctype_t b) {
  if (a == EDGERT_CT_LONGLONG)
    a = EDGERT_CT_LONG;
  if (b == EDGERT_CT_LONGLONG)
    b = EDGERT_CT_LONG;
  if (a == EDGERT_CT_ULONGLONG)
    a = EDGERT_CT_ULONG;
  if (b == EDGERT_CT_ULONGLONG)
    b = EDGERT_CT_ULONG;
  return a == b;
}

static void check_type_name_roundtrip(const edgert_abi_type_t *t) {
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  FUZZ_CHECK(edgert_abi_type_name(t, name, sizeof name) == 0);
  FUZZ_CHECK(strlen(name) < sizeof name);
  edgert_abi_type_t back = sentinel_type;
  FUZZ_CHECK(edgert_abi_type_parse(name, 1, &back) == 0);
  FUZZ_CHECK(same_class(back.code, t->code) &&
             same_class(back.pointee, t->pointee) && back.depth == t->depth &&
             back.is_const == t->is_const);
  /* callback signatures are interned: the same signature, the same object */
  FUZZ_CHECK(back.sig == t->sig);
  size_t sz = edgert_abi_type_size(t);
  FUZZ_CHECK(t->code == EDGERT_CT_VOID ? sz == 0 : (sz >= 1 && sz <= 16));
}

static void fuzz_type_names(fuzz_in_t *in, int allow_void) {
  while (!fuzz_empty(in)) {
    char *s = fuzz_field(in, '\n', NULL);
    edgert_abi_type_t t = sentinel_type;
    edgert_clear_error();
    int rc = edgert_abi_type_parse(s, allow_void, &t);
    if (rc == 0) {
      FUZZ_CHECK(t.code < EDGERT_CT__COUNT);
      FUZZ_CHECK(allow_void || t.code != EDGERT_CT_VOID);
      if (t.code == EDGERT_CT_POINTER)
        FUZZ_CHECK(t.depth >= 1 && t.depth <= EDGERT_MAX_POINTER_DEPTH &&
                   t.pointee != EDGERT_CT_VOID &&
                   t.pointee != EDGERT_CT_POINTER);
      else
        FUZZ_CHECK(t.depth == 0);
      if (t.code == EDGERT_CT_FUNCPTR) {
        FUZZ_CHECK(t.sig != NULL && t.sig->nargs <= EDGERT_MAX_CALLBACK_ARGS);
        FUZZ_CHECK(t.sig->ret.code != EDGERT_CT_FUNCPTR);
        for (unsigned k = 0; k < t.sig->nargs; k++)
          FUZZ_CHECK(t.sig->args[k].code != EDGERT_CT_FUNCPTR &&
                     t.sig->args[k].code != EDGERT_CT_VOID);
      } else {
        FUZZ_CHECK(t.sig == NULL);
      }
      check_type_name_roundtrip(&t);
    } else {
      FUZZ_CHECK(rc == EDGERT_EINVAL || rc == EDGERT_EUNSUPPORTED ||
                 rc == EDGERT_ELIMIT);
      FUZZ_CHECK(t.code == sentinel_type.code &&
                 t.pointee == sentinel_type.pointee &&
                 t.depth == sentinel_type.depth);
      FUZZ_CHECK(edgert_last_error()[0] != '\0');
    }
    free(s);
  }
}

static void fuzz_contract(fuzz_in_t *in, uint8_t mode) {
  char *fname = fuzz_field(in, '\n', NULL);
  char *ret = fuzz_field(in, '\n', NULL);
  char *cc = fuzz_field(in, '\n', NULL);
  char *args[EDGERT_MAX_ARGS + 4];
  size_t nargs = 0;
  while (!fuzz_empty(in) && nargs < EDGERT_MAX_ARGS + 4)
    args[nargs++] = fuzz_field(in, '\n', NULL);
  edgert_contract_t c, before;
  memset(&c, 0xA5, sizeof c);
  memcpy(&before, &c, sizeof c);
  edgert_clear_error();
  int rc = edgert_contract_init(&c, fname, (const char *const *)args, nargs,
                                (mode & 4) ? NULL : ret,
                                (mode & 8) ? NULL : cc, mode & 16);
  if (rc == 0) {
    FUZZ_CHECK(strcmp(c.function_name, fname) == 0);
    FUZZ_CHECK(c.nargs == nargs && nargs <= EDGERT_MAX_ARGS);
    for (size_t i = 0; i < nargs; i++) {
      edgert_abi_type_t t;
      FUZZ_CHECK(edgert_abi_type_parse(args[i], 0, &t) == 0);
      FUZZ_CHECK(t.code == c.args[i].code && t.pointee == c.args[i].pointee &&
                 t.depth == c.args[i].depth);
      check_type_name_roundtrip(&c.args[i]);
    }
    check_type_name_roundtrip(&c.ret);
    FUZZ_CHECK(c.release_gil == ((mode & 16) ? 1 : 0));
    /* Formatting fits any buffer it reports success for. */
    size_t sizes[] = {1, 8, 64, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      char *buf = malloc(sizes[k]);
      FUZZ_CHECK(buf != NULL);
      if (edgert_contract_format(&c, buf, sizes[k]) == 0)
        FUZZ_CHECK(strlen(buf) < sizes[k]);
      free(buf);
    }
  } else {
    FUZZ_CHECK(rc == EDGERT_EINVAL || rc == EDGERT_EUNSUPPORTED ||
               rc == EDGERT_ELIMIT);
    FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0);
    FUZZ_CHECK(edgert_last_error()[0] != '\0');
  }
  for (size_t i = 0; i < nargs; i++)
    free(args[i]);
  free(fname);
  free(ret);
  free(cc);
}

static void fuzz_raw_types(fuzz_in_t *in) {
  while (in->n >= 4) {
    edgert_abi_type_t t;
    t.code = (edgert_ctype_t)(int8_t)fuzz_u8(in);
    t.pointee = (edgert_ctype_t)(int8_t)fuzz_u8(in);
    t.depth = fuzz_u8(in);
    t.layout = NULL; /* a layout pointer is only ever one edgert handed out */
    t.sig = NULL; /* raw bytes cannot name an interned signature */
    uint8_t sb = fuzz_u8(in);
    t.is_const = sb >> 7; /* the size byte's top bit: const or not */
    size_t size = (size_t)(sb & 0x7f) % 80;
    char *buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);
    int rc = edgert_abi_type_name(&t, buf, size);
    if (rc == 0) {
      FUZZ_CHECK(strlen(buf) < size);
      check_type_name_roundtrip(&t);
    } else {
      FUZZ_CHECK(rc == EDGERT_EINVAL);
    }
    (void)edgert_abi_type_size(&t);
    free(buf);
  }
}

int edgert_fuzz_abi(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  uint8_t mode = fuzz_u8(&in);
  switch (mode % 3) {
  case 0:
    fuzz_type_names(&in, mode & 4);
    break;
  case 1:
    fuzz_contract(&in, mode);
    break;
  default:
    fuzz_raw_types(&in);
    break;
  }
  return 0;
}

#ifndef EDGERT_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return edgert_fuzz_abi(data, size);
}
#endif
