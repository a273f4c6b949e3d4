/*
 * isolate.c: the Python face of process isolation's shared memory
 * (edgert/isolate.h): edgert.shared_buffer(nbytes) -> SharedBuffer.
 *
 * A SharedBuffer owns one region from edgert_isolate_shm_alloc: zeroed,
 * page-aligned bytes in a mapping that isolated workers map when a call
 * passes a pointer into it, so numpy arrays over it
 * (np.frombuffer(buf, dtype)) and memoryviews of it are handed to isolated
 * kernels by reference, zero copy; any other buffer is copied in and back.
 *
 * Invariants:
 * - `p` is the region's address for the object's whole life; the region is
 *   freed (edgert_isolate_shm_free) only in dealloc, which runs after the
 *   last buffer view is released (a view holds a reference), so no view
 *   ever outlives the memory it shows.
 * - The region never moves or grows; nothing here needs a lock (`p` and
 *   `n` are set once, before the object is shared).
 */
#include "ext.h"

#include <string.h>

typedef struct {
  PyObject_HEAD
  void *p;
  size_t n;
  Py_ssize_t shape[1];
} SharedBufferObject;

static void sb_dealloc(SharedBufferObject *self) {
  edgert_isolate_shm_free(self->p);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A new SharedBuffer of n (> 0) zeroed bytes, or NULL with an exception. */
static PyObject *sb_make(size_t n) {
  void *p = NULL;
  edgert_clear_error();
  int rc = edgert_isolate_shm_alloc(n, &p);
  if (rc != 0)
    return edgert_py_raise(rc);
  SharedBufferObject *self = PyObject_New(SharedBufferObject, &EdgertPy_SharedBufferType);
  if (self == NULL) {
    edgert_isolate_shm_free(p);
    return NULL;
  }
  self->p = p;
  self->n = n;
  self->shape[0] = (Py_ssize_t)n;
  return (PyObject *)self;
}

/* The size argument: an int > 0 (TypeError, ValueError, OverflowError
 * naming `nbytes`). 0 with *out set, or -1. */
static int nbytes_arg(PyObject *o, size_t *out) {
  if (!PyLong_Check(o) || PyBool_Check(o)) {
    PyErr_Format(PyExc_TypeError, "shared_buffer: nbytes must be an int, not %s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  int ovf = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &ovf);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (ovf > 0) {
    PyErr_Format(PyExc_OverflowError, "shared_buffer: nbytes %R is too large", o);
    return -1;
  }
  if (ovf < 0 || v <= 0) {
    PyErr_Format(PyExc_ValueError, "shared_buffer: nbytes must be > 0, not %R", o);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

static PyObject *shared_buffer(PyObject *mod, PyObject *arg) {
  (void)mod;
  size_t n;
  if (nbytes_arg(arg, &n) < 0)
    return NULL;
  return sb_make(n);
}

/* _shared_buffer_from(data): a SharedBuffer holding a copy of `data` (the
 * unpickling path; an empty one cannot exist, so data must not be empty). */
static PyObject *shared_buffer_from(PyObject *mod, PyObject *arg) {
  (void)mod;
  Py_buffer v;
  if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0)
    return NULL;
  if (v.len == 0) {
    PyBuffer_Release(&v);
    PyErr_SetString(PyExc_ValueError, "shared_buffer: nbytes must be > 0, not 0");
    return NULL;
  }
  PyObject *sb = sb_make((size_t)v.len);
  if (sb != NULL)
    memcpy(((SharedBufferObject *)sb)->p, v.buf, (size_t)v.len);
  PyBuffer_Release(&v);
  return sb;
}

static int sb_getbuffer(SharedBufferObject *self, Py_buffer *view, int flags) {
  if (PyBuffer_FillInfo(view, (PyObject *)self, self->p, (Py_ssize_t)self->n, 0, flags) < 0)
    return -1;
  return 0;
}

static PyBufferProcs sb_as_buffer = {
    .bf_getbuffer = (getbufferproc)sb_getbuffer,
    .bf_releasebuffer = NULL,
};

static Py_ssize_t sb_length(SharedBufferObject *self) {
  return (Py_ssize_t)self->n;
}

static PySequenceMethods sb_as_sequence = {
    .sq_length = (lenfunc)sb_length,
};

static PyObject *sb_get_nbytes(SharedBufferObject *self, void *c) {
  (void)c;
  return PyLong_FromSize_t(self->n);
}

static PyObject *sb_get_address(SharedBufferObject *self, void *c) {
  (void)c;
  return PyLong_FromVoidPtr(self->p);
}

/* Pickles as a copy of its bytes, in new shared memory where it unpickles. */
static PyObject *sb_reduce(SharedBufferObject *self, PyObject *unused) {
  (void)unused;
  PyObject *mod = PyImport_ImportModule("edgert._edgert");
  PyObject *fn = mod ? PyObject_GetAttrString(mod, "_shared_buffer_from") : NULL;
  Py_XDECREF(mod);
  if (fn == NULL)
    return NULL;
  return Py_BuildValue("N(N)", fn, PyBytes_FromStringAndSize(self->p, (Py_ssize_t)self->n));
}

static PyObject *sb_repr(SharedBufferObject *self) {
  return PyUnicode_FromFormat("<edgert.SharedBuffer %zu bytes at %p>", self->n, self->p);
}

static PyGetSetDef sb_getset[] = {
    {"nbytes", (getter)sb_get_nbytes, NULL, "Its size in bytes.", NULL},
    {"address", (getter)sb_get_address, NULL,
     "The address of its first byte (page-aligned; fixed for its life).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef sb_methods[] = {
    {"__reduce__", (PyCFunction)sb_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyTypeObject EdgertPy_SharedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.SharedBuffer",
    .tp_basicsize = sizeof(SharedBufferObject),
    .tp_dealloc = (destructor)sb_dealloc,
    .tp_repr = (reprfunc)sb_repr,
    .tp_as_sequence = &sb_as_sequence,
    .tp_as_buffer = &sb_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Zeroed, page-aligned bytes in shared memory (edgert.shared_buffer(nbytes)): "
              "a writable buffer of format 'B' that isolated workers get by reference, zero "
              "copy (np.frombuffer(buf, dtype) gives an array over it). Freed when the last "
              "reference and view go. Pickles as a copy.",
    .tp_getset = sb_getset,
    .tp_methods = sb_methods,
};

static PyMethodDef isolate_functions[] = {
    {"shared_buffer", (PyCFunction)shared_buffer, METH_O,
     "shared_buffer(nbytes) -> SharedBuffer\n\nnbytes (> 0) zeroed bytes in shared memory: "
     "arguments of isolated calls that point into it are passed by reference, zero copy "
     "(np.frombuffer(edgert.shared_buffer(8 * n), dtype='f8') is such an array)."},
    {"_shared_buffer_from", (PyCFunction)shared_buffer_from, METH_O,
     "A SharedBuffer holding a copy of a buffer (unpickling)."},
    {NULL, NULL, 0, NULL},
};

int edgert_py_isolate_init(PyObject *m) {
  if (PyType_Ready(&EdgertPy_SharedBufferType) < 0 ||
      PyModule_AddObjectRef(m, "SharedBuffer", (PyObject *)&EdgertPy_SharedBufferType) < 0 ||
      PyModule_AddFunctions(m, isolate_functions) < 0)
    return -1;
  return 0;
}
