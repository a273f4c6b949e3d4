/*
 * struct.c (extension): ctypes.Structure classes as contract types.
 *
 * The layout itself is the core's (src/struct.c: defined once per name,
 * never freed); this file only remembers which Python classes are which
 * layout, in two dicts filled by define_struct: `class_layouts` (class ->
 * layout address) for argument checks, and `layout_classes` (layout address
 * -> the first class defined with it) for results and for contracts read
 * from manifests. Both only grow, as the core's list does.
 *
 * Invariants:
 * - An argument of struct type S is accepted only when its class (or the
 *   nearest base class the dicts know, with the same size) was defined as
 *   S's very layout: the check is a pointer compare after one dict lookup.
 * - POINTER(S) buffers: a ctypes instance or array of a class of S's
 *   layout, a buffer whose item format the core reads as S
 *   (edgert_struct_check_format: a TypedList of S, a numpy structured
 *   array), or raw bytes (format 'B', 'b' or 'c' with 1-byte items) whose
 *   length is a multiple of sizeof(S).
 */
#include "conv.h"
#include "ext.h"

#include <string.h>

static PyObject *class_layouts;  /* {class: int address} */
static PyObject *layout_classes; /* {int address: class} */

const edgert_struct_t *edgert_py_struct_of_type(PyTypeObject *tp) {
  if (class_layouts == NULL)
    return NULL;
  for (; tp != NULL; tp = tp->tp_base) {
    PyObject *v = PyDict_GetItemWithError(class_layouts, (PyObject *)tp); /* borrowed */
    if (v != NULL)
      return PyLong_AsVoidPtr(v);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return NULL;
    }
  }
  return NULL;
}

PyObject *edgert_py_struct_class(const edgert_struct_t *s) {
  PyObject *key = PyLong_FromVoidPtr((void *)(uintptr_t)s);
  if (key == NULL)
    return NULL;
  PyObject *cls = layout_classes ? PyDict_GetItemWithError(layout_classes, key) : NULL;
  Py_DECREF(key);
  if (cls == NULL && !PyErr_Occurred())
    PyErr_Format(PyExc_TypeError, "struct %s has no Python class (define it from a "
                 "ctypes.Structure or read it from a manifest first)", edgert_struct_name(s));
  Py_XINCREF(cls);
  return cls;
}

PyObject *edgert_py_struct_result(const edgert_struct_t *s, const void *p) {
  PyObject *cls = edgert_py_struct_class(s);
  if (cls == NULL)
    return NULL;
  PyObject *o = PyObject_CallNoArgs(cls);
  Py_DECREF(cls);
  if (o == NULL)
    return NULL;
  Py_buffer view;
  if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) {
    Py_DECREF(o);
    return NULL;
  }
  if ((size_t)view.len != edgert_struct_size(s)) {
    PyBuffer_Release(&view);
    PyErr_Format(PyExc_TypeError, "%.100s is %zd bytes, struct %s %zu", Py_TYPE(o)->tp_name,
                 view.len, edgert_struct_name(s), edgert_struct_size(s));
    Py_DECREF(o);
    return NULL;
  }
  memcpy(view.buf, p, (size_t)view.len);
  PyBuffer_Release(&view);
  return o;
}

/* ctypes keeps an instance's address right after the object header (its
 * CDataObject's b_ptr, and b_size three fields on) in every CPython this
 * builds for; bptr_verified says this process checked that against the
 * buffer protocol (define_struct does, once), so the by-value lane can read
 * it without building a buffer. */
int edgert_py_bptr_ok = -1; /* -1 unknown, 0 no, 1 yes */
#define bptr_verified edgert_py_bptr_ok
typedef edgert_py_cdata_t cdata_head_t;

static void verify_bptr(PyObject *cls) {
  if (bptr_verified >= 0)
    return;
  PyObject *o = PyObject_CallNoArgs(cls);
  Py_buffer view;
  if (o == NULL || PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    Py_XDECREF(o);
    return;
  }
  const cdata_head_t *h = (const cdata_head_t *)o;
  bptr_verified = Py_TYPE(o)->tp_basicsize >= (Py_ssize_t)sizeof(cdata_head_t) &&
                  h->b_ptr == view.buf && h->b_size == view.len;
  PyBuffer_Release(&view);
  Py_DECREF(o);
}

int edgert_py_struct_arg(const edgert_struct_t *s, PyObject *o, Py_buffer *view) {
  if (edgert_py_struct_of_type(Py_TYPE(o)) != s)
    return CV_TYPE;
  if (EDGERT__LIKELY(bptr_verified == 1)) { /* the object's own bytes, no view */
    const cdata_head_t *h = (const cdata_head_t *)o;
    if ((size_t)h->b_size != edgert_struct_size(s))
      return CV_TYPE;
    view->obj = NULL;
    view->buf = h->b_ptr;
    return CV_OK;
  }
  if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    return CV_TYPE;
  }
  if ((size_t)view->len != edgert_struct_size(s)) { /* a subclass that added fields */
    PyBuffer_Release(view);
    return CV_TYPE;
  }
  return CV_OK;
}

/* The class of a ctypes array's items, or NULL (no exception). */
static PyTypeObject *array_item_type(PyObject *o) {
  PyObject *tp = (PyObject *)Py_TYPE(o);
  PyObject *it = PyObject_GetAttrString(tp, "_type_");
  if (it == NULL) {
    PyErr_Clear();
    return NULL;
  }
  PyTypeObject *r = PyType_Check(it) ? (PyTypeObject *)it : NULL;
  Py_DECREF(it); /* the array type holds it */
  return r;
}

int edgert_py_struct_buffer(const edgert_struct_t *s, PyObject *o, Py_buffer *view,
                            conv_err_t *e) {
  size_t size = edgert_struct_size(s);
  if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    PyErr_Clear();
    return CV_NOTCONTIG;
  }
  const char *f = view->format ? view->format : "B";
  /* the fast case: items in the layout's own format (a TypedList of S) */
  if (view->format == edgert_struct_format(s) ||
      ((size_t)view->itemsize == size && strcmp(f, edgert_struct_format(s)) == 0))
    return CV_OK;
  /* ctypes: the class says what the items are (its formats omit padding) */
  const edgert_struct_t *by_class = edgert_py_struct_of_type(Py_TYPE(o));
  if (by_class == NULL && view->ndim >= 1 && f[0] != '\0') {
    PyTypeObject *it = array_item_type(o);
    if (it != NULL)
      by_class = edgert_py_struct_of_type(it);
  }
  if (by_class == s && (size_t)view->itemsize == size)
    return CV_OK;
  /* raw bytes: a whole number of items */
  if (view->itemsize == 1 && (strcmp(f, "B") == 0 || strcmp(f, "b") == 0 ||
                              strcmp(f, "c") == 0) && by_class == NULL) {
    if ((size_t)view->len % size == 0)
      return CV_OK;
    snprintf(e->why, sizeof e->why, "%zd bytes are not a whole number of %zu-byte struct %s items",
             view->len, size, edgert_struct_name(s));
  } else if (by_class != NULL && by_class != s) {
    snprintf(e->why, sizeof e->why, "its items are struct %s, not struct %s",
             edgert_struct_name(by_class), edgert_struct_name(s));
  } else if (by_class == s) {
    snprintf(e->why, sizeof e->why, "its items are %zd bytes, struct %s is %zu",
             view->itemsize, edgert_struct_name(s), size);
  } else if (edgert_struct_check_format(s, view->format, (size_t)view->itemsize) == 0) {
    return CV_OK;
  } else {
    snprintf(e->why, sizeof e->why, "%s", edgert_last_error());
  }
  size_t k = 0;
  for (; f[k] != '\0' && k + 1 < sizeof e->fmt; k++)
    e->fmt[k] = f[k];
  e->fmt[k] = '\0';
  e->itemsize = view->itemsize;
  PyBuffer_Release(view);
  return CV_FORMAT;
}

/* ---- functions for the package ------------------------------------------------ */

/* define_struct(cls or None, name, [(field, type, offset, count)], size, align)
 * -> layout address. Raises TypeError naming the problem (the core's
 * message) or ValueError for a conflicting definition. */
static PyObject *py_define_struct(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *cls, *fields;
  const char *name;
  Py_ssize_t size, align;
  if (!PyArg_ParseTuple(args, "OsOnn:define_struct", &cls, &name, &fields, &size, &align))
    return NULL;
  PyObject *seq = PySequence_Fast(fields, "define_struct: fields must be a sequence");
  if (seq == NULL)
    return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > EDGERT_STRUCT_MAX_FIELDS)
    n = EDGERT_STRUCT_MAX_FIELDS + 1; /* the core names the limit */
  edgert_struct_field_desc_t *d = PyMem_Calloc((size_t)(n ? n : 1), sizeof *d);
  if (d == NULL) {
    Py_DECREF(seq);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
    Py_ssize_t off, cnt;
    if (!PyArg_ParseTuple(it, "ssnn:define_struct field", &d[i].name, &d[i].type, &off, &cnt)) {
      PyMem_Free(d);
      Py_DECREF(seq);
      return NULL;
    }
    if (off < 0 || cnt < 0) {
      PyMem_Free(d);
      Py_DECREF(seq);
      PyErr_Format(PyExc_ValueError, "struct %s: field '%s': offset and count must be >= 0",
                   name, d[i].name);
      return NULL;
    }
    d[i].offset = (size_t)off;
    d[i].count = (size_t)cnt;
  }
  const edgert_struct_t *s = NULL;
  if (size < 0 || align < 0) {
    PyMem_Free(d);
    Py_DECREF(seq);
    PyErr_Format(PyExc_ValueError, "struct %s: size and align must be >= 0", name);
    return NULL;
  }
  int rc = edgert_struct_define(name, d, (size_t)n, (size_t)size, (size_t)align, &s);
  PyMem_Free(d);
  Py_DECREF(seq);
  if (rc < 0)
    return edgert_py_raise(rc);
  PyObject *addr = PyLong_FromVoidPtr((void *)(uintptr_t)s);
  if (addr == NULL)
    return NULL;
  if (cls != Py_None) {
    verify_bptr(cls);
    if (PyDict_SetItem(class_layouts, cls, addr) < 0 ||
        PyDict_SetDefault(layout_classes, addr, cls) == NULL) {
      Py_DECREF(addr);
      return NULL;
    }
  }
  return addr;
}

/* struct_info(name) -> (name, size, align, [(field, type, offset, count)],
 * format, by_value_problem or None, class or None), or None if undefined. */
static PyObject *py_struct_info(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (name == NULL)
    return NULL;
  const edgert_struct_t *s;
  if (edgert_struct_find(name, &s) < 0)
    Py_RETURN_NONE;
  size_t n = edgert_struct_nfields(s);
  PyObject *fields = PyList_New((Py_ssize_t)n);
  if (fields == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const edgert_struct_field_t *f = edgert_struct_field(s, i);
    char tn[EDGERT_ABI_TYPE_NAME_MAX];
    if (edgert_abi_type_name(&f->type, tn, sizeof tn) != 0) {
      Py_DECREF(fields);
      return edgert_py_raise(EDGERT_EINVAL);
    }
    PyObject *t = Py_BuildValue("(ssnn)", f->name, tn, (Py_ssize_t)f->offset,
                                (Py_ssize_t)f->count);
    if (t == NULL) {
      Py_DECREF(fields);
      return NULL;
    }
    PyList_SET_ITEM(fields, (Py_ssize_t)i, t);
  }
  PyObject *cls = edgert_py_struct_class(s);
  if (cls == NULL) {
    PyErr_Clear();
    cls = Py_NewRef(Py_None);
  }
  const char *problem = edgert_struct_by_value_problem(s);
  return Py_BuildValue("(snnNszN)", edgert_struct_name(s), (Py_ssize_t)edgert_struct_size(s),
                       (Py_ssize_t)edgert_struct_align(s), fields, edgert_struct_format(s),
                       problem, cls);
}

/* bind_struct_class(cls, name): makes `cls` a class of the defined struct
 * `name` (from_manifest builds classes for manifest structs). */
static PyObject *py_bind_struct_class(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *cls;
  const char *name;
  if (!PyArg_ParseTuple(args, "Os:bind_struct_class", &cls, &name))
    return NULL;
  const edgert_struct_t *s;
  if (edgert_struct_find(name, &s) < 0)
    return edgert_py_raise(EDGERT_ENOTFOUND);
  PyObject *addr = PyLong_FromVoidPtr((void *)(uintptr_t)s);
  if (addr == NULL)
    return NULL;
  verify_bptr(cls);
  int bad = PyDict_SetItem(class_layouts, cls, addr) < 0 ||
            PyDict_SetDefault(layout_classes, addr, cls) == NULL;
  Py_DECREF(addr);
  if (bad)
    return NULL;
  Py_RETURN_NONE;
}

/* register_struct_type(name) -> "struct.NAME": the defined struct `name`
 * as an inline container type (edgert_type_register_struct). */
static PyObject *py_register_struct_type(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (name == NULL)
    return NULL;
  const edgert_struct_t *s;
  const edgert_type_t *t;
  if (edgert_struct_find(name, &s) < 0)
    return edgert_py_raise(EDGERT_ENOTFOUND);
  int rc = edgert_type_register_struct(s, &t);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyUnicode_FromString(edgert_type_name(t));
}

static PyMethodDef struct_functions[] = {
    {"register_struct_type", py_register_struct_type, METH_O,
     "register_struct_type(name) -> type name: registers the defined struct as a container "
     "type."},
    {"define_struct", py_define_struct, METH_VARARGS,
     "define_struct(cls, name, fields, size, align) -> address: defines a struct layout in "
     "libedgert (fields: (name, type name, offset, count)) and maps cls to it."},
    {"struct_info", py_struct_info, METH_O,
     "struct_info(name) -> (name, size, align, fields, format, by_value_problem, cls) or None."},
    {"bind_struct_class", py_bind_struct_class, METH_VARARGS,
     "bind_struct_class(cls, name): maps cls to the defined struct name."},
    {NULL, NULL, 0, NULL},
};

int edgert_py_struct_init(PyObject *m) {
  class_layouts = PyDict_New();
  layout_classes = PyDict_New();
  if (class_layouts == NULL || layout_classes == NULL)
    return -1;
  return PyModule_AddFunctions(m, struct_functions);
}
