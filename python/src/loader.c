/*
 * loader.c: ModuleLoader, bound callables and strict argument conversion.
 *
 * Invariants:
 * - A _Module object owns one core module handle; ModuleLoader and every
 *   bound callable made from it hold a reference, so the handle (and the
 *   edgert_func_t memory it owns) lives as long as anything can call it.
 * - After unload() every call raises ModuleUnloadedError before touching
 *   module code: the Python flag `unloaded` is checked first, the core
 *   refuses unloaded handles, and the core never unmaps code a call is
 *   running. With a GIL, a call that keeps it (release_gil=False) is not
 *   counted by the core; instead `gil_calls` counts it here and an unload
 *   requested from inside such a call (a kernel calling back into Python)
 *   is deferred until the outermost one returns. Free-threaded builds have
 *   no lock that keeps unload() out of such a call, so the core counts
 *   every call there (call_attached) and `unloaded` is a relaxed atomic.
 * - A ModuleLoader's `mod` and `funcs` are swapped by load() and read by
 *   the other methods in a critical section on the loader; a call looks its
 *   function up there and runs it outside, on a reference of its own.
 * - Conversion is strict and lossless, done in C per contract type; a
 *   refused argument is described in a small record and turned into an
 *   exception only when the caller wants one (edgert_py_bound_call's miss
 *   path builds none). Buffers and converted strings are released after
 *   every call, on every path.
 * - A kernel never gets a pointer into a Python object's storage for a
 *   string: c_char_p and c_wchar_p get private NUL-terminated copies (the
 *   call frame's small area, or the heap), so a kernel that writes through
 *   its char * changes no bytes object (b"a" is one object process-wide).
 *   Pointer arguments (POINTER(t), c_void_p) are buffers, passed as they are.
 */
#include "ext.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

#if defined(__GNUC__)
#define EDGERT__PY_LIKELY(x) __builtin_expect(!!(x), 1)
#define EDGERT__PY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define EDGERT__PY_LIKELY(x) (x)
#define EDGERT__PY_UNLIKELY(x) (x)
#endif

/* ---- _Module: one core handle ---------------------------------------------- */

typedef struct {
  PyObject_HEAD
  edgert_module_t *m;
  Py_ssize_t gil_calls; /* calls in progress holding the GIL */
  int unloaded;         /* unload() was called (Python's view) */
  int pending_unload;   /* the core unload waits for gil_calls == 0 */
} ModObject;

static void mod_core_unload(ModObject *h) {
  EDGERT_PY_STORE(h->unloaded, 1);
  if (h->gil_calls > 0) {
    h->pending_unload = 1;
    return;
  }
  h->pending_unload = 0;
  Py_BEGIN_ALLOW_THREADS
  edgert_module_unload(h->m);
  Py_END_ALLOW_THREADS
}

static void mod_dealloc(ModObject *h) {
  edgert_module_t *m = h->m;
  h->m = NULL;
  if (m != NULL) {
    Py_BEGIN_ALLOW_THREADS
    edgert_module_free(m);
    Py_END_ALLOW_THREADS
  }
  Py_TYPE(h)->tp_free((PyObject *)h);
}

static PyTypeObject ModType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert._edgert._Module",
    .tp_basicsize = sizeof(ModObject),
    .tp_dealloc = (destructor)mod_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded module handle (internal).",
};

/* ---- _Bound: what a bound callable's __self__ is ---------------------------- */

typedef struct {
  PyObject_HEAD
  edgert_func_t *fn;
  ModObject *mod;
  PyMethodDef def;
  unsigned nargs;
  int release_gil;
  int cleanup; /* some argument needs a cvhold_t (buffer, string copy) */
  int fast;    /* GIL kept, <= FAST_MAX arguments, each a double or a 64-bit int */
  unsigned char fastcode[EDGERT_MAX_ARGS];
  edgert_abi_type_t ret;
  edgert_abi_type_t args[EDGERT_MAX_ARGS];
} BoundObject;

static void bound_dealloc(BoundObject *b) {
  Py_XDECREF(b->mod);
  Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *bound_repr(BoundObject *b) {
  char buf[1024];
  if (edgert_contract_format(edgert_func_contract(b->fn), buf, sizeof buf) != 0)
    snprintf(buf, sizeof buf, "%s", edgert_func_name(b->fn));
  return PyUnicode_FromFormat("<edgert bound %s from %s>", buf,
                              edgert_module_path(b->mod->m));
}

static PyObject *bound_get_contract(BoundObject *b, void *closure) {
  (void)closure;
  char buf[1024];
  if (edgert_contract_format(edgert_func_contract(b->fn), buf, sizeof buf) != 0)
    return edgert_py_raise(EDGERT_EINVAL);
  return PyUnicode_FromString(buf);
}

static PyObject *bound_get_address(BoundObject *b, void *closure) {
  (void)closure;
  return PyLong_FromVoidPtr(edgert_func_address(b->fn));
}

static PyGetSetDef bound_getset[] = {
    {"signature", (getter)bound_get_contract, NULL, "The C signature, as text.", NULL},
    {"address", (getter)bound_get_address, NULL, "The function's address.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert._edgert._Bound",
    .tp_basicsize = sizeof(BoundObject),
    .tp_dealloc = (destructor)bound_dealloc,
    .tp_repr = (reprfunc)bound_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getset = bound_getset,
    .tp_doc = "The function a bound callable calls (internal).",
};

/* ---- conversion ------------------------------------------------------------ */

enum { CV_OK = 0, CV_COUNT, CV_TYPE, CV_OVERFLOW, CV_FORMAT, CV_NOTCONTIG, CV_NUL, CV_PYERR };

typedef struct {
  int kind;
  unsigned index;     /* 0-based argument */
  PyObject *obj;      /* the argument (borrowed) */
  char fmt[24];       /* the buffer's format, for CV_FORMAT */
  Py_ssize_t itemsize;
  Py_ssize_t at;      /* CV_NUL: offset of the NUL (bytes, or characters of a str) */
} cverr_t;

/* Bytes of the call frame that hold small string copies; a copy that does
 * not fit what is left goes on the heap. Most strings a kernel gets (names,
 * modes, keys) fit, so they cost no allocation. */
#define CV_SMALL 256

/*
 * What one call's conversion holds until the call returns: buffer views
 * (held 1) and heap copies of strings (held 2), at most one per argument,
 * plus `small`, a bump area for string copies that fit. hold_release()
 * undoes all of it; every path of bound_invoke runs it once.
 */
typedef struct {
  Py_buffer views[EDGERT_MAX_ARGS];
  void *heap[EDGERT_MAX_ARGS];
  unsigned char held[EDGERT_MAX_ARGS]; /* 1 view, 2 heap copy */
  unsigned used;
  size_t top; /* bytes of `small` in use */
  _Alignas(max_align_t) unsigned char small[CV_SMALL];
} cvhold_t;

static void hold_release(cvhold_t *h) {
  for (unsigned i = 0; i < h->used; i++) {
    if (h->held[i] == 1)
      PyBuffer_Release(&h->views[i]);
    else if (h->held[i] == 2)
      PyMem_Free(h->heap[i]);
  }
}

/* Space for argument i's private copy of `size` bytes aligned to `align` (a
 * power of two): in the frame's small area while it fits, else on the heap
 * (released by hold_release). NULL with MemoryError set. */
static void *hold_space(cvhold_t *h, unsigned i, size_t size, size_t align) {
  size_t at = (h->top + align - 1) & ~(align - 1);
  if (at <= CV_SMALL && size <= CV_SMALL - at) {
    h->top = at + size;
    return h->small + at;
  }
  void *p = size <= (size_t)PY_SSIZE_T_MAX ? PyMem_Malloc(size) : NULL;
  if (p == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  h->heap[i] = p;
  h->held[i] = 2;
  return p;
}

static int cv_fail(cverr_t *e, int kind, unsigned i, PyObject *o) {
  e->kind = kind;
  e->index = i;
  e->obj = o;
  return kind;
}

static int is_numpy_scalar(PyObject *o, const char *prefix) {
  const char *n = Py_TYPE(o)->tp_name;
  size_t k = strlen(prefix);
  return strncmp(n, "numpy.", 6) == 0 && strncmp(n + 6, prefix, k) == 0;
}

/* An int (or __index__ object) as a Python int: new reference in *out, or
 * CV_TYPE / CV_PYERR. Floats, str, bytes are refused. */
static int as_pyint(PyObject *o, PyObject **out) {
  if (PyLong_Check(o)) {
    Py_INCREF(o);
    *out = o;
    return CV_OK;
  }
  if (PyFloat_Check(o) || PyUnicode_Check(o) || PyBytes_Check(o) ||
      Py_TYPE(o)->tp_as_number == NULL || Py_TYPE(o)->tp_as_number->nb_index == NULL)
    return CV_TYPE;
  PyObject *r = PyNumber_Index(o);
  if (r == NULL)
    return CV_PYERR;
  *out = r;
  return CV_OK;
}

/* Signed integer in [lo, hi]. */
static int cv_signed(PyObject *o, long long lo, long long hi, int64_t *out) {
  PyObject *n;
  int rc = as_pyint(o, &n);
  if (rc != CV_OK)
    return rc;
  int ovf = 0;
  long long v = PyLong_AsLongLongAndOverflow(n, &ovf);
  Py_DECREF(n);
  if (ovf != 0 || v < lo || v > hi)
    return CV_OVERFLOW;
  if (v == -1 && PyErr_Occurred())
    return CV_PYERR;
  *out = v;
  return CV_OK;
}

/* Unsigned integer in [0, hi]. */
static int cv_unsigned(PyObject *o, unsigned long long hi, uint64_t *out) {
  PyObject *n;
  int rc = as_pyint(o, &n);
  if (rc != CV_OK)
    return rc;
  int ovf = 0;
  long long v = PyLong_AsLongLongAndOverflow(n, &ovf);
  unsigned long long u;
  if (ovf == 0) {
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(n);
      return CV_PYERR;
    }
    if (v < 0) {
      Py_DECREF(n);
      return CV_OVERFLOW;
    }
    u = (unsigned long long)v;
  } else if (ovf < 0 || _PyLong_NumBits(n) > 64) {
    Py_DECREF(n);
    return CV_OVERFLOW;
  } else {
    u = PyLong_AsUnsignedLongLong(n);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
      Py_DECREF(n);
      return CV_PYERR;
    }
  }
  Py_DECREF(n);
  if (u > hi)
    return CV_OVERFLOW;
  *out = u;
  return CV_OK;
}

/* A float argument as double: float (and subclasses), numpy floating
 * scalars, or an int exactly representable as a double. */
static int cv_double(PyObject *o, double *out) {
  if (PyFloat_Check(o)) {
    *out = PyFloat_AS_DOUBLE(o);
    return CV_OK;
  }
  if (PyLong_Check(o)) {
    int ovf = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &ovf);
    if (ovf == 0) {
      if (v == -1 && PyErr_Occurred())
        return CV_PYERR;
      double d = (double)v;
      /* exact iff it converts back to the same integer */
      if (d >= 9223372036854775808.0 || (long long)d != v)
        return CV_OVERFLOW;
      *out = d;
      return CV_OK;
    }
    if (_PyLong_NumBits(o) > 1024)
      return CV_OVERFLOW;
    double d = PyLong_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
      return CV_PYERR;
    PyObject *back = PyLong_FromDouble(d);
    if (back == NULL)
      return CV_PYERR;
    int eq = PyObject_RichCompareBool(back, o, Py_EQ);
    Py_DECREF(back);
    if (eq < 0)
      return CV_PYERR;
    if (!eq)
      return CV_OVERFLOW;
    *out = d;
    return CV_OK;
  }
  if (is_numpy_scalar(o, "float") || is_numpy_scalar(o, "half") ||
      is_numpy_scalar(o, "longdouble") || is_numpy_scalar(o, "double") ||
      is_numpy_scalar(o, "single")) {
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
      return CV_PYERR;
    *out = d;
    return CV_OK;
  }
  return CV_TYPE;
}

/* Buffer item kinds. */
enum { K_NONE = 0, K_SIGNED, K_UNSIGNED, K_FLOAT, K_BOOL, K_CHAR, K_WCHAR, K_PTR };

static int code_kind(edgert_ctype_t c) {
  switch (c) {
  case EDGERT_CT_BYTE:
  case EDGERT_CT_SHORT:
  case EDGERT_CT_INT:
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    return K_SIGNED;
  case EDGERT_CT_UBYTE:
  case EDGERT_CT_USHORT:
  case EDGERT_CT_UINT:
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    return K_UNSIGNED;
  case EDGERT_CT_FLOAT:
  case EDGERT_CT_DOUBLE:
  case EDGERT_CT_LONGDOUBLE:
    return K_FLOAT;
  case EDGERT_CT_BOOL:
    return K_BOOL;
  case EDGERT_CT_CHAR:
    return K_CHAR;
  case EDGERT_CT_WCHAR:
    return K_WCHAR;
  case EDGERT_CT_CHAR_P:
  case EDGERT_CT_WCHAR_P:
  case EDGERT_CT_VOID_P:
  case EDGERT_CT_POINTER:
    return K_PTR;
  default:
    return K_NONE;
  }
}

/* The kind of a buffer's items, read by the core's one format parser
 * (edgert_buffer_item_parse: "f", "<f", "=f", "@l", "<q", "&<f"), or K_NONE
 * for anything that is not one scalar item of the host's byte order. */
static int format_kind(const char *f, Py_ssize_t itemsize) {
  edgert_buffer_item_t it;
  if (itemsize < 0 || edgert_buffer_item_parse(f, (size_t)itemsize, &it) != 0)
    return K_NONE;
  switch (it.kind) {
  case EDGERT_ITEM_SIGNED:
    return K_SIGNED;
  case EDGERT_ITEM_UNSIGNED:
    return K_UNSIGNED;
  case EDGERT_ITEM_FLOAT:
    return K_FLOAT;
  case EDGERT_ITEM_BOOL:
    return K_BOOL;
  case EDGERT_ITEM_CHAR:
    return K_CHAR;
  case EDGERT_ITEM_WCHAR:
    return K_WCHAR;
  case EDGERT_ITEM_POINTER:
    return K_PTR;
  default:
    return K_NONE;
  }
}

/* Whether a buffer of (kind, itemsize) holds items of pointer type t. */
static int buffer_matches(const edgert_abi_type_t *t, int kind, Py_ssize_t itemsize) {
  if (t->depth >= 2)
    return kind == K_PTR && itemsize == (Py_ssize_t)sizeof(void *);
  edgert_abi_type_t p = {t->pointee, EDGERT_CT_VOID, 0};
  int want = code_kind(t->pointee);
  Py_ssize_t size = (Py_ssize_t)edgert_abi_type_size(&p);
  if (itemsize != size)
    return 0;
  if (want == K_CHAR) /* char data: bytes, bytearray, int8/uint8 arrays */
    return kind == K_CHAR || kind == K_SIGNED || kind == K_UNSIGNED;
  return kind == want;
}

static int cv_pointer(const edgert_abi_type_t *t, PyObject *o, unsigned i,
                      edgert_value_t *v, cvhold_t *h, cverr_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyObject_CheckBuffer(o))
    return cv_fail(e, CV_TYPE, i, o);
  Py_buffer *view = &h->views[i];
  if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyErr_Clear();
    return cv_fail(e, CV_NOTCONTIG, i, o);
  }
  int kind = format_kind(view->format, view->itemsize);
  if (!buffer_matches(t, kind, view->itemsize)) {
    /* kept for the message (the view goes now); copied by hand, since
     * snprintf costs more than the rest of a guard miss */
    const char *f = view->format ? view->format : "B";
    size_t k = 0;
    for (; f[k] != '\0' && k + 1 < sizeof e->fmt; k++)
      e->fmt[k] = f[k];
    e->fmt[k] = '\0';
    e->itemsize = view->itemsize;
    PyBuffer_Release(view);
    return cv_fail(e, CV_FORMAT, i, o);
  }
  h->held[i] = 1;
  v->p = view->buf;
  return CV_OK;
}

/* 1 if the magnitude m has at most LDBL_MANT_DIG significant bits (from its
 * highest set bit to its lowest), so that a long double holds it exactly. */
static int ldbl_holds_u64(unsigned long long m) {
#if LDBL_MANT_DIG >= 64
  (void)m;
  return 1;
#else
  if (m == 0)
    return 1;
  while ((m & 1) == 0)
    m >>= 1;
  return (m >> LDBL_MANT_DIG) == 0;
#endif
}

/* An int beyond 64 bits as a long double, exactly: CV_OVERFLOW unless it has
 * at most LDBL_MANT_DIG significant bits and is below 2**LDBL_MAX_EXP (the
 * largest finite long double). Such a magnitude is m * 2**s with m of at most
 * LDBL_MANT_DIG (<= 128) bits, built from two 64-bit halves, each step exact. */
static int ldbl_from_big_int(PyObject *o, int negative, long double *out) {
  size_t nbits = _PyLong_NumBits(o); /* of |o| */
  if (nbits == (size_t)-1 && PyErr_Occurred())
    return CV_PYERR;
  if (nbits > (size_t)LDBL_MAX_EXP)
    return CV_OVERFLOW;
  int rc = CV_PYERR;
  PyObject *a = NULL, *m = NULL, *back = NULL, *hi = NULL, *shift = NULL, *k64 = NULL;
  size_t s = nbits > LDBL_MANT_DIG ? nbits - LDBL_MANT_DIG : 0;
  if ((a = PyNumber_Absolute(o)) == NULL || (shift = PyLong_FromSize_t(s)) == NULL ||
      (m = PyNumber_Rshift(a, shift)) == NULL || (back = PyNumber_Lshift(m, shift)) == NULL)
    goto done;
  int eq = PyObject_RichCompareBool(back, a, Py_EQ);
  if (eq <= 0) {
    rc = eq < 0 ? CV_PYERR : CV_OVERFLOW; /* bits below the mantissa's reach */
    goto done;
  }
  unsigned long long lo = PyLong_AsUnsignedLongLongMask(m);
  if (lo == (unsigned long long)-1 && PyErr_Occurred())
    goto done;
  if ((k64 = PyLong_FromLong(64)) == NULL || (hi = PyNumber_Rshift(m, k64)) == NULL)
    goto done;
  unsigned long long h = PyLong_AsUnsignedLongLong(hi); /* < 2**64: m has <= 128 bits */
  if (h == (unsigned long long)-1 && PyErr_Occurred())
    goto done;
  long double x = ldexpl((long double)h, 64) + (long double)lo;
  x = ldexpl(x, (int)s);
  *out = negative ? -x : x;
  rc = CV_OK;
done:
  Py_XDECREF(a);
  Py_XDECREF(m);
  Py_XDECREF(back);
  Py_XDECREF(hi);
  Py_XDECREF(shift);
  Py_XDECREF(k64);
  return rc;
}

/* A c_longdouble argument: a float (exact), an int that a long double holds
 * exactly (every int of at most LDBL_MANT_DIG significant bits: 64 on
 * x86-64, 113 where long double is binary128, 53 where it is double), a
 * numpy longdouble (its full value), another numpy floating scalar. */
static int cv_longdouble(PyObject *o, long double *out) {
  if (PyFloat_Check(o)) {
    *out = PyFloat_AS_DOUBLE(o);
    return CV_OK;
  }
  if (PyLong_Check(o)) {
    int ovf = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &ovf);
    if (ovf == 0) {
      if (v == -1 && PyErr_Occurred())
        return CV_PYERR;
      unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
      if (!ldbl_holds_u64(m))
        return CV_OVERFLOW;
      *out = (long double)v;
      return CV_OK;
    }
    return ldbl_from_big_int(o, ovf < 0, out);
  }
  if (is_numpy_scalar(o, "longdouble") || is_numpy_scalar(o, "float128") ||
      is_numpy_scalar(o, "float96")) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_FORMAT) == 0) {
      int same = view.itemsize == (Py_ssize_t)sizeof(long double) && view.format != NULL &&
                 format_kind(view.format, view.itemsize) == K_FLOAT;
      if (same)
        memcpy(out, view.buf, sizeof(long double));
      PyBuffer_Release(&view);
      if (same)
        return CV_OK;
    } else {
      PyErr_Clear();
    }
  }
  double d;
  int rc = cv_double(o, &d);
  if (rc == CV_OK)
    *out = d;
  return rc;
}

/* c_char_p: a private NUL-terminated copy of a bytes object (subclasses
 * included), or NULL for None. The copy is what the kernel may write into;
 * the object, immutable and possibly shared, never changes. An embedded NUL
 * is refused: the kernel would see a shorter string. */
static int cv_char_p(PyObject *o, unsigned i, edgert_value_t *v, cvhold_t *h, cverr_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyBytes_Check(o))
    return cv_fail(e, CV_TYPE, i, o);
  const char *s = PyBytes_AS_STRING(o);
  size_t n = (size_t)PyBytes_GET_SIZE(o);
  const char *nul = memchr(s, '\0', n);
  if (EDGERT__PY_UNLIKELY(nul != NULL)) {
    e->at = nul - s;
    return cv_fail(e, CV_NUL, i, o);
  }
  char *copy = hold_space(h, i, n + 1, 1);
  if (copy == NULL)
    return cv_fail(e, CV_PYERR, i, o);
  memcpy(copy, s, n);
  copy[n] = '\0';
  v->p = copy;
  return CV_OK;
}

/* c_wchar_p: a private NUL-terminated wchar_t copy of a str, or NULL for
 * None; an embedded NUL is refused as for c_char_p. */
static int cv_wchar_p(PyObject *o, unsigned i, edgert_value_t *v, cvhold_t *h, cverr_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyUnicode_Check(o))
    return cv_fail(e, CV_TYPE, i, o);
  Py_ssize_t at = PyUnicode_FindChar(o, 0, 0, PyUnicode_GET_LENGTH(o), 1);
  if (at == -2)
    return cv_fail(e, CV_PYERR, i, o);
  if (EDGERT__PY_UNLIKELY(at >= 0)) {
    e->at = at;
    return cv_fail(e, CV_NUL, i, o);
  }
  Py_ssize_t n = PyUnicode_AsWideChar(o, NULL, 0); /* wchar_t units, NUL included */
  if (n < 0)
    return cv_fail(e, CV_PYERR, i, o);
  if ((size_t)n > (size_t)PY_SSIZE_T_MAX / sizeof(wchar_t)) {
    PyErr_NoMemory();
    return cv_fail(e, CV_PYERR, i, o);
  }
  wchar_t *w = hold_space(h, i, (size_t)n * sizeof(wchar_t), _Alignof(wchar_t));
  if (w == NULL || PyUnicode_AsWideChar(o, w, n) < 0)
    return cv_fail(e, CV_PYERR, i, o);
  w[n - 1] = L'\0';
  v->p = w;
  return CV_OK;
}

/* Ranges of the integer codes, for the compact-int fast path. */
static const struct {
  int64_t lo, hi;
} int_range[EDGERT_CT__COUNT] = {
    [EDGERT_CT_BYTE] = {INT8_MIN, INT8_MAX},     [EDGERT_CT_UBYTE] = {0, UINT8_MAX},
    [EDGERT_CT_SHORT] = {INT16_MIN, INT16_MAX},  [EDGERT_CT_USHORT] = {0, UINT16_MAX},
    [EDGERT_CT_INT] = {INT32_MIN, INT32_MAX},    [EDGERT_CT_UINT] = {0, UINT32_MAX},
    [EDGERT_CT_LONG] = {INT64_MIN, INT64_MAX},   [EDGERT_CT_ULONG] = {0, INT64_MAX},
    [EDGERT_CT_LONGLONG] = {INT64_MIN, INT64_MAX}, [EDGERT_CT_ULONGLONG] = {0, INT64_MAX},
};

/* Converts argument i into its slot. */
static int convert_one(const edgert_abi_type_t *t, PyObject *o, unsigned i,
                       edgert_value_t *v, cvhold_t *h, cverr_t *e) {
  int rc;
  /* Exact small ints for any integer type: one digit, no call. */
  if (PyLong_CheckExact(o) && int_range[t->code].hi != 0) {
    if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
      int64_t x = PyUnstable_Long_CompactValue((PyLongObject *)o);
      if (x < int_range[t->code].lo || x > int_range[t->code].hi)
        return cv_fail(e, CV_OVERFLOW, i, o);
      v->i = x;
      return CV_OK;
    }
  }
  switch (t->code) {
  case EDGERT_CT_DOUBLE:
    if (PyFloat_CheckExact(o)) {
      v->d = PyFloat_AS_DOUBLE(o);
      return CV_OK;
    }
    rc = cv_double(o, &v->d);
    break;
  case EDGERT_CT_FLOAT: {
    double d;
    if (PyFloat_CheckExact(o))
      d = PyFloat_AS_DOUBLE(o), rc = CV_OK;
    else
      rc = cv_double(o, &d);
    if (rc == CV_OK) {
      float f = (float)d;
      if (isinf(f) && isfinite(d))
        rc = CV_OVERFLOW;
      else if (PyLong_Check(o) && (double)f != d)
        rc = CV_OVERFLOW; /* an int that float cannot hold exactly */
      else
        v->f = f;
    }
    break;
  }
  case EDGERT_CT_LONGDOUBLE:
    rc = cv_longdouble(o, &v->ld);
    break;
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    if (PyLong_CheckExact(o)) {
      int ovf = 0;
      long long x = PyLong_AsLongLongAndOverflow(o, &ovf);
      if (ovf != 0)
        return cv_fail(e, CV_OVERFLOW, i, o);
      v->i = x;
      return CV_OK;
    }
    rc = cv_signed(o, INT64_MIN, INT64_MAX, &v->i);
    break;
  case EDGERT_CT_INT:
    rc = cv_signed(o, INT32_MIN, INT32_MAX, &v->i);
    break;
  case EDGERT_CT_SHORT:
    rc = cv_signed(o, INT16_MIN, INT16_MAX, &v->i);
    break;
  case EDGERT_CT_BYTE:
    rc = cv_signed(o, INT8_MIN, INT8_MAX, &v->i);
    break;
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    rc = cv_unsigned(o, UINT64_MAX, &v->u);
    break;
  case EDGERT_CT_UINT:
    rc = cv_unsigned(o, UINT32_MAX, &v->u);
    break;
  case EDGERT_CT_USHORT:
    rc = cv_unsigned(o, UINT16_MAX, &v->u);
    break;
  case EDGERT_CT_UBYTE:
    rc = cv_unsigned(o, UINT8_MAX, &v->u);
    break;
  case EDGERT_CT_BOOL:
    if (o == Py_True || o == Py_False) {
      v->u = o == Py_True;
      return CV_OK;
    }
    if (is_numpy_scalar(o, "bool")) {
      int t2 = PyObject_IsTrue(o);
      if (t2 < 0)
        return cv_fail(e, CV_PYERR, i, o);
      v->u = (uint64_t)t2;
      return CV_OK;
    }
    rc = cv_unsigned(o, 1, &v->u);
    break;
  case EDGERT_CT_CHAR:
    if (PyBytes_Check(o) || PyByteArray_Check(o)) {
      Py_ssize_t n = PyBytes_Check(o) ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);
      if (n != 1)
        return cv_fail(e, CV_TYPE, i, o);
      const char *s = PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
      v->i = (char)s[0];
      return CV_OK;
    } else {
      int64_t x;
      rc = cv_signed(o, -128, 255, &x);
      if (rc == CV_OK)
        v->i = (char)(unsigned char)(x & 0xff);
    }
    break;
  case EDGERT_CT_WCHAR:
    if (PyUnicode_Check(o) && PyUnicode_GET_LENGTH(o) == 1) {
      v->i = (wchar_t)PyUnicode_READ_CHAR(o, 0);
      return CV_OK;
    }
    rc = CV_TYPE;
    break;
  case EDGERT_CT_CHAR_P:
    return cv_char_p(o, i, v, h, e);
  case EDGERT_CT_WCHAR_P:
    return cv_wchar_p(o, i, v, h, e);
  case EDGERT_CT_VOID_P:
    if (o == Py_None) {
      v->p = NULL;
      return CV_OK;
    }
    if (PyLong_Check(o) && !PyBool_Check(o)) {
      rc = cv_unsigned(o, UINTPTR_MAX, &v->u);
      break;
    }
    if (PyObject_CheckBuffer(o)) {
      if (PyObject_GetBuffer(o, &h->views[i], PyBUF_ANY_CONTIGUOUS) < 0) {
        PyErr_Clear();
        return cv_fail(e, CV_NOTCONTIG, i, o);
      }
      h->held[i] = 1;
      v->p = h->views[i].buf;
      return CV_OK;
    }
    rc = CV_TYPE;
    break;
  case EDGERT_CT_POINTER:
    return cv_pointer(t, o, i, v, h, e);
  default:
    rc = CV_TYPE;
    break;
  }
  if (rc != CV_OK)
    return cv_fail(e, rc, i, o);
  return CV_OK;
}

static const char *expected_desc(const edgert_abi_type_t *t) {
  switch (t->code) {
  case EDGERT_CT_BOOL:
    return "bool";
  case EDGERT_CT_CHAR:
    return "bytes of length 1 or int";
  case EDGERT_CT_WCHAR:
    return "str of length 1";
  case EDGERT_CT_FLOAT:
  case EDGERT_CT_DOUBLE:
  case EDGERT_CT_LONGDOUBLE:
    return "float or int";
  case EDGERT_CT_CHAR_P:
    return "bytes or None";
  case EDGERT_CT_WCHAR_P:
    return "str or None";
  case EDGERT_CT_VOID_P:
    return "int, None or a contiguous buffer";
  case EDGERT_CT_POINTER:
    return "a C-contiguous buffer or None";
  default:
    return "int";
  }
}

static void range_desc(edgert_ctype_t c, char *buf, size_t n) {
  switch (c) {
  case EDGERT_CT_BOOL:
    snprintf(buf, n, "0..1");
    break;
  case EDGERT_CT_CHAR:
    snprintf(buf, n, "-128..255");
    break;
  case EDGERT_CT_BYTE:
    snprintf(buf, n, "-128..127");
    break;
  case EDGERT_CT_UBYTE:
    snprintf(buf, n, "0..255");
    break;
  case EDGERT_CT_SHORT:
    snprintf(buf, n, "-32768..32767");
    break;
  case EDGERT_CT_USHORT:
    snprintf(buf, n, "0..65535");
    break;
  case EDGERT_CT_INT:
    snprintf(buf, n, "-2147483648..2147483647");
    break;
  case EDGERT_CT_UINT:
    snprintf(buf, n, "0..4294967295");
    break;
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    snprintf(buf, n, "-9223372036854775808..9223372036854775807");
    break;
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
  case EDGERT_CT_VOID_P:
    snprintf(buf, n, "0..18446744073709551615");
    break;
  case EDGERT_CT_FLOAT:
    snprintf(buf, n, "finite magnitude at most %g, ints exactly representable", (double)FLT_MAX);
    break;
  case EDGERT_CT_LONGDOUBLE:
    snprintf(buf, n, "ints exactly representable: at most %d significant bits, below 2**%d",
             LDBL_MANT_DIG, LDBL_MAX_EXP);
    break;
  default:
    snprintf(buf, n, "ints exactly representable");
    break;
  }
}

/* Sets the exception for a refused conversion (CV_PYERR: already set). */
static void raise_cv(BoundObject *b, const cverr_t *e, Py_ssize_t got) {
  const char *fname = edgert_func_name(b->fn);
  if (e->kind == CV_PYERR)
    return;
  if (e->kind == CV_COUNT) {
    char sig[1024];
    if (edgert_contract_format(edgert_func_contract(b->fn), sig, sizeof sig) != 0)
      sig[0] = '\0';
    PyErr_Format(PyExc_TypeError, "%s() takes %u argument%s (%s), got %zd", fname,
                 b->nargs, b->nargs == 1 ? "" : "s", sig, got);
    return;
  }
  const edgert_abi_type_t *t = &b->args[e->index];
  char tname[64];
  if (edgert_abi_type_name(t, tname, sizeof tname) != 0)
    snprintf(tname, sizeof tname, "?");
  switch (e->kind) {
  case CV_OVERFLOW: {
    char range[96];
    range_desc(t->code, range, sizeof range);
    size_t bits = PyLong_Check(e->obj) ? _PyLong_NumBits(e->obj) : 0;
    if (bits > 256 && bits != (size_t)-1) { /* its digits: a page, or past str()'s limit */
      PyErr_Format(PyExc_OverflowError, "%s() argument %u: an int of %zu bits does not fit "
                   "%s (%s)", fname, e->index + 1, bits, tname, range);
      return;
    }
    PyErr_Format(PyExc_OverflowError, "%s() argument %u: %R does not fit %s (%s)", fname,
                 e->index + 1, e->obj, tname, range);
    return;
  }
  case CV_FORMAT: {
    edgert_abi_type_t p = {t->pointee, EDGERT_CT_VOID, 0};
    char pname[64];
    if (t->depth >= 2 || edgert_abi_type_name(&p, pname, sizeof pname) != 0)
      snprintf(pname, sizeof pname, "pointers");
    PyErr_Format(PyExc_TypeError,
                 "%s() argument %u must be a C-contiguous buffer of %s (%s, %zu-byte "
                 "items), not %s with format '%s' and %zd-byte items",
                 fname, e->index + 1, pname, tname,
                 t->depth >= 2 ? sizeof(void *) : edgert_abi_type_size(&p),
                 Py_TYPE(e->obj)->tp_name, e->fmt, e->itemsize);
    return;
  }
  case CV_NUL:
    PyErr_Format(PyExc_ValueError,
                 "%s() argument %u (%s) has an embedded NUL at offset %zd; a C string would "
                 "end there",
                 fname, e->index + 1, tname, e->at);
    return;
  case CV_NOTCONTIG:
    PyErr_Format(PyExc_TypeError,
                 "%s() argument %u must be a contiguous buffer (%s), but this %s is "
                 "not contiguous",
                 fname, e->index + 1, tname, Py_TYPE(e->obj)->tp_name);
    return;
  default:
    if (t->code == EDGERT_CT_CHAR && (PyBytes_Check(e->obj) || PyByteArray_Check(e->obj)))
      PyErr_Format(PyExc_TypeError, "%s() argument %u must be %s (%s), not %s of length %zd",
                   fname, e->index + 1, expected_desc(t), tname, Py_TYPE(e->obj)->tp_name,
                   PyObject_Length(e->obj));
    else
      PyErr_Format(PyExc_TypeError, "%s() argument %u must be %s (%s), not %s", fname,
                   e->index + 1, expected_desc(t), tname, Py_TYPE(e->obj)->tp_name);
    return;
  }
}

/* ---- return values ----------------------------------------------------------- */

typedef union {
  long double ld;
  unsigned char raw[32];
} retbuf_t;

/* The Python value of b's return value in r. A c_longdouble result is
 * rounded to a float; a finite one that would round to inf raises
 * OverflowError (as a finite double beyond FLT_MAX is refused for c_float). */
static PyObject *convert_ret(BoundObject *b, const retbuf_t *r) {
  const edgert_abi_type_t *t = &b->ret;
  const void *p = r->raw;
  switch (t->code) {
  case EDGERT_CT_VOID:
    Py_RETURN_NONE;
  case EDGERT_CT_DOUBLE:
    return PyFloat_FromDouble(*(const double *)p);
  case EDGERT_CT_FLOAT:
    return PyFloat_FromDouble((double)*(const float *)p);
  case EDGERT_CT_LONGDOUBLE: {
    long double x = *(const long double *)p;
    double d = (double)x;
    if (EDGERT__PY_UNLIKELY(isinf(d) && isfinite(x))) {
      char txt[96]; /* PyErr_Format has no %g */
      snprintf(txt, sizeof txt, "%.6Lg (c_longdouble), beyond the largest float (%g)", x,
               DBL_MAX);
      PyErr_Format(PyExc_OverflowError, "%s() returned %s", edgert_func_name(b->fn), txt);
      return NULL;
    }
    return PyFloat_FromDouble(d);
  }
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    return PyLong_FromLongLong(*(const int64_t *)p);
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
  case EDGERT_CT_INT:
    return PyLong_FromLong(*(const int32_t *)p);
  case EDGERT_CT_UINT:
    return PyLong_FromUnsignedLong(*(const uint32_t *)p);
  case EDGERT_CT_SHORT:
    return PyLong_FromLong(*(const int16_t *)p);
  case EDGERT_CT_USHORT:
    return PyLong_FromLong(*(const uint16_t *)p);
  case EDGERT_CT_BYTE:
    return PyLong_FromLong(*(const int8_t *)p);
  case EDGERT_CT_UBYTE:
    return PyLong_FromLong(*(const uint8_t *)p);
  case EDGERT_CT_BOOL:
    return PyBool_FromLong(*(const unsigned char *)p != 0);
  case EDGERT_CT_CHAR:
    return PyBytes_FromStringAndSize((const char *)p, 1);
  case EDGERT_CT_WCHAR:
    return PyUnicode_FromWideChar((const wchar_t *)p, 1);
  case EDGERT_CT_CHAR_P: {
    const char *s = *(const char *const *)p;
    if (s == NULL)
      Py_RETURN_NONE;
    return PyBytes_FromString(s);
  }
  case EDGERT_CT_WCHAR_P: {
    const wchar_t *s = *(const wchar_t *const *)p;
    if (s == NULL)
      Py_RETURN_NONE;
    return PyUnicode_FromWideChar(s, -1);
  }
  default:
    return PyLong_FromVoidPtr(*(void *const *)p);
  }
}

/* ---- the call --------------------------------------------------------------- */

/* A call that keeps the GIL, or on a free-threaded build stays attached:
 * see the invariants above for who keeps unload() out of it. */
static inline int call_attached(ModObject *h, edgert_func_t *fn, edgert_value_t *v, void *ret) {
  EDGERT_PY_CALLER_ENTER(PyThreadState_Get());
#ifdef Py_GIL_DISABLED
  (void)h;
  int rc = edgert_func_call_values(fn, v, ret);
#else
  h->gil_calls++;
  int rc = edgert_func_call_serialized(fn, v, ret);
  if (--h->gil_calls == 0 && EDGERT__PY_UNLIKELY(h->pending_unload))
    mod_core_unload(h);
#endif
  EDGERT_PY_CALLER_LEAVE();
  return rc;
}

static PyObject *raise_unloaded(BoundObject *b) {
  PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot call '%s': module %s is unloaded",
               edgert_func_name(b->fn), edgert_module_path(b->mod->m));
  return NULL;
}

static PyObject *bound_invoke(BoundObject *b, PyObject *const *args, Py_ssize_t nargs,
                              int *missed) {
  ModObject *h = b->mod;
  if (missed)
    *missed = 0;
  if (EDGERT__PY_UNLIKELY(EDGERT_PY_LOAD(h->unloaded)))
    return raise_unloaded(b);
  cverr_t err;
  if (EDGERT__PY_UNLIKELY((size_t)nargs != b->nargs)) {
    if (missed) {
      *missed = 1;
      return NULL;
    }
    err.kind = CV_COUNT;
    raise_cv(b, &err, nargs);
    return NULL;
  }
  edgert_value_t v[EDGERT_MAX_ARGS + 1];
  retbuf_t ret;
  int rc;
  if (!b->cleanup) {
    for (unsigned i = 0; i < b->nargs; i++)
      if (EDGERT__PY_UNLIKELY(convert_one(&b->args[i], args[i], i, &v[i], NULL, &err) != CV_OK))
        goto refused;
    if (b->release_gil) {
      Py_BEGIN_ALLOW_THREADS
      EDGERT_PY_CALLER_ENTER(_save);
      rc = edgert_func_call_values(b->fn, v, &ret);
      EDGERT_PY_CALLER_LEAVE();
      Py_END_ALLOW_THREADS
    } else {
      rc = call_attached(h, b->fn, v, &ret);
    }
  } else {
    cvhold_t hold;
    hold.used = b->nargs;
    hold.top = 0;
    memset(hold.held, 0, b->nargs);
    for (unsigned i = 0; i < b->nargs; i++)
      if (convert_one(&b->args[i], args[i], i, &v[i], &hold, &err) != CV_OK) {
        hold_release(&hold);
        goto refused;
      }
    if (b->release_gil) {
      Py_BEGIN_ALLOW_THREADS
      EDGERT_PY_CALLER_ENTER(_save);
      rc = edgert_func_call_values(b->fn, v, &ret);
      EDGERT_PY_CALLER_LEAVE();
      Py_END_ALLOW_THREADS
    } else {
      rc = call_attached(h, b->fn, v, &ret);
    }
    hold_release(&hold);
  }
  if (EDGERT__PY_UNLIKELY(rc != 0))
    return edgert_py_raise(rc);
  return convert_ret(b, &ret);

refused:
  if (missed) {
    if (err.kind == CV_PYERR) {
      if (!PyErr_ExceptionMatches(PyExc_TypeError) &&
          !PyErr_ExceptionMatches(PyExc_ValueError) &&
          !PyErr_ExceptionMatches(PyExc_OverflowError) &&
          !PyErr_ExceptionMatches(PyExc_BufferError))
        return NULL; /* a real error (memory, a broken __index__ ...): propagate */
      PyErr_Clear();
    }
    *missed = 1;
    return NULL;
  }
  raise_cv(b, &err, nargs);
  return NULL;
}

/* The fast path of a call: contracts whose arguments are all c_double or
 * 64-bit integers, called with exact floats and ints, keeping the GIL.
 * Anything else (or a value that needs a check the fast path does not make)
 * goes through bound_invoke, which handles every case. */
#define FAST_MAX 6
enum { FC_NONE = 0, FC_DOUBLE, FC_I64 };

static inline int fast_i64(PyObject *o, int64_t *out) {
  if (PyUnstable_Long_IsCompact((PyLongObject *)o)) { /* one digit or zero */
    *out = PyUnstable_Long_CompactValue((PyLongObject *)o);
    return 1;
  }
  int ovf = 0;
  long long x = PyLong_AsLongLongAndOverflow(o, &ovf);
  *out = x;
  return ovf == 0;
}

static inline PyObject *bound_dispatch(BoundObject *b, PyObject *const *args,
                                       Py_ssize_t nargs, int *missed) {
  ModObject *h = b->mod;
  if (EDGERT__PY_LIKELY(b->fast && (size_t)nargs == b->nargs && !EDGERT_PY_LOAD(h->unloaded))) {
    if (missed)
      *missed = 0;
    edgert_value_t v[FAST_MAX];
    for (Py_ssize_t i = 0; i < nargs; i++) {
      PyObject *o = args[i];
      if (b->fastcode[i] == FC_DOUBLE) {
        if (EDGERT__PY_UNLIKELY(!PyFloat_CheckExact(o)))
          goto slow;
        v[i].d = PyFloat_AS_DOUBLE(o);
      } else {
        if (EDGERT__PY_UNLIKELY(!PyLong_CheckExact(o) || !fast_i64(o, &v[i].i)))
          goto slow;
      }
    }
    retbuf_t r;
    int rc = call_attached(h, b->fn, v, &r);
    if (EDGERT__PY_UNLIKELY(rc != 0))
      return edgert_py_raise(rc);
    switch (b->ret.code) {
    case EDGERT_CT_DOUBLE:
      return PyFloat_FromDouble(*(const double *)r.raw);
    case EDGERT_CT_VOID:
      Py_RETURN_NONE;
    case EDGERT_CT_LONG:
    case EDGERT_CT_LONGLONG:
      return PyLong_FromLongLong(*(const int64_t *)r.raw);
    default:
      return convert_ret(b, &r);
    }
  }
slow:
  return bound_invoke(b, args, nargs, missed);
}

static PyObject *bound_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  return bound_dispatch((BoundObject *)self, args, nargs, NULL);
}

int edgert_py_is_bound(PyObject *o) {
  return o != NULL && PyCFunction_Check(o) &&
         PyCFunction_GET_FUNCTION(o) == (PyCFunction)(void (*)(void))bound_call &&
         PyCFunction_GET_SELF(o) != NULL && Py_TYPE(PyCFunction_GET_SELF(o)) == &BoundType;
}

edgert_func_t *edgert_py_bound_func(PyObject *o) {
  return edgert_py_is_bound(o) ? ((BoundObject *)PyCFunction_GET_SELF(o))->fn : NULL;
}

PyObject *edgert_py_bound_call(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                               int *missed) {
  if (!edgert_py_is_bound(bound)) {
    if (missed)
      *missed = 0;
    PyErr_SetString(PyExc_TypeError, "edgert_py_bound_call: not a bound callable");
    return NULL;
  }
  return bound_dispatch((BoundObject *)PyCFunction_GET_SELF(bound), args, nargs, missed);
}

/* A new bound callable for fn (new reference). */
static PyObject *make_bound(ModObject *h, edgert_func_t *fn) {
  BoundObject *b = PyObject_New(BoundObject, &BoundType);
  if (b == NULL)
    return NULL;
  const edgert_contract_t *c = edgert_func_contract(fn);
  b->fn = fn;
  Py_INCREF(h);
  b->mod = h;
  b->nargs = c->nargs;
  b->release_gil = c->release_gil != 0;
  b->ret = c->ret;
  b->cleanup = 0;
  for (unsigned i = 0; i < c->nargs; i++) {
    b->args[i] = c->args[i];
    edgert_ctype_t k = c->args[i].code;
    if (k == EDGERT_CT_POINTER || k == EDGERT_CT_VOID_P || k == EDGERT_CT_CHAR_P ||
        k == EDGERT_CT_WCHAR_P)
      b->cleanup = 1;
  }
  b->fast = !b->release_gil && c->nargs <= FAST_MAX && edgert_func_is_fast(fn);
  for (unsigned i = 0; i < c->nargs; i++) {
    edgert_ctype_t k = c->args[i].code;
    b->fastcode[i] = k == EDGERT_CT_DOUBLE                            ? FC_DOUBLE
                     : (k == EDGERT_CT_LONG || k == EDGERT_CT_LONGLONG) ? FC_I64
                                                                        : FC_NONE;
    if (b->fastcode[i] == FC_NONE)
      b->fast = 0;
  }
  b->def.ml_name = edgert_func_name(fn);
  b->def.ml_meth = (PyCFunction)(void (*)(void))bound_call;
  b->def.ml_flags = METH_FASTCALL;
  b->def.ml_doc = NULL;
  PyObject *modname = PyUnicode_FromString("edgert.loader");
  if (modname == NULL) {
    Py_DECREF(b);
    return NULL;
  }
  PyObject *f = PyCFunction_NewEx(&b->def, (PyObject *)b, modname);
  Py_DECREF(modname);
  Py_DECREF(b);
  return f;
}

/* ---- contracts from Python ----------------------------------------------------- */

/* Fills c from an object with _encode(). 0, or -1 with an exception. */
static int contract_from(PyObject *abi, edgert_contract_t *c) {
  PyObject *enc = PyObject_CallMethod(abi, "_encode", NULL);
  if (enc == NULL)
    return -1;
  const char *name, *ret = NULL, *cc = NULL;
  PyObject *argt, *reto, *cco;
  int rg = 1;
  if (!PyTuple_Check(enc) || PyTuple_GET_SIZE(enc) != 5) {
    Py_DECREF(enc);
    PyErr_SetString(PyExc_TypeError, "ABIContract._encode() must return a 5-tuple");
    return -1;
  }
  if (!PyArg_ParseTuple(enc, "sOOOp", &name, &argt, &reto, &cco, &rg)) {
    Py_DECREF(enc);
    return -1;
  }
  if (reto != Py_None && (ret = PyUnicode_AsUTF8(reto)) == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  if (cco != Py_None && (cc = PyUnicode_AsUTF8(cco)) == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  PyObject *seq = edgert_py_sequence_fast(argt, "ABIContract arg types must be a sequence");
  if (seq == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  const char *names[EDGERT_MAX_ARGS + 1];
  Py_ssize_t take = n > EDGERT_MAX_ARGS ? EDGERT_MAX_ARGS + 1 : n;
  for (Py_ssize_t i = 0; i < take; i++) {
    names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
    if (names[i] == NULL) {
      Py_DECREF(seq);
      Py_DECREF(enc);
      return -1;
    }
  }
  edgert_clear_error();
  int rc = edgert_contract_init(c, name, names, (size_t)n, ret, cc, rg);
  Py_DECREF(seq);
  Py_DECREF(enc);
  if (rc != 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

/* Contracts from None, one contract, or an iterable of them. *out is
 * PyMem-allocated (NULL when none). 0 or -1 with an exception. */
static int contracts_from(PyObject *abi, edgert_contract_t **out, Py_ssize_t *count) {
  *out = NULL;
  *count = 0;
  if (abi == NULL || abi == Py_None)
    return 0;
  int has = PyObject_HasAttrString(abi, "_encode");
  PyObject *seq;
  if (has)
    seq = PyTuple_Pack(1, abi);
  else {
    seq = edgert_py_sequence_fast(abi, "abi must be an ABIContract or an iterable of them");
    if (seq == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "abi must be an ABIContract or an iterable of them, not %s",
                   Py_TYPE(abi)->tp_name);
    }
  }
  if (seq == NULL)
    return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  edgert_contract_t *cs = n ? PyMem_Calloc((size_t)n, sizeof *cs) : NULL;
  if (n && cs == NULL) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
    if (!PyObject_HasAttrString(it, "_encode")) {
      PyErr_Format(PyExc_TypeError, "abi item %zd must be an ABIContract, not %s", i,
                   Py_TYPE(it)->tp_name);
      goto fail;
    }
    if (contract_from(it, &cs[i]) < 0)
      goto fail;
  }
  Py_DECREF(seq);
  *out = cs;
  *count = n;
  return 0;
fail:
  Py_DECREF(seq);
  PyMem_Free(cs);
  return -1;
}

/* Binds contracts in core module h; on success adds callables to `funcs`.
 * All or nothing for `funcs`. 0 or -1 with an exception. */
static int bind_all(ModObject *h, const edgert_contract_t *cs, Py_ssize_t n, PyObject *funcs) {
  PyObject *made = PyList_New(n);
  if (made == NULL)
    return -1;
  for (Py_ssize_t i = 0; i < n; i++) {
    edgert_func_t *fn = NULL;
    edgert_clear_error();
    int rc = edgert_module_bind(h->m, &cs[i], &fn);
    if (rc != 0) {
      Py_DECREF(made);
      edgert_py_raise(rc);
      return -1;
    }
    PyObject *f = make_bound(h, fn);
    if (f == NULL) {
      Py_DECREF(made);
      return -1;
    }
    PyList_SET_ITEM(made, i, f);
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *f = PyList_GET_ITEM(made, i);
    if (PyDict_SetItemString(funcs, cs[i].function_name, f) < 0) {
      Py_DECREF(made);
      return -1;
    }
  }
  Py_DECREF(made);
  return 0;
}

/* ---- ModuleLoader -------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  ModObject *mod;  /* the current module, or NULL */
  PyObject *funcs; /* name -> bound callable */
  PyObject *weakrefs;
} LoaderObject;

static edgert_py_logger_t loader_log;

static PyObject *loader_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, ":ModuleLoader", kwlist))
    return NULL;
  LoaderObject *self = (LoaderObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->funcs = PyDict_New();
  if (self->funcs == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static void loader_dealloc(LoaderObject *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs)
    PyObject_ClearWeakRefs((PyObject *)self);
  Py_CLEAR(self->funcs);
  Py_CLEAR(self->mod);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int loader_traverse(LoaderObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->funcs);
  return 0;
}

static int loader_clear(LoaderObject *self) {
  Py_CLEAR(self->funcs);
  return 0;
}

static int loader_loaded(LoaderObject *self) {
  return self->mod != NULL && !EDGERT_PY_LOAD(self->mod->unloaded);
}

static PyObject *no_module(const char *what) {
  PyErr_Format(EdgertPy_ModuleUnloadedError, "%s: no module is loaded; call load() first", what);
  return NULL;
}

static PyObject *loader_load(LoaderObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path",     "abi",           "expected_sha256",
                           "max_size", "isolate_symbols", NULL};
  PyObject *pathb = NULL, *abi = Py_None, *exp = Py_None, *maxo = Py_None;
  int isolate = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O$OOp:load", kwlist, PyUnicode_FSConverter,
                                   &pathb, &abi, &exp, &maxo, &isolate))
    return NULL;
  PyObject *result = NULL;
  edgert_contract_t *cs = NULL;
  Py_ssize_t n = 0;
  const char *hex = NULL;
  edgert_load_options_t opts = {0, 0};
  if (exp != Py_None) {
    if (!PyUnicode_Check(exp)) {
      PyErr_Format(PyExc_TypeError, "expected_sha256 must be a str of 64 hex digits or None, not %s",
                   Py_TYPE(exp)->tp_name);
      goto out;
    }
    hex = PyUnicode_AsUTF8(exp);
    if (hex == NULL)
      goto out;
  }
  if (maxo != Py_None) {
    Py_ssize_t v = PyNumber_AsSsize_t(maxo, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred())
      goto out;
    if (v <= 0) {
      PyErr_SetString(PyExc_ValueError, "max_size must be a positive int");
      goto out;
    }
    opts.max_size = (size_t)v;
  }
  if (isolate)
    opts.flags |= EDGERT_LOAD_ISOLATE_SYMBOLS;
  if (contracts_from(abi, &cs, &n) < 0)
    goto out;
  const char *path = PyBytes_AS_STRING(pathb);
  edgert_module_t *m = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  edgert_clear_error();
  rc = edgert_module_load_ex(path, hex, &opts, &m);
  Py_END_ALLOW_THREADS
  if (rc != 0) {
    int e = errno;
    if (rc == EDGERT_EIO && e != 0) {
      /* The message quotes the path, which need not be UTF-8. */
      const char *msg = edgert_last_error();
      PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
      PyObject *a = text ? Py_BuildValue("(iNO)", e, text, pathb) : NULL;
      if (a != NULL) {
        PyErr_SetObject(PyExc_OSError, a);
        Py_DECREF(a);
      }
    } else {
      edgert_py_raise(rc);
    }
    edgert_py_log(&loader_log, rc == EDGERT_EINTEGRITY ? EDGERT_PY_ERROR : EDGERT_PY_WARNING,
                  "load of %s refused: %s", path, edgert_last_error());
    goto out;
  }
  ModObject *h = PyObject_New(ModObject, &ModType);
  if (h == NULL) {
    edgert_module_free(m);
    goto out;
  }
  h->m = m;
  h->gil_calls = 0;
  h->unloaded = 0;
  h->pending_unload = 0;
  PyObject *funcs = PyDict_New();
  if (funcs == NULL || bind_all(h, cs, n, funcs) < 0) {
    Py_XDECREF(funcs);
    mod_core_unload(h);
    Py_DECREF(h);
    goto out;
  }
  /* Swap in; the previous module (if any) is unloaded. */
  ModObject *old;
  PyObject *oldf;
  Py_BEGIN_CRITICAL_SECTION(self);
  old = self->mod;
  oldf = self->funcs;
  self->mod = h;
  self->funcs = funcs;
  Py_END_CRITICAL_SECTION();
  if (old != NULL) {
    if (!EDGERT_PY_LOAD(old->unloaded))
      mod_core_unload(old);
    Py_DECREF(old);
  }
  Py_XDECREF(oldf);
  edgert_py_log(&loader_log, EDGERT_PY_DEBUG, "loaded %s (sha256 %s, %zd contract%s)", path,
                edgert_module_sha256(m), n, n == 1 ? "" : "s");
  Py_INCREF(self);
  result = (PyObject *)self;
out:
  PyMem_Free(cs);
  Py_XDECREF(pathb);
  return result;
}

EDGERT_PY_LOCKED(PyObject *, loader_bind, self, (LoaderObject *self, PyObject *abi), (self, abi))
static PyObject *loader_bind_locked(LoaderObject *self, PyObject *abi) {
  if (!loader_loaded(self))
    return no_module("bind");
  edgert_contract_t *cs = NULL;
  Py_ssize_t n = 0;
  if (contracts_from(abi, &cs, &n) < 0)
    return NULL;
  int rc = bind_all(self->mod, cs, n, self->funcs);
  PyMem_Free(cs);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *lookup_bound(LoaderObject *self, PyObject *name) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "function name must be str, not %s", Py_TYPE(name)->tp_name);
    return NULL;
  }
  PyObject *f = self->funcs ? PyDict_GetItemWithError(self->funcs, name) : NULL;
  if (f != NULL)
    return f;
  if (PyErr_Occurred())
    return NULL;
  if (self->mod == NULL)
    return no_module("call");
  if (EDGERT_PY_LOAD(self->mod->unloaded)) {
    PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot call '%U': module %s is unloaded", name,
                 edgert_module_path(self->mod->m));
    return NULL;
  }
  PyErr_Format(EdgertPy_SymbolNotFoundError,
               "no contract is bound for '%U' in module %s: pass an ABIContract for it to "
               "load() or bind()",
               name, edgert_module_path(self->mod->m));
  return NULL;
}

static PyObject *loader_call(LoaderObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (EDGERT__PY_UNLIKELY(nargs < 1)) {
    PyErr_SetString(PyExc_TypeError, "call() needs the function name");
    return NULL;
  }
  /* The call runs on a reference of its own: a callback (or another
   * thread) could rebind and drop `f` from the dict. */
  PyObject *b = NULL;
  Py_BEGIN_CRITICAL_SECTION(self);
  PyObject *f = lookup_bound(self, args[0]);
  if (EDGERT__PY_LIKELY(f != NULL))
    b = Py_XNewRef(PyCFunction_GET_SELF(f)); /* a bound callable always has a __self__ */
  Py_END_CRITICAL_SECTION();
  if (EDGERT__PY_UNLIKELY(b == NULL))
    return NULL;
  PyObject *r = bound_call(b, args + 1, nargs - 1);
  Py_DECREF(b);
  return r;
}

EDGERT_PY_LOCKED(PyObject *, loader_function, self,
                 (LoaderObject *self, PyObject *name),
                 (self, name))
static PyObject *loader_function_locked(LoaderObject *self, PyObject *name) {
  PyObject *f = lookup_bound(self, name);
  Py_XINCREF(f);
  return f;
}

EDGERT_PY_LOCKED(PyObject *, loader_address_of, self,
                 (LoaderObject *self, PyObject *name),
                 (self, name))
static PyObject *loader_address_of_locked(LoaderObject *self, PyObject *name) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "symbol name must be str, not %s", Py_TYPE(name)->tp_name);
    return NULL;
  }
  if (!loader_loaded(self))
    return no_module("address_of");
  const char *s = PyUnicode_AsUTF8(name);
  if (s == NULL)
    return NULL;
  void *a = NULL;
  edgert_clear_error();
  int rc = edgert_module_address_of(self->mod->m, s, &a);
  if (rc != 0)
    return edgert_py_raise(rc);
  return PyLong_FromVoidPtr(a);
}

EDGERT_PY_LOCKED(PyObject *, loader_verify, self, (LoaderObject *self, PyObject *hex), (self, hex))
static PyObject *loader_verify_locked(LoaderObject *self, PyObject *hex) {
  if (!PyUnicode_Check(hex)) {
    PyErr_Format(PyExc_TypeError, "the expected SHA-256 must be a str of 64 hex digits, not %s",
                 Py_TYPE(hex)->tp_name);
    return NULL;
  }
  if (self->mod == NULL)
    return no_module("verify_signature");
  const char *s = PyUnicode_AsUTF8(hex);
  if (s == NULL)
    return NULL;
  if ((size_t)PyUnicode_GET_LENGTH(hex) != strlen(s) || strlen(s) != 64 ||
      !PyUnicode_IS_ASCII(hex)) {
    PyErr_Format(PyExc_ValueError,
                 "the SHA-256 to verify must be 64 hex digits, got %zd characters%s",
                 PyUnicode_GET_LENGTH(hex), PyUnicode_IS_ASCII(hex) ? "" : " (non-ASCII)");
    return NULL;
  }
  edgert_clear_error();
  int rc = edgert_module_verify(self->mod->m, s);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyBool_FromLong(rc);
}

EDGERT_PY_LOCKED(PyObject *, loader_unload, self,
                 (LoaderObject *self, PyObject *unused),
                 (self, unused))
static PyObject *loader_unload_locked(LoaderObject *self, PyObject *unused) {
  (void)unused;
  if (self->mod != NULL && !EDGERT_PY_LOAD(self->mod->unloaded)) {
    edgert_py_log(&loader_log, EDGERT_PY_DEBUG, "unloading %s", edgert_module_path(self->mod->m));
    mod_core_unload(self->mod);
  }
  Py_RETURN_NONE;
}

static PyObject *loader_enter(LoaderObject *self, PyObject *unused) {
  (void)unused;
  Py_INCREF(self);
  return (PyObject *)self;
}

static PyObject *loader_exit(LoaderObject *self, PyObject *args) {
  (void)args;
  PyObject *r = loader_unload(self, NULL);
  Py_XDECREF(r);
  if (r == NULL)
    return NULL;
  Py_RETURN_FALSE;
}

EDGERT_PY_LOCKED(PyObject *, loader_get_sha256, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_sha256_locked(LoaderObject *self, void *c) {
  (void)c;
  if (!loader_loaded(self))
    Py_RETURN_NONE;
  return PyUnicode_FromString(edgert_module_sha256(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_path, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_path_locked(LoaderObject *self, void *c) {
  (void)c;
  if (!loader_loaded(self))
    Py_RETURN_NONE;
  return PyUnicode_DecodeFSDefault(edgert_module_path(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_loaded, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_loaded_locked(LoaderObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(loader_loaded(self));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_quarantined, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_quarantined_locked(LoaderObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(loader_loaded(self) && edgert_module_quarantined(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_functions, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_functions_locked(LoaderObject *self, void *c) {
  (void)c;
  if (self->funcs == NULL)
    return PyTuple_New(0);
  PyObject *keys = PyDict_Keys(self->funcs);
  if (keys == NULL)
    return NULL;
  PyObject *t = PyList_AsTuple(keys);
  Py_DECREF(keys);
  return t;
}

EDGERT_PY_LOCKED(PyObject *, loader_repr, self, (LoaderObject *self), (self))
static PyObject *loader_repr_locked(LoaderObject *self) {
  if (self->mod == NULL)
    return PyUnicode_FromString("<ModuleLoader: nothing loaded>");
  return PyUnicode_FromFormat("<ModuleLoader %s%s sha256=%.16s...>",
                              edgert_module_path(self->mod->m),
                              EDGERT_PY_LOAD(self->mod->unloaded) ? " (unloaded)" : "",
                              edgert_module_sha256(self->mod->m));
}

static PyMethodDef loader_methods[] = {
    {"load", (PyCFunction)(void (*)(void))loader_load, METH_VARARGS | METH_KEYWORDS,
     "load(path, abi=None, *, expected_sha256=None, max_size=None, isolate_symbols=False)"
     " -> self\n\n"
     "Reads the module once into sealed memory, checks it is a 64-bit ELF shared object "
     "for this machine, verifies the SHA-256 of the sealed bytes (when expected_sha256 is "
     "given) before any of its code runs, maps it and binds every contract in abi (an "
     "ABIContract or an iterable of them). A missing symbol fails the load naming it. "
     "isolate_symbols=True maps it with RTLD_DEEPBIND: its references to its own symbols "
     "bind inside it, whatever LD_PRELOAD or RTLD_GLOBAL libraries define (refused under "
     "AddressSanitizer). Replaces (and unloads) a module loaded before."},
    {"bind", (PyCFunction)loader_bind, METH_O,
     "bind(abi) -> None\n\nBinds more contracts (an ABIContract or an iterable)."},
    {"call", (PyCFunction)(void (*)(void))loader_call, METH_FASTCALL,
     "call(name, *args)\n\nCalls a bound function with strict argument conversion."},
    {"function", (PyCFunction)loader_function, METH_O,
     "function(name) -> callable\n\nThe fast bound callable for a bound function."},
    {"address_of", (PyCFunction)loader_address_of, METH_O,
     "address_of(name) -> int\n\nThe address of a function or data symbol the module defines."},
    {"verify_signature", (PyCFunction)loader_verify, METH_O,
     "verify_signature(sha256_hex) -> bool\n\nConstant-time comparison of the loaded "
     "bytes' SHA-256 with sha256_hex; ValueError if it is not 64 hex digits."},
    {"unload", (PyCFunction)loader_unload, METH_NOARGS,
     "unload() -> None\n\nAfterwards every call and bound callable raises ModuleUnloadedError."},
    {"__enter__", (PyCFunction)loader_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)loader_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loader_getset[] = {
    {"sha256", (getter)loader_get_sha256, NULL,
     "Hex SHA-256 of the loaded bytes, or None if nothing is loaded.", NULL},
    {"path", (getter)loader_get_path, NULL, "The loaded module's path, or None.", NULL},
    {"loaded", (getter)loader_get_loaded, NULL, "Whether a module is loaded.", NULL},
    {"quarantined", (getter)loader_get_quarantined, NULL,
     "Whether the module crashed and is quarantined until loaded again.", NULL},
    {"functions", (getter)loader_get_functions, NULL, "Names of the bound functions.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.ModuleLoader",
    .tp_basicsize = sizeof(LoaderObject),
    .tp_dealloc = (destructor)loader_dealloc,
    .tp_repr = (reprfunc)loader_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ModuleLoader()\n\nLoads verified shared objects and calls their functions "
              "through ABI contracts.",
    .tp_traverse = (traverseproc)loader_traverse,
    .tp_clear = (inquiry)loader_clear,
    .tp_weaklistoffset = offsetof(LoaderObject, weakrefs),
    .tp_methods = loader_methods,
    .tp_getset = loader_getset,
    .tp_new = loader_new,
};

/* _edgert._bound_try_call(f, *args) -> (missed, result): edgert_py_bound_call
 * with a miss flag, for tests of the path other parts use. */
static PyObject *bound_try_call(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
  (void)m;
  if (nargs < 1 || !edgert_py_is_bound(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_bound_try_call(f, *args): f must be a bound callable");
    return NULL;
  }
  int missed = -1;
  PyObject *r = edgert_py_bound_call(args[0], args + 1, nargs - 1, &missed);
  if (r == NULL && !missed)
    return NULL;
  if (r == NULL && PyErr_Occurred()) {
    PyErr_SetString(PyExc_SystemError, "a miss left an exception set");
    return NULL;
  }
  PyObject *t = Py_BuildValue("(NO)", PyBool_FromLong(missed), r ? r : Py_None);
  Py_XDECREF(r);
  return t;
}

/* edgert_interposable_calls' callback: appends the name to a list. */
static int add_interposable(void *ud, const char *name, unsigned how) {
  (void)how;
  PyObject *s = PyUnicode_DecodeFSDefault(name);
  int rc = s == NULL ? -1 : PyList_Append((PyObject *)ud, s);
  Py_XDECREF(s);
  return rc < 0 ? 1 : 0; /* nonzero stops the walk; the exception is set */
}

/* _edgert.interposable_calls(path) -> sorted list of names. */
static PyObject *interposable_calls(PyObject *m, PyObject *arg) {
  (void)m;
  PyObject *pathb = NULL;
  if (!PyUnicode_FSConverter(arg, &pathb))
    return NULL;
  PyObject *names = PyList_New(0);
  if (names == NULL) {
    Py_DECREF(pathb);
    return NULL;
  }
  edgert_clear_error();
  int rc = edgert_interposable_calls(PyBytes_AS_STRING(pathb), add_interposable, names);
  Py_DECREF(pathb);
  if (rc == 1) { /* the callback's Python error */
    Py_DECREF(names);
    return NULL;
  }
  if (rc != 0) {
    Py_DECREF(names);
    return edgert_py_raise(rc);
  }
  if (PyList_Sort(names) < 0) {
    Py_DECREF(names);
    return NULL;
  }
  return names;
}

static PyMethodDef module_methods[] = {
    {"_bound_try_call", (PyCFunction)(void (*)(void))bound_try_call, METH_FASTCALL,
     "_bound_try_call(f, *args) -> (missed, result): the miss-flag call path (tests)."},
    {"interposable_calls", (PyCFunction)interposable_calls, METH_O,
     "interposable_calls(path) -> list[str]\n\nThe symbols the module at path defines and "
     "also reaches through its PLT or GOT (sorted): an LD_PRELOAD or RTLD_GLOBAL library "
     "defining one of them takes over the module's own calls to it. Reads the file; "
     "loads nothing."},
    {NULL, NULL, 0, NULL},
};

int edgert_py_loader_init(PyObject *m) {
  if (PyModule_AddFunctions(m, module_methods) < 0)
    return -1;
  if (PyType_Ready(&ModType) < 0 || PyType_Ready(&BoundType) < 0 ||
      PyType_Ready(&LoaderType) < 0)
    return -1;
  if (edgert_py_logger_init(&loader_log, "edgert.loader") < 0)
    return -1;
  Py_INCREF(&LoaderType);
  if (PyModule_AddObject(m, "ModuleLoader", (PyObject *)&LoaderType) < 0) {
    Py_DECREF(&LoaderType);
    return -1;
  }
  return 0;
}
