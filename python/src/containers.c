/*
 * containers.c: what TypedDict and TypedList share: element type specs,
 * conversions between Python objects and the core's inline C
 * representations, register_type, and the module wiring. The container
 * types themselves are in containers_dict.c and containers_list.c.
 *
 * Conversions (documented in docs/containers.md): int accepts int (and
 * bool, and objects with __index__) within int64, else OverflowError;
 * float accepts float and int; bool accepts bool only; str accepts str
 * (stored as UTF-8); bytes accepts bytes; a custom type accepts what its
 * check callback accepts, or bytes of exactly its size (its raw inline
 * form, which is also how it reads back without a box callback).
 */
#include "conv.h"
#include "ext.h"

PyObject *EdgertPy_GenericDict, *EdgertPy_GenericList, *EdgertPy_KeysView,
    *EdgertPy_ItemsView, *EdgertPy_MappingABC;

static PyObject *name_object; /* "object" */

int edgert_py_elem_resolve(PyObject *spec, edgert_py_elem_t *out) {
  const char *name = NULL;
  PyObject *canon = NULL;
  const edgert_struct_t *layout;
  char struct_name[EDGERT_TYPE_NAME_MAX + 1];
  if (PyType_Check(spec)) {
    if (spec == (PyObject *)&PyLong_Type)
      name = "int";
    else if (spec == (PyObject *)&PyFloat_Type)
      name = "float";
    else if (spec == (PyObject *)&PyBool_Type)
      name = "bool";
    else if (spec == (PyObject *)&PyUnicode_Type)
      name = "str";
    else if (spec == (PyObject *)&PyBytes_Type)
      name = "bytes";
    else if (spec == (PyObject *)&PyBaseObject_Type)
      name = "object";
    else if ((layout = edgert_py_struct_of_type((PyTypeObject *)spec)) != NULL) {
      snprintf(struct_name, sizeof struct_name, "struct.%s", edgert_struct_name(layout));
      const edgert_type_t *st;
      if (edgert_type_find(struct_name, &st) < 0 || edgert_type_layout(st) != layout) {
        PyErr_Format(PyExc_ValueError, "element type %.100s is a struct that is not registered "
                     "as a container type: call edgert.register_struct(%.100s) first",
                     ((PyTypeObject *)spec)->tp_name, ((PyTypeObject *)spec)->tp_name);
        return -1;
      }
      name = struct_name;
    } else if (PyObject_HasAttrString(spec, "_fields_")) {
      PyErr_Format(PyExc_ValueError, "element type %.100s is a ctypes struct that is not "
                   "registered as a container type: call edgert.register_struct(%.100s) first",
                   ((PyTypeObject *)spec)->tp_name, ((PyTypeObject *)spec)->tp_name);
      return -1;
    } else {
      PyErr_Format(PyExc_TypeError,
                   "unsupported element type %.100s: use int, float, bool, str, bytes, object "
                   "or the name of a registered custom type",
                   ((PyTypeObject *)spec)->tp_name);
      return -1;
    }
  } else if (PyUnicode_Check(spec)) {
    name = PyUnicode_AsUTF8(spec);
    if (name == NULL)
      return -1;
  } else if (PyBytes_Check(spec)) {
    name = PyBytes_AS_STRING(spec);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "element type must be a type or a type name, not %.100s",
                 Py_TYPE(spec)->tp_name);
    return -1;
  }
  memset(out, 0, sizeof *out);
  if (strcmp(name, "object") == 0) {
    out->spec = Py_NewRef((PyObject *)&PyBaseObject_Type);
    return 0;
  }
  const edgert_type_t *t;
  if (edgert_type_find(name, &t) < 0) {
    PyErr_Format(PyExc_ValueError, "unknown element type '%s': not a built-in type and no "
                 "custom type of that name is registered", name);
    return -1;
  }
  out->type = t;
  out->kind = (int)edgert_type_kind(t);
  out->size = edgert_type_size(t);
  switch (out->kind) {
  case EDGERT_KIND_INT64:
    canon = Py_NewRef((PyObject *)&PyLong_Type);
    break;
  case EDGERT_KIND_FLOAT64:
    canon = Py_NewRef((PyObject *)&PyFloat_Type);
    break;
  case EDGERT_KIND_BOOL:
    canon = Py_NewRef((PyObject *)&PyBool_Type);
    break;
  case EDGERT_KIND_STR:
    canon = Py_NewRef((PyObject *)&PyUnicode_Type);
    break;
  case EDGERT_KIND_BYTES:
    canon = Py_NewRef((PyObject *)&PyBytes_Type);
    break;
  default:
    if (edgert_type_layout(t) != NULL) /* a struct: its class */
      canon = edgert_py_struct_class(edgert_type_layout(t));
    else
      canon = PyUnicode_FromString(edgert_type_name(t));
    if (canon == NULL)
      return -1;
  }
  out->spec = canon;
  return 0;
}

const char *edgert_py_elem_name(const edgert_py_elem_t *e) {
  switch (e->kind) {
  case 0:
    return "object";
  case EDGERT_KIND_INT64:
    return "int";
  case EDGERT_KIND_FLOAT64:
    return "float";
  case EDGERT_KIND_BOOL:
    return "bool";
  case EDGERT_KIND_STR:
    return "str";
  case EDGERT_KIND_BYTES:
    return "bytes";
  default:
    return edgert_type_name(e->type);
  }
}

const char *edgert_py_elem_format(const edgert_py_elem_t *e) {
  switch (e->kind) {
  case EDGERT_KIND_INT64:
    return "q";
  case EDGERT_KIND_FLOAT64:
    return "d";
  case EDGERT_KIND_BOOL:
    return "?";
  default:
    return NULL;
  }
}

int edgert_py_elem_buffer_is(const edgert_py_elem_t *e, const char *format, Py_ssize_t itemsize) {
  edgert_ctype_t want;
  switch (e->kind) {
  case EDGERT_KIND_INT64:
    want = EDGERT_CT_LONG;
    break;
  case EDGERT_KIND_FLOAT64:
    want = EDGERT_CT_DOUBLE;
    break;
  case EDGERT_KIND_BOOL:
    want = EDGERT_CT_BOOL;
    break;
  default:
    return 0;
  }
  edgert_buffer_item_t it;
  return itemsize >= 0 && edgert_buffer_item_parse(format, (size_t)itemsize, &it) == 0 &&
         it.code == want && it.size == e->size;
}

static int wrong_type(const edgert_py_elem_t *e, PyObject *o, const char *role) {
  PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", role, edgert_py_elem_name(e),
               Py_TYPE(o)->tp_name);
  return -1;
}

static int to_int64(PyObject *o, int64_t *out, const char *role) {
  int overflow = 0;
  long long v;
  if (PyLong_Check(o)) {
    v = PyLong_AsLongLongAndOverflow(o, &overflow);
  } else {
    PyObject *i = PyNumber_Index(o);
    if (i == NULL)
      return -1;
    v = PyLong_AsLongLongAndOverflow(i, &overflow);
    Py_DECREF(i);
  }
  if (overflow) {
    PyErr_Format(PyExc_OverflowError, "%s does not fit in int64: %R", role, o);
    return -1;
  }
  if (v == -1 && PyErr_Occurred())
    return -1;
  *out = v;
  return 0;
}

int edgert_py_to_c(const edgert_py_elem_t *e, PyObject *o, void *out, const char *role) {
  switch (e->kind) {
  case EDGERT_KIND_INT64:
    if (PyFloat_Check(o) || (!PyLong_Check(o) && !PyIndex_Check(o)))
      return wrong_type(e, o, role);
    return to_int64(o, out, role);
  case EDGERT_KIND_FLOAT64: {
    double d;
    if (PyFloat_Check(o)) {
      d = PyFloat_AS_DOUBLE(o);
    } else if (PyLong_Check(o)) {
      d = PyLong_AsDouble(o);
      if (d == -1.0 && PyErr_Occurred())
        return -1;
    } else {
      return wrong_type(e, o, role);
    }
    memcpy(out, &d, sizeof d);
    return 0;
  }
  case EDGERT_KIND_BOOL:
    if (!PyBool_Check(o))
      return wrong_type(e, o, role);
    *(unsigned char *)out = o == Py_True;
    return 0;
  case EDGERT_KIND_STR: {
    if (!PyUnicode_Check(o))
      return wrong_type(e, o, role);
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);
    if (p == NULL)
      return -1;
    edgert_bytes_t b = {(char *)p, (size_t)n};
    memcpy(out, &b, sizeof b);
    return 0;
  }
  case EDGERT_KIND_BYTES: {
    if (!PyBytes_Check(o))
      return wrong_type(e, o, role);
    edgert_bytes_t b = {PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o)};
    memcpy(out, &b, sizeof b);
    return 0;
  }
  case EDGERT_KIND_CUSTOM: {
    const edgert_struct_t *layout = edgert_type_layout(e->type);
    if (layout != NULL) { /* an instance of its class, or its bytes; padding zeroed */
      Py_buffer view;
      if (edgert_py_struct_of_type(Py_TYPE(o)) == layout || PyBytes_Check(o)) {
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0)
          return -1;
        int fits = (size_t)view.len == e->size;
        if (fits)
          edgert_struct_copy_value(layout, out, view.buf);
        PyBuffer_Release(&view);
        if (fits)
          return 0;
      }
      return wrong_type(e, o, role);
    }
    int r = edgert_type_check(e->type, o);
    if (r == EDGERT_EFAILED) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "the check callback of %s failed for %.100s",
                     edgert_py_elem_name(e), Py_TYPE(o)->tp_name);
      return -1;
    }
    if (r == 1) {
      edgert_type_copy(e->type, out, o);
      return PyErr_Occurred() ? -1 : 0;
    }
    if (PyErr_Occurred())
      return -1;
    if (PyBytes_Check(o) && (size_t)PyBytes_GET_SIZE(o) == e->size) {
      memcpy(out, PyBytes_AS_STRING(o), e->size);
      return 0;
    }
    return wrong_type(e, o, role);
  }
  default:
    PyErr_SetString(PyExc_SystemError, "object elements are not stored inline");
    return -1;
  }
}

PyObject *edgert_py_from_c(const edgert_py_elem_t *e, const void *src) {
  switch (e->kind) {
  case EDGERT_KIND_INT64: {
    int64_t v;
    memcpy(&v, src, 8);
    return PyLong_FromLongLong(v);
  }
  case EDGERT_KIND_FLOAT64: {
    double d;
    memcpy(&d, src, 8);
    return PyFloat_FromDouble(d);
  }
  case EDGERT_KIND_BOOL:
    return Py_NewRef(*(const unsigned char *)src ? Py_True : Py_False);
  case EDGERT_KIND_STR: {
    const edgert_bytes_t *b = src;
    return PyUnicode_DecodeUTF8(b->data ? b->data : "", (Py_ssize_t)b->len, "surrogateescape");
  }
  case EDGERT_KIND_BYTES: {
    const edgert_bytes_t *b = src;
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
  }
  case EDGERT_KIND_CUSTOM: {
    if (edgert_type_layout(e->type) != NULL)
      return edgert_py_struct_result(edgert_type_layout(e->type), src);
    if (!edgert_type_has_box(e->type))
      return PyBytes_FromStringAndSize(src, (Py_ssize_t)e->size);
    void *o = NULL;
    if (edgert_type_box(e->type, src, &o) < 0) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_SystemError, "the box callback of %s failed without an exception",
                     edgert_py_elem_name(e));
      return NULL;
    }
    return (PyObject *)o;
  }
  default:
    PyErr_SetString(PyExc_SystemError, "object elements are not stored inline");
    return NULL;
  }
}

/* ---- module functions -------------------------------------------------- */

static int address_arg(PyObject *o, const char *what, void **out, int optional) {
  if (optional && o == Py_None) {
    *out = NULL;
    return 0;
  }
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "register_type: %s must be a function address (int), not %.100s",
                 what, Py_TYPE(o)->tp_name);
    return -1;
  }
  void *p = PyLong_AsVoidPtr(o);
  if (p == NULL && PyErr_Occurred())
    return -1;
  if (p == NULL) {
    PyErr_Format(PyExc_ValueError, "register_type: %s must not be 0 (NULL)", what);
    return -1;
  }
  *out = p;
  return 0;
}

/* A type name argument (str, or bytes without a NUL) as C text, borrowed
 * from `name`; NULL with TypeError/ValueError naming `fn`. */
static const char *type_name_arg(PyObject *name, const char *fn) {
  if (PyUnicode_Check(name))
    return PyUnicode_AsUTF8(name);
  if (PyBytes_Check(name)) {
    const char *c = PyBytes_AS_STRING(name);
    if (strlen(c) != (size_t)PyBytes_GET_SIZE(name)) {
      PyErr_Format(PyExc_ValueError, "%s: name contains a NUL byte", fn);
      return NULL;
    }
    return c;
  }
  PyErr_Format(PyExc_TypeError, "%s: name must be str or bytes, not %.100s", fn,
               Py_TYPE(name)->tp_name);
  return NULL;
}

static PyObject *py_register_type(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"name", "sizeof_fn", "check_fn", "copy_fn", "box_fn", NULL};
  PyObject *name, *so, *co, *cpo, *bo = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|O:register_type", kwlist, &name, &so,
                                   &co, &cpo, &bo))
    return NULL;
  const char *cname = type_name_arg(name, "register_type");
  if (cname == NULL)
    return NULL;
  void *s, *c, *cp, *b;
  if (address_arg(so, "sizeof_fn", &s, 0) < 0 || address_arg(co, "check_fn", &c, 0) < 0 ||
      address_arg(cpo, "copy_fn", &cp, 0) < 0 || address_arg(bo, "box_fn", &b, 1) < 0)
    return NULL;
  int rc = edgert_register_custom_type_boxed(cname, s, c, cp, b);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

static PyObject *py_unregister_type(PyObject *self, PyObject *name) {
  (void)self;
  const char *cname = type_name_arg(name, "unregister_type");
  if (cname == NULL)
    return NULL;
  int rc;
  /* May dlclose the module that held the callbacks (its destructors run). */
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_type_unregister(cname);
  Py_END_ALLOW_THREADS
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

static PyObject *py_type_info(PyObject *self, PyObject *spec) {
  (void)self;
  edgert_py_elem_t e;
  if (edgert_py_elem_resolve(spec, &e) < 0)
    return NULL;
  PyObject *r = Py_BuildValue("{s:s,s:n,s:O,s:O}", "name", edgert_py_elem_name(&e), "size",
                              (Py_ssize_t)e.size, "spec", e.spec, "boxed",
                              (e.kind == EDGERT_KIND_CUSTOM && edgert_type_has_box(e.type))
                                  ? Py_True
                                  : Py_False);
  Py_DECREF(e.spec);
  return r;
}

/* Converts `value` to type `spec` and back: the check a generic container
 * makes on its typed side, and the normal form it stores. */
static PyObject *py_coerce(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *spec, *value;
  const char *role = "value";
  if (!PyArg_ParseTuple(args, "OO|s:_coerce", &spec, &value, &role))
    return NULL;
  edgert_py_elem_t e;
  if (edgert_py_elem_resolve(spec, &e) < 0)
    return NULL;
  Py_DECREF(e.spec);
  if (e.kind == 0)
    return Py_NewRef(value);
  unsigned char stackbuf[256];
  unsigned char *buf = e.size <= sizeof stackbuf ? stackbuf : PyMem_Malloc(e.size);
  if (buf == NULL)
    return PyErr_NoMemory();
  PyObject *r = NULL;
  if (edgert_py_to_c(&e, value, buf, role) == 0) {
    if (e.kind == EDGERT_KIND_STR || e.kind == EDGERT_KIND_BYTES)
      r = Py_NewRef(value); /* already the exact object */
    else
      r = edgert_py_from_c(&e, buf);
  }
  if (buf != stackbuf)
    PyMem_Free(buf);
  return r;
}

/* The helpers are set once, by the first call (edgert.containers makes it
 * at import), and never replaced: the containers read them without a lock,
 * so on a free-threaded build a replaced (and freed) one could still be in
 * use in another thread. A later call changes nothing. */
#ifdef Py_GIL_DISABLED
static PyMutex setup_lock;
#endif

static PyObject *py_containers_setup(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *gd, *gl, *kv, *iv, *mabc;
  if (!PyArg_ParseTuple(args, "OOOOO:_containers_setup", &gd, &gl, &kv, &iv, &mabc))
    return NULL;
#ifdef Py_GIL_DISABLED
  PyMutex_Lock(&setup_lock);
#endif
  if (EdgertPy_GenericDict == NULL) {
    EdgertPy_GenericList = Py_NewRef(gl);
    EdgertPy_KeysView = Py_NewRef(kv);
    EdgertPy_ItemsView = Py_NewRef(iv);
    EdgertPy_MappingABC = Py_NewRef(mabc);
    EdgertPy_GenericDict = Py_NewRef(gd);
  }
#ifdef Py_GIL_DISABLED
  PyMutex_Unlock(&setup_lock);
#endif
  Py_RETURN_NONE;
}

/* _buffer_item(obj) or _buffer_item(format, itemsize): what the core's one
 * format parser reads in obj's buffer (or in a format string and item size):
 * (canonical ctype name, None) for one scalar item ("c_ssize_t" for "<q";
 * "half" for 'e', which has no ctype), (None, reason) otherwise. For tests
 * and tools: every buffer entry point decides through the same call. */
static PyObject *py_buffer_item(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *o;
  Py_ssize_t itemsize = -1;
  if (!PyArg_ParseTuple(args, "O|n:_buffer_item", &o, &itemsize))
    return NULL;
  edgert_buffer_item_t it;
  int rc;
  if (itemsize >= 0) {
    const char *f = PyUnicode_AsUTF8(o);
    if (f == NULL)
      return NULL;
    rc = edgert_buffer_item_parse(f, (size_t)itemsize, &it);
  } else {
    Py_buffer v;
    if (PyObject_GetBuffer(o, &v, PyBUF_RECORDS_RO) < 0)
      return NULL;
    rc = edgert_buffer_item_parse(v.format, (size_t)v.itemsize, &it);
    PyBuffer_Release(&v);
  }
  if (rc != 0)
    return edgert_py_raise(rc);
  if (it.kind == EDGERT_ITEM_NONE)
    return Py_BuildValue("(Os)", Py_None, it.reason);
  if (it.code == EDGERT_CT_VOID)
    return Py_BuildValue("(sO)", "half", Py_None);
  edgert_abi_type_t t = {.code = it.code, .pointee = EDGERT_CT_VOID, .depth = 0};
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  if (edgert_abi_type_name(&t, name, sizeof name) != 0)
    return edgert_py_raise(EDGERT_EINVAL);
  return Py_BuildValue("(sO)", name, Py_None);
}

static PyMethodDef container_functions[] = {
    {"_buffer_item", py_buffer_item, METH_VARARGS,
     "_buffer_item(obj_or_format, itemsize=None) -> (ctype name or None, reason or None): the core's reading of obj's "
     "buffer item format."},
    {"register_type", (PyCFunction)(void (*)(void))py_register_type,
     METH_VARARGS | METH_KEYWORDS,
     "register_type(name, sizeof_fn, check_fn, copy_fn, box_fn=None)\n--\n\n"
     "Register a custom fixed-size element type from C function addresses (ints)."},
    {"unregister_type", py_unregister_type, METH_O,
     "unregister_type(name)\n--\n\n"
     "Remove a custom element type and let go of the module its callbacks live in. "
     "BufferError while a TypedList or TypedDict of it exists."},
    {"_type_info", py_type_info, METH_O, "Resolve an element type spec."},
    {"_coerce", py_coerce, METH_VARARGS, "Check and normalize a value for an element type."},
    {"_containers_setup", py_containers_setup, METH_VARARGS, "Wire in the Python helpers."},
    {NULL, NULL, 0, NULL}};

int edgert_py_containers_init(PyObject *m) {
  name_object = PyUnicode_InternFromString("object");
  if (name_object == NULL)
    return -1;
  if (PyModule_AddFunctions(m, container_functions) < 0)
    return -1;
  if (edgert_py_containers_dict_init(m) < 0 || edgert_py_containers_list_init(m) < 0)
    return -1;
  return 0;
}

int edgert_py_count_arg(PyObject *arg, const char *what, size_t *out) {
  Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
  if (n == -1 && PyErr_Occurred())
    return -1;
  if (n < 0) {
    PyErr_Format(PyExc_ValueError, "%s must be >= 0, not %zd", what, n);
    return -1;
  }
  *out = (size_t)n;
  return 0;
}
