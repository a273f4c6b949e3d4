/*
 * containers_list.c: TypedList, a MutableSequence over the core's
 * edgert_list_t.
 *
 * Invariants: `l` is NULL only for the generic (object) subclass, whose
 * Python methods replace every method here. The core list is pinned once
 * per exported buffer (so its array neither moves nor changes length while
 * any export lives), and `shape`/`strides` describe it for all exports at
 * once. Anything that converts Python objects does so completely before
 * the core list is touched, so a wrong-typed element changes nothing.
 *
 * Threads: every read or change of the core list runs in a critical
 * section on the TypedList (EDGERT_PY_LOCKED wrappers; plain code with a
 * GIL), as CPython's list does; its iterators' positions and its export
 * count live in the same section. Copying from another TypedList locks
 * that one while copying. docs/free-threading.md has the rules.
 */
#include "ext.h"

#include <stddef.h>

typedef struct {
  PyObject_HEAD edgert_list_t *l;
  const edgert_list_view_t *view; /* the core's data/len, read without calls */
  edgert_py_elem_t e;
  Py_ssize_t exports;
  Py_ssize_t shape[2], strides[2];
  PyObject *fbox; /* float handed out again while nobody holds it */
  PyObject *weakreflist;
} TypedListObject;

typedef struct {
  PyObject_HEAD TypedListObject *list; /* NULL when exhausted (builds with a GIL) */
  Py_ssize_t pos;                      /* -1 when exhausted */
} TypedListIterObject;

static PyTypeObject TypedListIterType;

#define TL_CHECK(o) PyObject_TypeCheck((o), &EdgertPy_TypedListType)

static int need_core(TypedListObject *self) {
  if (self->l == NULL) {
    PyErr_SetString(PyExc_TypeError, "this TypedList(object) method is not available");
    return -1;
  }
  return 0;
}

static PyObject *raise_busy(int rc) { return edgert_py_raise(rc); }

/* ---- converting many elements ------------------------------------------- */

/* A C array of converted elements, plus the Python objects they borrow from. */
typedef struct {
  unsigned char *items;
  size_t n;
  PyObject *keep; /* owned: the sequence whose items the descriptors borrow */
  Py_buffer view; /* when taken straight from a buffer */
  int has_view;
} conv_t;

static void conv_release(conv_t *c) {
  if (c->has_view)
    PyBuffer_Release(&c->view);
  else
    PyMem_Free(c->items);
  Py_XDECREF(c->keep);
  memset(c, 0, sizeof *c);
}

/* Converts an iterable to C elements. Zero-copy for a buffer of the right
 * format; otherwise through a sequence. 0 or -1 with an exception. */
static int conv_from_iterable(const edgert_py_elem_t *e, PyObject *it, conv_t *c,
                              const char *role) {
  memset(c, 0, sizeof *c);
  if (TL_CHECK(it) && ((TypedListObject *)it)->l != NULL &&
      ((TypedListObject *)it)->e.type == e->type && e->kind != EDGERT_KIND_STR &&
      e->kind != EDGERT_KIND_BYTES) {
    TypedListObject *o = (TypedListObject *)it;
    int rc = 0;
    Py_BEGIN_CRITICAL_SECTION(o);
    size_t n = edgert_list_len(o->l);
    c->items = PyMem_Malloc(n * e->size + 1);
    if (c->items == NULL)
      rc = -1;
    else if (n)
      memcpy(c->items, edgert_list_data(o->l), n * e->size);
    c->n = n;
    Py_END_CRITICAL_SECTION();
    if (rc < 0)
      PyErr_NoMemory();
    return rc;
  }
  if (edgert_py_elem_format(e) != NULL && PyObject_CheckBuffer(it) && !PyBytes_Check(it) &&
      !PyByteArray_Check(it)) {
    if (PyObject_GetBuffer(it, &c->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) == 0) {
      if (c->view.ndim == 1 && edgert_py_elem_buffer_is(e, c->view.format, c->view.itemsize)) {
        c->has_view = 1;
        c->items = c->view.buf;
        c->n = (size_t)(c->view.len / c->view.itemsize);
        return 0;
      }
      PyBuffer_Release(&c->view);
    } else {
      PyErr_Clear();
    }
  }
  PyObject *seq = edgert_py_sequence_fast(it, "expected an iterable");
  if (seq == NULL) {
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "%s: expected an iterable, not %.100s", role,
                   Py_TYPE(it)->tp_name);
    }
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  c->items = PyMem_Malloc((size_t)n * e->size + 1);
  if (c->items == NULL) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  c->keep = seq;
  PyObject **objs = PySequence_Fast_ITEMS(seq);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (edgert_py_to_c(e, objs[i], c->items + (size_t)i * e->size, role) < 0) {
      conv_release(c);
      return -1;
    }
  }
  c->n = (size_t)n;
  return 0;
}

/* ---- construction ------------------------------------------------------- */

/* A new list of elements `e` with room for `reserve`; `shared`: its storage
 * in shared memory (edgert_list_new_shared), which isolated workers get by
 * reference (docs/isolation.md). */
static TypedListObject *tl_alloc_ex(PyTypeObject *type, const edgert_py_elem_t *e, size_t reserve,
                                    int shared) {
  TypedListObject *self = (TypedListObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->e = *e;
  Py_INCREF(self->e.spec);
  if (e->kind != 0) {
    int rc = shared ? edgert_list_new_shared(e->type, reserve, &self->l)
                    : edgert_list_new(e->type, reserve, &self->l);
    if (rc < 0) {
      Py_DECREF(self);
      edgert_py_raise(rc);
      return NULL;
    }
    self->view = edgert_list_view(self->l);
  }
  return self;
}

static TypedListObject *tl_alloc(PyTypeObject *type, const edgert_py_elem_t *e, size_t reserve) {
  return tl_alloc_ex(type, e, reserve, 0);
}

PyObject *edgert_py_list_from_c(const edgert_py_elem_t *e, const void *items, size_t n) {
  TypedListObject *self = tl_alloc(&EdgertPy_TypedListType, e, n);
  if (self == NULL)
    return NULL;
  int rc = edgert_list_splice(self->l, 0, 0, items, n);
  if (rc < 0) {
    Py_DECREF(self);
    return edgert_py_raise(rc);
  }
  return (PyObject *)self;
}

static int tl_extend_from(TypedListObject *self, PyObject *it);

static PyObject *tl_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"item_type", "iterable", "capacity", "shared", NULL};
  PyObject *spec, *it = NULL;
  Py_ssize_t capacity = 0;
  int shared = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$np:TypedList", kwlist, &spec, &it,
                                   &capacity, &shared))
    return NULL;
  if (capacity < 0) {
    PyErr_SetString(PyExc_ValueError, "TypedList: capacity must be >= 0");
    return NULL;
  }
  edgert_py_elem_t e;
  if (edgert_py_elem_resolve(spec, &e) < 0)
    return NULL;
  if (shared && (e.kind == 0 || e.kind == EDGERT_KIND_STR || e.kind == EDGERT_KIND_BYTES)) {
    /* their items point into this process's heap: nothing a worker can read */
    PyErr_Format(PyExc_ValueError,
                 "TypedList(%s, shared=True): only lists of fixed-size items (int, float, "
                 "bool, a custom type) can live in shared memory",
                 e.kind == 0 ? "object" : edgert_py_elem_name(&e));
    Py_DECREF(e.spec);
    return NULL;
  }
  if (e.kind == 0 && type == &EdgertPy_TypedListType) {
    Py_DECREF(e.spec);
    if (EdgertPy_GenericList == NULL) {
      PyErr_SetString(PyExc_TypeError, "TypedList(object) needs the edgert package");
      return NULL;
    }
    return PyObject_Call(EdgertPy_GenericList, args, kwargs);
  }
  TypedListObject *self = tl_alloc_ex(type, &e, (size_t)capacity, shared);
  Py_DECREF(e.spec);
  if (self == NULL)
    return NULL;
  if (it != NULL && it != Py_None && self->l != NULL && tl_extend_from(self, it) < 0) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static void tl_dealloc(TypedListObject *self) {
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject *)self);
  edgert_list_free(self->l);
  Py_XDECREF(self->fbox);
  Py_XDECREF(self->e.spec);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- sequence protocol -------------------------------------------------- */

EDGERT_PY_LOCKED(Py_ssize_t, tl_length, self, (TypedListObject *self), (self))
static Py_ssize_t tl_length_locked(TypedListObject *self) {
  return self->view ? (Py_ssize_t)self->view->len : 0;
}

EDGERT_PY_LOCKED(PyObject *, tl_item, self, (TypedListObject *self, Py_ssize_t i), (self, i))
static PyObject *tl_item_locked(TypedListObject *self, Py_ssize_t i) {
  if (need_core(self) < 0)
    return NULL;
  void *p = edgert_list_at(self->l, (size_t)i);
  if (i < 0 || p == NULL) {
    PyErr_SetString(PyExc_IndexError, "TypedList index out of range");
    return NULL;
  }
  return edgert_py_from_c(&self->e, p);
}

static PyObject *tl_slice(TypedListObject *self, Py_ssize_t start, Py_ssize_t step,
                          Py_ssize_t n) {
  TypedListObject *r = tl_alloc(&EdgertPy_TypedListType, &self->e, (size_t)n);
  if (r == NULL)
    return NULL;
  int rc;
  unsigned char *data = edgert_list_data(self->l);
  if (step == 1) {
    rc = edgert_list_splice(r->l, 0, 0, data + (size_t)start * self->e.size, (size_t)n);
  } else {
    rc = 0;
    for (Py_ssize_t k = 0; k < n && rc == 0; k++)
      rc = edgert_list_append(r->l, data + (size_t)(start + k * step) * self->e.size);
  }
  if (rc < 0) {
    Py_DECREF(r);
    return edgert_py_raise(rc);
  }
  return (PyObject *)r;
}

EDGERT_PY_LOCKED(PyObject *, tl_subscript, self,
                 (TypedListObject *self, PyObject *key),
                 (self, key))
static PyObject *tl_subscript_locked(TypedListObject *self, PyObject *key) {
  if (need_core(self) < 0)
    return NULL;
  if (PyLong_CheckExact(key) || PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
      return NULL;
    Py_ssize_t n = (Py_ssize_t)self->view->len;
    if (i < 0)
      i += n;
    if (i < 0 || i >= n) {
      PyErr_SetString(PyExc_IndexError, "TypedList index out of range");
      return NULL;
    }
    const unsigned char *p = self->view->data + (size_t)i * self->e.size;
    if (self->e.kind == EDGERT_KIND_FLOAT64)
      return edgert_py_box_float(&self->fbox, *(const double *)(const void *)p);
    if (self->e.kind == EDGERT_KIND_INT64)
      return PyLong_FromLongLong(*(const int64_t *)(const void *)p);
    return edgert_py_from_c(&self->e, p);
  }
  if (PySlice_Check(key)) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
      return NULL;
    Py_ssize_t n = PySlice_AdjustIndices((Py_ssize_t)edgert_list_len(self->l), &start, &stop,
                                         step);
    return tl_slice(self, start, step, n);
  }
  PyErr_Format(PyExc_TypeError, "TypedList indices must be integers or slices, not %.100s",
               Py_TYPE(key)->tp_name);
  return NULL;
}

EDGERT_PY_LOCKED(int, tl_ass_subscript, self,
                 (TypedListObject *self, PyObject *key, PyObject *value),
                 (self, key, value))
static int tl_ass_subscript_locked(TypedListObject *self, PyObject *key, PyObject *value) {
  if (need_core(self) < 0)
    return -1;
  Py_ssize_t n = (Py_ssize_t)edgert_list_len(self->l);
  if (PyLong_CheckExact(key) || PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
      return -1;
    if (i < 0)
      i += n;
    if (i < 0 || i >= n) {
      PyErr_SetString(PyExc_IndexError, "TypedList assignment index out of range");
      return -1;
    }
    if (value == NULL) {
      int rc = edgert_list_pop(self->l, (size_t)i, NULL);
      if (rc < 0) {
        edgert_py_raise(rc);
        return -1;
      }
      return 0;
    }
    unsigned char *p = (unsigned char *)edgert_list_data(self->l) + (size_t)i * self->e.size;
    if (self->e.kind == EDGERT_KIND_FLOAT64 && PyFloat_CheckExact(value)) {
      *(double *)(void *)p = PyFloat_AS_DOUBLE(value);
      return 0;
    }
    unsigned char stackbuf[256];
    unsigned char *buf = self->e.size <= sizeof stackbuf ? stackbuf : PyMem_Malloc(self->e.size);
    if (buf == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    int r = edgert_py_to_c(&self->e, value, buf, "TypedList item");
    if (r == 0) {
      /* The conversion may have run Python code that resized the list. */
      if ((size_t)i >= edgert_list_len(self->l)) {
        PyErr_SetString(PyExc_IndexError, "TypedList assignment index out of range");
        r = -1;
      } else {
        int rc = edgert_list_set(self->l, (size_t)i, buf);
        if (rc < 0) {
          edgert_py_raise(rc);
          r = -1;
        }
      }
    }
    if (buf != stackbuf)
      PyMem_Free(buf);
    return r;
  }
  if (!PySlice_Check(key)) {
    PyErr_Format(PyExc_TypeError, "TypedList indices must be integers or slices, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
  }
  Py_ssize_t start, stop, step;
  if (PySlice_Unpack(key, &start, &stop, &step) < 0)
    return -1;
  Py_ssize_t count = PySlice_AdjustIndices(n, &start, &stop, step);
  if (value == NULL) {
    if (step == 1 || count == 0) {
      int rc = count ? edgert_list_splice(self->l, (size_t)start, (size_t)count, NULL, 0) : 0;
      if (rc < 0) {
        edgert_py_raise(rc);
        return -1;
      }
      return 0;
    }
    int rc = edgert_list_delete_strided(self->l, (size_t)start, step, (size_t)count);
    if (rc < 0) {
      edgert_py_raise(rc);
      return -1;
    }
    return 0;
  }
  conv_t c;
  if (conv_from_iterable(&self->e, value, &c, "TypedList item") < 0)
    return -1;
  /* Python code may have run: recompute the slice against the length now. */
  n = (Py_ssize_t)edgert_list_len(self->l);
  if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
    conv_release(&c);
    return -1;
  }
  count = PySlice_AdjustIndices(n, &start, &stop, step);
  int rc = 0;
  if (step == 1) {
    rc = edgert_list_splice(self->l, (size_t)start, (size_t)count, c.items, c.n);
  } else {
    rc = edgert_list_assign_strided(self->l, (size_t)start, step, (size_t)count, c.items, c.n);
  }
  conv_release(&c);
  if (rc < 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

/* 1 if element at p equals `value`, 0 if not, -1 on error. */
static int elem_equals(TypedListObject *self, const void *p, PyObject *value) {
  if (self->e.kind == EDGERT_KIND_FLOAT64 && PyFloat_CheckExact(value))
    return *(const double *)p == PyFloat_AS_DOUBLE(value);
  PyObject *o = edgert_py_from_c(&self->e, p);
  if (o == NULL)
    return -1;
  int r = PyObject_RichCompareBool(o, value, Py_EQ);
  Py_DECREF(o);
  return r;
}

EDGERT_PY_LOCKED(int, tl_contains, self, (TypedListObject *self, PyObject *value), (self, value))
static int tl_contains_locked(TypedListObject *self, PyObject *value) {
  if (need_core(self) < 0)
    return -1;
  for (size_t i = 0; i < edgert_list_len(self->l); i++) {
    int r = elem_equals(self, (unsigned char *)edgert_list_data(self->l) + i * self->e.size, value);
    if (r != 0)
      return r;
  }
  return 0;
}

/* ---- methods ------------------------------------------------------------ */

static int tl_extend_from(TypedListObject *self, PyObject *it) {
  conv_t c;
  if (conv_from_iterable(&self->e, it, &c, "TypedList item") < 0)
    return -1;
  int rc = edgert_list_splice(self->l, edgert_list_len(self->l), 0, c.items, c.n);
  conv_release(&c);
  if (rc < 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

EDGERT_PY_LOCKED(PyObject *, tl_append, self,
                 (TypedListObject *self, PyObject *value),
                 (self, value))
static PyObject *tl_append_locked(TypedListObject *self, PyObject *value) {
  if (need_core(self) < 0)
    return NULL;
  int rc;
  if (self->e.kind == EDGERT_KIND_FLOAT64 && PyFloat_CheckExact(value)) {
    double d = PyFloat_AS_DOUBLE(value);
    rc = edgert_list_append(self->l, &d);
  } else {
    unsigned char stackbuf[256];
    unsigned char *buf = self->e.size <= sizeof stackbuf ? stackbuf : PyMem_Malloc(self->e.size);
    if (buf == NULL)
      return PyErr_NoMemory();
    if (edgert_py_to_c(&self->e, value, buf, "TypedList item") < 0) {
      if (buf != stackbuf)
        PyMem_Free(buf);
      return NULL;
    }
    rc = edgert_list_append(self->l, buf);
    if (buf != stackbuf)
      PyMem_Free(buf);
  }
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_extend, self, (TypedListObject *self, PyObject *it), (self, it))
static PyObject *tl_extend_locked(TypedListObject *self, PyObject *it) {
  if (need_core(self) < 0 || tl_extend_from(self, it) < 0)
    return NULL;
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_insert, self,
                 (TypedListObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *tl_insert_locked(TypedListObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (need_core(self) < 0)
    return NULL;
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "insert expected 2 arguments, got %zd", nargs);
    return NULL;
  }
  Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
  if (i == -1 && PyErr_Occurred())
    return NULL;
  unsigned char stackbuf[256];
  unsigned char *buf = self->e.size <= sizeof stackbuf ? stackbuf : PyMem_Malloc(self->e.size);
  if (buf == NULL)
    return PyErr_NoMemory();
  if (edgert_py_to_c(&self->e, args[1], buf, "TypedList item") < 0) {
    if (buf != stackbuf)
      PyMem_Free(buf);
    return NULL;
  }
  Py_ssize_t n = (Py_ssize_t)edgert_list_len(self->l);
  if (i < 0) {
    i += n;
    if (i < 0)
      i = 0;
  }
  if (i > n)
    i = n;
  int rc = edgert_list_insert(self->l, (size_t)i, buf);
  if (buf != stackbuf)
    PyMem_Free(buf);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_pop, self,
                 (TypedListObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *tl_pop_locked(TypedListObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (need_core(self) < 0)
    return NULL;
  if (nargs > 1) {
    PyErr_Format(PyExc_TypeError, "pop expected at most 1 argument, got %zd", nargs);
    return NULL;
  }
  Py_ssize_t n = (Py_ssize_t)edgert_list_len(self->l);
  Py_ssize_t i = -1;
  if (nargs == 1) {
    i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
      return NULL;
  }
  if (n == 0) {
    PyErr_SetString(PyExc_IndexError, "pop from empty TypedList");
    return NULL;
  }
  if (i < 0)
    i += n;
  if (i < 0 || i >= n) {
    PyErr_SetString(PyExc_IndexError, "pop index out of range");
    return NULL;
  }
  if (edgert_list_pins(self->l))
    return raise_busy(edgert_list_pop(self->l, (size_t)i, NULL));
  PyObject *r = edgert_py_from_c(&self->e, edgert_list_at(self->l, (size_t)i));
  if (r == NULL)
    return NULL;
  int rc = edgert_list_pop(self->l, (size_t)i, NULL);
  if (rc < 0) {
    Py_DECREF(r);
    return edgert_py_raise(rc);
  }
  return r;
}

/* Index of the first element equal to value in [start, stop), -1 if none,
 * -2 on error. */
static Py_ssize_t find_value(TypedListObject *self, PyObject *value, Py_ssize_t start,
                             Py_ssize_t stop) {
  for (Py_ssize_t i = start; i < stop && i < (Py_ssize_t)edgert_list_len(self->l); i++) {
    int r = elem_equals(self, edgert_list_at(self->l, (size_t)i), value);
    if (r < 0)
      return -2;
    if (r)
      return i;
  }
  return -1;
}

EDGERT_PY_LOCKED(PyObject *, tl_remove, self,
                 (TypedListObject *self, PyObject *value),
                 (self, value))
static PyObject *tl_remove_locked(TypedListObject *self, PyObject *value) {
  if (need_core(self) < 0)
    return NULL;
  Py_ssize_t i = find_value(self, value, 0, PY_SSIZE_T_MAX);
  if (i == -2)
    return NULL;
  if (i == -1) {
    PyErr_SetString(PyExc_ValueError, "TypedList.remove(x): x not in list");
    return NULL;
  }
  int rc = edgert_list_pop(self->l, (size_t)i, NULL);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_index, self,
                 (TypedListObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *tl_index_locked(TypedListObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (need_core(self) < 0)
    return NULL;
  if (nargs < 1 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "index expected 1 to 3 arguments");
    return NULL;
  }
  Py_ssize_t n = (Py_ssize_t)edgert_list_len(self->l), start = 0, stop = PY_SSIZE_T_MAX;
  for (Py_ssize_t a = 1; a < nargs; a++) {
    if (!PyIndex_Check(args[a])) {
      PyErr_SetString(PyExc_TypeError,
                      "slice indices must be integers or have an __index__ method");
      return NULL;
    }
    Py_ssize_t v = PyNumber_AsSsize_t(args[a], NULL); /* clamps, as list.index does */
    if (v == -1 && PyErr_Occurred())
      return NULL;
    *(a == 1 ? &start : &stop) = v;
  }
  if (start < 0) {
    start += n;
    if (start < 0)
      start = 0;
  }
  if (stop < 0) {
    stop += n;
    if (stop < 0)
      stop = 0;
  }
  Py_ssize_t i = find_value(self, args[0], start, stop);
  if (i == -2)
    return NULL;
  if (i == -1) {
    PyErr_Format(PyExc_ValueError, "%R is not in TypedList", args[0]);
    return NULL;
  }
  return PyLong_FromSsize_t(i);
}

EDGERT_PY_LOCKED(PyObject *, tl_count, self,
                 (TypedListObject *self, PyObject *value),
                 (self, value))
static PyObject *tl_count_locked(TypedListObject *self, PyObject *value) {
  if (need_core(self) < 0)
    return NULL;
  Py_ssize_t c = 0;
  for (size_t i = 0; i < edgert_list_len(self->l); i++) {
    int r = elem_equals(self, edgert_list_at(self->l, i), value);
    if (r < 0)
      return NULL;
    c += r;
  }
  return PyLong_FromSsize_t(c);
}

EDGERT_PY_LOCKED(PyObject *, tl_reverse, self,
                 (TypedListObject *self, PyObject *unused),
                 (self, unused))
static PyObject *tl_reverse_locked(TypedListObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  edgert_list_reverse(self->l);
  Py_RETURN_NONE;
}

static PyObject *tl_sort(TypedListObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"key", "reverse", NULL};
  PyObject *keyfn = Py_None;
  int reverse = 0;
  if (need_core(self) < 0)
    return NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$Op:sort", kwlist, &keyfn, &reverse))
    return NULL;
  int numeric = self->e.kind == EDGERT_KIND_INT64 || self->e.kind == EDGERT_KIND_FLOAT64 ||
                self->e.kind == EDGERT_KIND_BOOL;
  if (keyfn == Py_None && numeric) {
    int rc;
    Py_BEGIN_CRITICAL_SECTION(self);
    rc = edgert_list_sort(self->l, reverse);
    Py_END_CRITICAL_SECTION();
    if (rc < 0)
      return edgert_py_raise(rc);
    Py_RETURN_NONE;
  }
  /* Any other order: Python's sort on the boxed elements, then one
   * all-or-nothing assignment back. */
  PyObject *lst = PySequence_List((PyObject *)self);
  if (lst == NULL)
    return NULL;
  PyObject *sort = PyObject_GetAttrString(lst, "sort");
  PyObject *r = sort ? PyObject_Call(sort, args, kwargs) : NULL;
  Py_XDECREF(sort);
  if (r == NULL) {
    Py_DECREF(lst);
    return NULL;
  }
  Py_DECREF(r);
  conv_t c;
  int ok = conv_from_iterable(&self->e, lst, &c, "TypedList item");
  Py_DECREF(lst);
  if (ok < 0)
    return NULL;
  int rc = 0, modified = 0;
  Py_BEGIN_CRITICAL_SECTION(self);
  if ((size_t)c.n != edgert_list_len(self->l)) {
    modified = 1;
  } else if (self->e.kind == EDGERT_KIND_STR || self->e.kind == EDGERT_KIND_BYTES) {
    edgert_list_t *tmp = NULL;
    rc = edgert_list_new(self->e.type, c.n, &tmp);
    if (rc == 0)
      rc = edgert_list_splice(tmp, 0, 0, c.items, c.n);
    if (rc == 0)
      rc = edgert_list_swap(self->l, tmp);
    edgert_list_free(tmp);
  } else if (c.n) {
    memcpy(edgert_list_data(self->l), c.items, c.n * self->e.size);
  }
  Py_END_CRITICAL_SECTION();
  conv_release(&c);
  if (modified) {
    PyErr_SetString(PyExc_ValueError, "TypedList modified during sort");
    return NULL;
  }
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_clear, self,
                 (TypedListObject *self, PyObject *unused),
                 (self, unused))
static PyObject *tl_clear_locked(TypedListObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  int rc = edgert_list_clear(self->l);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_copy, self,
                 (TypedListObject *self, PyObject *unused),
                 (self, unused))
static PyObject *tl_copy_locked(TypedListObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  return tl_slice(self, 0, 1, (Py_ssize_t)edgert_list_len(self->l));
}

static PyObject *tl_deepcopy(TypedListObject *self, PyObject *memo) {
  (void)memo;
  return tl_copy(self, NULL);
}

static PyObject *tl_reduce(TypedListObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  PyObject *content;
  if (self->e.kind == EDGERT_KIND_STR || self->e.kind == EDGERT_KIND_BYTES ||
      (self->e.kind == EDGERT_KIND_CUSTOM && edgert_type_has_box(self->e.type)))
    content = PySequence_List((PyObject *)self);
  else { /* fixed-size raw elements: their bytes, restored through the buffer path */
    Py_BEGIN_CRITICAL_SECTION(self);
    content = PyBytes_FromStringAndSize(edgert_list_data(self->l),
                                        (Py_ssize_t)(edgert_list_len(self->l) * self->e.size));
    Py_END_CRITICAL_SECTION();
  }
  if (content == NULL)
    return NULL;
  PyObject *mod = PyImport_ImportModule("edgert.containers");
  PyObject *fn = mod ? PyObject_GetAttrString(mod, "_rebuild_list") : NULL;
  Py_XDECREF(mod);
  if (fn == NULL) {
    Py_DECREF(content);
    return NULL;
  }
  /* A shared list unpickles shared (in new shared memory of the process
   * that unpickles it: a copy, not the same mapping). */
  if (edgert_list_is_shared(self->l))
    return Py_BuildValue("N(ONO)", fn, self->e.spec, content, Py_True);
  return Py_BuildValue("N(ON)", fn, self->e.spec, content);
}

/* __reduce_ex__(protocol): with protocol 5 or later, a list of fixed-size
 * raw elements pickles its storage as a pickle.PickleBuffer over itself
 * (the buffer protocol above): out of band with a buffer_callback, so
 * pickling copies no element bytes (the list cannot be resized while the
 * buffer is held). Earlier protocols: __reduce__'s bytes copy. */
static PyObject *tl_reduce_ex(TypedListObject *self, PyObject *proto) {
  long p = PyLong_AsLong(proto);
  if (p == -1 && PyErr_Occurred())
    return NULL;
  /* Everything else (and TypedList(object), which has no core list and its
   * own __reduce__) reduces as __reduce__ says. */
  if (p < 5 || self->l == NULL || self->e.kind == EDGERT_KIND_STR ||
      self->e.kind == EDGERT_KIND_BYTES ||
      (self->e.kind == EDGERT_KIND_CUSTOM && edgert_type_has_box(self->e.type)))
    return PyObject_CallMethod((PyObject *)self, "__reduce__", NULL);
  PyObject *pb = PyPickleBuffer_FromObject((PyObject *)self);
  if (pb == NULL)
    return NULL;
  PyObject *mod = PyImport_ImportModule("edgert.containers");
  PyObject *fn = mod ? PyObject_GetAttrString(mod, "_rebuild_list") : NULL;
  Py_XDECREF(mod);
  if (fn == NULL) {
    Py_DECREF(pb);
    return NULL;
  }
  if (edgert_list_is_shared(self->l))
    return Py_BuildValue("N(ONO)", fn, self->e.spec, pb, Py_True);
  return Py_BuildValue("N(ON)", fn, self->e.spec, pb);
}

/* _frombytes(raw): replaces the contents with fixed-size elements given as
 * raw bytes (the pickle path). */
EDGERT_PY_LOCKED(PyObject *, tl_frombytes, self,
                 (TypedListObject *self, PyObject *raw),
                 (self, raw))
static PyObject *tl_frombytes_locked(TypedListObject *self, PyObject *raw) {
  if (need_core(self) < 0)
    return NULL;
  Py_buffer v;
  if (PyObject_GetBuffer(raw, &v, PyBUF_SIMPLE) < 0)
    return NULL;
  if (self->e.kind == EDGERT_KIND_STR || self->e.kind == EDGERT_KIND_BYTES ||
      v.len % (Py_ssize_t)self->e.size != 0) {
    PyBuffer_Release(&v);
    PyErr_Format(PyExc_ValueError, "TypedList(%s): %zd raw bytes are not whole elements",
                 edgert_py_elem_name(&self->e), v.len);
    return NULL;
  }
  size_t n = (size_t)v.len / self->e.size;
  int rc = edgert_list_splice(self->l, 0, edgert_list_len(self->l), v.buf, n);
  PyBuffer_Release(&v);
  if (rc == EDGERT_EINVAL && self->e.kind == EDGERT_KIND_BOOL)
    return PyErr_Format(PyExc_ValueError, "TypedList(bool): raw byte is not 0 or 1 (%s)",
                        edgert_last_error());
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, tl_sizeof, self,
                 (TypedListObject *self, PyObject *unused),
                 (self, unused))
static PyObject *tl_sizeof_locked(TypedListObject *self, PyObject *unused) {
  (void)unused;
  size_t n = (size_t)Py_TYPE(self)->tp_basicsize + (self->l ? edgert_list_memory(self->l) : 0);
  return PyLong_FromSize_t(n);
}

EDGERT_PY_LOCKED(PyObject *, tl_reserve, self, (TypedListObject *self, PyObject *arg), (self, arg))
static PyObject *tl_reserve_locked(TypedListObject *self, PyObject *arg) {
  if (need_core(self) < 0)
    return NULL;
  size_t n;
  if (edgert_py_count_arg(arg, "reserve: n", &n) < 0)
    return NULL;
  int rc = edgert_list_reserve(self->l, n);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

static PyObject *tl_repr(TypedListObject *self) {
  if (need_core(self) < 0)
    return NULL;
  int st = Py_ReprEnter((PyObject *)self);
  if (st != 0)
    return st > 0 ? PyUnicode_FromString("TypedList(...)") : NULL;
  PyObject *lst = PySequence_List((PyObject *)self);
  PyObject *r = NULL;
  if (lst != NULL) {
    if (self->e.kind == EDGERT_KIND_CUSTOM)
      r = PyUnicode_FromFormat("TypedList(%R, %R)", self->e.spec, lst);
    else
      r = PyUnicode_FromFormat("TypedList(%s, %R)", edgert_py_elem_name(&self->e), lst);
    Py_DECREF(lst);
  }
  Py_ReprLeave((PyObject *)self);
  return r;
}

static PyObject *tl_richcompare(PyObject *self, PyObject *other, int op) {
  if (!(PyList_Check(other) || TL_CHECK(other)))
    Py_RETURN_NOTIMPLEMENTED;
  PyObject *a = PySequence_List(self);
  if (a == NULL)
    return NULL;
  PyObject *b = PyList_Check(other) ? Py_NewRef(other) : PySequence_List(other);
  if (b == NULL) {
    Py_DECREF(a);
    return NULL;
  }
  PyObject *r = PyObject_RichCompare(a, b, op);
  Py_DECREF(a);
  Py_DECREF(b);
  return r;
}

static PyObject *tl_concat(TypedListObject *self, PyObject *other) {
  if (!(PyList_Check(other) || TL_CHECK(other))) {
    PyErr_Format(PyExc_TypeError, "can only concatenate a list or TypedList (not \"%.100s\") to TypedList",
                 Py_TYPE(other)->tp_name);
    return NULL;
  }
  TypedListObject *r = (TypedListObject *)tl_copy(self, NULL);
  if (r == NULL)
    return NULL;
  if (tl_extend_from(r, other) < 0) {
    Py_DECREF(r);
    return NULL;
  }
  return (PyObject *)r;
}

EDGERT_PY_LOCKED(PyObject *, tl_inplace_concat, self,
                 (TypedListObject *self, PyObject *other),
                 (self, other))
static PyObject *tl_inplace_concat_locked(TypedListObject *self, PyObject *other) {
  if (need_core(self) < 0 || tl_extend_from(self, other) < 0)
    return NULL;
  return Py_NewRef(self);
}

/* Python's list * n on the core's edgert_list_repeat: a count too large
 * for a list is a MemoryError, as for list. 0 or -1 with an exception. */
static int repeat_in_place(edgert_list_t *l, Py_ssize_t times) {
  int rc = edgert_list_repeat(l, times < 0 ? 0 : (size_t)times);
  if (rc == EDGERT_ELIMIT) {
    PyErr_SetString(PyExc_MemoryError, edgert_last_error());
    return -1;
  }
  if (rc < 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

EDGERT_PY_LOCKED(PyObject *, tl_repeat, self,
                 (TypedListObject *self, Py_ssize_t times),
                 (self, times))
static PyObject *tl_repeat_locked(TypedListObject *self, Py_ssize_t times) {
  if (need_core(self) < 0)
    return NULL;
  /* Room for the result up front when its size is plainly sane (the core
   * checks the real limit), so the copy is one allocation. */
  size_t n = edgert_list_len(self->l), room = 0;
  if (times > 0 && n > 0 && (size_t)times <= ((size_t)PY_SSIZE_T_MAX / self->e.size) / n)
    room = n * (size_t)times;
  TypedListObject *r = tl_alloc(&EdgertPy_TypedListType, &self->e, room);
  if (r == NULL)
    return NULL;
  int rc = times > 0 ? edgert_list_splice(r->l, 0, 0, edgert_list_data(self->l),
                                          edgert_list_len(self->l))
                     : 0;
  if (rc < 0) {
    Py_DECREF(r);
    return edgert_py_raise(rc);
  }
  if (repeat_in_place(r->l, times) < 0) {
    Py_DECREF(r);
    return NULL;
  }
  return (PyObject *)r;
}

EDGERT_PY_LOCKED(PyObject *, tl_inplace_repeat, self,
                 (TypedListObject *self, Py_ssize_t times),
                 (self, times))
static PyObject *tl_inplace_repeat_locked(TypedListObject *self, Py_ssize_t times) {
  if (need_core(self) < 0)
    return NULL;
  if (repeat_in_place(self->l, times) < 0)
    return NULL;
  return Py_NewRef(self);
}

/* ---- buffer protocol ---------------------------------------------------- */

/* What an empty list's buffer points to (aligned for any item). */
static double no_items[1];

/* The part of an export every buffer of the list shares: its storage (its
 * address, or no_items when it has none), the reference, and the pin and
 * count that tl_releasebuffer ends. `data` and `n` are the list's. */
static void export_storage(TypedListObject *self, Py_buffer *view, void *data, size_t n) {
  view->buf = data ? data : (void *)no_items;
  view->obj = Py_NewRef(self);
  view->len = (Py_ssize_t)(n * self->e.size);
  view->readonly = 0;
  view->suboffsets = NULL;
  view->internal = NULL;
  edgert_list_pin(self->l);
  self->exports++;
}

EDGERT_PY_LOCKED(int, tl_getbuffer, self,
                 (TypedListObject *self, Py_buffer *view, int flags),
                 (self, view, flags))
static int tl_getbuffer_locked(TypedListObject *self, Py_buffer *view, int flags) {
  if (self->l == NULL || self->e.kind == EDGERT_KIND_STR || self->e.kind == EDGERT_KIND_BYTES) {
    PyErr_Format(PyExc_BufferError,
                 "TypedList(%s) has no buffer: its elements are not fixed-size C values",
                 edgert_py_elem_name(&self->e));
    view->obj = NULL;
    return -1;
  }
  size_t n = edgert_list_len(self->l);
  void *data = edgert_list_data(self->l);
  /* custom types are 2-D bytes (n, size); a struct type is 1-D items in
   * the layout's format, which POINTER(S) arguments recognize */
  const edgert_struct_t *layout = edgert_type_layout(self->e.type);
  int custom = self->e.kind == EDGERT_KIND_CUSTOM && layout == NULL;
  if (self->exports == 0) {
    self->shape[0] = (Py_ssize_t)n;
    self->shape[1] = (Py_ssize_t)self->e.size;
    self->strides[0] = (Py_ssize_t)self->e.size;
    self->strides[1] = 1;
  }
  if (flags & PyBUF_FORMAT)
    view->format = custom   ? "B"
                   : layout ? (char *)edgert_struct_format(layout)
                            : (char *)edgert_py_elem_format(&self->e);
  else
    view->format = NULL;
  if (flags & PyBUF_ND) {
    view->ndim = custom ? 2 : 1;
    view->itemsize = custom ? 1 : (Py_ssize_t)self->e.size;
    view->shape = self->shape;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? self->strides : NULL;
  } else {
    if (flags & PyBUF_FORMAT) {
      /* A format without a shape only describes single-byte items. */
      if (!custom && self->e.size != 1) {
        view->obj = NULL;
        PyErr_SetString(PyExc_BufferError, "TypedList: a formatted buffer needs a shape");
        return -1;
      }
    }
    view->ndim = 1;
    view->itemsize = 1;
    view->shape = NULL;
    view->strides = NULL;
  }
  export_storage(self, view, data, n);
  return 0;
}

int edgert_py_list_scalar_view(PyObject *o, Py_buffer *view, int *kind) {
  if (!Py_IS_TYPE(o, &EdgertPy_TypedListType))
    return 0;
  TypedListObject *self = (TypedListObject *)o;
  int k = self->e.kind;
  if (k != EDGERT_KIND_INT64 && k != EDGERT_KIND_FLOAT64 && k != EDGERT_KIND_BOOL)
    return 0;
  int ok;
  Py_BEGIN_CRITICAL_SECTION(self);
  ok = self->l != NULL;
  if (ok) {
    /* what a call reads of it (no shape) */
    view->itemsize = (Py_ssize_t)self->e.size;
    view->ndim = 1;
    view->format = (char *)edgert_py_elem_format(&self->e);
    view->shape = view->strides = NULL;
    export_storage(self, view, edgert_list_data(self->l), edgert_list_len(self->l));
  }
  Py_END_CRITICAL_SECTION();
  if (!ok) /* the general path meets the same refusal and reports it */
    return 0;
  *kind = k;
  return 1;
}

static void tl_releasebuffer(TypedListObject *self, Py_buffer *view) {
  (void)view;
  Py_BEGIN_CRITICAL_SECTION(self);
  self->exports--;
  edgert_list_unpin(self->l);
  Py_END_CRITICAL_SECTION();
}

/* ---- attributes --------------------------------------------------------- */

static PyObject *tl_get_item_type(TypedListObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->e.spec);
}
EDGERT_PY_LOCKED(PyObject *, tl_get_capacity, self, (TypedListObject *self, void *c), (self, c))
static PyObject *tl_get_capacity_locked(TypedListObject *self, void *c) {
  (void)c;
  return PyLong_FromSize_t(self->l ? edgert_list_capacity(self->l) : 0);
}
static PyObject *tl_get_itemsize(TypedListObject *self, void *c) {
  (void)c;
  return PyLong_FromSize_t(self->e.size);
}
EDGERT_PY_LOCKED(PyObject *, tl_get_address, self, (TypedListObject *self, void *c), (self, c))
static PyObject *tl_get_address_locked(TypedListObject *self, void *c) {
  (void)c;
  return PyLong_FromVoidPtr(self->l ? edgert_list_data(self->l) : NULL);
}

EDGERT_PY_LOCKED(PyObject *, tl_get_shared, self, (TypedListObject *self, void *c), (self, c))
static PyObject *tl_get_shared_locked(TypedListObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->l != NULL && edgert_list_is_shared(self->l));
}

static PyGetSetDef tl_getset[] = {
    {"shared", (getter)tl_get_shared, NULL,
     "Whether the storage is shared memory (TypedList(..., shared=True)): isolated workers "
     "get it by reference, zero copy.",
     NULL},
    {"item_type", (getter)tl_get_item_type, NULL, "The element type.", NULL},
    {"capacity", (getter)tl_get_capacity, NULL, "Elements the storage holds before growing.",
     NULL},
    {"itemsize", (getter)tl_get_itemsize, NULL, "Bytes per element, inline.", NULL},
    {"address", (getter)tl_get_address, NULL,
     "Address of the element array (0 when none); valid until the list grows.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef tl_methods[] = {
    {"append", (PyCFunction)tl_append, METH_O, "Append an element."},
    {"extend", (PyCFunction)tl_extend, METH_O,
     "Append every element of an iterable (all or nothing)."},
    {"insert", (PyCFunction)(void (*)(void))tl_insert, METH_FASTCALL,
     "Insert an element before index."},
    {"pop", (PyCFunction)(void (*)(void))tl_pop, METH_FASTCALL,
     "Remove and return the element at index (default last)."},
    {"remove", (PyCFunction)tl_remove, METH_O, "Remove the first element equal to value."},
    {"index", (PyCFunction)(void (*)(void))tl_index, METH_FASTCALL,
     "First index of value (ValueError if absent)."},
    {"count", (PyCFunction)tl_count, METH_O, "Number of elements equal to value."},
    {"reverse", (PyCFunction)tl_reverse, METH_NOARGS, "Reverse in place."},
    {"sort", (PyCFunction)(void (*)(void))tl_sort, METH_VARARGS | METH_KEYWORDS,
     "Sort in place (stable; numeric lists without key sort in C)."},
    {"clear", (PyCFunction)tl_clear, METH_NOARGS, "Remove every element."},
    {"copy", (PyCFunction)tl_copy, METH_NOARGS, "A shallow copy (elements are inline)."},
    {"__copy__", (PyCFunction)tl_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)tl_deepcopy, METH_O, NULL},
    {"__reduce__", (PyCFunction)tl_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)tl_reduce_ex, METH_O, NULL},
    {"__sizeof__", (PyCFunction)tl_sizeof, METH_NOARGS, NULL},
    {"_frombytes", (PyCFunction)tl_frombytes, METH_O, NULL},
    {"reserve", (PyCFunction)tl_reserve, METH_O, "Make room for n elements in total."},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods tl_as_sequence = {
    .sq_length = (lenfunc)tl_length,
    .sq_concat = (binaryfunc)tl_concat,
    .sq_repeat = (ssizeargfunc)tl_repeat,
    .sq_item = (ssizeargfunc)tl_item,
    .sq_contains = (objobjproc)tl_contains,
    .sq_inplace_concat = (binaryfunc)tl_inplace_concat,
    .sq_inplace_repeat = (ssizeargfunc)tl_inplace_repeat,
};

static PyMappingMethods tl_as_mapping = {
    .mp_length = (lenfunc)tl_length,
    .mp_subscript = (binaryfunc)tl_subscript,
    .mp_ass_subscript = (objobjargproc)tl_ass_subscript,
};

static PyBufferProcs tl_as_buffer = {
    .bf_getbuffer = (getbufferproc)tl_getbuffer,
    .bf_releasebuffer = (releasebufferproc)tl_releasebuffer,
};

/* ---- iterator ----------------------------------------------------------- */

static PyObject *tl_iter(TypedListObject *self) {
  if (need_core(self) < 0)
    return NULL;
  TypedListIterObject *it = PyObject_New(TypedListIterObject, &TypedListIterType);
  if (it == NULL)
    return NULL;
  it->list = (TypedListObject *)Py_NewRef(self);
  it->pos = 0;
  return (PyObject *)it;
}

static void tli_dealloc(TypedListIterObject *it) {
  Py_XDECREF(it->list);
  PyObject_Free(it);
}

/* An iterator's `pos` is read and written in its list's critical section.
 * Free-threaded builds keep `list` until the iterator dies, as CPython's
 * own list iterator does there (another thread may be in next() on the same
 * iterator), and mark it exhausted with pos -1; with a GIL, exhaustion drops
 * the list at once. */
static PyObject *tli_next(TypedListIterObject *it) {
  TypedListObject *self = it->list;
  if (self == NULL)
    return NULL;
  PyObject *r = NULL;
  int done = 0;
  Py_BEGIN_CRITICAL_SECTION(self);
  if (it->pos >= 0 && (size_t)it->pos < self->view->len) {
    const unsigned char *p = self->view->data + (size_t)it->pos++ * self->e.size;
    if (self->e.kind == EDGERT_KIND_FLOAT64)
      r = edgert_py_box_float(&self->fbox, *(const double *)(const void *)p);
    else
      r = edgert_py_from_c(&self->e, p);
  } else {
    it->pos = -1;
    done = 1;
  }
  Py_END_CRITICAL_SECTION();
#ifndef Py_GIL_DISABLED
  if (done) {
    it->list = NULL;
    Py_DECREF(self);
  }
#else
  (void)done;
#endif
  return r;
}

static PyObject *tli_length_hint(TypedListIterObject *it, PyObject *unused) {
  (void)unused;
  Py_ssize_t n = 0;
  TypedListObject *self = it->list;
  if (self != NULL) {
    Py_BEGIN_CRITICAL_SECTION(self);
    if (it->pos >= 0)
      n = (Py_ssize_t)edgert_list_len(self->l) - it->pos;
    Py_END_CRITICAL_SECTION();
  }
  return PyLong_FromSsize_t(n < 0 ? 0 : n);
}

static PyMethodDef tli_methods[] = {
    {"__length_hint__", (PyCFunction)tli_length_hint, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TypedListIterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.TypedListIterator",
    .tp_basicsize = sizeof(TypedListIterObject),
    .tp_dealloc = (destructor)tli_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)tli_next,
    .tp_methods = tli_methods,
};

PyTypeObject EdgertPy_TypedListType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.TypedList",
    .tp_basicsize = sizeof(TypedListObject),
    .tp_dealloc = (destructor)tl_dealloc,
    .tp_repr = (reprfunc)tl_repr,
    .tp_as_sequence = &tl_as_sequence,
    .tp_as_mapping = &tl_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_as_buffer = &tl_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_SEQUENCE,
    .tp_doc = "TypedList(item_type, iterable=(), *, capacity=0)\n--\n\n"
              "A list whose elements share one type and are stored inline in C.\n"
              "item_type: int (int64), float (float64), bool, str, bytes, a registered\n"
              "custom type's name, or object. Numeric lists export the buffer protocol.",
    .tp_richcompare = tl_richcompare,
    .tp_weaklistoffset = offsetof(TypedListObject, weakreflist),
    .tp_iter = (getiterfunc)tl_iter,
    .tp_methods = tl_methods,
    .tp_getset = tl_getset,
    .tp_new = tl_new,
};

int edgert_py_containers_list_init(PyObject *m) {
  if (PyType_Ready(&TypedListIterType) < 0 || PyType_Ready(&EdgertPy_TypedListType) < 0)
    return -1;
  Py_INCREF(&EdgertPy_TypedListType);
  if (PyModule_AddObject(m, "TypedList", (PyObject *)&EdgertPy_TypedListType) < 0) {
    Py_DECREF(&EdgertPy_TypedListType);
    return -1;
  }
  return 0;
}
