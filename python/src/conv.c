/*
 * conv.c: the conversion table (conv.h), one setter and one getter per
 * edgert_ctype_t, and the messages of refused arguments.
 *
 * Invariants:
 * - Conversion is strict and lossless, done in C per contract type: ints
 *   must fit, floats take ints only when exactly representable, a bool is
 *   True, False, 0 or 1, strings and buffers are checked for what the C side
 *   will read (NUL-free, contiguous, items of the pointee's kind and size).
 * - A kernel never gets a pointer into a Python object's storage for a
 *   string: c_char_p and c_wchar_p get private NUL-terminated copies (the
 *   call frame's small area, or the heap), so a kernel that writes through
 *   its char * changes no bytes object (b"a" is one object process-wide).
 *   Pointer arguments (POINTER(t), c_void_p) are buffers, passed as they are.
 * - Every integer setter takes an exact int of one digit without a call
 *   (its own fast lane), before the general path.
 */
#include "conv.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

/* ---- helpers ------------------------------------------------------------- */

void conv_hold_release(conv_hold_t *h) {
  for (unsigned i = 0; i < h->used; i++) {
    if (h->held[i] == 1)
      PyBuffer_Release(&h->views[i]);
    else if (h->held[i] == 2)
      PyMem_Free(h->heap[i]);
    else if (h->held[i] == 3)
      conv_cb_free(h->heap[i]);
  }
}

/* Space for argument i's private copy of `size` bytes aligned to `align` (a
 * power of two): in the frame's small area while it fits, else on the heap
 * (released by hold_release). NULL with MemoryError set. */
static void *hold_space(conv_hold_t *h, unsigned i, size_t size, size_t align) {
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

static int cv_fail(conv_err_t *e, int kind, unsigned i, PyObject *o) {
  e->kind = kind;
  e->index = i;
  e->obj = o;
  return kind;
}

static int is_numpy_scalar(PyObject *o, const char *prefix) {
  const char *n = Py_TYPE(o)->tp_name;
  /* the first byte turns away almost every other type without a call (a
   * refused str paid ~190 instructions of strncmp on a guard miss) */
  if (n[0] != 'n' || strncmp(n, "numpy.", 6) != 0)
    return 0;
  return strncmp(n + 6, prefix, strlen(prefix)) == 0;
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
  edgert_abi_type_t p = {.code = t->pointee, .pointee = EDGERT_CT_VOID, .depth = 0, .layout = t->layout};
  int want = code_kind(t->pointee);
  Py_ssize_t size = (Py_ssize_t)edgert_abi_type_size(&p);
  if (itemsize != size)
    return 0;
  if (want == K_CHAR) /* char data: bytes, bytearray, int8/uint8 arrays */
    return kind == K_CHAR || kind == K_SIGNED || kind == K_UNSIGNED;
  return kind == want;
}

/* Copies a refused buffer's format and item size into *e for the message
 * (the view goes now); by hand, since snprintf costs more than the rest of a
 * guard miss. */
static int format_fail(conv_err_t *e, const char *format, Py_ssize_t itemsize, unsigned i,
                       PyObject *o) {
  const char *f = format ? format : "B";
  size_t k = 0;
  for (; f[k] != '\0' && k + 1 < sizeof e->fmt; k++)
    e->fmt[k] = f[k];
  e->fmt[k] = '\0';
  e->itemsize = itemsize;
  return cv_fail(e, CV_FORMAT, i, o);
}

/* Whether the target format of a ctypes pointer (its format without the
 * leading '&': "<d", "&<i") is items of pointer type t. */
static int target_matches(const edgert_abi_type_t *t, const char *target) {
  if (t->depth >= 2)
    return target[0] == '&';
  edgert_abi_type_t p = {.code = t->pointee, .pointee = EDGERT_CT_VOID, .layout = t->layout};
  Py_ssize_t size = (Py_ssize_t)edgert_abi_type_size(&p);
  return buffer_matches(t, format_kind(target, size), size);
}

/*
 * ctypes' byref(obj[, offset]) is a CArgObject: no buffer, no public
 * address. Its C layout (Modules/_ctypes/ctypes.h, PyCArgObject: the object
 * header, an ffi_type pointer, the tag char, a value union whose widest
 * member is a long double, then the referenced object) is mirrored here and
 * trusted only when it checks out: tag 'P', the mirrored object pointer is
 * the object's `_obj`, and the address lies inside `_obj`'s own buffer.
 */
typedef struct {
  PyObject_HEAD
  void *pffitype;
  char tag;
  union {
    long double D;
    void *p;
  } value;
  PyObject *obj;
} carg_mirror_t;

/* Its type is named "CArgObject" up to 3.11, "_ctypes.CArgObject" since. */
static int is_carg(PyObject *o) {
  const char *n = Py_TYPE(o)->tp_name, *dot = strrchr(n, '.');
  return strcmp(dot != NULL ? dot + 1 : n, "CArgObject") == 0;
}

/* byref(obj) for pointer type t (a c_void_p: any object): the view of
 * `_obj` held in h (so `_obj` lives until the call returns), the address in
 * v->p. */
static int cv_byref(const edgert_abi_type_t *t, PyObject *o, unsigned i, edgert_value_t *v,
                    conv_hold_t *h, conv_err_t *e) {
  PyObject *target = PyObject_GetAttrString(o, "_obj");
  if (target == NULL) {
    PyErr_Clear();
    return cv_fail(e, CV_TYPE, i, o);
  }
  const carg_mirror_t *a = (const carg_mirror_t *)o;
  Py_buffer *view = &h->views[i];
  if (a->tag != 'P' || a->obj != target ||
      PyObject_GetBuffer(target, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyErr_Clear();
    Py_DECREF(target);
    return cv_fail(e, CV_TYPE, i, o);
  }
  Py_DECREF(target); /* the view holds it */
  const char *at = a->value.p, *lo = view->buf;
  if (at < lo || at >= lo + view->len) {
    PyBuffer_Release(view);
    return cv_fail(e, CV_TYPE, i, o);
  }
  if (t->code == EDGERT_CT_POINTER &&
      !buffer_matches(t, format_kind(view->format, view->itemsize), view->itemsize)) {
    int rc = format_fail(e, view->format, view->itemsize, i, o);
    PyBuffer_Release(view);
    return rc;
  }
  /* ctypes objects are writable; a read-only target only arrives through
   * a foreign buffer, and then const decides as for any buffer */
  if (view->readonly && !t->is_const) {
    PyBuffer_Release(view);
    return cv_fail(e, CV_READONLY, i, o);
  }
  h->held[i] = 1;
  v->p = (void *)at;
  return CV_OK;
}

static int cv_pointer(const edgert_abi_type_t *t, PyObject *o, unsigned i,
                      edgert_value_t *v, conv_hold_t *h, conv_err_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyObject_CheckBuffer(o))
    return is_carg(o) ? cv_byref(t, o, i, v, h, e) : cv_fail(e, CV_TYPE, i, o);
  Py_buffer *view = &h->views[i];
  if (t->pointee == EDGERT_CT_STRUCT && t->depth == 1) {
    int rc = edgert_py_struct_buffer(t->layout, o, view, e);
    if (rc != CV_OK)
      return cv_fail(e, rc, i, o);
    h->held[i] = 1;
    v->p = view->buf;
    return CV_OK;
  }
  /* A TypedList of scalars: its item kind is known without parsing the
   * format it would export (the list's storage is aligned for its items). */
  int lk;
  if (t->depth == 1 && edgert_py_list_scalar_view(o, view, &lk)) {
    int kind = lk == EDGERT_KIND_FLOAT64 ? K_FLOAT : lk == EDGERT_KIND_BOOL ? K_BOOL : K_SIGNED;
    if (EDGERT__LIKELY(buffer_matches(t, kind, view->itemsize))) {
      h->held[i] = 1;
      v->p = view->buf;
      return CV_OK;
    }
    PyBuffer_Release(view); /* the general path below says why not */
  }
  if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyErr_Clear();
    return cv_fail(e, CV_NOTCONTIG, i, o);
  }
  int kind = format_kind(view->format, view->itemsize);
  if (!buffer_matches(t, kind, view->itemsize) || view->ndim == 0) {
    /* A ctypes pointer instance (pointer(x), arr.ctypes.data_as(POINTER(t)))
     * exports itself as one 0-d item of format "&<target>": it passes its
     * value when the target is t's items. The instance is the argument, and
     * its _objects (or data_as's _arr) keeps the target alive. */
    if (view->ndim == 0 && view->format != NULL && view->format[0] == '&' &&
        view->itemsize == (Py_ssize_t)sizeof(void *)) {
      if (target_matches(t, view->format + 1)) {
        void *p;
        memcpy(&p, view->buf, sizeof p);
        PyBuffer_Release(view);
        v->p = p;
        return CV_OK;
      }
      int rc = format_fail(e, view->format, view->itemsize, i, o);
      PyBuffer_Release(view);
      return rc;
    }
    if (buffer_matches(t, kind, view->itemsize))
      goto matched; /* a 0-d buffer of one item, e.g. a numpy scalar array */
    int rc = format_fail(e, view->format, view->itemsize, i, o);
    PyBuffer_Release(view);
    return rc;
  }
matched:
  if (EDGERT__UNLIKELY(view->readonly) && !t->is_const) {
    PyBuffer_Release(view);
    return cv_fail(e, CV_READONLY, i, o);
  }
  /* A T * the kernel reads must be aligned for T (C's rule; a misaligned
   * double * is undefined, and faults on strict-alignment machines): a
   * buffer unpickled from a stream (Dask's frames) or sliced at an odd
   * byte offset is refused, not handed over. Items of power-of-two size up
   * to 16 need that alignment; an empty buffer has no item to misread
   * (an empty array.array hands out CPython's 1-byte static buffer). */
  {
    size_t al = (size_t)view->itemsize;
    if (EDGERT__UNLIKELY(view->len != 0 && al > 1 && al <= 16 && (al & (al - 1)) == 0 &&
                         ((uintptr_t)view->buf & (al - 1)) != 0)) {
      e->itemsize = view->itemsize;
      PyBuffer_Release(view);
      return cv_fail(e, CV_ALIGN, i, o);
    }
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
static int cv_char_p(PyObject *o, unsigned i, edgert_value_t *v, conv_hold_t *h, conv_err_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyBytes_Check(o))
    return cv_fail(e, CV_TYPE, i, o);
  const char *s = PyBytes_AS_STRING(o);
  size_t n = (size_t)PyBytes_GET_SIZE(o);
  const char *nul = memchr(s, '\0', n);
  if (EDGERT__UNLIKELY(nul != NULL)) {
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
static int cv_wchar_p(PyObject *o, unsigned i, edgert_value_t *v, conv_hold_t *h, conv_err_t *e) {
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (!PyUnicode_Check(o))
    return cv_fail(e, CV_TYPE, i, o);
  Py_ssize_t at = PyUnicode_FindChar(o, 0, 0, PyUnicode_GET_LENGTH(o), 1);
  if (at == -2)
    return cv_fail(e, CV_PYERR, i, o);
  if (EDGERT__UNLIKELY(at >= 0)) {
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

/* ---- setters: one per type --------------------------------------------------- */

/* Ranges of the integer codes, for the exact-int lane and the checks. */
static const struct {
  int64_t lo, hi;
} int_range[EDGERT_CT__COUNT] = {
    [EDGERT_CT_BYTE] = {INT8_MIN, INT8_MAX},     [EDGERT_CT_UBYTE] = {0, UINT8_MAX},
    [EDGERT_CT_SHORT] = {INT16_MIN, INT16_MAX},  [EDGERT_CT_USHORT] = {0, UINT16_MAX},
    [EDGERT_CT_INT] = {INT32_MIN, INT32_MAX},    [EDGERT_CT_UINT] = {0, UINT32_MAX},
    [EDGERT_CT_LONG] = {INT64_MIN, INT64_MAX},   [EDGERT_CT_ULONG] = {0, INT64_MAX},
    [EDGERT_CT_LONGLONG] = {INT64_MIN, INT64_MAX}, [EDGERT_CT_ULONGLONG] = {0, INT64_MAX},
};
static const uint64_t uint_max[EDGERT_CT__COUNT] = {
    [EDGERT_CT_UBYTE] = UINT8_MAX,  [EDGERT_CT_USHORT] = UINT16_MAX,
    [EDGERT_CT_UINT] = UINT32_MAX,  [EDGERT_CT_ULONG] = UINT64_MAX,
    [EDGERT_CT_ULONGLONG] = UINT64_MAX,
};

/* The exact-int lane: 1 with *rc set when `o` is an exact one-digit int. */
static inline int exact_small(const edgert_abi_type_t *t, PyObject *o, edgert_value_t *v,
                              int *rc) {
  if (!PyLong_CheckExact(o) || !PyUnstable_Long_IsCompact((PyLongObject *)o))
    return 0;
  int64_t x = PyUnstable_Long_CompactValue((PyLongObject *)o);
  if (x < int_range[t->code].lo || x > int_range[t->code].hi) {
    *rc = CV_OVERFLOW;
    return 1;
  }
  v->i = x;
  *rc = CV_OK;
  return 1;
}

#define SET_ARGS                                                                           \
  const edgert_abi_type_t *t, PyObject *o, unsigned i, edgert_value_t *v, conv_hold_t *h, \
      conv_err_t *e

static int set_void(SET_ARGS) {
  (void)t, (void)o, (void)i, (void)v, (void)h, (void)e;
  return CV_TYPE;
}

/* c_byte .. c_longlong */
static int set_signed(SET_ARGS) {
  (void)i, (void)h, (void)e;
  int rc;
  if (exact_small(t, o, v, &rc))
    return rc;
  if (PyFloat_CheckExact(o)) /* as_pyint's commonest refusal (a guard miss), without its calls */
    return CV_TYPE;
  if (PyLong_CheckExact(o) && int_range[t->code].hi == INT64_MAX) {
    int ovf = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &ovf);
    if (ovf != 0)
      return CV_OVERFLOW;
    v->i = x;
    return CV_OK;
  }
  return cv_signed(o, int_range[t->code].lo, int_range[t->code].hi, &v->i);
}

/* c_ubyte .. c_ulonglong */
static int set_unsigned(SET_ARGS) {
  (void)i, (void)h, (void)e;
  int rc;
  if (exact_small(t, o, v, &rc))
    return rc;
  if (PyFloat_CheckExact(o)) /* as in set_signed */
    return CV_TYPE;
  return cv_unsigned(o, uint_max[t->code], &v->u);
}

/* c_bool: True, False, a numpy bool, or an int 0 or 1. */
static int set_bool(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  if (o == Py_True || o == Py_False) {
    v->u = o == Py_True;
    return CV_OK;
  }
  if (is_numpy_scalar(o, "bool")) {
    int b = PyObject_IsTrue(o);
    if (b < 0)
      return CV_PYERR;
    v->u = (uint64_t)b;
    return CV_OK;
  }
  return cv_unsigned(o, 1, &v->u);
}

/* c_char: bytes or bytearray of length 1, or an int -128..255. */
static int set_char(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  if (PyBytes_Check(o) || PyByteArray_Check(o)) {
    Py_ssize_t n = PyBytes_Check(o) ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);
    if (n != 1)
      return CV_TYPE;
    const char *s = PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
    v->i = (char)s[0];
    return CV_OK;
  }
  int64_t x;
  int rc = cv_signed(o, -128, 255, &x);
  if (rc == CV_OK)
    v->i = (char)(unsigned char)(x & 0xff);
  return rc;
}

/* c_wchar: a str of length 1. */
static int set_wchar(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  if (PyUnicode_Check(o) && PyUnicode_GET_LENGTH(o) == 1) {
    v->i = (wchar_t)PyUnicode_READ_CHAR(o, 0);
    return CV_OK;
  }
  return CV_TYPE;
}

static int set_double(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  if (PyFloat_CheckExact(o)) {
    v->d = PyFloat_AS_DOUBLE(o);
    return CV_OK;
  }
  return cv_double(o, &v->d);
}

/* c_float: a finite double beyond FLT_MAX, or an int float cannot hold
 * exactly, is refused. */
static int set_float(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  double d;
  int rc;
  if (PyFloat_CheckExact(o))
    d = PyFloat_AS_DOUBLE(o), rc = CV_OK;
  else
    rc = cv_double(o, &d);
  if (rc != CV_OK)
    return rc;
  float f = (float)d;
  if (isinf(f) && isfinite(d))
    return CV_OVERFLOW;
  if (PyLong_Check(o) && (double)f != d)
    return CV_OVERFLOW; /* an int that float cannot hold exactly */
  v->f = f;
  return CV_OK;
}

static int set_longdouble(SET_ARGS) {
  (void)t, (void)i, (void)h, (void)e;
  return cv_longdouble(o, &v->ld);
}

static int set_char_p(SET_ARGS) {
  (void)t;
  return cv_char_p(o, i, v, h, e);
}

static int set_wchar_p(SET_ARGS) {
  (void)t;
  return cv_wchar_p(o, i, v, h, e);
}

/* c_void_p: None, an address (an int, not a bool), or any contiguous buffer. */
static int set_void_p(SET_ARGS) {
  (void)t;
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (PyLong_Check(o) && !PyBool_Check(o))
    return cv_unsigned(o, UINTPTR_MAX, &v->u);
  if (!PyObject_CheckBuffer(o))
    return CV_TYPE;
  if (PyObject_GetBuffer(o, &h->views[i], PyBUF_ANY_CONTIGUOUS) < 0) {
    PyErr_Clear();
    return cv_fail(e, CV_NOTCONTIG, i, o);
  }
  h->held[i] = 1;
  v->p = h->views[i].buf;
  return CV_OK;
}

static int set_pointer(SET_ARGS) {
  return cv_pointer(t, o, i, v, h, e);
}

/* A struct by value: an instance of a class defined as its layout; the
 * slot gets the address of the instance's bytes, held for the call. */
static int set_struct(SET_ARGS) {
  (void)e;
  int rc = edgert_py_struct_arg(t->layout, o, &h->views[i]);
  if (rc != CV_OK)
    return rc;
  h->held[i] = h->views[i].obj != NULL; /* the argument itself lives through the call */
  v->p = h->views[i].buf;
  return CV_OK;
}

/* ---- extra arguments of variadic calls ----------------------------------------- */

/* ctypes' simple-type letters (the class's _type_) on LP64. */
static edgert_ctype_t ctypes_letter_code(char c) {
  switch (c) {
  case 'b': return EDGERT_CT_BYTE;
  case 'B': return EDGERT_CT_UBYTE;
  case 'h': return EDGERT_CT_SHORT;
  case 'H': return EDGERT_CT_USHORT;
  case 'i': return EDGERT_CT_INT;
  case 'I': return EDGERT_CT_UINT;
  case 'l': case 'q': return EDGERT_CT_LONG;
  case 'L': case 'Q': return EDGERT_CT_ULONG;
  case 'f': return EDGERT_CT_FLOAT;
  case 'd': return EDGERT_CT_DOUBLE;
  case 'g': return EDGERT_CT_LONGDOUBLE;
  case '?': return EDGERT_CT_BOOL;
  case 'c': return EDGERT_CT_CHAR;
  case 'u': return EDGERT_CT_WCHAR;
  case 'z': return EDGERT_CT_CHAR_P;
  case 'Z': return EDGERT_CT_WCHAR_P;
  case 'P': return EDGERT_CT_VOID_P;
  default: return EDGERT_CT_VOID;
  }
}

/* The simple-type code of a ctypes instance (c_long(5) -> LONG), or VOID. */
static edgert_ctype_t ctypes_simple_code(PyObject *o) {
  PyObject *tc = PyObject_GetAttrString((PyObject *)Py_TYPE(o), "_type_");
  if (tc == NULL) {
    PyErr_Clear();
    return EDGERT_CT_VOID;
  }
  edgert_ctype_t code = EDGERT_CT_VOID;
  if (PyUnicode_Check(tc) && PyUnicode_GET_LENGTH(tc) == 1)
    code = ctypes_letter_code((char)PyUnicode_READ_CHAR(tc, 0));
  Py_DECREF(tc);
  return code;
}

/* A ctypes simple instance's value into slot v, widened for its code. */
static int simple_value(PyObject *o, edgert_ctype_t code, unsigned i, edgert_value_t *v,
                        conv_hold_t *h, conv_err_t *e) {
  Py_buffer view;
  edgert_abi_type_t t = {.code = code, .pointee = EDGERT_CT_VOID, .depth = 0};
  if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    return cv_fail(e, CV_TYPE, i, o);
  }
  if (view.len != (Py_ssize_t)edgert_abi_type_size(&t)) {
    PyBuffer_Release(&view);
    return cv_fail(e, CV_TYPE, i, o);
  }
  const void *a = view.buf;
  int rc = CV_OK;
  switch (code) {
  case EDGERT_CT_BOOL: v->u = *(const _Bool *)a; break;
  case EDGERT_CT_CHAR: v->i = *(const char *)a; break;
  case EDGERT_CT_WCHAR: v->i = *(const wchar_t *)a; break;
  case EDGERT_CT_BYTE: v->i = *(const signed char *)a; break;
  case EDGERT_CT_UBYTE: v->u = *(const unsigned char *)a; break;
  case EDGERT_CT_SHORT: v->i = *(const short *)a; break;
  case EDGERT_CT_USHORT: v->u = *(const unsigned short *)a; break;
  case EDGERT_CT_INT: v->i = *(const int *)a; break;
  case EDGERT_CT_UINT: v->u = *(const unsigned *)a; break;
  case EDGERT_CT_LONG: memcpy(&v->i, a, 8); break;
  case EDGERT_CT_ULONG: memcpy(&v->u, a, 8); break;
  case EDGERT_CT_FLOAT: memcpy(&v->f, a, sizeof(float)); break;
  case EDGERT_CT_DOUBLE: memcpy(&v->d, a, sizeof(double)); break;
  case EDGERT_CT_LONGDOUBLE: memcpy(&v->ld, a, sizeof(long double)); break;
  case EDGERT_CT_VOID_P: memcpy(&v->p, a, sizeof(void *)); break;
  case EDGERT_CT_CHAR_P: {
    /* a private copy, as for c_char_p arguments: the instance's pointer may
     * be a bytes object's storage */
    const char *str;
    memcpy(&str, a, sizeof str);
    if (str == NULL) {
      v->p = NULL;
      break;
    }
    size_t n = strlen(str);
    char *copy = hold_space(h, i, n + 1, 1);
    if (copy == NULL) {
      rc = cv_fail(e, CV_PYERR, i, o);
      break;
    }
    memcpy(copy, str, n + 1);
    v->p = copy;
    break;
  }
  case EDGERT_CT_WCHAR_P: {
    const wchar_t *w;
    memcpy(&w, a, sizeof w);
    if (w == NULL) {
      v->p = NULL;
      break;
    }
    size_t n = wcslen(w) + 1;
    wchar_t *copy = hold_space(h, i, n * sizeof(wchar_t), _Alignof(wchar_t));
    if (copy == NULL) {
      rc = cv_fail(e, CV_PYERR, i, o);
      break;
    }
    memcpy(copy, w, n * sizeof(wchar_t));
    v->p = copy;
    break;
  }
  default:
    rc = cv_fail(e, CV_TYPE, i, o);
    break;
  }
  PyBuffer_Release(&view);
  return rc;
}

int conv_extra(PyObject *o, unsigned i, edgert_abi_type_t *t, edgert_value_t *v,
               conv_hold_t *h, conv_err_t *e) {
  static const edgert_abi_type_t t_int = {.code = EDGERT_CT_INT, .pointee = EDGERT_CT_VOID, .depth = 0};
  edgert_abi_type_t vp = {.code = EDGERT_CT_VOID_P, .pointee = EDGERT_CT_VOID, .depth = 0};
  int rc;
  e->kind = CV_OK;
  e->index = i;
  e->obj = o;
  if (PyLong_Check(o)) { /* bool too: True is 1, as C's int */
    *t = t_int;
    rc = set_signed(&t_int, o, i, v, h, e);
  } else if (PyFloat_Check(o)) {
    *t = (edgert_abi_type_t){.code = EDGERT_CT_DOUBLE, .pointee = EDGERT_CT_VOID};
    rc = cv_double(o, &v->d);
  } else if (PyBytes_Check(o)) {
    *t = (edgert_abi_type_t){.code = EDGERT_CT_CHAR_P, .pointee = EDGERT_CT_VOID};
    rc = cv_char_p(o, i, v, h, e);
  } else if (o == Py_None) {
    *t = vp;
    v->p = NULL;
    rc = CV_OK;
  } else if (PyUnicode_Check(o)) {
    rc = CV_TYPE;
  } else if (is_carg(o)) {
    *t = vp;
    vp.is_const = 1; /* no element type to check; any ctypes object */
    rc = cv_byref(&vp, o, i, v, h, e);
  } else {
    edgert_ctype_t code = ctypes_simple_code(o);
    if (code != EDGERT_CT_VOID) {
      *t = (edgert_abi_type_t){.code = code, .pointee = EDGERT_CT_VOID};
      rc = simple_value(o, code, i, v, h, e);
    } else if (PyObject_CheckBuffer(o)) {
      /* a ctypes pointer or array, a bytearray, a numpy array: its address
       * (a pointer instance: its value), for the callee's %p, %s or its own
       * va_arg(ap, T *) */
      *t = vp;
      Py_buffer *view = &h->views[i];
      if (PyObject_GetBuffer(o, view, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        rc = CV_NOTCONTIG;
      } else if (view->ndim == 0 && view->format != NULL && view->format[0] == '&' &&
                 view->itemsize == (Py_ssize_t)sizeof(void *)) {
        memcpy(&v->p, view->buf, sizeof(void *));
        PyBuffer_Release(view);
        rc = CV_OK;
      } else {
        h->held[i] = 1;
        v->p = view->buf;
        rc = CV_OK;
      }
    } else {
      rc = CV_TYPE;
    }
  }
  if (rc != CV_OK) {
    e->kind = rc;
    e->index = i;
    e->obj = o;
  }
  return rc;
}

void conv_raise_extra(edgert_func_t *fn, unsigned nfixed, const conv_err_t *e) {
  const char *fname = edgert_func_name(fn);
  unsigned k = e->index - nfixed + 1;
  if (e->kind == CV_PYERR)
    return;
  if (e->kind == CV_OVERFLOW && PyLong_Check(e->obj))
    PyErr_Format(PyExc_OverflowError,
                 "%s() extra argument %u (argument %u): an int passes as c_int (C's int, "
                 "-2147483648..2147483647) and this one does not fit; say its C type with a "
                 "ctypes instance, e.g. ctypes.c_long(x) or ctypes.c_ulonglong(x)",
                 fname, k, e->index + 1);
  else if (e->kind == CV_OVERFLOW)
    PyErr_Format(PyExc_OverflowError, "%s() extra argument %u (argument %u): %R does not fit "
                 "a double", fname, k, e->index + 1, e->obj);
  else if (e->kind == CV_NUL)
    PyErr_Format(PyExc_ValueError,
                 "%s() extra argument %u (argument %u, char *) has an embedded NUL at offset "
                 "%zd; a C string would end there", fname, k, e->index + 1, e->at);
  else if (e->kind == CV_NOTCONTIG)
    PyErr_Format(PyExc_TypeError, "%s() extra argument %u (argument %u) must be a contiguous "
                 "buffer, but this %s is not contiguous", fname, k, e->index + 1,
                 Py_TYPE(e->obj)->tp_name);
  else if (PyUnicode_Check(e->obj))
    PyErr_Format(PyExc_TypeError,
                 "%s() extra argument %u (argument %u) is a str, which has no one C type in a "
                 "variadic call: pass bytes for char * (%%s), or ctypes.c_wchar_p(s) for "
                 "wchar_t * (%%ls)", fname, k, e->index + 1);
  else
    PyErr_Format(PyExc_TypeError,
                 "%s() extra argument %u (argument %u): cannot pass %s through '...'; pass an "
                 "int (c_int), a float (c_double), bytes (char *), None (NULL), a buffer or "
                 "ctypes pointer (its address), or a ctypes instance whose type says the C "
                 "type (ctypes.c_long(5))", fname, k, e->index + 1, Py_TYPE(e->obj)->tp_name);
}

/* ---- getters: one per type ---------------------------------------------------- */

#define GET_ARGS const void *p, const char *fname

static PyObject *get_void(GET_ARGS) {
  (void)p, (void)fname;
  Py_RETURN_NONE;
}
static PyObject *get_bool(GET_ARGS) {
  (void)fname;
  return PyBool_FromLong(*(const unsigned char *)p != 0);
}
static PyObject *get_char(GET_ARGS) {
  (void)fname;
  return PyBytes_FromStringAndSize((const char *)p, 1);
}
static PyObject *get_wchar(GET_ARGS) {
  (void)fname;
  return PyUnicode_FromWideChar((const wchar_t *)p, 1);
}
static PyObject *get_i8(GET_ARGS) {
  (void)fname;
  return PyLong_FromLong(*(const int8_t *)p);
}
static PyObject *get_u8(GET_ARGS) {
  (void)fname;
  return PyLong_FromLong(*(const uint8_t *)p);
}
static PyObject *get_i16(GET_ARGS) {
  (void)fname;
  return PyLong_FromLong(*(const int16_t *)p);
}
static PyObject *get_u16(GET_ARGS) {
  (void)fname;
  return PyLong_FromLong(*(const uint16_t *)p);
}
static PyObject *get_i32(GET_ARGS) {
  (void)fname;
  return PyLong_FromLong(*(const int32_t *)p);
}
static PyObject *get_u32(GET_ARGS) {
  (void)fname;
  return PyLong_FromUnsignedLong(*(const uint32_t *)p);
}
static PyObject *get_i64(GET_ARGS) {
  (void)fname;
  return PyLong_FromLongLong(*(const int64_t *)p);
}
static PyObject *get_u64(GET_ARGS) {
  (void)fname;
  return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
}
static PyObject *get_float(GET_ARGS) {
  (void)fname;
  return PyFloat_FromDouble((double)*(const float *)p);
}
static PyObject *get_double(GET_ARGS) {
  (void)fname;
  return PyFloat_FromDouble(*(const double *)p);
}
/* Rounded to a float; a finite one that would round to inf raises
 * OverflowError (as a finite double beyond FLT_MAX is refused for c_float). */
static PyObject *get_longdouble(GET_ARGS) {
  long double x = *(const long double *)p;
  double d = (double)x;
  if (EDGERT__UNLIKELY(isinf(d) && isfinite(x))) {
    char txt[96]; /* PyErr_Format has no %g */
    snprintf(txt, sizeof txt, "%.6Lg (c_longdouble), beyond the largest float (%g)", x,
             DBL_MAX);
    PyErr_Format(PyExc_OverflowError, "%s() returned %s", fname, txt);
    return NULL;
  }
  return PyFloat_FromDouble(d);
}
static PyObject *get_char_p(GET_ARGS) {
  (void)fname;
  const char *s = *(const char *const *)p;
  if (s == NULL)
    Py_RETURN_NONE;
  return PyBytes_FromString(s);
}
static PyObject *get_wchar_p(GET_ARGS) {
  (void)fname;
  const wchar_t *s = *(const wchar_t *const *)p;
  if (s == NULL)
    Py_RETURN_NONE;
  return PyUnicode_FromWideChar(s, -1);
}
static PyObject *get_address(GET_ARGS) {
  (void)fname;
  return PyLong_FromVoidPtr(*(void *const *)p);
}

/* ---- the table ------------------------------------------------------------------ */

#define CONV_STR_(x) #x
#define CONV_STR(x) CONV_STR_(x)
#define R_I64 "-9223372036854775808..9223372036854775807"
#define R_U64 "0..18446744073709551615"
#define R_EXACT "ints exactly representable"

const conv_row_t conv_table[EDGERT_CT__COUNT] = {
    [EDGERT_CT_VOID] = {set_void, get_void, "int", R_EXACT, 0},
    [EDGERT_CT_BOOL] = {set_bool, get_bool, "bool", "0..1", 0},
    [EDGERT_CT_CHAR] = {set_char, get_char, "bytes of length 1 or int", "-128..255", 0},
    [EDGERT_CT_WCHAR] = {set_wchar, get_wchar, "str of length 1", R_EXACT, 0},
    [EDGERT_CT_BYTE] = {set_signed, get_i8, "int", "-128..127", 0},
    [EDGERT_CT_UBYTE] = {set_unsigned, get_u8, "int", "0..255", 0},
    [EDGERT_CT_SHORT] = {set_signed, get_i16, "int", "-32768..32767", 0},
    [EDGERT_CT_USHORT] = {set_unsigned, get_u16, "int", "0..65535", 0},
    [EDGERT_CT_INT] = {set_signed, get_i32, "int", "-2147483648..2147483647", 0},
    [EDGERT_CT_UINT] = {set_unsigned, get_u32, "int", "0..4294967295", 0},
    [EDGERT_CT_LONG] = {set_signed, get_i64, "int", R_I64, 0},
    [EDGERT_CT_ULONG] = {set_unsigned, get_u64, "int", R_U64, 0},
    [EDGERT_CT_LONGLONG] = {set_signed, get_i64, "int", R_I64, 0},
    [EDGERT_CT_ULONGLONG] = {set_unsigned, get_u64, "int", R_U64, 0},
    /* FLT_MAX as %g: the same on every IEEE 754 platform */
    [EDGERT_CT_FLOAT] = {set_float, get_float, "float or int",
                         "finite magnitude at most 3.40282e+38, " R_EXACT, 0},
    [EDGERT_CT_DOUBLE] = {set_double, get_double, "float or int", R_EXACT, 0},
    [EDGERT_CT_LONGDOUBLE] = {set_longdouble, get_longdouble, "float or int",
                              R_EXACT ": at most " CONV_STR(LDBL_MANT_DIG)
                              " significant bits, below 2**" CONV_STR(LDBL_MAX_EXP), 0},
    [EDGERT_CT_CHAR_P] = {set_char_p, get_char_p, "bytes or None", R_EXACT, 1},
    [EDGERT_CT_WCHAR_P] = {set_wchar_p, get_wchar_p, "str or None", R_EXACT, 1},
    [EDGERT_CT_VOID_P] = {set_void_p, get_address, "int, None or a contiguous buffer", R_U64, 1},
    [EDGERT_CT_POINTER] = {set_pointer, get_address, "a C-contiguous buffer or None", R_EXACT, 1},
    /* results: func.c builds an instance of the struct's class */
    [EDGERT_CT_STRUCT] = {set_struct, get_address, "an instance of the struct's "
                          "ctypes.Structure class", R_EXACT, 1},
    [EDGERT_CT_FUNCPTR] = {conv_cb_set, get_address,
                           "a callable, a bound edgert function, an edgert.callback, an "
                           "address (int) or None",
                           "0..18446744073709551615 (an address)", 1},
};

/* ---- messages ------------------------------------------------------------------- */

void conv_raise(edgert_func_t *fn, const edgert_abi_type_t *args, unsigned nargs,
                const conv_err_t *e, Py_ssize_t got) {
  const char *fname = edgert_func_name(fn);
  if (e->kind == CV_PYERR)
    return;
  if (e->kind == CV_COUNT) {
    char sig[1024];
    if (edgert_contract_format(edgert_func_contract(fn), sig, sizeof sig) != 0)
      sig[0] = '\0';
    PyErr_Format(PyExc_TypeError, "%s() takes %s%u argument%s (%s), got %zd", fname,
                 edgert_func_contract(fn)->variadic ? "at least " : "", nargs,
                 nargs == 1 ? "" : "s", sig, got);
    return;
  }
  const edgert_abi_type_t *t = &args[e->index];
  const conv_row_t *row = &conv_table[t->code];
  char tname[EDGERT_ABI_TYPE_NAME_MAX];
  if (edgert_abi_type_name(t, tname, sizeof tname) != 0)
    snprintf(tname, sizeof tname, "?");
  switch (e->kind) {
  case CV_OVERFLOW: {
    size_t bits = PyLong_Check(e->obj) ? _PyLong_NumBits(e->obj) : 0;
    if (bits > 256 && bits != (size_t)-1) { /* its digits: a page, or past str()'s limit */
      PyErr_Format(PyExc_OverflowError, "%s() argument %u: an int of %zu bits does not fit "
                   "%s (%s)", fname, e->index + 1, bits, tname, row->range);
      return;
    }
    PyErr_Format(PyExc_OverflowError, "%s() argument %u: %R does not fit %s (%s)", fname,
                 e->index + 1, e->obj, tname, row->range);
    return;
  }
  case CV_FORMAT: {
    edgert_abi_type_t p = {.code = t->pointee, .pointee = EDGERT_CT_VOID, .depth = 0, .layout = t->layout};
    char pname[64];
    if (t->depth >= 2 || edgert_abi_type_name(&p, pname, sizeof pname) != 0)
      snprintf(pname, sizeof pname, "pointers");
    if (t->pointee == EDGERT_CT_STRUCT && t->depth == 1) {
      PyErr_Format(PyExc_TypeError,
                   "%s() argument %u must be a C-contiguous buffer of %s (%s, %zu-byte "
                   "items), not %s with format '%s' and %zd-byte items: %s",
                   fname, e->index + 1, pname, tname, edgert_abi_type_size(&p),
                   Py_TYPE(e->obj)->tp_name, e->fmt, e->itemsize, e->why);
      return;
    }
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
  case CV_READONLY: {
    char cname[EDGERT_ABI_TYPE_NAME_MAX + 8];
    edgert_abi_type_t c = *t;
    c.is_const = 1;
    if (edgert_abi_type_name(&c, cname, sizeof cname) != 0)
      snprintf(cname, sizeof cname, "const %s", tname);
    PyErr_Format(PyExc_TypeError,
                 "%s() argument %u (%s) is a read-only %s, and the function may write "
                 "through a non-const pointer: pass a writable buffer (bytearray, a writeable "
                 "array), or declare the argument const if the function only reads it "
                 "(edgert.const(...), '%s', or 'const' in a C declaration)",
                 fname, e->index + 1, tname, Py_TYPE(e->obj)->tp_name, cname);
    return;
  }
  case CV_ALIGN:
    PyErr_Format(PyExc_TypeError,
                 "%s() argument %u (%s): this %s's data does not start at an address "
                 "aligned for its %zd-byte items; pass an aligned copy (numpy: "
                 "numpy.require(a, requirements='A'))",
                 fname, e->index + 1, tname, Py_TYPE(e->obj)->tp_name, e->itemsize);
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
                   fname, e->index + 1, row->expected, tname, Py_TYPE(e->obj)->tp_name,
                   PyObject_Length(e->obj));
    else if (t->code == EDGERT_CT_POINTER && PyLong_Check(e->obj) && !PyBool_Check(e->obj))
      PyErr_Format(PyExc_TypeError,
                   "%s() argument %u must be %s (%s), not int: edgert does not take a raw "
                   "address for a POINTER argument, since nothing would check what it points "
                   "to; pass the memory itself (a buffer such as a numpy array or "
                   "bytearray, ctypes.byref(obj), ctypes.pointer(obj), a ctypes array), or "
                   "declare the argument c_void_p to pass an address",
                   fname, e->index + 1, row->expected, tname);
    else if (t->code == EDGERT_CT_POINTER && is_carg(e->obj))
      PyErr_Format(PyExc_TypeError,
                   "%s() argument %u (%s): this byref() object does not refer to a ctypes "
                   "object's own memory (or its layout is not one edgert knows); pass the "
                   "object itself, or ctypes.pointer(obj)",
                   fname, e->index + 1, tname);
    else
      PyErr_Format(PyExc_TypeError, "%s() argument %u must be %s (%s), not %s", fname,
                   e->index + 1, row->expected, tname, Py_TYPE(e->obj)->tp_name);
    return;
  }
}
