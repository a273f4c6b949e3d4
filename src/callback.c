/*
 * callback.c: callback signatures (CFUNCTYPE types) and libffi closures.
 *
 * Invariants:
 * - Every signature a type points to is an interned node of `sigs`: one per
 *   distinct signature, never freed or changed, holding the libffi cif that
 *   was prepared once when it was interned. Interning takes no lock (so it
 *   needs no fork handler): slots fill in order with a compare-and-swap, and
 *   a thread that loses the race for a slot compares what won it with its
 *   own candidate before moving on, so two equal signatures never get two
 *   nodes. At most EDGERT_MAX_FNSIGS nodes exist.
 * - A signature is valid when interned: its return type is VOID or any
 *   non-FUNCPTR type, its arguments are non-VOID, non-FUNCPTR types, and
 *   the slots past nargs are zero, so two signatures are equal exactly when
 *   their bytes are.
 * - A closure owns its libffi closure memory and nothing else; its user
 *   data is borrowed. The dispatcher zeroes the return slot before the
 *   handler runs and widens an integer return narrower than a register to
 *   ffi_arg, as libffi requires of closures.
 */
#include "loader_internal.h"

#include <stdio.h>
#include <string.h>
#include <wchar.h>

typedef struct {
  edgert_fnsig_t sig; /* first: a node's address is its sig's */
  ffi_cif cif;
  ffi_type *atypes[EDGERT_MAX_CALLBACK_ARGS];
} sig_node_t;

static _Atomic(sig_node_t *) sigs[EDGERT_MAX_FNSIGS];

static const sig_node_t *node_of(const edgert_fnsig_t *sig) {
  return (const sig_node_t *)(const void *)sig;
}

/* The interned node equal to `cand` (which it may become: then *took = 1
 * and the caller must not free it), or NULL when the table is full. */
static sig_node_t *intern(sig_node_t *cand, int *took) {
  *took = 0;
  for (size_t i = 0; i < EDGERT_MAX_FNSIGS; i++) {
    sig_node_t *p = atomic_load_explicit(&sigs[i], memory_order_acquire);
    if (p == NULL) {
      sig_node_t *expected = NULL;
      if (atomic_compare_exchange_strong_explicit(&sigs[i], &expected, cand,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
        *took = 1;
        return cand;
      }
      p = expected;
    }
    if (memcmp(&p->sig, &cand->sig, sizeof p->sig) == 0)
      return p;
  }
  return NULL;
}

/* Copies type *src into *dst field by field, so that the zeroed padding of
 * *dst stays zero and equal signatures compare equal byte for byte. */
static void put(edgert_abi_type_t *dst, const edgert_abi_type_t *src) {
  dst->code = src->code;
  dst->pointee = src->pointee;
  dst->depth = src->depth;
  dst->sig = src->sig;
}

/* Copies item [s, e) without surrounding blanks into buf; 0 if empty or
 * too long. */
static int item_copy(const char *s, const char *e, char *buf, size_t size) {
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  size_t n = (size_t)(e - s);
  if (n == 0 || n >= size)
    return 0;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return 1;
}

int edgert__fnsig_parse(const char *name, edgert_abi_type_t *out) {
  char q[256];
  const char *open = name + strlen("CFUNCTYPE(");
  size_t len = strlen(name);
  if (len < 11 || name[len - 1] != ')')
    return edgert__error(EDGERT_EINVAL,
                         "type name %s: a CFUNCTYPE(...) type name must end "
                         "with ')'",
                         edgert__quote_path(name, q, sizeof q));
  const char *close = name + len - 1;
  for (const char *p = open; p < close; p++)
    if (*p == '(' || *p == ')')
      return edgert__error(EDGERT_EUNSUPPORTED,
                           "type name %s: a callback whose argument or return "
                           "type is itself a callback (or has parentheses) is "
                           "not supported",
                           edgert__quote_path(name, q, sizeof q));
  sig_node_t cand;
  memset(&cand, 0, sizeof cand);
  const char *s = open;
  unsigned k = 0; /* item index: 0 the return type */
  for (;;) {
    const char *e = s;
    while (e < close && *e != ',')
      e++;
    char item[EDGERT_ABI_TYPE_NAME_MAX];
    if (!item_copy(s, e, item, sizeof item)) {
      if (k == 0)
        return edgert__error(EDGERT_EINVAL,
                             "type name %s: the callback return type is empty "
                             "(expected CFUNCTYPE(restype, argtype, ...))",
                             edgert__quote_path(name, q, sizeof q));
      return edgert__error(EDGERT_EINVAL,
                           "type name %s: callback argument %u is empty "
                           "(expected CFUNCTYPE(restype, argtype, ...))",
                           edgert__quote_path(name, q, sizeof q), k);
    }
    if (k > EDGERT_MAX_CALLBACK_ARGS)
      return edgert__error(EDGERT_ELIMIT,
                           "type name %s: a callback has at most %d arguments",
                           edgert__quote_path(name, q, sizeof q),
                           EDGERT_MAX_CALLBACK_ARGS);
    const char *base = item;
    while (strncmp(base, "LP_", 3) == 0)
      base += 3;
    if (strncmp(base, "struct ", 7) == 0) {
      if (k == 0)
        return edgert__error(EDGERT_EUNSUPPORTED,
                             "callback return type: type %s: a struct in a callback "
                             "signature is not supported",
                             edgert__quote_path(item, q, sizeof q));
      return edgert__error(EDGERT_EUNSUPPORTED,
                           "callback argument %u: type %s: a struct in a callback "
                           "signature is not supported (pass its address as c_void_p)",
                           k, edgert__quote_path(item, q, sizeof q));
    }
    edgert_abi_type_t t;
    int rc = edgert_abi_type_parse(item, k == 0, &t);
    if (rc < 0) {
      char msg[600];
      snprintf(msg, sizeof msg, "%s", edgert_last_error());
      if (k == 0)
        return edgert__error(rc, "callback return type: %s", msg);
      return edgert__error(rc, "callback argument %u: %s", k, msg);
    }
    put(k == 0 ? &cand.sig.ret : &cand.sig.args[k - 1], &t);
    k++;
    if (e == close)
      break;
    s = e + 1;
  }
  cand.sig.nargs = k - 1;
  ffi_type *rt = edgert__ffi_type_of(cand.sig.ret.code);
  for (unsigned i = 0; i < cand.sig.nargs; i++)
    cand.atypes[i] = edgert__ffi_type_of(cand.sig.args[i].code);
  /* Probe the table first: the common case (a signature seen before) costs
   * no allocation. */
  int took;
  sig_node_t *found = NULL;
  for (size_t i = 0; i < EDGERT_MAX_FNSIGS; i++) {
    sig_node_t *p = atomic_load_explicit(&sigs[i], memory_order_acquire);
    if (p == NULL)
      break;
    if (memcmp(&p->sig, &cand.sig, sizeof p->sig) == 0) {
      found = p;
      break;
    }
  }
  if (found == NULL) {
    sig_node_t *node = edgert__malloc(sizeof *node);
    if (node == NULL)
      return edgert__error(EDGERT_ENOMEM, "type name %s: out of memory interning "
                           "the callback signature",
                           edgert__quote_path(name, q, sizeof q));
    memcpy(node, &cand, sizeof *node);
    ffi_status st = ffi_prep_cif(&node->cif, FFI_DEFAULT_ABI, node->sig.nargs, rt,
                                 node->sig.nargs ? node->atypes : NULL);
    if (st != FFI_OK) {
      edgert__free(node);
      return edgert__error(EDGERT_EUNSUPPORTED,
                           "type name %s: libffi cannot prepare this callback "
                           "signature (status %d)",
                           edgert__quote_path(name, q, sizeof q), (int)st);
    }
    found = intern(node, &took);
    if (!took)
      edgert__free(node);
    if (found == NULL)
      return edgert__error(EDGERT_ELIMIT,
                           "type name %s: more than %d distinct callback "
                           "signatures in one process",
                           edgert__quote_path(name, q, sizeof q),
                           EDGERT_MAX_FNSIGS);
  }
  edgert_abi_type_t t = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0, .sig = &found->sig};
  *out = t;
  return 0;
}

int edgert__fnsig_name(const edgert_fnsig_t *sig, char *buf, size_t size) {
  char item[EDGERT_ABI_TYPE_NAME_MAX];
  size_t o = 0;
  int n = snprintf(buf, size, "CFUNCTYPE(");
  if (n < 0 || (size_t)n >= size)
    goto small;
  o = (size_t)n;
  for (unsigned k = 0; k <= sig->nargs; k++) {
    const edgert_abi_type_t *t = k == 0 ? &sig->ret : &sig->args[k - 1];
    if (t->code == EDGERT_CT_FUNCPTR)
      return edgert__error(EDGERT_EINVAL, "edgert_abi_type_name: nested callback type");
    int rc = edgert_abi_type_name(t, item, sizeof item);
    if (rc < 0)
      return rc;
    n = snprintf(buf + o, size - o, "%s%s", k ? ", " : "", item);
    if (n < 0 || (size_t)n >= size - o)
      goto small;
    o += (size_t)n;
  }
  n = snprintf(buf + o, size - o, ")");
  if (n < 0 || (size_t)n >= size - o)
    goto small;
  return 0;
small:
  buf[0] = '\0';
  return edgert__error(EDGERT_EINVAL,
                       "edgert_abi_type_name: buffer of %zu bytes is too small "
                       "for a callback type name",
                       size);
}

static int same_type(const edgert_abi_type_t *a, const edgert_abi_type_t *b) {
  return a->code == b->code && a->pointee == b->pointee && a->depth == b->depth &&
         a->sig == b->sig;
}

int edgert_fnsig_check_contract(const edgert_fnsig_t *sig, const edgert_contract_t *c) {
  EDGERT__RETURN_IF_NULL(sig, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(c, EDGERT_EINVAL);
  char a[EDGERT_ABI_TYPE_NAME_MAX], b[EDGERT_ABI_TYPE_NAME_MAX];
  if (c->nargs != sig->nargs)
    return edgert__error(EDGERT_EINVAL,
                         "%.255s takes %u argument%s, the callback type %u",
                         c->function_name, c->nargs, c->nargs == 1 ? "" : "s",
                         sig->nargs);
  if (!same_type(&c->ret, &sig->ret)) {
    if (edgert_abi_type_name(&c->ret, a, sizeof a) < 0 ||
        edgert_abi_type_name(&sig->ret, b, sizeof b) < 0)
      return edgert__error(EDGERT_EINVAL, "%.255s: invalid return type", c->function_name);
    return edgert__error(EDGERT_EINVAL,
                         "%.255s returns %s, the callback type %s",
                         c->function_name, a, b);
  }
  for (unsigned i = 0; i < c->nargs; i++) {
    if (same_type(&c->args[i], &sig->args[i]))
      continue;
    if (edgert_abi_type_name(&c->args[i], a, sizeof a) < 0 ||
        edgert_abi_type_name(&sig->args[i], b, sizeof b) < 0)
      return edgert__error(EDGERT_EINVAL, "%.255s: invalid argument type",
                           c->function_name);
    return edgert__error(EDGERT_EINVAL,
                         "%.255s: argument %u is %s, the callback type has %s",
                         c->function_name, i + 1, a, b);
  }
  return 0;
}

/* ---- closures ------------------------------------------------------------- */

struct edgert_closure_s {
  ffi_closure *fc;
  void *code;
  const edgert_fnsig_t *sig;
  edgert_closure_handler_t handler;
  void *user;
};

/* libffi's entry: `ret` has room for ffi_arg at least. */
static void dispatch(ffi_cif *cif, void *ret, void **args, void *data) {
  (void)cif;
  edgert_closure_t *c = data;
  const edgert_fnsig_t *sig = c->sig;
  union {
    _Bool b;
    char c;
    signed char sc;
    unsigned char uc;
    short s;
    unsigned short us;
    int i;
    unsigned u;
    wchar_t w;
    long double ld;
    unsigned char raw[32];
  } r;
  memset(&r, 0, sizeof r);
  c->handler(sig, &r, (void *const *)args, c->user);
  switch (sig->ret.code) {
  case EDGERT_CT_VOID:
    return;
  case EDGERT_CT_BOOL:
    *(ffi_arg *)ret = r.b;
    return;
  case EDGERT_CT_CHAR:
    *(ffi_sarg *)ret = r.c;
    return;
  case EDGERT_CT_BYTE:
    *(ffi_sarg *)ret = r.sc;
    return;
  case EDGERT_CT_UBYTE:
    *(ffi_arg *)ret = r.uc;
    return;
  case EDGERT_CT_SHORT:
    *(ffi_sarg *)ret = r.s;
    return;
  case EDGERT_CT_USHORT:
    *(ffi_arg *)ret = r.us;
    return;
  case EDGERT_CT_INT:
    *(ffi_sarg *)ret = r.i;
    return;
  case EDGERT_CT_UINT:
    *(ffi_arg *)ret = r.u;
    return;
  case EDGERT_CT_WCHAR:
    *(ffi_sarg *)ret = r.w;
    return;
  default:
    memcpy(ret, r.raw, edgert_abi_type_size(&sig->ret));
    return;
  }
}

int edgert_closure_new(edgert_closure_t **out, const edgert_abi_type_t *type,
                       edgert_closure_handler_t handler, void *user) {
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(type, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(handler, EDGERT_EINVAL);
  if (type->code != EDGERT_CT_FUNCPTR || type->sig == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_closure_new: type is not a callback type "
                         "(code %d; parse a CFUNCTYPE(...) name)",
                         (int)type->code);
  edgert_closure_t *c = edgert__malloc(sizeof *c);
  if (c == NULL)
    return edgert__error(EDGERT_ENOMEM, "edgert_closure_new: out of memory");
  c->sig = type->sig;
  c->handler = handler;
  c->user = user;
  c->fc = ffi_closure_alloc(sizeof(ffi_closure), &c->code);
  if (c->fc == NULL) {
    edgert__free(c);
    return edgert__error(EDGERT_ENOMEM,
                         "edgert_closure_new: libffi cannot allocate closure "
                         "memory (ffi_closure_alloc)");
  }
  ffi_status st = ffi_prep_closure_loc(c->fc, (ffi_cif *)&node_of(c->sig)->cif, dispatch,
                                       c, c->code);
  if (st != FFI_OK) {
    ffi_closure_free(c->fc);
    edgert__free(c);
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "edgert_closure_new: libffi cannot make a closure "
                         "(status %d)",
                         (int)st);
  }
  *out = c;
  return 0;
}

void *edgert_closure_code(const edgert_closure_t *c) {
  return c != NULL ? c->code : NULL;
}

const edgert_fnsig_t *edgert_closure_sig(const edgert_closure_t *c) {
  return c != NULL ? c->sig : NULL;
}

void edgert_closure_free(edgert_closure_t *c) {
  if (c == NULL)
    return;
  ffi_closure_free(c->fc);
  edgert__free(c);
}
