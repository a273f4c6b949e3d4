/*
 * ffi.c: preparing bound functions and calling them.
 *
 * Invariants:
 * - A function's call path is fixed at bind time: a precompiled trampoline
 *   cast to the exact prototype of its register classes (integer and pointer
 *   arguments as int64_t, float, double) for up to 4 arguments; else a
 *   register-file trampoline when every argument travels in a register;
 *   else a libffi cif prepared once (stack arguments, long double).
 *   ffi_call reclassifies every argument on each call; the trampolines do no
 *   per-call work beyond moving the slots.
 * - Trampolines read arguments from edgert_value_t slots whose integers are
 *   already widened with the sign or zero extension of their C type, so a
 *   narrow argument passed as int64_t arrives exactly as the callee's
 *   prototype expects (x86-64 SysV and AArch64 pass integers in 64-bit
 *   registers or 8-byte stack slots; extension to 64 bits satisfies every
 *   callee). Integer returns are stored as the full register; their low
 *   bytes are the value of the narrower return type (little-endian only).
 * - Every call into module code goes through edgert__guarded_invoke. A
 *   call counts itself in its module's `active` before checking `state`,
 *   so an unload never releases the mapping under a running call; a crash
 *   quarantines the image, and a quarantined or unloaded module's code is
 *   never entered. A signal sent to the calling thread (not raised by the
 *   module's code: edgert_crash_t.sent) abandons the call without
 *   quarantining anything.
 * - errno (use_errno contracts only): the thread's saved copy goes into
 *   errno right before the callee runs and errno back into it right after,
 *   inside the guarded trampoline, so nothing of edgert runs in between.
 *   Such a function's `tramp` is errno_tramp wrapping the one it would have
 *   had (or libffi from slots); contracts without use_errno keep exactly
 *   their old call path.
 * - Variadic functions always take libffi (the trampolines' prototypes are
 *   not variadic, and x86-64 needs %al set for `...`); their cif per extra
 *   type list is cached, append-only and published by a release store.
 */
#include "loader_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "edgert's call path assumes a little-endian machine"
#endif
#if defined(__x86_64__) || defined(__aarch64__)
#define EDGERT_FAST_TRAMPOLINES 1
#else
#define EDGERT_FAST_TRAMPOLINES 0
#endif
/* wchar_t is signed on x86-64 and unsigned on AArch64. Decided by the
 * preprocessor: `(wchar_t)-1 < 0` in C is a comparison -Wtype-limits rejects
 * wherever wchar_t is unsigned. */
#if WCHAR_MIN < 0
#define EDGERT_FFI_WCHAR (&ffi_type_sint32)
#else
#define EDGERT_FFI_WCHAR (&ffi_type_uint32)
#endif

/* ---- the libffi path ------------------------------------------------------ */

ffi_type *edgert__ffi_type_of(edgert_ctype_t code) {
  switch (code) {
  case EDGERT_CT_VOID:
    return &ffi_type_void;
  case EDGERT_CT_BOOL:
    return sizeof(_Bool) == 1 ? &ffi_type_uint8 : &ffi_type_uint32;
  case EDGERT_CT_CHAR:
    return (char)-1 < 0 ? &ffi_type_sint8 : &ffi_type_uint8;
  case EDGERT_CT_WCHAR:
    return EDGERT_FFI_WCHAR;
  case EDGERT_CT_BYTE:
    return &ffi_type_sint8;
  case EDGERT_CT_UBYTE:
    return &ffi_type_uint8;
  case EDGERT_CT_SHORT:
    return &ffi_type_sint16;
  case EDGERT_CT_USHORT:
    return &ffi_type_uint16;
  case EDGERT_CT_INT:
    return &ffi_type_sint32;
  case EDGERT_CT_UINT:
    return &ffi_type_uint32;
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    return &ffi_type_sint64;
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    return &ffi_type_uint64;
  case EDGERT_CT_FLOAT:
    return &ffi_type_float;
  case EDGERT_CT_DOUBLE:
    return &ffi_type_double;
  case EDGERT_CT_LONGDOUBLE:
    return &ffi_type_longdouble;
  case EDGERT_CT_CHAR_P:
  case EDGERT_CT_WCHAR_P:
  case EDGERT_CT_VOID_P:
  case EDGERT_CT_POINTER:
  case EDGERT_CT_FUNCPTR:
    return &ffi_type_pointer;
  default:
    return NULL;
  }
}

/* errno of use_errno contracts, per thread (edgert_get_errno). */
static _Thread_local int saved_errno;

int edgert_get_errno(void) { return saved_errno; }

int edgert_set_errno(int value) {
  int old = saved_errno;
  saved_errno = value;
  return old;
}

/* A contract type's libffi type: a struct's from its layout (NULL with the
 * message set when the layout cannot travel by value), else the scalar's. */
static ffi_type *ffi_type_for(const edgert_contract_t *c, const edgert_abi_type_t *t,
                              const char *what) {
  if (t->code != EDGERT_CT_STRUCT)
    return edgert__ffi_type_of(t->code);
  const char *problem = edgert_struct_by_value_problem(t->layout);
  if (problem != NULL) {
    edgert__error(EDGERT_EUNSUPPORTED, "binding '%s': %s: %s", c->function_name, what, problem);
    return NULL;
  }
  return edgert__struct_ffi_type(t->layout);
}

/* `fn` is an edgert__call_t here, not the code address. */
static void ffi_tramp(void *fn, void **avalues, void *ret) {
  const edgert__call_t *c = fn;
  ffi_call((ffi_cif *)&c->fn->cif, FFI_FN(c->addr), ret, avalues);
}

/* libffi from widened slots, as a trampoline (the errno wrapper's `inner`
 * for functions that have no precompiled one); `fn` is an edgert__call_t. */
static void ffi_values_tramp(void *fn, void **a, void *ret) {
  const edgert__call_t *c = fn;
  const edgert_func_t *f = c->fn;
  edgert_value_t *v = (edgert_value_t *)(void *)a;
  void *av[EDGERT_MAX_ARGS];
  for (unsigned i = 0; i < f->nargs; i++) /* a struct's slot holds its address */
    av[i] = f->contract.args[i].code == EDGERT_CT_STRUCT ? v[i].p : (void *)&v[i];
  ffi_call((ffi_cif *)&f->cif, FFI_FN(c->addr), ret, av);
}

/* The trampoline of a use_errno function that has a fast one (`inner`);
 * `fn` is an edgert__call_t (the function and its address in the mapping
 * the call holds), handed on as it is to an inner trampoline that takes
 * one, else as the address. */
static void errno_tramp(void *fn, void **a, void *ret) {
  const edgert__call_t *c = fn;
  const edgert_func_t *f = c->fn;
  void *target = f->inner_regcall ? fn : c->addr;
  errno = saved_errno;
  f->inner(target, a, ret);
  saved_errno = errno;
}

/* ---- trampolines ---------------------------------------------------------- */

#if EDGERT_FAST_TRAMPOLINES
/* Register classes: I (integers and pointers as int64_t), D (double), F
 * (float); return classes add V (void). */
#define TY_I int64_t
#define TY_D double
#define TY_F float
#define AV_I(k) v[k].i
#define AV_D(k) v[k].d
#define AV_F(k) v[k].f
#define RT_V void
#define RT_I int64_t
#define RT_D double
#define RT_F float
#define ST_V(e) ((void)ret, (e))
#define ST_I(e) (*(int64_t *)ret = (e))
#define ST_D(e) (*(double *)ret = (e))
#define ST_F(e) (*(float *)ret = (e))
#define HEAD(nm)                                                               \
  static void nm(void *fn, void **a, void *ret) {                              \
    edgert_value_t *v = (edgert_value_t *)(void *)a;                           \
    (void)v;

#define TR0(R) HEAD(tr_##R##_) ST_##R(((RT_##R(*)(void))fn)()); }
#define TR1(R, A) HEAD(tr_##R##_##A) ST_##R(((RT_##R(*)(TY_##A))fn)(AV_##A(0))); }
#define TR2(R, A, B)                                                           \
  HEAD(tr_##R##_##A##B)                                                        \
  ST_##R(((RT_##R(*)(TY_##A, TY_##B))fn)(AV_##A(0), AV_##B(1))); }
#define TR3(R, A, B, C)                                                        \
  HEAD(tr_##R##_##A##B##C)                                                     \
  ST_##R(((RT_##R(*)(TY_##A, TY_##B, TY_##C))fn)(AV_##A(0), AV_##B(1),         \
                                                  AV_##C(2))); }
#define TR4(R, A, B, C, D)                                                     \
  HEAD(tr_##R##_##A##B##C##D)                                                  \
  ST_##R(((RT_##R(*)(TY_##A, TY_##B, TY_##C, TY_##D))fn)(                      \
      AV_##A(0), AV_##B(1), AV_##C(2), AV_##D(3))); }
#define TR5(R, A)                                                              \
  HEAD(tr_##R##_5##A)                                                          \
  ST_##R(((RT_##R(*)(TY_##A, TY_##A, TY_##A, TY_##A, TY_##A))fn)(              \
      AV_##A(0), AV_##A(1), AV_##A(2), AV_##A(3), AV_##A(4))); }
#define TR6(R, A)                                                              \
  HEAD(tr_##R##_6##A)                                                          \
  ST_##R(((RT_##R(*)(TY_##A, TY_##A, TY_##A, TY_##A, TY_##A, TY_##A))fn)(      \
      AV_##A(0), AV_##A(1), AV_##A(2), AV_##A(3), AV_##A(4), AV_##A(5))); }

#define G1(R) TR1(R, I) TR1(R, D) TR1(R, F)
#define G2b(R, A) TR2(R, A, I) TR2(R, A, D) TR2(R, A, F)
#define G2(R) G2b(R, I) G2b(R, D) G2b(R, F)
#define G3c(R, A, B) TR3(R, A, B, I) TR3(R, A, B, D) TR3(R, A, B, F)
#define G3b(R, A) G3c(R, A, I) G3c(R, A, D) G3c(R, A, F)
#define G3(R) G3b(R, I) G3b(R, D) G3b(R, F)
#define G4d(R, A, B, C) TR4(R, A, B, C, I) TR4(R, A, B, C, D) TR4(R, A, B, C, F)
#define G4c(R, A, B) G4d(R, A, B, I) G4d(R, A, B, D) G4d(R, A, B, F)
#define G4b(R, A) G4c(R, A, I) G4c(R, A, D) G4c(R, A, F)
#define G4(R) G4b(R, I) G4b(R, D) G4b(R, F)
#define GALL(R) TR0(R) G1(R) G2(R) G3(R) G4(R) TR5(R, I) TR5(R, D) TR6(R, I) TR6(R, D)

GALL(V)
GALL(I)
GALL(D)
GALL(F)

/* Tables in the same order: first argument varies slowest, I D F. */
#define N1(R) tr_##R##_I, tr_##R##_D, tr_##R##_F
#define N2b(R, A) tr_##R##_##A##I, tr_##R##_##A##D, tr_##R##_##A##F
#define N2(R) N2b(R, I), N2b(R, D), N2b(R, F)
#define N3c(R, A, B) tr_##R##_##A##B##I, tr_##R##_##A##B##D, tr_##R##_##A##B##F
#define N3b(R, A) N3c(R, A, I), N3c(R, A, D), N3c(R, A, F)
#define N3(R) N3b(R, I), N3b(R, D), N3b(R, F)
#define N4d(R, A, B, C)                                                        \
  tr_##R##_##A##B##C##I, tr_##R##_##A##B##C##D, tr_##R##_##A##B##C##F
#define N4c(R, A, B) N4d(R, A, B, I), N4d(R, A, B, D), N4d(R, A, B, F)
#define N4b(R, A) N4c(R, A, I), N4c(R, A, D), N4c(R, A, F)
#define N4(R) N4b(R, I), N4b(R, D), N4b(R, F)

static const edgert__tramp_t tab0[4] = {tr_V_, tr_I_, tr_D_, tr_F_};
static const edgert__tramp_t tab1[4][3] = {{N1(V)}, {N1(I)}, {N1(D)}, {N1(F)}};
static const edgert__tramp_t tab2[4][9] = {{N2(V)}, {N2(I)}, {N2(D)}, {N2(F)}};
static const edgert__tramp_t tab3[4][27] = {{N3(V)}, {N3(I)}, {N3(D)}, {N3(F)}};
static const edgert__tramp_t tab4[4][81] = {{N4(V)}, {N4(I)}, {N4(D)}, {N4(F)}};
static const edgert__tramp_t tab5[4][2] = {
    {tr_V_5I, tr_V_5D}, {tr_I_5I, tr_I_5D}, {tr_D_5I, tr_D_5D}, {tr_F_5I, tr_F_5D}};
static const edgert__tramp_t tab6[4][2] = {
    {tr_V_6I, tr_V_6D}, {tr_I_6I, tr_I_6D}, {tr_D_6I, tr_D_6D}, {tr_F_6I, tr_F_6D}};

/* Argument class: 0 I, 1 D, 2 F, -1 none (long double). */
static int arg_class(edgert_ctype_t code) {
  switch (code) {
  case EDGERT_CT_DOUBLE:
    return 1;
  case EDGERT_CT_FLOAT:
    return 2;
  case EDGERT_CT_LONGDOUBLE:
  case EDGERT_CT_VOID:
  case EDGERT_CT_STRUCT:
    return -1;
  default:
    return 0;
  }
}

/* Return class: 0 V, 1 I, 2 D, 3 F, -1 none. */
static int ret_class(edgert_ctype_t code) {
  switch (code) {
  case EDGERT_CT_VOID:
    return 0;
  case EDGERT_CT_DOUBLE:
    return 2;
  case EDGERT_CT_FLOAT:
    return 3;
  case EDGERT_CT_LONGDOUBLE:
  case EDGERT_CT_STRUCT:
    return -1;
  default:
    return 1;
  }
}

/*
 * Register-file trampolines: any signature whose arguments all travel in
 * registers (at most NGPR integer/pointer and 8 float/double arguments, no
 * long double) is called through a prototype that takes every argument
 * register: NGPR int64_t then 8 doubles. The callee reads the registers its
 * own prototype names and ignores the rest; a float travels in the low 32
 * bits of its vector register, which is where its bits are copied. Which
 * register each argument goes to is decided at bind time (fn->slot), so a
 * call only moves slots into two small arrays.
 */
#if defined(__x86_64__)
#define NGPR 6
#define GPR_ARGS(g) g[0], g[1], g[2], g[3], g[4], g[5]
#define GPR_TYPES int64_t, int64_t, int64_t, int64_t, int64_t, int64_t
#else
#define NGPR 8
#define GPR_ARGS(g) g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
#define GPR_TYPES int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t
#endif
#define FPR_ARGS(x) x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
#define FPR_TYPES double, double, double, double, double, double, double, double

#define REGCALL(R)                                                             \
  static void rc_##R(void *fp, void **a, void *ret) {                          \
    const edgert__call_t *c = fp;                                              \
    const edgert_func_t *f = c->fn;                                            \
    const edgert_value_t *v = (const edgert_value_t *)(void *)a;               \
    int64_t g[NGPR] = {0};                                                     \
    double x[8] = {0};                                                         \
    for (unsigned i = 0; i < f->nargs; i++) {                                  \
      unsigned s = f->slot[i];                                                 \
      if (s & 0x80)                                                            \
        memcpy(&x[s & 7], &v[i], sizeof(double));                              \
      else                                                                     \
        g[s] = v[i].i;                                                         \
    }                                                                          \
    ST_##R(((RT_##R(*)(GPR_TYPES, FPR_TYPES))c->addr)(GPR_ARGS(g), FPR_ARGS(x))); \
  }
REGCALL(V)
REGCALL(I)
REGCALL(D)
REGCALL(F)
static const edgert__tramp_t regcalls[4] = {rc_V, rc_I, rc_D, rc_F};

/* The same with struct arguments split into registers: a struct argument
 * (its slot holds its address) whose `words[i]` 8-byte words all go to
 * consecutive registers from slot[i] (see struct_words). */
#define REGCALL_S(R)                                                           \
  static void rcs_##R(void *fp, void **a, void *ret) {                         \
    const edgert__call_t *c = fp;                                              \
    const edgert_func_t *f = c->fn;                                            \
    const edgert_value_t *v = (const edgert_value_t *)(void *)a;               \
    int64_t g[NGPR] = {0};                                                     \
    double x[8] = {0};                                                         \
    for (unsigned i = 0; i < f->nargs; i++) {                                  \
      unsigned s = f->slot[i], k = f->words[i];                                \
      const void *src = k ? v[i].p : (const void *)&v[i];                      \
      if (k == 0)                                                              \
        k = 1;                                                                 \
      if (s & 0x80)                                                            \
        memcpy(&x[s & 7], src, 8 * k);                                         \
      else                                                                     \
        memcpy(&g[s], src, 8 * k);                                             \
    }                                                                          \
    ST_##R(((RT_##R(*)(GPR_TYPES, FPR_TYPES))c->addr)(GPR_ARGS(g), FPR_ARGS(x))); \
  }
REGCALL_S(V)
REGCALL_S(I)
REGCALL_S(D)
REGCALL_S(F)
static const edgert__tramp_t regcalls_s[4] = {rcs_V, rcs_I, rcs_D, rcs_F};

/* Kinds of 8-byte words a struct is made of: 0 none (not every element an
 * 8-byte value of one class), 1 integers and pointers, 2 doubles. */
static int word_kind(const edgert_struct_t *s, unsigned *words) {
  int kind = -1;
  for (size_t i = 0; i < edgert_struct_nfields(s); i++) {
    const edgert_struct_field_t *f = edgert_struct_field(s, i);
    size_t cnt = f->count ? f->count : 1;
    int k;
    unsigned sub = 0;
    switch (f->type.code) {
    case EDGERT_CT_STRUCT:
      k = word_kind(f->type.layout, &sub);
      if (k == 0)
        return 0;
      break;
    case EDGERT_CT_DOUBLE:
      k = 2, sub = 1;
      break;
    case EDGERT_CT_LONG:
    case EDGERT_CT_ULONG:
    case EDGERT_CT_LONGLONG:
    case EDGERT_CT_ULONGLONG:
    case EDGERT_CT_CHAR_P:
    case EDGERT_CT_WCHAR_P:
    case EDGERT_CT_VOID_P:
    case EDGERT_CT_POINTER:
      k = 1, sub = 1;
      break;
    default:
      return 0;
    }
    if (kind >= 0 && k != kind)
      return 0;
    kind = k;
    *words += sub * (unsigned)cnt;
    if (*words > 4)
      return 0;
  }
  return kind < 0 ? 0 : kind;
}

/* How many registers struct `s` takes by value when the C convention splits
 * it into registers exactly as the same number of separate 8-byte arguments
 * (0 otherwise): on x86-64 (System V) a struct of at most 16 bytes whose
 * eightbytes are all SSE (doubles) or all INTEGER; on AArch64 (AAPCS64) a
 * homogeneous aggregate of at most 4 doubles, or a struct of at most 16
 * bytes of 8-byte integers. No padding, no packing: size is 8 * words. */
static unsigned struct_words(const edgert_struct_t *s, int *fpr) {
  unsigned words = 0;
  int kind = word_kind(s, &words);
  if (kind == 0 || edgert_struct_by_value_problem(s) != NULL ||
      edgert_struct_size(s) != 8 * (size_t)words)
    return 0;
#if defined(__x86_64__)
  if (words > 2)
    return 0;
#else
  if (words > (kind == 2 ? 4u : 2u))
    return 0;
#endif
  *fpr = kind == 2;
  return words;
}

/* Fills fn->slot (and fn->words) and returns the register-file
 * trampoline, or NULL. */
static edgert__tramp_t pick_regcall(edgert_func_t *fn) {
  const edgert_contract_t *c = &fn->contract;
  int r = ret_class(c->ret.code);
  if (r < 0)
    return NULL;
  unsigned ng = 0, nf = 0;
  int split = 0;
  for (unsigned i = 0; i < c->nargs; i++) {
    fn->words[i] = 0;
    if (c->args[i].code == EDGERT_CT_STRUCT) {
      int fpr = 0;
      unsigned w = struct_words(c->args[i].layout, &fpr);
      if (w == 0 || (fpr ? nf + w > 8 : ng + w > NGPR))
        return NULL;
      fn->words[i] = (unsigned char)w;
      fn->slot[i] = (unsigned char)(fpr ? 0x80 | nf : ng);
      *(fpr ? &nf : &ng) += w;
      split = 1;
      continue;
    }
    int k = arg_class(c->args[i].code);
    if (k < 0)
      return NULL;
    if (k == 0) {
      if (ng == NGPR)
        return NULL;
      fn->slot[i] = (unsigned char)ng++;
    } else {
      if (nf == 8)
        return NULL;
      fn->slot[i] = (unsigned char)(0x80 | nf++);
    }
  }
  return split ? regcalls_s[r] : regcalls[r];
}

static edgert__tramp_t pick_tramp(const edgert_contract_t *c) {
  int r = ret_class(c->ret.code);
  if (r < 0)
    return NULL;
  int idx = 0, all_same = 1, first = -1;
  for (unsigned i = 0; i < c->nargs; i++) {
    int k = arg_class(c->args[i].code);
    if (k < 0)
      return NULL;
    if (first < 0)
      first = k;
    all_same &= k == first;
    if (i < 4)
      idx = idx * 3 + k;
  }
  switch (c->nargs) {
  case 0:
    return tab0[r];
  case 1:
    return tab1[r][idx];
  case 2:
    return tab2[r][idx];
  case 3:
    return tab3[r][idx];
  case 4:
    return tab4[r][idx];
  case 5:
    return all_same && first < 2 ? tab5[r][first] : NULL;
  case 6:
    return all_same && first < 2 ? tab6[r][first] : NULL;
  default:
    return NULL;
  }
}
#else
static edgert__tramp_t pick_tramp(const edgert_contract_t *c) {
  (void)c;
  return NULL;
}
#endif

int edgert__func_prepare(edgert_func_t *fn) {
  const edgert_contract_t *c = &fn->contract;
  fn->byval = 0;
  for (unsigned i = 0; i < c->nargs; i++) {
    if (c->args[i].code == EDGERT_CT_VOID)
      return edgert__error(EDGERT_EINVAL, "binding '%s': argument %u is void",
                           c->function_name, i + 1);
    char what[32];
    snprintf(what, sizeof what, "argument %u", i + 1);
    fn->atypes[i] = ffi_type_for(c, &c->args[i], what);
    if (fn->atypes[i] == NULL && c->args[i].code == EDGERT_CT_STRUCT)
      return EDGERT_EUNSUPPORTED;
    if (fn->atypes[i] == NULL)
      return edgert__error(EDGERT_EUNSUPPORTED, "binding '%s': argument %u has an "
                           "unsupported type code %d", c->function_name, i + 1,
                           (int)c->args[i].code);
    fn->byval |= c->args[i].code == EDGERT_CT_STRUCT;
  }
  ffi_type *rt = ffi_type_for(c, &c->ret, "return type");
  if (rt == NULL && c->ret.code == EDGERT_CT_STRUCT)
    return EDGERT_EUNSUPPORTED;
  if (rt == NULL)
    return edgert__error(EDGERT_EUNSUPPORTED, "binding '%s': unsupported return type code %d",
                         c->function_name, (int)c->ret.code);
  if (c->variadic && c->nargs == 0)
    return edgert__error(EDGERT_EINVAL, "binding '%s': a variadic function needs at "
                         "least one fixed argument", c->function_name);
  ffi_status st = c->variadic
                      ? ffi_prep_cif_var(&fn->cif, FFI_DEFAULT_ABI, c->nargs, c->nargs, rt,
                                         fn->atypes)
                      : ffi_prep_cif(&fn->cif, FFI_DEFAULT_ABI, c->nargs, rt, fn->atypes);
  if (st != FFI_OK)
    return edgert__error(EDGERT_EUNSUPPORTED, "binding '%s': libffi cannot prepare "
                         "this signature (status %d)", c->function_name, (int)st);
  fn->tramp = NULL;
  fn->regcall = 0;
  atomic_init(&fn->nvar, 0);
  if (!c->variadic) {
    fn->tramp = pick_tramp(c);
#if EDGERT_FAST_TRAMPOLINES
    if (fn->tramp == NULL && (fn->tramp = pick_regcall(fn)) != NULL)
      fn->regcall = 1;
#endif
  }
  if (c->use_errno) {
    /* every call then goes through `tramp` (edgert_func_call widens into
     * slots when there is one), so ffi_tramp needs no errno branch */
    fn->inner = fn->tramp != NULL ? fn->tramp : ffi_values_tramp;
    fn->inner_regcall = fn->tramp != NULL ? fn->regcall : 1;
    fn->tramp = errno_tramp;
    fn->regcall = 1; /* errno_tramp gets this struct */
  }
  return 0;
}

int edgert__func_trampolined(const edgert_func_t *fn) {
  if (fn->tramp == errno_tramp)
    return fn->inner != ffi_values_tramp;
  return fn->tramp != NULL;
}

void edgert__func_release(edgert_func_t *fn) {
  if (fn == NULL)
    return;
  unsigned n = atomic_load_explicit(&fn->nvar, memory_order_acquire);
  for (unsigned i = 0; i < n; i++)
    edgert__free(fn->var[i]);
  atomic_store_explicit(&fn->nvar, 0, memory_order_relaxed);
}

/* ---- calls ---------------------------------------------------------------- */

/* libffi's argument pointers for widened slots: a struct argument's slot
 * holds the address of its bytes (edgert_value_t.p), every other slot is
 * the value itself. */
static inline void to_avalues(const edgert_func_t *fn, edgert_value_t *values,
                                             void **av) {
  if (EDGERT__LIKELY(!fn->byval)) {
    for (unsigned i = 0; i < fn->nargs; i++)
      av[i] = &values[i];
    return;
  }
  for (unsigned i = 0; i < fn->nargs; i++)
    av[i] = fn->contract.args[i].code == EDGERT_CT_STRUCT ? values[i].p : (void *)&values[i];
}

static int refuse_unloaded(const edgert_func_t *fn) {
  return edgert__error(EDGERT_EUNLOADED, "cannot call '%s': module %s is unloaded",
                       fn->contract.function_name, fn->module->path);
}

static int refuse_quarantined(const edgert_func_t *fn) {
  return edgert__error(EDGERT_EQUARANTINED,
                       "cannot call '%s': module %s is quarantined after a crash; "
                       "load it again to clear the quarantine",
                       fn->contract.function_name, fn->module->path);
}

/* Runs the call on mapping `mp` (held: counted, or serialized by the
 * caller), at the function's address in that mapping. */
static inline __attribute__((always_inline)) int invoke(edgert_func_t *fn, edgert__map_t *mp,
                                                        edgert_value_t *values, void **avalues,
                                                        void *ret) {
  edgert__image_t *img = mp->image;
  if (EDGERT__UNLIKELY(atomic_load_explicit(&img->quarantined, memory_order_relaxed)))
    return refuse_quarantined(fn);
  long double scratch[2];
  void *heap = NULL;
  if (ret == NULL) {
    ret = scratch;
    if (EDGERT__UNLIKELY(fn->contract.ret.code == EDGERT_CT_STRUCT &&
                         edgert_struct_size(fn->contract.ret.layout) > sizeof scratch)) {
      ret = heap = edgert__calloc(1, edgert_struct_size(fn->contract.ret.layout));
      if (heap == NULL)
        return edgert__error(EDGERT_ENOMEM, "calling '%s': out of memory for the result",
                             fn->contract.function_name);
    }
  }
  void *addr = (void *)(mp->bias + fn->off);
  int rc;
  if (EDGERT__LIKELY(fn->tramp != NULL && !fn->regcall && values != NULL)) {
    rc = edgert__guarded_invoke(fn->tramp, addr, (void **)(void *)values, ret,
                                fn->contract.function_name, fn->module->path);
  } else if (fn->tramp != NULL && values != NULL) {
    edgert__call_t call = {fn, addr};
    rc = edgert__guarded_invoke(fn->tramp, &call, (void **)(void *)values, ret,
                                fn->contract.function_name, fn->module->path);
  } else {
    edgert__call_t call = {fn, addr};
    void *av[EDGERT_MAX_ARGS];
    if (avalues == NULL) {
      to_avalues(fn, values, av);
      avalues = av;
    }
    rc = edgert__guarded_invoke(ffi_tramp, &call, avalues, ret, fn->contract.function_name,
                                fn->module->path);
  }
  edgert__free(heap);
  if (EDGERT__UNLIKELY(rc == EDGERT_ECRASH) && !edgert_last_crash()->sent) {
    /* The copy that crashed is quarantined, for every handle sharing it;
     * a reload gives a handle a fresh one. */
    atomic_store(&img->quarantined, 1);
    atomic_store(&fn->module->crashed_generation, mp->generation);
  }
  return rc;
}

static inline int counted(edgert_func_t *fn, edgert_value_t *values, void **avalues,
                          void *ret) {
  edgert__map_t *mp = edgert__map_hold(fn->module);
  if (EDGERT__UNLIKELY(mp == NULL))
    return refuse_unloaded(fn);
  int rc = invoke(fn, mp, values, avalues, ret);
  edgert__map_drop(mp);
  return rc;
}

int edgert_func_call_values(edgert_func_t *fn, edgert_value_t *values, void *ret) {
  if (EDGERT__UNLIKELY(fn == NULL || (values == NULL && fn->nargs > 0)))
    return edgert__error(EDGERT_EINVAL, "edgert_func_call_values: NULL function or values");
  edgert_value_t none[1];
  if (EDGERT__UNLIKELY(fn->iso))
    return edgert__iso_call(fn, values ? values : none, fn->nargs, NULL, NULL, ret);
  return counted(fn, values ? values : none, NULL, ret);
}

int edgert_func_call_serialized(edgert_func_t *fn, edgert_value_t *values, void *ret) {
  if (EDGERT__UNLIKELY(fn == NULL || (values == NULL && fn->nargs > 0) || ret == NULL)) {
    if (fn == NULL || (values == NULL && fn->nargs > 0))
      return edgert__error(EDGERT_EINVAL, "edgert_func_call_serialized: NULL function or values");
    long double scratch[2];
    return edgert_func_call_serialized(fn, values, scratch);
  }
  if (EDGERT__UNLIKELY(fn->iso))
    return edgert__iso_call(fn, values, fn->nargs, NULL, NULL, ret);
  /* The lean path: no in-flight count (the caller's lock excludes unload
   * and reload, so the current mapping cannot change under the call). */
  edgert_module_t *m = fn->module;
  if (EDGERT__UNLIKELY(atomic_load_explicit(&m->state, memory_order_relaxed) != 0))
    return refuse_unloaded(fn);
  edgert__map_t *mp = atomic_load_explicit(&m->cur, memory_order_relaxed);
  edgert__image_t *img = mp->image;
  if (EDGERT__UNLIKELY(atomic_load_explicit(&img->quarantined, memory_order_relaxed)))
    return refuse_quarantined(fn);
  void *addr = (void *)(mp->bias + fn->off);
  int rc;
  if (EDGERT__LIKELY(fn->tramp != NULL && !fn->regcall)) {
    rc = edgert__guarded_invoke(fn->tramp, addr, (void **)(void *)values, ret,
                                fn->contract.function_name, m->path);
  } else {
    edgert__call_t call = {fn, addr};
    if (fn->tramp != NULL) {
      rc = edgert__guarded_invoke(fn->tramp, &call, (void **)(void *)values, ret,
                                  fn->contract.function_name, m->path);
    } else {
      void *av[EDGERT_MAX_ARGS];
      to_avalues(fn, values, av);
      rc = edgert__guarded_invoke(ffi_tramp, &call, av, ret, fn->contract.function_name,
                                  m->path);
    }
  }
  if (EDGERT__UNLIKELY(rc == EDGERT_ECRASH) && !edgert_last_crash()->sent) {
    atomic_store(&img->quarantined, 1);
    atomic_store(&m->crashed_generation, mp->generation);
  }
  return rc;
}

/* Widens one exact-typed argument into its slot. */
static void widen(const edgert_abi_type_t *t, const void *a, edgert_value_t *v) {
  switch (t->code) {
  case EDGERT_CT_BOOL:
    v->u = *(const _Bool *)a;
    break;
  case EDGERT_CT_CHAR:
    v->i = *(const char *)a;
    break;
  case EDGERT_CT_WCHAR:
    v->i = *(const wchar_t *)a;
    break;
  case EDGERT_CT_BYTE:
    v->i = *(const signed char *)a;
    break;
  case EDGERT_CT_UBYTE:
    v->u = *(const unsigned char *)a;
    break;
  case EDGERT_CT_SHORT:
    v->i = *(const short *)a;
    break;
  case EDGERT_CT_USHORT:
    v->u = *(const unsigned short *)a;
    break;
  case EDGERT_CT_INT:
    v->i = *(const int *)a;
    break;
  case EDGERT_CT_UINT:
    v->u = *(const unsigned *)a;
    break;
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    v->i = *(const int64_t *)a;
    break;
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    v->u = *(const uint64_t *)a;
    break;
  case EDGERT_CT_FLOAT:
    v->f = *(const float *)a;
    break;
  case EDGERT_CT_DOUBLE:
    v->d = *(const double *)a;
    break;
  case EDGERT_CT_LONGDOUBLE:
    v->ld = *(const long double *)a;
    break;
  case EDGERT_CT_STRUCT: /* the slot holds the struct's address */
    v->p = (void *)(uintptr_t)a;
    break;
  default:
    v->p = *(void *const *)a;
    break;
  }
}

int edgert_func_call(edgert_func_t *fn, void **args, void *ret) {
  if (EDGERT__UNLIKELY(fn == NULL || (args == NULL && fn->nargs > 0)))
    return edgert__error(EDGERT_EINVAL, "edgert_func_call: NULL function or arguments");
  if (fn->tramp != NULL || fn->iso) {
    edgert_value_t v[EDGERT_MAX_ARGS + 1];
    for (unsigned i = 0; i < fn->nargs; i++)
      widen(&fn->contract.args[i], args[i], &v[i]);
    if (fn->iso)
      return edgert__iso_call(fn, v, fn->nargs, NULL, NULL, ret);
    return counted(fn, v, NULL, ret);
  }
  void *none[1] = {NULL};
  return counted(fn, NULL, args ? args : none, ret);
}

/* ---- variadic calls --------------------------------------------------------- */

typedef struct {
  edgert_func_t *fn;
  ffi_cif *cif;
  void *addr; /* in the mapping the call holds */
} var_ctx_t;

static void var_tramp(void *ctx, void **avalues, void *ret) {
  var_ctx_t *x = ctx;
  if (x->fn->contract.use_errno) {
    errno = saved_errno;
    ffi_call(x->cif, FFI_FN(x->addr), ret, avalues);
    saved_errno = errno;
    return;
  }
  ffi_call(x->cif, FFI_FN(x->addr), ret, avalues);
}

/* Prepares `v` for fn's fixed arguments plus v->extra[0..v->nextra). */
static int var_prepare(const edgert_func_t *fn, edgert__varcif_t *v) {
  const edgert_contract_t *c = &fn->contract;
  for (unsigned i = 0; i < c->nargs; i++)
    v->atypes[i] = fn->atypes[i];
  for (unsigned k = 0; k < v->nextra; k++)
    v->atypes[c->nargs + k] = edgert__ffi_type_of(v->extra[k]);
  ffi_status st = ffi_prep_cif_var(&v->cif, FFI_DEFAULT_ABI, c->nargs, c->nargs + v->nextra,
                                   fn->cif.rtype, v->atypes);
  if (st != FFI_OK)
    return edgert__error(EDGERT_EUNSUPPORTED, "calling '%s': libffi cannot prepare a "
                         "variadic call with these %u extra arguments (status %d)",
                         c->function_name, v->nextra, (int)st);
  return 0;
}

/* The cached cif for this extra list, or NULL. */
static ffi_cif *var_find(edgert_func_t *fn, const edgert__varcif_t *want) {
  unsigned n = atomic_load_explicit(&fn->nvar, memory_order_acquire);
  for (unsigned i = 0; i < n; i++) {
    edgert__varcif_t *v = fn->var[i];
    if (v->nextra == want->nextra &&
        memcmp(v->extra, want->extra, want->nextra * sizeof want->extra[0]) == 0)
      return &v->cif;
  }
  return NULL;
}

int edgert_func_call_variadic(edgert_func_t *fn, edgert_value_t *values, size_t nvalues,
                              const edgert_abi_type_t *extra, void *ret) {
  if (fn == NULL || (values == NULL && nvalues > 0))
    return edgert__error(EDGERT_EINVAL,
                         "edgert_func_call_variadic: NULL function or values");
  const edgert_contract_t *c = &fn->contract;
  if (!c->variadic)
    return edgert__error(EDGERT_EINVAL, "calling '%s': its contract is not variadic",
                         c->function_name);
  if (nvalues < c->nargs)
    return edgert__error(EDGERT_EINVAL, "calling '%s': %zu values for %u fixed arguments",
                         c->function_name, nvalues, c->nargs);
  if (nvalues > EDGERT_MAX_ARGS)
    return edgert__error(EDGERT_ELIMIT, "calling '%s': %zu arguments is more than the "
                         "limit of %d", c->function_name, nvalues, EDGERT_MAX_ARGS);
  edgert__varcif_t want;
  want.nextra = (unsigned)(nvalues - c->nargs);
  if (want.nextra > 0 && extra == NULL)
    return edgert__error(EDGERT_EINVAL, "calling '%s': %u extra arguments and no types",
                         c->function_name, want.nextra);
  if (fn->iso) {
    for (unsigned k = 0; k < want.nextra; k++)
      if (extra[k].code == EDGERT_CT_VOID || extra[k].code == EDGERT_CT_STRUCT ||
          edgert_abi_type_size(&extra[k]) == 0)
        return edgert__error(EDGERT_EINVAL, "calling '%s': extra argument %u (argument %u) "
                             "has a type an isolated variadic call cannot pass (code %d)",
                             c->function_name, k + 1, c->nargs + k + 1, (int)extra[k].code);
    return edgert__iso_call(fn, values, nvalues, extra, NULL, ret);
  }
  edgert_value_t slots[EDGERT_MAX_ARGS];
  void *av[EDGERT_MAX_ARGS];
  for (unsigned i = 0; i < c->nargs; i++)
    av[i] = &values[i];
  for (unsigned k = 0; k < want.nextra; k++) {
    const edgert_abi_type_t *t = &extra[k];
    if (t->code == EDGERT_CT_VOID || edgert_abi_type_size(t) == 0)
      return edgert__error(EDGERT_EINVAL, "calling '%s': extra argument %u (argument %u) "
                           "has %s type (code %d)", c->function_name, k + 1,
                           c->nargs + k + 1, t->code == EDGERT_CT_VOID ? "the void" : "an invalid",
                           (int)t->code);
    edgert_abi_type_t p = edgert_abi_type_promote(t);
    want.extra[k] = p.code;
    slots[k] = values[c->nargs + k];
    if (t->code == EDGERT_CT_FLOAT)
      slots[k].d = values[c->nargs + k].f;
    av[c->nargs + k] = &slots[k];
  }
  ffi_cif *cif = var_find(fn, &want);
  edgert__varcif_t *own = NULL;
  edgert__varcif_t local;
  if (cif == NULL) {
    own = edgert__malloc(sizeof *own);
    edgert__varcif_t *v = own != NULL ? own : &local;
    v->nextra = want.nextra;
    memcpy(v->extra, want.extra, want.nextra * sizeof want.extra[0]);
    int rc = var_prepare(fn, v);
    if (rc != 0) {
      edgert__free(own);
      return rc;
    }
    cif = &v->cif;
    if (own != NULL) {
      edgert_module_t *m = fn->module;
      pthread_mutex_lock(&m->lock);
      ffi_cif *again = var_find(fn, &want);
      unsigned n = atomic_load_explicit(&fn->nvar, memory_order_relaxed);
      if (again == NULL && n < EDGERT__VAR_CACHE) {
        fn->var[n] = own;
        atomic_store_explicit(&fn->nvar, n + 1, memory_order_release);
        own = NULL; /* the cache owns it now */
      } else if (again != NULL) {
        cif = again;
      }
      pthread_mutex_unlock(&m->lock);
    }
  }
  long double scratch[2];
  edgert_module_t *m = fn->module;
  edgert__map_t *mp = edgert__map_hold(m);
  int rc;
  if (EDGERT__UNLIKELY(mp == NULL)) {
    rc = refuse_unloaded(fn);
  } else if (EDGERT__UNLIKELY(atomic_load_explicit(&mp->image->quarantined,
                                                   memory_order_relaxed))) {
    rc = refuse_quarantined(fn);
  } else {
    var_ctx_t ctx = {fn, cif, (void *)(mp->bias + fn->off)};
    rc = edgert__guarded_invoke(var_tramp, &ctx, av, ret != NULL ? ret : scratch,
                                c->function_name, m->path);
    if (EDGERT__UNLIKELY(rc == EDGERT_ECRASH) && !edgert_last_crash()->sent) {
      atomic_store(&mp->image->quarantined, 1);
      atomic_store(&m->crashed_generation, mp->generation);
    }
  }
  if (mp != NULL)
    edgert__map_drop(mp);
  edgert__free(own); /* not cached (full, or another thread cached it first) */
  return rc;
}
