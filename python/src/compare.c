/*
 * compare.c: does a compiled result match the reference result?
 * (edgert_py_results_match, used by ExplicitFallback.fallback_to_python and
 * by Nexus's shadow validation.)
 *
 * The rules, applied recursively:
 * - numbers (int, float, bool, complex, and anything with __index__ or
 *   __float__ such as numpy scalars): two ints compare exactly; otherwise as
 *   doubles, matching when |a - b| <= tol or |a - b| <= tol * max(|a|, |b|)
 *   (math.isclose with rel_tol = abs_tol = tol). NaN matches NaN: a compiled
 *   kernel that agrees with its reference on NaN is right. Infinities match
 *   only the same infinity. bools are numbers (True matches 1).
 * - None matches only None; str only an equal str; bytes and bytearray only
 *   equal bytes-likes (the first differing index is reported).
 * - Two buffers (numpy arrays, array.array, TypedList, memoryview, ...) of
 *   the same shape compare elementwise by their item formats: integer items
 *   exactly, floating ones with the tolerance; the first differing index is
 *   reported with both values.
 * - Other sequences (list, tuple, ...; a buffer against a list as well)
 *   need the same length and compare item by item; list and tuple may match.
 * - Mappings need the same keys and matching values.
 * - Anything else falls back to ==.
 * A difference is described as "at [2][1]: 3.0 != 3.5" (the path is empty at
 * the top level). Nesting deeper than the interpreter's recursion limit
 * raises RecursionError.
 */
#include "ext.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef struct cmp_s {
  double tol;
  PyObject *path;   /* str built from the inside out while unwinding, or NULL */
  PyObject *detail; /* str: what differs at `path`, or NULL */
} cmp_t;

static int match(cmp_t *c, PyObject *a, PyObject *b);

/* Records the difference (takes the reference to `detail`); returns 0, or -1
 * if `detail` is NULL (an exception is set). */
static int differ(cmp_t *c, PyObject *detail) {
  if (detail == NULL)
    return -1;
  Py_XSETREF(c->detail, detail);
  return 0;
}

/* Prepends a path step (takes the reference); keeps 0, or -1 on error. */
static int prepend(cmp_t *c, PyObject *step) {
  if (step == NULL)
    return -1;
  if (c->path == NULL) {
    c->path = step;
    return 0;
  }
  PyObject *joined = PyUnicode_Concat(step, c->path);
  Py_DECREF(step);
  if (joined == NULL)
    return -1;
  Py_SETREF(c->path, joined);
  return 0;
}

/* The one agreement rule (edgert/agree.h): an infinity agrees only with
 * itself, a NaN with a NaN, finite values within tol. */
static int close_enough(double a, double b, double tol) {
  return edgert_agree(a, b, tol);
}

/* ---- numbers ------------------------------------------------------------- */

static int is_textlike(PyObject *o) {
  return PyUnicode_Check(o) || PyBytes_Check(o) || PyByteArray_Check(o);
}

/* int-like: int, bool, numpy integers (anything with __index__ that is not a
 * container). */
static int is_intlike(PyObject *o) {
  if (PyLong_Check(o))
    return 1;
  return PyIndex_Check(o) && !PySequence_Check(o) && !is_textlike(o);
}

/* float-like: float, numpy floating scalars (anything with __float__ that is
 * not a container or an int). */
static int is_floatlike(PyObject *o) {
  if (PyFloat_Check(o))
    return 1;
  PyNumberMethods *nb = Py_TYPE(o)->tp_as_number;
  return nb != NULL && nb->nb_float != NULL && !PySequence_Check(o) && !is_textlike(o) &&
         !PyComplex_Check(o);
}

static int is_number(PyObject *o) {
  return is_intlike(o) || is_floatlike(o) || PyComplex_Check(o);
}

static PyObject *neq(PyObject *a, PyObject *b) { return PyUnicode_FromFormat("%R != %R", a, b); }

static int match_numbers(cmp_t *c, PyObject *a, PyObject *b) {
  if (PyComplex_Check(a) || PyComplex_Check(b)) {
    Py_complex x = PyComplex_AsCComplex(a), y;
    if (x.real == -1.0 && PyErr_Occurred())
      return -1;
    y = PyComplex_AsCComplex(b);
    if (y.real == -1.0 && PyErr_Occurred())
      return -1;
    if (close_enough(x.real, y.real, c->tol) && close_enough(x.imag, y.imag, c->tol))
      return 1;
    return differ(c, neq(a, b));
  }
  if (is_intlike(a) && is_intlike(b)) {
    PyObject *x = PyNumber_Index(a);
    if (x == NULL)
      return -1;
    PyObject *y = PyNumber_Index(b);
    if (y == NULL) {
      Py_DECREF(x);
      return -1;
    }
    int eq = PyObject_RichCompareBool(x, y, Py_EQ);
    Py_DECREF(x);
    Py_DECREF(y);
    if (eq != 0)
      return eq;
    return differ(c, neq(a, b));
  }
  double x = PyFloat_AsDouble(a);
  if (x == -1.0 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear(); /* an int too big for a double: compare with == */
    int eq = PyObject_RichCompareBool(a, b, Py_EQ);
    return eq != 0 ? eq : differ(c, neq(a, b));
  }
  double y = PyFloat_AsDouble(b);
  if (y == -1.0 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear();
    int eq = PyObject_RichCompareBool(a, b, Py_EQ);
    return eq != 0 ? eq : differ(c, neq(a, b));
  }
  if (close_enough(x, y, c->tol))
    return 1;
  return differ(c, neq(a, b));
}

/* ---- buffers ------------------------------------------------------------- */

typedef enum { K_INT, K_UINT, K_FLOAT, K_BOOL, K_BYTES } kind_t;

typedef struct item_s {
  kind_t kind;
  char code;
  Py_ssize_t size;
} item_t;

/* Reads a one-item format ("d", "<f", "=q", "B", "<q") with the core's one
 * parser (edgert_buffer_item_parse). 0, or -1 if it is not a plain scalar
 * we read as a number (structs, pointers, wchar, long double, a byte order
 * not the host's): such items compare bytewise. */
static int parse_format(const char *fmt, Py_ssize_t itemsize, item_t *it) {
  edgert_buffer_item_t b;
  if (itemsize < 0 || edgert_buffer_item_parse(fmt, (size_t)itemsize, &b) != 0)
    return -1;
  switch (b.kind) {
  case EDGERT_ITEM_SIGNED:
    it->kind = K_INT;
    break;
  case EDGERT_ITEM_UNSIGNED:
    it->kind = K_UINT;
    break;
  case EDGERT_ITEM_FLOAT:
    if (b.code == EDGERT_CT_LONGDOUBLE)
      return -1;
    it->kind = K_FLOAT;
    break;
  case EDGERT_ITEM_BOOL:
    it->kind = K_BOOL;
    break;
  case EDGERT_ITEM_CHAR:
    it->kind = K_BYTES;
    break;
  default:
    return -1;
  }
  it->code = b.letter;
  it->size = itemsize;
  return 0;
}

typedef struct value_s {
  int is_float;
  long long i;
  unsigned long long u;
  double d;
  int is_unsigned;
} value_t;

static value_t read_item(const item_t *it, const char *p) {
  value_t v = {0, 0, 0, 0.0, 0};
  switch (it->kind) {
  case K_INT:
    if (it->size == 1) v.i = *(const signed char *)p;
    else if (it->size == 2) { int16_t x; memcpy(&x, p, 2); v.i = x; }
    else if (it->size == 4) { int32_t x; memcpy(&x, p, 4); v.i = x; }
    else { int64_t x; memcpy(&x, p, 8); v.i = x; }
    break;
  case K_UINT:
  case K_BYTES:
    v.is_unsigned = 1;
    if (it->size == 1) v.u = *(const unsigned char *)p;
    else if (it->size == 2) { uint16_t x; memcpy(&x, p, 2); v.u = x; }
    else if (it->size == 4) { uint32_t x; memcpy(&x, p, 4); v.u = x; }
    else { uint64_t x; memcpy(&x, p, 8); v.u = x; }
    break;
  case K_BOOL:
    v.is_unsigned = 1;
    v.u = *(const unsigned char *)p != 0;
    break;
  case K_FLOAT:
    v.is_float = 1;
    if (it->code == 'e')
      v.d = PyFloat_Unpack2(p, 1);
    else if (it->code == 'f') { float x; memcpy(&x, p, 4); v.d = x; }
    else memcpy(&v.d, p, 8);
    break;
  }
  return v;
}

static double as_double(const value_t *v) {
  if (v->is_float)
    return v->d;
  return v->is_unsigned ? (double)v->u : (double)v->i;
}

static int values_match(const value_t *x, const value_t *y, double tol) {
  if (x->is_float || y->is_float)
    return close_enough(as_double(x), as_double(y), tol);
  if (x->is_unsigned && y->is_unsigned)
    return x->u == y->u;
  if (!x->is_unsigned && !y->is_unsigned)
    return x->i == y->i;
  const value_t *s = x->is_unsigned ? y : x, *u = x->is_unsigned ? x : y;
  return s->i >= 0 && (unsigned long long)s->i == u->u;
}

static PyObject *value_obj(const value_t *v) {
  if (v->is_float)
    return PyFloat_FromDouble(v->d);
  return v->is_unsigned ? PyLong_FromUnsignedLongLong(v->u) : PyLong_FromLongLong(v->i);
}

/* "[5]" for 1-D, "[1, 2]" for n-D: the index of flat element `k`. */
static PyObject *index_text(const Py_buffer *v, Py_ssize_t k) {
  if (v->ndim <= 1)
    return PyUnicode_FromFormat("[%zd]", k);
  Py_ssize_t idx[64];
  for (int d = v->ndim - 1; d >= 0; d--) {
    Py_ssize_t n = v->shape[d] > 0 ? v->shape[d] : 1;
    idx[d] = k % n;
    k /= n;
  }
  PyObject *parts = PyList_New(0);
  if (parts == NULL)
    return NULL;
  for (int d = 0; d < v->ndim; d++) {
    PyObject *s = PyUnicode_FromFormat("%zd", idx[d]);
    if (s == NULL || PyList_Append(parts, s) < 0) {
      Py_XDECREF(s);
      Py_DECREF(parts);
      return NULL;
    }
    Py_DECREF(s);
  }
  return edgert_py_join_format(parts, "[%U]");
}

static PyObject *shape_text(const Py_buffer *v) {
  if (v->ndim == 0)
    return PyUnicode_FromString("()");
  PyObject *t = PyTuple_New(v->ndim);
  if (t == NULL)
    return NULL;
  for (int d = 0; d < v->ndim; d++) {
    PyObject *n = PyLong_FromSsize_t(v->shape ? v->shape[d] : v->len / v->itemsize);
    if (n == NULL) {
      Py_DECREF(t);
      return NULL;
    }
    PyTuple_SET_ITEM(t, d, n);
  }
  PyObject *r = PyObject_Repr(t);
  Py_DECREF(t);
  return r;
}

/* Contiguous bytes of a view: the view's own memory or a copy in *owned. */
static const char *contiguous(Py_buffer *v, char **owned) {
  *owned = NULL;
  if (PyBuffer_IsContiguous(v, 'C'))
    return v->buf;
  *owned = PyMem_Malloc(v->len > 0 ? (size_t)v->len : 1);
  if (*owned == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  if (PyBuffer_ToContiguous(*owned, v, v->len, 'C') < 0) {
    PyMem_Free(*owned);
    *owned = NULL;
    return NULL;
  }
  return *owned;
}

/* Two views compared elementwise by their item formats (see the top). */
static int match_views(cmp_t *c, Py_buffer *va, Py_buffer *vb) {
  int rc = -1;
  char *oa = NULL, *ob = NULL;
  Py_ssize_t na = va->itemsize ? va->len / va->itemsize : 0;
  Py_ssize_t nb = vb->itemsize ? vb->len / vb->itemsize : 0;
  int same_shape = va->ndim == vb->ndim && na == nb;
  for (int d = 0; same_shape && d < va->ndim && va->shape && vb->shape; d++)
    same_shape = va->shape[d] == vb->shape[d];
  if (!same_shape) {
    PyObject *sa = shape_text(va), *sb = shape_text(vb);
    rc = (sa && sb) ? differ(c, PyUnicode_FromFormat("shape %U != %U", sa, sb)) : -1;
    Py_XDECREF(sa);
    Py_XDECREF(sb);
    goto done;
  }
  item_t ia, ib;
  int fa = parse_format(va->format, va->itemsize, &ia);
  int fb = parse_format(vb->format, vb->itemsize, &ib);
  const char *pa = contiguous(va, &oa);
  if (pa == NULL)
    goto done;
  const char *pb = contiguous(vb, &ob);
  if (pb == NULL)
    goto done;
  if (fa < 0 || fb < 0) {
    /* Items we cannot read as numbers (structs, pointers): equal formats
     * and equal bytes, or a difference. */
    const char *sa = va->format ? va->format : "B", *sb = vb->format ? vb->format : "B";
    if (strcmp(sa, sb) != 0 || va->itemsize != vb->itemsize) {
      rc = differ(c, PyUnicode_FromFormat("item format '%s' != '%s'", sa, sb));
      goto done;
    }
    for (Py_ssize_t k = 0; k < na; k++) {
      if (memcmp(pa + k * va->itemsize, pb + k * vb->itemsize, (size_t)va->itemsize) != 0) {
        PyObject *at = index_text(va, k);
        if (at == NULL || prepend(c, at) < 0)
          goto done;
        rc = differ(c, PyUnicode_FromString("items differ bytewise"));
        goto done;
      }
    }
    rc = 1;
    goto done;
  }
  for (Py_ssize_t k = 0; k < na; k++) {
    value_t x = read_item(&ia, pa + k * va->itemsize);
    value_t y = read_item(&ib, pb + k * vb->itemsize);
    if (!values_match(&x, &y, c->tol)) {
      PyObject *at = index_text(va, k);
      if (at == NULL || prepend(c, at) < 0)
        goto done;
      PyObject *ox = value_obj(&x), *oy = value_obj(&y);
      rc = (ox && oy) ? differ(c, neq(ox, oy)) : -1;
      Py_XDECREF(ox);
      Py_XDECREF(oy);
      goto done;
    }
  }
  rc = 1;
done:
  PyMem_Free(oa);
  PyMem_Free(ob);
  return rc;
}

static int match_buffers(cmp_t *c, PyObject *a, PyObject *b) {
  Py_buffer va, vb;
  if (PyObject_GetBuffer(a, &va, PyBUF_FULL_RO) < 0)
    return -1;
  if (PyObject_GetBuffer(b, &vb, PyBUF_FULL_RO) < 0) {
    PyBuffer_Release(&va);
    return -1;
  }
  int rc = match_views(c, &va, &vb);
  PyBuffer_Release(&va);
  PyBuffer_Release(&vb);
  return rc;
}

/* ---- bytes, sequences, mappings ------------------------------------------ */

static int match_bytes(cmp_t *c, PyObject *a, PyObject *b) {
  const char *pa = PyBytes_Check(a) ? PyBytes_AS_STRING(a) : PyByteArray_AS_STRING(a);
  const char *pb = PyBytes_Check(b) ? PyBytes_AS_STRING(b) : PyByteArray_AS_STRING(b);
  Py_ssize_t na = PyBytes_Check(a) ? PyBytes_GET_SIZE(a) : PyByteArray_GET_SIZE(a);
  Py_ssize_t nb = PyBytes_Check(b) ? PyBytes_GET_SIZE(b) : PyByteArray_GET_SIZE(b);
  Py_ssize_t n = na < nb ? na : nb;
  for (Py_ssize_t k = 0; k < n; k++)
    if (pa[k] != pb[k]) {
      if (prepend(c, PyUnicode_FromFormat("[%zd]", k)) < 0)
        return -1;
      return differ(c, PyUnicode_FromFormat("%d != %d", (unsigned char)pa[k],
                                            (unsigned char)pb[k]));
    }
  if (na != nb)
    return differ(c, PyUnicode_FromFormat("length %zd != %zd", na, nb));
  return 1;
}

static int match_sequences(cmp_t *c, PyObject *a, PyObject *b) {
  PyObject *fa = edgert_py_sequence_fast(a, "not a sequence");
  if (fa == NULL)
    return -1;
  PyObject *fb = edgert_py_sequence_fast(b, "not a sequence");
  if (fb == NULL) {
    Py_DECREF(fa);
    return -1;
  }
  int rc = 1;
  Py_ssize_t na = PySequence_Fast_GET_SIZE(fa), nb = PySequence_Fast_GET_SIZE(fb);
  if (na != nb) {
    rc = differ(c, PyUnicode_FromFormat("length %zd != %zd", na, nb));
  } else {
    for (Py_ssize_t k = 0; k < na && rc == 1; k++) {
      rc = match(c, PySequence_Fast_GET_ITEM(fa, k), PySequence_Fast_GET_ITEM(fb, k));
      if (rc == 0 && prepend(c, PyUnicode_FromFormat("[%zd]", k)) < 0)
        rc = -1;
    }
  }
  Py_DECREF(fa);
  Py_DECREF(fb);
  return rc;
}

static int match_mappings(cmp_t *c, PyObject *a, PyObject *b) {
  PyObject *ka = PyMapping_Keys(a);
  if (ka == NULL)
    return -1;
  int rc = 1;
  Py_ssize_t na = PyList_GET_SIZE(ka), nb = PyObject_Length(b);
  if (nb < 0) {
    Py_DECREF(ka);
    return -1;
  }
  for (Py_ssize_t k = 0; k < na && rc == 1; k++) {
    PyObject *key = PyList_GET_ITEM(ka, k);
    PyObject *va = PyObject_GetItem(a, key);
    if (va == NULL) {
      rc = -1;
      break;
    }
    PyObject *vb = PyObject_GetItem(b, key);
    if (vb == NULL) {
      Py_DECREF(va);
      if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
        rc = -1;
        break;
      }
      PyErr_Clear();
      rc = differ(c, PyUnicode_FromFormat("key %R is missing from the reference result", key));
      break;
    }
    rc = match(c, va, vb);
    Py_DECREF(va);
    Py_DECREF(vb);
    if (rc == 0 && prepend(c, PyUnicode_FromFormat("[%R]", key)) < 0)
      rc = -1;
  }
  Py_DECREF(ka);
  if (rc == 1 && na != nb) {
    /* b has every key of a, so it has more: name one. */
    PyObject *kb = PyMapping_Keys(b);
    if (kb == NULL)
      return -1;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(kb) && rc == 1; k++) {
      PyObject *key = PyList_GET_ITEM(kb, k);
      int has = PyMapping_HasKey(a, key);
      if (!has)
        rc = differ(c, PyUnicode_FromFormat("key %R is missing from the compiled result", key));
    }
    Py_DECREF(kb);
  }
  return rc;
}

/* ---- dispatch -------------------------------------------------------------- */

static int is_mapping(PyObject *o) {
  /* A list has mp_subscript too: a mapping is something with keys(). */
  return PyDict_Check(o) || (PyMapping_Check(o) && PyObject_HasAttrString(o, "keys"));
}

static int is_sequence(PyObject *o) {
  return (PyList_Check(o) || PyTuple_Check(o) || PySequence_Check(o)) && !is_textlike(o) &&
         !PyDict_Check(o);
}

static int match_inner(cmp_t *c, PyObject *a, PyObject *b) {
  if (a == b) /* the same object: NaN included, by the NaN rule */
    return 1;
  if (a == Py_None || b == Py_None)
    return a == b ? 1 : differ(c, neq(a, b));
  if (PyUnicode_Check(a) || PyUnicode_Check(b)) {
    if (PyUnicode_Check(a) && PyUnicode_Check(b)) {
      int eq = PyUnicode_Compare(a, b);
      if (eq == -1 && PyErr_Occurred())
        return -1;
      if (eq == 0)
        return 1;
    }
    return differ(c, neq(a, b));
  }
  int ba = PyBytes_Check(a) || PyByteArray_Check(a);
  int bb = PyBytes_Check(b) || PyByteArray_Check(b);
  if (ba && bb)
    return match_bytes(c, a, b);
  if (ba != bb && (ba ? !PyObject_CheckBuffer(b) : !PyObject_CheckBuffer(a)))
    return differ(c, neq(a, b));
  if (is_number(a) && is_number(b))
    return match_numbers(c, a, b);
  if (PyObject_CheckBuffer(a) && PyObject_CheckBuffer(b) && !is_number(a) && !is_number(b))
    return match_buffers(c, a, b);
  int ma = is_mapping(a), mb = is_mapping(b);
  if (ma && mb)
    return match_mappings(c, a, b);
  if (!ma && !mb && is_sequence(a) && is_sequence(b))
    return match_sequences(c, a, b);
  if (is_number(a) != is_number(b) || ma != mb || is_sequence(a) != is_sequence(b))
    return differ(c, PyUnicode_FromFormat("%R (%s) != %R (%s)", a, Py_TYPE(a)->tp_name, b,
                                          Py_TYPE(b)->tp_name));
  int eq = PyObject_RichCompareBool(a, b, Py_EQ);
  if (eq != 0)
    return eq;
  return differ(c, neq(a, b));
}

static int match(cmp_t *c, PyObject *a, PyObject *b) {
  if (Py_EnterRecursiveCall(" while comparing results"))
    return -1;
  int rc = match_inner(c, a, b);
  Py_LeaveRecursiveCall();
  return rc;
}

int edgert_py_results_match(PyObject *a, PyObject *b, double tolerance, PyObject **diff) {
  if (diff != NULL)
    *diff = NULL;
  if (!(tolerance >= 0.0)) {
    char text[64];
    snprintf(text, sizeof text, "%g", tolerance);
    PyErr_Format(PyExc_ValueError, "tolerance must be a number >= 0, got %s", text);
    return -1;
  }
  cmp_t c = {tolerance, NULL, NULL};
  int rc = match(&c, a, b);
  if (rc == 0 && diff != NULL) {
    if (c.path != NULL)
      *diff = PyUnicode_FromFormat("at %U: %U", c.path, c.detail);
    else {
      *diff = c.detail;
      Py_INCREF(*diff);
    }
    if (*diff == NULL)
      rc = -1;
  }
  Py_XDECREF(c.path);
  Py_XDECREF(c.detail);
  return rc;
}

/* ---- buffer arguments: snapshots for running both sides ------------------ */

/*
 * A kernel may write through a buffer argument (an output array, an
 * in-place update), and then its effect is part of its result. To compare
 * two sides on the same arguments, each must start from the same contents
 * and each one's writes must be kept apart: the caller takes a snapshot
 * before the first side, takes another after it, restores the first before
 * the second side runs, and compares the second snapshot with what the
 * second side left. Only arguments that export a writable buffer are
 * copied (read-only ones cannot change); the copies are C-contiguous, with
 * the layout (format, shape) kept for the comparison. No buffer stays
 * exported between calls, so a side may resize its arguments; a snapshot
 * whose argument changed size can no longer be restored and says so.
 */
typedef struct snap_arg_s {
  Py_ssize_t index; /* argument position, 0-based */
  Py_ssize_t len, itemsize;
  int ndim;
  char *format;       /* owned copy, or NULL for "B" */
  Py_ssize_t *shape;  /* owned copy of the ndim extents, or NULL when ndim == 0 */
  char *bytes;        /* owned, len bytes in C order */
} snap_arg_t;

struct edgert_py_snap_s {
  Py_ssize_t n;
  snap_arg_t arg[];
};

void edgert_py_snap_free(edgert_py_snap_t *s) {
  if (s == NULL)
    return;
  for (Py_ssize_t i = 0; i < s->n; i++) {
    PyMem_Free(s->arg[i].format);
    PyMem_Free(s->arg[i].shape);
    PyMem_Free(s->arg[i].bytes);
  }
  PyMem_Free(s);
}

/* The writable view of `o`: 1 with *v held, 0 (nothing held, no
 * exception) when `o` exports no buffer or a read-only one, -1 with an
 * exception. Read-only is asked first: some exporters (numpy) refuse a
 * writable request with ValueError rather than BufferError. */
static int writable_view(PyObject *o, Py_buffer *v) {
  if (PyBytes_Check(o) || PyUnicode_Check(o) || !PyObject_CheckBuffer(o))
    return 0;
  if (PyObject_GetBuffer(o, v, PyBUF_FULL_RO) < 0) {
    if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_ValueError)) {
      PyErr_Clear(); /* no buffer to give: nothing to copy */
      return 0;
    }
    return -1;
  }
  if (v->readonly) { /* it cannot change */
    PyBuffer_Release(v);
    return 0;
  }
  return 1;
}

static int snap_one(snap_arg_t *a, Py_ssize_t index, Py_buffer *v) {
  memset(a, 0, sizeof *a);
  a->index = index;
  a->len = v->len;
  a->itemsize = v->itemsize;
  a->ndim = v->ndim;
  if (v->format != NULL) {
    size_t n = strlen(v->format) + 1;
    if ((a->format = PyMem_Malloc(n)) == NULL)
      goto nomem;
    memcpy(a->format, v->format, n);
  }
  if (v->ndim > 0 && v->shape != NULL) {
    if ((a->shape = PyMem_Malloc((size_t)v->ndim * sizeof *a->shape)) == NULL)
      goto nomem;
    memcpy(a->shape, v->shape, (size_t)v->ndim * sizeof *a->shape);
  }
  if ((a->bytes = PyMem_Malloc(v->len > 0 ? (size_t)v->len : 1)) == NULL)
    goto nomem;
  return PyBuffer_ToContiguous(a->bytes, v, v->len, 'C');
nomem:
  PyErr_NoMemory();
  return -1;
}

int edgert_py_snap_take(PyObject *const *args, Py_ssize_t nargs, edgert_py_snap_t **out) {
  edgert_py_snap_t *s = NULL; /* allocated at the first writable buffer */
  *out = NULL;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    Py_buffer v;
    int w = writable_view(args[i], &v);
    if (w == 0)
      continue;
    if (w > 0 && s == NULL) {
      s = PyMem_Malloc(sizeof *s + (size_t)(nargs - i) * sizeof(snap_arg_t));
      if (s == NULL)
        PyErr_NoMemory();
      else
        s->n = 0;
    }
    int rc = w < 0 || s == NULL ? -1 : snap_one(&s->arg[s->n++], i, &v);
    if (w > 0)
      PyBuffer_Release(&v);
    if (rc < 0) {
      edgert_py_snap_free(s);
      return -1;
    }
  }
  *out = s;
  return 0;
}

/* args[a->index]'s writable view: 0 with *v when it has the snapshot's size;
 * 1 (nothing held, *now_len its length or -1 when it exports no writable
 * buffer any more) when it changed; -1 with an exception. */
static int same_view(const snap_arg_t *a, PyObject *const *args, Py_buffer *v,
                     Py_ssize_t *now_len) {
  int w = writable_view(args[a->index], v);
  if (w < 0)
    return -1;
  *now_len = w == 0 ? -1 : v->len;
  if (w == 0)
    return 1;
  if (v->len != a->len || v->itemsize != a->itemsize) {
    PyBuffer_Release(v);
    return 1;
  }
  return 0;
}

static int snap_restore(const edgert_py_snap_t *s, PyObject *const *args) {
  for (Py_ssize_t i = 0; i < s->n; i++) {
    Py_buffer v;
    Py_ssize_t now_len;
    int changed = same_view(&s->arg[i], args, &v, &now_len);
    if (changed < 0)
      return -1;
    if (changed) {
      if (now_len < 0)
        PyErr_Format(PyExc_RuntimeError,
                     "argument %zd no longer exports a writable buffer, so its contents "
                     "cannot be restored",
                     s->arg[i].index + 1);
      else
        PyErr_Format(PyExc_RuntimeError,
                     "argument %zd changed size (%zd bytes before, %zd now), so its contents "
                     "cannot be restored",
                     s->arg[i].index + 1, s->arg[i].len, now_len);
      return -1;
    }
    int rc = PyBuffer_FromContiguous(&v, s->arg[i].bytes, v.len, 'C');
    PyBuffer_Release(&v);
    if (rc < 0)
      return -1;
  }
  return 0;
}

int edgert_py_snap_restore(const edgert_py_snap_t *s, PyObject *const *args) {
  if (!PyErr_Occurred())
    return snap_restore(s, args);
  /* a call that is raising: its error is the one to report */
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  int rc = snap_restore(s, args);
  if (rc < 0)
    PyErr_Clear();
  PyErr_Restore(et, ev, tb);
  return rc;
}

int edgert_py_snap_match(const edgert_py_snap_t *s, PyObject *const *args, double tolerance,
                         PyObject **diff) {
  if (diff != NULL)
    *diff = NULL;
  for (Py_ssize_t i = 0; i < s->n; i++) {
    const snap_arg_t *a = &s->arg[i];
    Py_buffer now;
    Py_ssize_t now_len;
    int changed = same_view(a, args, &now, &now_len);
    if (changed < 0)
      return -1;
    if (changed) { /* a side that resized its argument differs from one that did not */
      if (diff == NULL)
        return 0;
      *diff = now_len < 0 ? PyUnicode_FromFormat("argument %zd: a writable buffer != %s",
                                                 a->index + 1, Py_TYPE(args[a->index])->tp_name)
                          : PyUnicode_FromFormat("argument %zd: %zd bytes != %zd bytes",
                                                 a->index + 1, a->len, now_len);
      return *diff == NULL ? -1 : 0;
    }
    Py_buffer then = now; /* the snapshot's layout over its bytes */
    then.buf = a->bytes;
    then.obj = NULL;
    then.readonly = 1;
    then.format = a->format;
    then.ndim = a->ndim;
    then.shape = a->shape;
    then.strides = NULL; /* C-contiguous */
    then.suboffsets = NULL;
    cmp_t c = {tolerance, NULL, NULL};
    int rc = match_views(&c, &then, &now);
    PyBuffer_Release(&now);
    if (rc == 0 && diff != NULL) {
      *diff = c.path != NULL ? PyUnicode_FromFormat("argument %zd at %U: %U", a->index + 1,
                                                    c.path, c.detail)
                             : PyUnicode_FromFormat("argument %zd: %U", a->index + 1, c.detail);
      if (*diff == NULL)
        rc = -1;
    }
    Py_XDECREF(c.path);
    Py_XDECREF(c.detail);
    if (rc != 1)
      return rc;
  }
  return 1;
}
