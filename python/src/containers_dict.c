/*
 * containers_dict.c: TypedDict, a MutableMapping over the core's
 * edgert_dict_t, with its iterators and its values view (which exports the
 * values array through the buffer protocol).
 *
 * Invariants: `d` is NULL only for the generic (object) subclass, whose
 * Python methods replace every method here. Every key and value is
 * converted completely before the core dict is touched, so a wrong-typed
 * key or value, or a callback that raises, changes nothing; batches
 * (update, set_many) go through edgert_dict_set_many, which is all or
 * nothing. An exported values buffer pins the core dict.
 *
 * Threads: the core dict is not thread-safe, so every read or change of
 * it (lookups included: the inline cache and its counters change on
 * reads) runs in a critical section on the TypedDict, as CPython's dict
 * does (EDGERT_PY_LOCKED wrappers; plain code with a GIL). Its iterators
 * and its values view keep their state in the same critical section.
 * A section is suspended only while its thread blocks (in Python code a
 * conversion runs, say), where the GIL could have been released before
 * too, and no core call is split by that: the all-or-nothing rules above
 * hold between threads.
 * docs/free-threading.md lists the rules for concurrent use.
 */
#include "ext.h"

#include <stddef.h>

typedef struct {
  PyObject_HEAD edgert_dict_t *d;
  const edgert_dict_view_t *view; /* the core's inline-lookup view, NULL with d */
  edgert_py_elem_t k, v;
  PyObject *fbox; /* float handed out again while nobody holds it */
  /* cache='on': lookups go through the core's inline cache (the ring).
   * Otherwise they use the inline probe, which from Python is never slower
   * than the ring (bench_containers.py measures both), so 'auto' never
   * makes a lookup slower. */
  int use_ring;
  int int_float; /* int64 keys, float64 values, a core dict: the fast path */
  PyObject *weakreflist;
} TypedDictObject;

typedef struct {
  PyObject_HEAD TypedDictObject *dict; /* NULL when exhausted (builds with a GIL) */
  edgert_dict_iter_t it;               /* in the dict's critical section, as is: */
  int exhausted;
  int mode; /* 0 keys, 1 values, 2 items, 3 reversed keys */
} TypedDictIterObject;

typedef struct {
  PyObject_HEAD TypedDictObject *dict;
  int keys; /* 1: the pickle's keys exporter (dense fixed-size keys), not values() */
  Py_ssize_t exports;
  Py_ssize_t shape[2], strides[2];
} TypedDictValuesObject;

static PyTypeObject TypedDictIterType, TypedDictValuesType;
static PyObject *str_keys; /* "keys", interned */

#define TD_CHECK(o) PyObject_TypeCheck((o), &EdgertPy_TypedDictType)
#define STACKBUF 256

static int need_core(TypedDictObject *self) {
  if (self->d == NULL) {
    PyErr_SetString(PyExc_TypeError, "this TypedDict(object) method is not available");
    return -1;
  }
  return 0;
}

/* A scratch area for one converted element: on the stack when it fits. */
typedef struct {
  unsigned char stack[STACKBUF];
  unsigned char *p;
} scratch_t;

static void *scratch_get(scratch_t *s, size_t n) {
  s->p = n <= STACKBUF ? s->stack : PyMem_Malloc(n);
  if (s->p == NULL)
    PyErr_NoMemory();
  return s->p;
}
static void scratch_free(scratch_t *s) {
  if (s->p != NULL && s->p != s->stack)
    PyMem_Free(s->p);
  s->p = NULL;
}

/* The dict's hash of a str/bytes key is Python's own (cached in every str
 * and bytes object), so lookups from Python hash nothing. These compute it
 * from the bytes for the core's unhashed paths (set_many, C callers). */
static uint64_t py_bytes_hasher(const char *data, size_t len, void *ud) {
  (void)ud;
  return (uint64_t)Py_HashBuffer(data, (Py_ssize_t)len);
}

static uint64_t py_str_hasher(const char *data, size_t len, void *ud) {
  (void)ud;
  size_t i = 0;
  while (i < len && !(data[i] & 0x80))
    i++;
  if (i == len) /* ASCII: Python hashes exactly these bytes */
    return (uint64_t)Py_HashBuffer(data, (Py_ssize_t)len);
  /* Other text: hash the str it decodes to (the core calls this only from
   * the binding, in the dict's critical section). */
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyObject *s = PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "surrogateescape");
  Py_hash_t h = s ? PyObject_Hash(s) : 0;
  Py_XDECREF(s);
  PyErr_Clear();
  PyErr_Restore(t, v, tb);
  return (uint64_t)h;
}

/* Python's hash of a str/bytes key (the base type's, whatever a subclass
 * overrides). */
static inline uint64_t var_key_hash(const TypedDictObject *self, PyObject *key) {
  if (self->k.kind == EDGERT_KIND_STR)
    return (uint64_t)PyUnicode_Type.tp_hash(key);
  return (uint64_t)PyBytes_Type.tp_hash(key);
}

static inline int var_keys(const TypedDictObject *self) {
  return self->k.kind == EDGERT_KIND_STR || self->k.kind == EDGERT_KIND_BYTES;
}

static PyObject *key_error(PyObject *key) {
  PyObject *t = PyTuple_Pack(1, key);
  if (t != NULL) {
    PyErr_SetObject(PyExc_KeyError, t);
    Py_DECREF(t);
  }
  return NULL;
}

/* Looks key up: the value slot, or NULL with *err 0 (absent) or -1 (an
 * exception: a wrong-typed key). An int key beyond int64 is absent. */
static void *lookup(TypedDictObject *self, PyObject *key, int *err) {
  *err = 0;
  if (self->k.kind == EDGERT_KIND_INT64 && PyLong_CheckExact(key)) {
    int64_t k;
    if (!edgert_py_exact_int64(key, &k))
      return NULL;
    if (self->use_ring)
      return edgert_dict_find_i64(self->d, k);
    return edgert_dict_find_i64_inline(self->view, k);
  }
  if (self->k.kind == EDGERT_KIND_STR && PyUnicode_CheckExact(key)) {
    if (PyUnicode_IS_COMPACT_ASCII(key) && !self->use_ring) {
      /* ASCII is its own UTF-8, and its hash is cached in the object. */
      Py_hash_t h = ((PyASCIIObject *)key)->hash;
      if (h == -1)
        h = PyUnicode_Type.tp_hash(key);
      return edgert_dict_find_bytes_inline(self->view, (const char *)(((PyASCIIObject *)key) + 1),
                                           (size_t)PyUnicode_GET_LENGTH(key), (uint64_t)h);
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(key, &n);
    if (p == NULL) {
      *err = -1;
      return NULL;
    }
    edgert_bytes_t b = {(char *)p, (size_t)n};
    /* The str's own cached hash is the dict's hash: nothing to compute. */
    return edgert_dict_find_hashed(self->d, &b, (uint64_t)PyUnicode_Type.tp_hash(key));
  }
  scratch_t s;
  void *buf = scratch_get(&s, self->k.size);
  if (buf == NULL) {
    *err = -1;
    return NULL;
  }
  void *r = NULL;
  if (edgert_py_to_c(&self->k, key, buf, "TypedDict key") < 0) {
    if (self->k.kind == EDGERT_KIND_INT64 && PyErr_ExceptionMatches(PyExc_OverflowError))
      PyErr_Clear(); /* cannot be present */
    else
      *err = -1;
  } else if (var_keys(self)) {
    r = edgert_dict_find_hashed(self->d, buf, var_key_hash(self, key));
  } else {
    r = edgert_dict_find(self->d, buf);
  }
  scratch_free(&s);
  return r;
}

static inline PyObject *box_value(TypedDictObject *self, const void *v) {
  if (self->v.kind == EDGERT_KIND_FLOAT64)
    return edgert_py_box_float(&self->fbox, *(const double *)v);
  return edgert_py_from_c(&self->v, v);
}

/* ---- construction ------------------------------------------------------- */

static int parse_cache_mode(PyObject *o, int *mode) {
  const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
  if (s != NULL && strcmp(s, "auto") == 0)
    *mode = EDGERT_DICT_CACHE_AUTO;
  else if (s != NULL && strcmp(s, "on") == 0)
    *mode = EDGERT_DICT_CACHE_ON;
  else if (s != NULL && strcmp(s, "off") == 0)
    *mode = EDGERT_DICT_CACHE_OFF;
  else {
    PyErr_Format(PyExc_ValueError, "cache must be 'auto', 'on' or 'off', not %R", o);
    return -1;
  }
  return 0;
}

static TypedDictObject *td_alloc(PyTypeObject *type, const edgert_py_elem_t *k,
                                 const edgert_py_elem_t *v) {
  TypedDictObject *self = (TypedDictObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->k = *k;
  self->v = *v;
  Py_INCREF(k->spec);
  Py_INCREF(v->spec);
  if (k->kind != 0 && v->kind != 0) {
    int rc = edgert_dict_new(k->type, v->type, &self->d);
    if (rc < 0) {
      Py_DECREF(self);
      edgert_py_raise(rc);
      return NULL;
    }
    self->view = edgert_dict_view(self->d);
    self->int_float = k->kind == EDGERT_KIND_INT64 && v->kind == EDGERT_KIND_FLOAT64;
    if (k->kind == EDGERT_KIND_STR)
      edgert_dict_set_hasher(self->d, py_str_hasher, NULL);
    else if (k->kind == EDGERT_KIND_BYTES)
      edgert_dict_set_hasher(self->d, py_bytes_hasher, NULL);
  }
  return self;
}

static int td_update_from(TypedDictObject *self, PyObject *arg, PyObject *kwargs);

static PyObject *td_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"key_type", "value_type", "data", "cache", NULL};
  PyObject *ks, *vs, *data = NULL, *cache = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O$O:TypedDict", kwlist, &ks, &vs, &data,
                                   &cache))
    return NULL;
  edgert_py_elem_t k, v;
  if (edgert_py_elem_resolve(ks, &k) < 0)
    return NULL;
  if (edgert_py_elem_resolve(vs, &v) < 0) {
    Py_DECREF(k.spec);
    return NULL;
  }
  if ((k.kind == 0 || v.kind == 0) && type == &EdgertPy_TypedDictType) {
    Py_DECREF(k.spec);
    Py_DECREF(v.spec);
    if (EdgertPy_GenericDict == NULL) {
      PyErr_SetString(PyExc_TypeError, "TypedDict with object types needs the edgert package");
      return NULL;
    }
    return PyObject_Call(EdgertPy_GenericDict, args, kwargs);
  }
  TypedDictObject *self = td_alloc(type, &k, &v);
  Py_DECREF(k.spec);
  Py_DECREF(v.spec);
  if (self == NULL)
    return NULL;
  if (self->d != NULL) {
    int mode;
    if (cache != NULL && cache != Py_None) {
      if (parse_cache_mode(cache, &mode) < 0 || edgert_dict_set_cache(self->d, mode) < 0)
        goto fail;
      self->use_ring = mode == EDGERT_DICT_CACHE_ON;
    }
    if (data != NULL && data != Py_None && td_update_from(self, data, NULL) < 0)
      goto fail;
  }
  return (PyObject *)self;
fail:
  Py_DECREF(self);
  return NULL;
}

static void td_dealloc(TypedDictObject *self) {
  if (self->weakreflist != NULL)
    PyObject_ClearWeakRefs((PyObject *)self);
  edgert_dict_free(self->d);
  Py_XDECREF(self->fbox);
  Py_XDECREF(self->k.spec);
  Py_XDECREF(self->v.spec);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- mapping protocol --------------------------------------------------- */

EDGERT_PY_LOCKED(Py_ssize_t, td_length, self, (TypedDictObject *self), (self))
static Py_ssize_t td_length_locked(TypedDictObject *self) {
  return self->d ? (Py_ssize_t)edgert_dict_len(self->d) : 0;
}

EDGERT_PY_LOCKED(PyObject *, td_subscript, self,
                 (TypedDictObject *self, PyObject *key),
                 (self, key))
static PyObject *td_subscript_locked(TypedDictObject *self, PyObject *key) {
  if (EDGERT__LIKELY(self->k.kind == EDGERT_KIND_INT64 && PyLong_CheckExact(key) && self->view != NULL &&
             !self->use_ring)) {
    int64_t k;
    void *v = edgert_py_exact_int64(key, &k) ? edgert_dict_find_i64_inline(self->view, k) : NULL;
    if (v == NULL)
      return key_error(key);
    if (self->v.kind == EDGERT_KIND_FLOAT64)
      return edgert_py_box_float(&self->fbox, *(const double *)v);
    return edgert_py_from_c(&self->v, v);
  }
  if (self->k.kind == EDGERT_KIND_STR && PyUnicode_CheckExact(key) &&
      PyUnicode_IS_COMPACT_ASCII(key) && self->view != NULL && !self->use_ring) {
    /* ASCII is its own UTF-8, and Python caches its hash in the object. */
    Py_hash_t h = ((PyASCIIObject *)key)->hash;
    if (h == -1)
      h = PyUnicode_Type.tp_hash(key);
    void *v = edgert_dict_find_bytes_inline(self->view, (const char *)(((PyASCIIObject *)key) + 1),
                                            (size_t)PyUnicode_GET_LENGTH(key), (uint64_t)h);
    if (v == NULL)
      return key_error(key);
    return box_value(self, v);
  }
  if (need_core(self) < 0)
    return NULL;
  int err;
  void *v = lookup(self, key, &err);
  if (v == NULL)
    return err ? NULL : key_error(key);
  return box_value(self, v);
}

/* Sets key to value, converting both first. 0 or -1. */
static int td_setitem(TypedDictObject *self, PyObject *key, PyObject *value) {
  int rc;
  if (self->k.kind == EDGERT_KIND_INT64 && PyLong_CheckExact(key) && self->v.kind != EDGERT_KIND_STR &&
      self->v.kind != EDGERT_KIND_BYTES) {
    int64_t k;
    if (!edgert_py_exact_int64(key, &k)) {
      PyErr_Format(PyExc_OverflowError, "TypedDict key does not fit in int64: %R", key);
      return -1;
    }
    if (self->v.kind == EDGERT_KIND_FLOAT64 && PyFloat_CheckExact(value)) {
      double d = PyFloat_AS_DOUBLE(value);
      int err = 0;
      edgert_dict_probe_t probe;
      double *slot = edgert_dict_probe_i64_inline(self->view, k, &probe);
      if (slot == NULL)
        slot = edgert_dict_insert_i64_probed(self->d, k, &probe, &err);
      if (slot == NULL) {
        edgert_py_raise(err);
        return -1;
      }
      *slot = d;
      return 0;
    }
    scratch_t s;
    void *buf = scratch_get(&s, self->v.size);
    if (buf == NULL)
      return -1;
    if (edgert_py_to_c(&self->v, value, buf, "TypedDict value") < 0) {
      scratch_free(&s);
      return -1;
    }
    int err = 0;
    void *slot = edgert_dict_upsert_i64(self->d, k, NULL, &err);
    if (slot == NULL) {
      scratch_free(&s);
      edgert_py_raise(err);
      return -1;
    }
    memcpy(slot, buf, self->v.size);
    scratch_free(&s);
    return 0;
  }
  scratch_t ks, vs;
  void *kb = scratch_get(&ks, self->k.size);
  if (kb == NULL)
    return -1;
  void *vb = scratch_get(&vs, self->v.size);
  if (vb == NULL) {
    scratch_free(&ks);
    return -1;
  }
  rc = -1;
  if (edgert_py_to_c(&self->k, key, kb, "TypedDict key") == 0 &&
      edgert_py_to_c(&self->v, value, vb, "TypedDict value") == 0) {
    int r = var_keys(self) ? edgert_dict_set_hashed(self->d, kb, var_key_hash(self, key), vb)
                           : edgert_dict_set(self->d, kb, vb);
    if (r < 0)
      edgert_py_raise(r);
    else
      rc = 0;
  }
  scratch_free(&ks);
  scratch_free(&vs);
  return rc;
}

static int td_delitem(TypedDictObject *self, PyObject *key) {
  scratch_t s;
  void *kb = scratch_get(&s, self->k.size);
  if (kb == NULL)
    return -1;
  if (edgert_py_to_c(&self->k, key, kb, "TypedDict key") < 0) {
    scratch_free(&s);
    if (self->k.kind == EDGERT_KIND_INT64 && PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Clear();
      key_error(key);
    }
    return -1;
  }
  int r = var_keys(self) ? edgert_dict_pop_hashed(self->d, kb, var_key_hash(self, key), NULL)
                         : edgert_dict_del(self->d, kb);
  scratch_free(&s);
  if (r == EDGERT_EKEY) {
    key_error(key);
    return -1;
  }
  if (r < 0) {
    edgert_py_raise(r);
    return -1;
  }
  return 0;
}

EDGERT_PY_LOCKED(int, td_ass_subscript, self,
                 (TypedDictObject *self, PyObject *key, PyObject *value),
                 (self, key, value))
static int td_ass_subscript_locked(TypedDictObject *self, PyObject *key, PyObject *value) {
  int64_t k;
  if (EDGERT__LIKELY(self->int_float && value != NULL && PyLong_CheckExact(key) &&
             PyFloat_CheckExact(value) && edgert_py_exact_int64(key, &k))) {
    /* td[int] = float in one probe: the inline probe finds the value, or
     * the slot a new key goes to. */
    edgert_dict_probe_t probe;
    double *slot = edgert_dict_probe_i64_inline(self->view, k, &probe);
    if (slot == NULL) {
      int err = 0;
      slot = edgert_dict_insert_i64_probed(self->d, k, &probe, &err);
      if (slot == NULL) {
        edgert_py_raise(err);
        return -1;
      }
    }
    *slot = PyFloat_AS_DOUBLE(value);
    return 0;
  }
  if (need_core(self) < 0)
    return -1;
  return value == NULL ? td_delitem(self, key) : td_setitem(self, key, value);
}

EDGERT_PY_LOCKED(int, td_contains, self, (TypedDictObject *self, PyObject *key), (self, key))
static int td_contains_locked(TypedDictObject *self, PyObject *key) {
  if (EDGERT__LIKELY(self->k.kind == EDGERT_KIND_INT64 && PyLong_CheckExact(key) && self->view != NULL &&
             !self->use_ring)) {
    int64_t k;
    return edgert_py_exact_int64(key, &k) && edgert_dict_find_i64_inline(self->view, k) != NULL;
  }
  if (need_core(self) < 0)
    return -1;
  int err;
  void *v = lookup(self, key, &err);
  return err ? -1 : v != NULL;
}

/* ---- iteration ---------------------------------------------------------- */

static PyObject *make_iter(TypedDictObject *self, int mode) {
  if (need_core(self) < 0)
    return NULL;
  TypedDictIterObject *it = PyObject_New(TypedDictIterObject, &TypedDictIterType);
  if (it == NULL)
    return NULL;
  it->dict = (TypedDictObject *)Py_NewRef(self);
  it->exhausted = 0;
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_dict_iter_init(self->d, &it->it);
  Py_END_CRITICAL_SECTION();
  it->mode = mode;
  return (PyObject *)it;
}

static PyObject *td_iter(TypedDictObject *self) { return make_iter(self, 0); }
static PyObject *td_iter_values(TypedDictObject *self, PyObject *u) {
  (void)u;
  return make_iter(self, 1);
}
static PyObject *td_iter_items(TypedDictObject *self, PyObject *u) {
  (void)u;
  return make_iter(self, 2);
}
static PyObject *td_reversed(TypedDictObject *self, PyObject *u) {
  (void)u;
  return make_iter(self, 3);
}

static void tdi_dealloc(TypedDictIterObject *it) {
  Py_XDECREF(it->dict);
  PyObject_Free(it);
}

/* One step, in the dict's critical section: the next key, value or pair;
 * NULL with *done set when exhausted, or NULL with an exception. */
static PyObject *tdi_step(TypedDictIterObject *it, TypedDictObject *self, int *done) {
  if (it->exhausted) {
    *done = 1;
    return NULL;
  }
  const void *k;
  void *v;
  int rc = it->mode == 3 ? edgert_dict_iter_prev(&it->it, &k, &v) /* reversed keys */
                         : edgert_dict_iter_next(&it->it, &k, &v);
  if (rc == 1) {
    if (it->mode == 0 || it->mode == 3)
      return edgert_py_from_c(&self->k, k);
    if (it->mode == 1)
      return box_value(self, v);
    PyObject *ko = edgert_py_from_c(&self->k, k);
    if (ko == NULL)
      return NULL;
    PyObject *vo = box_value(self, v);
    if (vo == NULL) {
      Py_DECREF(ko);
      return NULL;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
      Py_DECREF(ko);
      Py_DECREF(vo);
      return NULL;
    }
    PyTuple_SET_ITEM(t, 0, ko);
    PyTuple_SET_ITEM(t, 1, vo);
    return t;
  }
  if (rc < 0) {
    edgert_py_raise(rc);
    return NULL;
  }
  it->exhausted = *done = 1;
  return NULL;
}

/* As for TypedList's iterator: free-threaded builds keep `dict` until the
 * iterator dies (another thread may be in next() on it); with a GIL,
 * exhaustion drops it at once. */
static PyObject *tdi_next(TypedDictIterObject *it) {
  TypedDictObject *self = it->dict;
  if (self == NULL)
    return NULL;
  int done = 0;
  PyObject *r;
  Py_BEGIN_CRITICAL_SECTION(self);
  r = tdi_step(it, self, &done);
  Py_END_CRITICAL_SECTION();
#ifndef Py_GIL_DISABLED
  if (done) {
    it->dict = NULL;
    Py_DECREF(self);
  }
#else
  (void)done;
#endif
  return r;
}

static PyObject *tdi_length_hint(TypedDictIterObject *it, PyObject *unused) {
  (void)unused;
  TypedDictObject *self = it->dict;
  size_t left = 0;
  if (self != NULL) {
    Py_BEGIN_CRITICAL_SECTION(self);
    size_t n = edgert_dict_len(self->d);
    if (!it->exhausted && n > it->it.pos)
      left = n - it->it.pos;
    Py_END_CRITICAL_SECTION();
  }
  return PyLong_FromSize_t(left);
}

static PyMethodDef tdi_methods[] = {
    {"__length_hint__", (PyCFunction)tdi_length_hint, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TypedDictIterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.TypedDictIterator",
    .tp_basicsize = sizeof(TypedDictIterObject),
    .tp_dealloc = (destructor)tdi_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)tdi_next,
    .tp_methods = tdi_methods,
};

/* ---- the values view (with the buffer) ---------------------------------- */

static PyObject *td_values(TypedDictObject *self, PyObject *u) {
  (void)u;
  if (need_core(self) < 0)
    return NULL;
  TypedDictValuesObject *v = PyObject_New(TypedDictValuesObject, &TypedDictValuesType);
  if (v == NULL)
    return NULL;
  v->dict = (TypedDictObject *)Py_NewRef(self);
  v->keys = 0;
  v->exports = 0;
  return (PyObject *)v;
}

static void tdv_dealloc(TypedDictValuesObject *v) {
  Py_XDECREF(v->dict);
  PyObject_Free(v);
}
static Py_ssize_t tdv_length(TypedDictValuesObject *v) { return td_length(v->dict); }
static PyObject *tdv_iter(TypedDictValuesObject *v) { return make_iter(v->dict, v->keys ? 0 : 1); }

EDGERT_PY_LOCKED(int, tdv_contains, v->dict, (TypedDictValuesObject *v, PyObject *value),
                 (v, value))
static int tdv_contains_locked(TypedDictValuesObject *v, PyObject *value) {
  TypedDictObject *self = v->dict;
  if (v->keys)
    return td_contains_locked(self, value);
  for (size_t i = 0; i < edgert_dict_len(self->d); i++) {
    PyObject *o = box_value(self, edgert_dict_value_at(self->d, i));
    if (o == NULL)
      return -1;
    int r = PyObject_RichCompareBool(o, value, Py_EQ);
    Py_DECREF(o);
    if (r != 0)
      return r;
  }
  return 0;
}

static PyObject *tdv_repr(TypedDictValuesObject *v) {
  PyObject *lst = PySequence_List((PyObject *)v);
  if (lst == NULL)
    return NULL;
  PyObject *r = PyUnicode_FromFormat(v->keys ? "TypedDict.keys(%R)" : "TypedDict.values(%R)", lst);
  Py_DECREF(lst);
  return r;
}

static PyObject *tdv_mapping(TypedDictValuesObject *v, void *c) {
  (void)c;
  return Py_NewRef(v->dict);
}

/* `exports`, `shape` and `strides` are in the dict's critical section. */
EDGERT_PY_LOCKED(int, tdv_getbuffer, v->dict,
                 (TypedDictValuesObject *v, Py_buffer *view, int flags), (v, view, flags))
static int tdv_getbuffer_locked(TypedDictValuesObject *v, Py_buffer *view, int flags) {
  TypedDictObject *self = v->dict;
  /* The keys exporter shows the dense key array exactly as values() shows
   * the value array (both are pinned by the same dict pin). */
  const edgert_py_elem_t *e = v->keys ? &self->k : &self->v;
  int kind = e->kind;
  if (kind == EDGERT_KIND_STR || kind == EDGERT_KIND_BYTES) {
    PyErr_Format(PyExc_BufferError,
                 "TypedDict %s of type %s have no buffer: they are not fixed-size C values",
                 v->keys ? "keys" : "values", edgert_py_elem_name(e));
    view->obj = NULL;
    return -1;
  }
  static double empty[1];
  int custom = kind == EDGERT_KIND_CUSTOM;
  size_t n = edgert_dict_len(self->d);
  void *data = v->keys ? (void *)edgert_dict_key_at(self->d, 0) : edgert_dict_values(self->d);
  if (v->exports == 0) {
    v->shape[0] = (Py_ssize_t)n;
    v->shape[1] = (Py_ssize_t)e->size;
    v->strides[0] = (Py_ssize_t)e->size;
    v->strides[1] = 1;
  }
  if (!(flags & PyBUF_ND) && (flags & PyBUF_FORMAT) && !custom && e->size != 1) {
    PyErr_SetString(PyExc_BufferError, "TypedDict values: a formatted buffer needs a shape");
    view->obj = NULL;
    return -1;
  }
  /* Keys are never written through a buffer: that would bypass the index. */
  if (v->keys && (flags & PyBUF_WRITABLE)) {
    PyErr_SetString(PyExc_BufferError, "TypedDict keys: the key buffer is read-only");
    view->obj = NULL;
    return -1;
  }
  view->buf = data ? data : (void *)empty;
  view->obj = Py_NewRef(v);
  view->len = (Py_ssize_t)(n * e->size);
  view->readonly = v->keys;
  view->suboffsets = NULL;
  view->internal = NULL;
  view->format = (flags & PyBUF_FORMAT)
                     ? (custom ? "B" : (char *)edgert_py_elem_format(e))
                     : NULL;
  if (flags & PyBUF_ND) {
    view->ndim = custom ? 2 : 1;
    view->itemsize = custom ? 1 : (Py_ssize_t)e->size;
    view->shape = v->shape;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? v->strides : NULL;
  } else {
    view->ndim = 1;
    view->itemsize = 1;
    view->shape = NULL;
    view->strides = NULL;
  }
  edgert_dict_pin(self->d);
  v->exports++;
  return 0;
}

static void tdv_releasebuffer(TypedDictValuesObject *v, Py_buffer *view) {
  (void)view;
  Py_BEGIN_CRITICAL_SECTION(v->dict);
  v->exports--;
  edgert_dict_unpin(v->dict->d);
  Py_END_CRITICAL_SECTION();
}

static PySequenceMethods tdv_as_sequence = {
    .sq_length = (lenfunc)tdv_length,
    .sq_contains = (objobjproc)tdv_contains,
};
static PyBufferProcs tdv_as_buffer = {
    .bf_getbuffer = (getbufferproc)tdv_getbuffer,
    .bf_releasebuffer = (releasebufferproc)tdv_releasebuffer,
};
static PyGetSetDef tdv_getset[] = {
    {"mapping", (getter)tdv_mapping, NULL, "The TypedDict this view shows.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject TypedDictValuesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.TypedDictValues",
    .tp_basicsize = sizeof(TypedDictValuesObject),
    .tp_dealloc = (destructor)tdv_dealloc,
    .tp_repr = (reprfunc)tdv_repr,
    .tp_as_sequence = &tdv_as_sequence,
    .tp_as_buffer = &tdv_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The values of a TypedDict, in iteration order. Fixed-size values export\n"
              "the buffer protocol (the dict's values array, zero-copy); while a buffer\n"
              "is exported the dict refuses inserts and deletes (BufferError).",
    .tp_iter = (getiterfunc)tdv_iter,
    .tp_getset = tdv_getset,
};

/* ---- methods ------------------------------------------------------------ */

EDGERT_PY_LOCKED(PyObject *, td_get, self,
                 (TypedDictObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *td_get_locked(TypedDictObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
    return NULL;
  }
  if (need_core(self) < 0)
    return NULL;
  int err;
  void *v = lookup(self, args[0], &err);
  if (v != NULL)
    return box_value(self, v);
  if (err)
    return NULL;
  return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

EDGERT_PY_LOCKED(PyObject *, td_setdefault, self,
                 (TypedDictObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *td_setdefault_locked(TypedDictObject *self, PyObject *const *args,
                                      Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError, "setdefault expected 1 or 2 arguments, got %zd", nargs);
    return NULL;
  }
  if (need_core(self) < 0)
    return NULL;
  int err;
  void *v = lookup(self, args[0], &err);
  if (v != NULL)
    return box_value(self, v);
  if (err)
    return NULL;
  PyObject *dflt = nargs == 2 ? args[1] : Py_None;
  if (td_setitem(self, args[0], dflt) < 0)
    return NULL;
  v = lookup(self, args[0], &err);
  if (v == NULL)
    return err ? NULL : key_error(args[0]);
  return box_value(self, v);
}

EDGERT_PY_LOCKED(PyObject *, td_pop, self,
                 (TypedDictObject *self, PyObject *const *args, Py_ssize_t nargs),
                 (self, args, nargs))
static PyObject *td_pop_locked(TypedDictObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError, "pop expected 1 or 2 arguments, got %zd", nargs);
    return NULL;
  }
  if (need_core(self) < 0)
    return NULL;
  int err;
  void *v = lookup(self, args[0], &err);
  if (v == NULL) {
    if (err)
      return NULL;
    if (nargs == 2)
      return Py_NewRef(args[1]);
    return key_error(args[0]);
  }
  PyObject *r = box_value(self, v);
  if (r == NULL)
    return NULL;
  if (td_delitem(self, args[0]) < 0) {
    Py_DECREF(r);
    return NULL;
  }
  return r;
}

EDGERT_PY_LOCKED(PyObject *, td_popitem, self,
                 (TypedDictObject *self, PyObject *unused),
                 (self, unused))
static PyObject *td_popitem_locked(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  size_t n = edgert_dict_len(self->d);
  if (n == 0) {
    PyErr_SetString(PyExc_KeyError, "popitem(): dictionary is empty");
    return NULL;
  }
  PyObject *k = edgert_py_from_c(&self->k, edgert_dict_key_at(self->d, n - 1));
  if (k == NULL)
    return NULL;
  PyObject *v = box_value(self, edgert_dict_value_at(self->d, n - 1));
  if (v == NULL) {
    Py_DECREF(k);
    return NULL;
  }
  int rc = edgert_dict_popitem(self->d, NULL, NULL);
  if (rc < 0) {
    Py_DECREF(k);
    Py_DECREF(v);
    return edgert_py_raise(rc);
  }
  PyObject *t = PyTuple_New(2);
  if (t == NULL) {
    Py_DECREF(k);
    Py_DECREF(v);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, k);
  PyTuple_SET_ITEM(t, 1, v);
  return t;
}

EDGERT_PY_LOCKED(PyObject *, td_clear, self,
                 (TypedDictObject *self, PyObject *unused),
                 (self, unused))
static PyObject *td_clear_locked(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  int rc = edgert_dict_clear(self->d);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

/* The (key, value) pairs of `arg` (a mapping or an iterable of pairs) and
 * of kwargs, as a new list of 2-tuples; NULL with an exception. */
static PyObject *collect_pairs(PyObject *arg, PyObject *kwargs) {
  PyObject *pairs = NULL;
  if (arg == NULL || arg == Py_None) {
    pairs = PyList_New(0);
  } else if (PyDict_Check(arg)) {
    pairs = PyDict_Items(arg);
  } else if (TD_CHECK(arg) && ((TypedDictObject *)arg)->d != NULL) {
    PyObject *it = td_iter_items((TypedDictObject *)arg, NULL);
    if (it == NULL)
      return NULL;
    pairs = PySequence_List(it);
    Py_DECREF(it);
  } else {
    PyObject *keys = NULL;
    if (PyObject_GetOptionalAttr(arg, str_keys, &keys) < 0)
      return NULL;
    if (keys != NULL) {
      PyObject *ks = PyObject_CallNoArgs(keys);
      Py_DECREF(keys);
      if (ks == NULL)
        return NULL;
      PyObject *klist = PySequence_List(ks);
      Py_DECREF(ks);
      if (klist == NULL)
        return NULL;
      pairs = PyList_New(PyList_GET_SIZE(klist));
      for (Py_ssize_t i = 0; pairs != NULL && i < PyList_GET_SIZE(klist); i++) {
        PyObject *k = PyList_GET_ITEM(klist, i);
        PyObject *v = PyObject_GetItem(arg, k);
        PyObject *t = v ? PyTuple_Pack(2, k, v) : NULL;
        Py_XDECREF(v);
        if (t == NULL)
          Py_CLEAR(pairs);
        else
          PyList_SET_ITEM(pairs, i, t);
      }
      Py_DECREF(klist);
    } else {
      PyObject *seq = PySequence_List(arg);
      if (seq == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
          PyErr_Clear();
          PyErr_Format(PyExc_TypeError, "'%.100s' object is not iterable",
                       Py_TYPE(arg)->tp_name);
        }
        return NULL;
      }
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(seq); i++) {
        PyObject *item = PyList_GET_ITEM(seq, i);
        PyObject *fast = edgert_py_sequence_fast(item, "");
        if (fast == NULL) {
          PyErr_Clear();
          PyErr_Format(PyExc_TypeError,
                       "cannot convert dictionary update sequence element #%zd to a sequence",
                       i);
          Py_DECREF(seq);
          return NULL;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        if (n != 2) {
          PyErr_Format(PyExc_ValueError,
                       "dictionary update sequence element #%zd has length %zd; 2 is required",
                       i, n);
          Py_DECREF(fast);
          Py_DECREF(seq);
          return NULL;
        }
        PyObject *t = PyTuple_Pack(2, PySequence_Fast_GET_ITEM(fast, 0),
                                   PySequence_Fast_GET_ITEM(fast, 1));
        Py_DECREF(fast);
        if (t == NULL) {
          Py_DECREF(seq);
          return NULL;
        }
        PyList_SET_ITEM(seq, i, t); /* replaces the item, dropping our ref to it */
        Py_DECREF(item);
      }
      pairs = seq;
    }
  }
  if (pairs == NULL)
    return NULL;
  if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
    PyObject *kw = PyDict_Items(kwargs);
    Py_ssize_t end = PyList_GET_SIZE(pairs);
    if (kw == NULL || PyList_SetSlice(pairs, end, end, kw) < 0) {
      Py_XDECREF(kw);
      Py_DECREF(pairs);
      return NULL;
    }
    Py_DECREF(kw);
  }
  return pairs;
}

/* Collects the pairs first (that may iterate another TypedDict, or this
 * one), then converts and sets them in this dict's critical section. */
static int update_from_pairs(TypedDictObject *self, PyObject *pairs);

static int td_update_from(TypedDictObject *self, PyObject *arg, PyObject *kwargs) {
  PyObject *pairs = collect_pairs(arg, kwargs);
  if (pairs == NULL)
    return -1;
  int rc;
  Py_BEGIN_CRITICAL_SECTION(self);
  rc = update_from_pairs(self, pairs);
  Py_END_CRITICAL_SECTION();
  Py_DECREF(pairs);
  return rc;
}

static int update_from_pairs(TypedDictObject *self, PyObject *pairs) {
  Py_ssize_t n = PyList_GET_SIZE(pairs);
  unsigned char *ks = PyMem_Malloc((size_t)n * self->k.size + 1);
  unsigned char *vs = PyMem_Malloc((size_t)n * self->v.size + 1);
  int rc = -1;
  if (ks == NULL || vs == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = PyList_GET_ITEM(pairs, i);
    if (edgert_py_to_c(&self->k, PyTuple_GET_ITEM(t, 0), ks + (size_t)i * self->k.size,
                       "TypedDict key") < 0 ||
        edgert_py_to_c(&self->v, PyTuple_GET_ITEM(t, 1), vs + (size_t)i * self->v.size,
                       "TypedDict value") < 0)
      goto done;
  }
  int r = edgert_dict_set_many(self->d, ks, vs, (size_t)n);
  if (r < 0)
    edgert_py_raise(r);
  else
    rc = 0;
done:
  PyMem_Free(ks);
  PyMem_Free(vs);
  return rc;
}

static PyObject *td_update(TypedDictObject *self, PyObject *args, PyObject *kwargs) {
  PyObject *arg = NULL;
  if (!PyArg_UnpackTuple(args, "update", 0, 1, &arg))
    return NULL;
  if (need_core(self) < 0 || td_update_from(self, arg, kwargs) < 0)
    return NULL;
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, td_copy, self,
                 (TypedDictObject *self, PyObject *unused),
                 (self, unused))
static PyObject *td_copy_locked(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  TypedDictObject *r = (TypedDictObject *)EdgertPy_TypedDictType.tp_alloc(&EdgertPy_TypedDictType, 0);
  if (r == NULL)
    return NULL;
  r->k = self->k;
  r->v = self->v;
  Py_INCREF(r->k.spec);
  Py_INCREF(r->v.spec);
  int rc = edgert_dict_copy(self->d, &r->d);
  if (rc < 0) {
    Py_DECREF(r);
    return edgert_py_raise(rc);
  }
  r->view = edgert_dict_view(r->d);
  r->use_ring = self->use_ring;
  r->int_float = self->int_float;
  return (PyObject *)r;
}

static PyObject *td_deepcopy(TypedDictObject *self, PyObject *memo) {
  (void)memo;
  return td_copy(self, NULL);
}

static PyObject *td_keys(TypedDictObject *self, PyObject *u) {
  (void)u;
  if (EdgertPy_KeysView == NULL) {
    PyErr_SetString(PyExc_TypeError, "TypedDict.keys needs the edgert package");
    return NULL;
  }
  return PyObject_CallOneArg(EdgertPy_KeysView, (PyObject *)self);
}

static PyObject *td_items(TypedDictObject *self, PyObject *u) {
  (void)u;
  if (EdgertPy_ItemsView == NULL) {
    PyErr_SetString(PyExc_TypeError, "TypedDict.items needs the edgert package");
    return NULL;
  }
  return PyObject_CallOneArg(EdgertPy_ItemsView, (PyObject *)self);
}

/* A plain dict with the same items: new reference. */
EDGERT_PY_LOCKED(PyObject *, to_dict, self, (TypedDictObject *self), (self))
static PyObject *to_dict_locked(TypedDictObject *self) {
  PyObject *r = PyDict_New();
  if (r == NULL)
    return NULL;
  for (size_t i = 0; i < edgert_dict_len(self->d); i++) {
    PyObject *k = edgert_py_from_c(&self->k, edgert_dict_key_at(self->d, i));
    PyObject *v = k ? box_value(self, edgert_dict_value_at(self->d, i)) : NULL;
    int rc = v ? PyDict_SetItem(r, k, v) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    if (rc < 0) {
      Py_DECREF(r);
      return NULL;
    }
  }
  return r;
}

/* The Python name of a cache mode, as cache_stats() and pickles give it. */
static const char *cache_mode_name(int mode) {
  return mode == EDGERT_DICT_CACHE_OFF ? "off" : mode == EDGERT_DICT_CACHE_ON ? "on" : "auto";
}

static PyObject *td_reduce(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  PyObject *mod = PyImport_ImportModule("edgert.containers");
  PyObject *fn = mod ? PyObject_GetAttrString(mod, "_rebuild_dict") : NULL;
  Py_XDECREF(mod);
  if (fn == NULL)
    return NULL;
  PyObject *d = to_dict(self);
  if (d == NULL) {
    Py_DECREF(fn);
    return NULL;
  }
  edgert_dict_cache_stats_t st;
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_dict_cache_stats(self->d, &st);
  Py_END_CRITICAL_SECTION();
  const char *mode = cache_mode_name(st.mode);
  return Py_BuildValue("N(OONs)", fn, self->k.spec, self->v.spec, d, mode);
}

/* One side (keys or values) of a protocol-5 pickle: fixed-size C elements
 * without a box callback travel as a pickle.PickleBuffer over the dict's
 * own dense array (keys through a read-only exporter, values through a
 * values view), so with a buffer_callback pickling copies no element bytes
 * (the dict is pinned while the buffer is held); str/bytes and boxed custom
 * elements are a list of the elements (copied, as with protocol <= 4). */
static int td_raw_side(const edgert_py_elem_t *e) {
  return !(e->kind == EDGERT_KIND_STR || e->kind == EDGERT_KIND_BYTES ||
           (e->kind == EDGERT_KIND_CUSTOM && edgert_type_has_box(e->type)));
}

static PyObject *td_pickle_side(TypedDictObject *self, int keys) {
  const edgert_py_elem_t *e = keys ? &self->k : &self->v;
  TypedDictValuesObject *v = (TypedDictValuesObject *)td_values(self, NULL);
  if (v == NULL)
    return NULL;
  if (!td_raw_side(e)) {
    PyObject *l = keys ? PySequence_List((PyObject *)self) : PySequence_List((PyObject *)v);
    Py_DECREF(v);
    return l;
  }
  v->keys = keys;
  PyObject *pb = PyPickleBuffer_FromObject((PyObject *)v);
  Py_DECREF(v);
  return pb;
}

/* __reduce_ex__(protocol): protocol 5 or later pickles keys and values as
 * td_pickle_side says; earlier protocols as __reduce__ (a dict copy). */
static PyObject *td_reduce_ex(TypedDictObject *self, PyObject *proto) {
  long p = PyLong_AsLong(proto);
  if (p == -1 && PyErr_Occurred())
    return NULL;
  if (p < 5 || self->d == NULL)
    return PyObject_CallMethod((PyObject *)self, "__reduce__", NULL);
  PyObject *mod = PyImport_ImportModule("edgert.containers");
  PyObject *fn = mod ? PyObject_GetAttrString(mod, "_rebuild_dict_sides") : NULL;
  Py_XDECREF(mod);
  if (fn == NULL)
    return NULL;
  PyObject *ks = td_pickle_side(self, 1);
  PyObject *vs = ks ? td_pickle_side(self, 0) : NULL;
  if (vs == NULL) {
    Py_DECREF(fn);
    Py_XDECREF(ks);
    return NULL;
  }
  edgert_dict_cache_stats_t st;
  Py_BEGIN_CRITICAL_SECTION(self);
  edgert_dict_cache_stats(self->d, &st);
  Py_END_CRITICAL_SECTION();
  return Py_BuildValue("N(OONNs)", fn, self->k.spec, self->v.spec, ks, vs,
                       cache_mode_name(st.mode));
}

EDGERT_PY_LOCKED(PyObject *, td_sizeof, self,
                 (TypedDictObject *self, PyObject *unused),
                 (self, unused))
static PyObject *td_sizeof_locked(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  return PyLong_FromSize_t((size_t)Py_TYPE(self)->tp_basicsize +
                           (self->d ? edgert_dict_memory(self->d) : 0));
}

EDGERT_PY_LOCKED(PyObject *, td_reserve, self, (TypedDictObject *self, PyObject *arg), (self, arg))
static PyObject *td_reserve_locked(TypedDictObject *self, PyObject *arg) {
  if (need_core(self) < 0)
    return NULL;
  size_t n;
  if (edgert_py_count_arg(arg, "reserve: n", &n) < 0)
    return NULL;
  int rc = edgert_dict_reserve(self->d, n);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
}

EDGERT_PY_LOCKED(PyObject *, td_cache_stats, self,
                 (TypedDictObject *self, PyObject *unused),
                 (self, unused))
static PyObject *td_cache_stats_locked(TypedDictObject *self, PyObject *unused) {
  (void)unused;
  if (need_core(self) < 0)
    return NULL;
  edgert_dict_cache_stats_t st;
  edgert_dict_cache_stats(self->d, &st);
  const char *mode = cache_mode_name(st.mode);
  return Py_BuildValue("{s:K,s:K,s:K,s:s,s:O}", "hits", (unsigned long long)st.hits, "misses",
                       (unsigned long long)st.misses, "bypassed",
                       (unsigned long long)st.bypassed, "mode", mode, "active",
                       st.active ? Py_True : Py_False);
}

EDGERT_PY_LOCKED(PyObject *, td_set_cache, self,
                 (TypedDictObject *self, PyObject *arg),
                 (self, arg))
static PyObject *td_set_cache_locked(TypedDictObject *self, PyObject *arg) {
  int mode;
  if (need_core(self) < 0 || parse_cache_mode(arg, &mode) < 0)
    return NULL;
  edgert_dict_set_cache(self->d, mode);
  self->use_ring = mode == EDGERT_DICT_CACHE_ON;
  Py_RETURN_NONE;
}

/* ---- batches over buffers ----------------------------------------------- */

/* C keys for get_many/set_many: from a buffer of the key format when there
 * is one (int keys: any integer format, widened to int64), else converted
 * one by one from an iterable. */
typedef struct {
  unsigned char *items;
  size_t n;
  int owned;
  Py_buffer view;
  int has_view;
  PyObject *keep;
} keys_t;

static void keys_release(keys_t *k) {
  if (k->owned)
    PyMem_Free(k->items);
  if (k->has_view)
    PyBuffer_Release(&k->view);
  Py_XDECREF(k->keep);
  memset(k, 0, sizeof *k);
}

static int elems_from(const edgert_py_elem_t *e, PyObject *src, keys_t *out, const char *role) {
  memset(out, 0, sizeof *out);
  if (PyObject_CheckBuffer(src) && (e->kind == EDGERT_KIND_INT64 || e->kind == EDGERT_KIND_FLOAT64 ||
                                    e->kind == EDGERT_KIND_BOOL)) {
    if (PyObject_GetBuffer(src, &out->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
      return -1;
    out->has_view = 1;
    Py_buffer *v = &out->view;
    if (v->ndim != 1) {
      PyErr_Format(PyExc_ValueError, "%s buffer must be one-dimensional, not %d-dimensional",
                   role, v->ndim);
      goto fail;
    }
    size_t n = (size_t)(v->len / (v->itemsize ? v->itemsize : 1));
    const char *f = v->format ? v->format : "B";
    edgert_buffer_item_t it;
    if (edgert_buffer_item_parse(f, (size_t)v->itemsize, &it) != 0)
      it.kind = EDGERT_ITEM_NONE;
    int sgn = it.kind == EDGERT_ITEM_SIGNED;
    if (e->kind == EDGERT_KIND_INT64 && (sgn || it.kind == EDGERT_ITEM_UNSIGNED)) {
      if (v->itemsize == 8 && sgn) {
        out->items = v->buf;
        out->n = n;
        return 0;
      }
      int64_t *dst = PyMem_Malloc(n * 8 + 1);
      if (dst == NULL) {
        PyErr_NoMemory();
        goto fail;
      }
      out->items = (unsigned char *)dst;
      out->owned = 1;
      const unsigned char *p = v->buf;
      for (size_t i = 0; i < n; i++, p += v->itemsize) {
        switch (v->itemsize * (sgn ? 1 : -1)) {
        case 1: dst[i] = *(const int8_t *)p; break;
        case 2: { int16_t x; memcpy(&x, p, 2); dst[i] = x; break; }
        case 4: { int32_t x; memcpy(&x, p, 4); dst[i] = x; break; }
        case -1: dst[i] = *p; break;
        case -2: { uint16_t x; memcpy(&x, p, 2); dst[i] = x; break; }
        case -4: { uint32_t x; memcpy(&x, p, 4); dst[i] = x; break; }
        default: {
          uint64_t x;
          memcpy(&x, p, 8);
          if (x > (uint64_t)INT64_MAX) {
            PyErr_Format(PyExc_OverflowError, "%s does not fit in int64: %llu", role,
                         (unsigned long long)x);
            goto fail;
          }
          dst[i] = (int64_t)x;
        }
        }
      }
      out->n = n;
      return 0;
    }
    const char *want = edgert_py_elem_format(e);
    if (edgert_py_elem_buffer_is(e, f, v->itemsize)) {
      out->items = v->buf;
      out->n = n;
      return 0;
    }
    if (e->kind == EDGERT_KIND_FLOAT64 && it.code == EDGERT_CT_FLOAT) {
      double *dst = PyMem_Malloc(n * 8 + 1);
      if (dst == NULL) {
        PyErr_NoMemory();
        goto fail;
      }
      for (size_t i = 0; i < n; i++) {
        float x;
        memcpy(&x, (const char *)v->buf + i * 4, 4);
        dst[i] = x;
      }
      out->items = (unsigned char *)dst;
      out->owned = 1;
      out->n = n;
      return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s buffer has format '%s', expected '%s' for %s", role, f,
                 want, edgert_py_elem_name(e));
    goto fail;
  }
  PyObject *seq = edgert_py_sequence_fast(src, "");
  if (seq == NULL) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s must be a buffer or an iterable, not %.100s", role,
                 Py_TYPE(src)->tp_name);
    return -1;
  }
  out->keep = seq;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  out->items = PyMem_Malloc((size_t)n * e->size + 1);
  if (out->items == NULL) {
    PyErr_NoMemory();
    goto fail;
  }
  out->owned = 1;
  for (Py_ssize_t i = 0; i < n; i++)
    if (edgert_py_to_c(e, PySequence_Fast_GET_ITEM(seq, i), out->items + (size_t)i * e->size,
                       role) < 0)
      goto fail;
  out->n = (size_t)n;
  return 0;
fail:
  keys_release(out);
  return -1;
}

EDGERT_PY_LOCKED(PyObject *, td_get_many, self,
                 (TypedDictObject *self, PyObject *args, PyObject *kwargs),
                 (self, args, kwargs))
static PyObject *td_get_many_locked(TypedDictObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"keys", "out", "default", NULL};
  PyObject *keys, *out = Py_None, *dflt = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:get_many", kwlist, &keys, &out, &dflt))
    return NULL;
  if (need_core(self) < 0)
    return NULL;
  keys_t k;
  if (elems_from(&self->k, keys, &k, "get_many keys") < 0)
    return NULL;
  scratch_t ds;
  void *dbuf = NULL;
  if (dflt != NULL) {
    dbuf = scratch_get(&ds, self->v.size);
    if (dbuf == NULL || edgert_py_to_c(&self->v, dflt, dbuf, "get_many default") < 0) {
      if (dbuf)
        scratch_free(&ds);
      keys_release(&k);
      return NULL;
    }
  }
  PyObject *result = NULL;
  Py_buffer ov;
  int has_ov = 0;
  void *dst;
  if (out == Py_None) {
    /* Results go to scratch, then into a fresh TypedList of the value type. */
    dst = PyMem_Malloc(k.n * self->v.size + 1);
    if (dst == NULL) {
      PyErr_NoMemory();
      goto fail;
    }
  } else {
    if (self->v.kind == EDGERT_KIND_STR || self->v.kind == EDGERT_KIND_BYTES) {
      PyErr_SetString(PyExc_TypeError, "get_many: out= needs fixed-size values");
      goto done;
    }
    if (PyObject_GetBuffer(out, &ov, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
      goto done;
    has_ov = 1;
    const char *f = ov.format ? ov.format : "B";
    const char *want = self->v.kind == EDGERT_KIND_CUSTOM ? "B" : edgert_py_elem_format(&self->v);
    int ok;
    if (self->v.kind == EDGERT_KIND_CUSTOM) {
      edgert_buffer_item_t it;
      ok = edgert_buffer_item_parse(f, (size_t)ov.itemsize, &it) == 0 &&
           it.code == EDGERT_CT_UBYTE;
    } else {
      ok = edgert_py_elem_buffer_is(&self->v, f, ov.itemsize);
    }
    if (!ok) {
      PyErr_Format(PyExc_TypeError, "get_many: out has format '%s', expected '%s' for %s", f,
                   want, edgert_py_elem_name(&self->v));
      goto done;
    }
    if ((size_t)ov.len != k.n * self->v.size) {
      PyErr_Format(PyExc_ValueError, "get_many: out holds %zd bytes, %zu keys need %zu", ov.len,
                   k.n, k.n * self->v.size);
      goto done;
    }
    dst = ov.buf;
    result = Py_NewRef(out);
  }
  size_t missing = 0;
  int rc = edgert_dict_get_many(self->d, k.items, k.n, dst, dbuf, &missing);
  if (rc == EDGERT_EKEY) {
    PyObject *key = edgert_py_from_c(&self->k, k.items + missing * self->k.size);
    if (key != NULL) {
      key_error(key);
      Py_DECREF(key);
    }
  } else if (rc < 0) {
    edgert_py_raise(rc);
  }
  if (out == Py_None) {
    if (rc == 0)
      result = edgert_py_list_from_c(&self->v, dst, k.n);
    PyMem_Free(dst);
  }
  if (rc < 0)
    goto fail;
  goto done;
fail:
  Py_CLEAR(result);
done:
  if (has_ov)
    PyBuffer_Release(&ov);
  if (dbuf)
    scratch_free(&ds);
  keys_release(&k);
  return result;
}

EDGERT_PY_LOCKED(PyObject *, td_set_many, self,
                 (TypedDictObject *self, PyObject *args, PyObject *kwargs),
                 (self, args, kwargs))
static PyObject *td_set_many_locked(TypedDictObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"keys", "values", NULL};
  PyObject *keys, *values;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:set_many", kwlist, &keys, &values))
    return NULL;
  if (need_core(self) < 0)
    return NULL;
  keys_t k, v;
  if (elems_from(&self->k, keys, &k, "set_many keys") < 0)
    return NULL;
  if (elems_from(&self->v, values, &v, "set_many values") < 0) {
    keys_release(&k);
    return NULL;
  }
  PyObject *r = NULL;
  if (k.n != v.n) {
    PyErr_Format(PyExc_ValueError, "set_many: %zu keys but %zu values", k.n, v.n);
  } else {
    int rc = edgert_dict_set_many(self->d, k.items, v.items, k.n);
    if (rc < 0)
      edgert_py_raise(rc);
    else
      r = Py_NewRef(Py_None);
  }
  keys_release(&k);
  keys_release(&v);
  return r;
}

/* ---- repr, comparison, attributes --------------------------------------- */

static PyObject *td_repr(TypedDictObject *self) {
  if (need_core(self) < 0)
    return NULL;
  int st = Py_ReprEnter((PyObject *)self);
  if (st != 0)
    return st > 0 ? PyUnicode_FromString("TypedDict(...)") : NULL;
  PyObject *d = to_dict(self), *r = NULL;
  if (d != NULL) {
    PyObject *kn = self->k.kind == EDGERT_KIND_CUSTOM ? PyObject_Repr(self->k.spec)
                                                      : PyUnicode_FromString(edgert_py_elem_name(&self->k));
    PyObject *vn = self->v.kind == EDGERT_KIND_CUSTOM ? PyObject_Repr(self->v.spec)
                                                      : PyUnicode_FromString(edgert_py_elem_name(&self->v));
    if (kn && vn)
      r = PyUnicode_FromFormat("TypedDict(%U, %U, %R)", kn, vn, d);
    Py_XDECREF(kn);
    Py_XDECREF(vn);
    Py_DECREF(d);
  }
  Py_ReprLeave((PyObject *)self);
  return r;
}

static PyObject *td_richcompare(PyObject *self, PyObject *other, int op) {
  if (op != Py_EQ && op != Py_NE)
    Py_RETURN_NOTIMPLEMENTED;
  int is_map = PyDict_Check(other) || TD_CHECK(other);
  if (!is_map && EdgertPy_MappingABC != NULL) {
    is_map = PyObject_IsInstance(other, EdgertPy_MappingABC);
    if (is_map < 0)
      return NULL;
  }
  if (!is_map || ((TypedDictObject *)self)->d == NULL)
    Py_RETURN_NOTIMPLEMENTED;
  PyObject *a = to_dict((TypedDictObject *)self);
  if (a == NULL)
    return NULL;
  PyObject *b;
  if (PyDict_Check(other))
    b = Py_NewRef(other);
  else if (TD_CHECK(other) && ((TypedDictObject *)other)->d != NULL)
    b = to_dict((TypedDictObject *)other);
  else
    b = PyObject_CallOneArg((PyObject *)&PyDict_Type, other);
  if (b == NULL) {
    Py_DECREF(a);
    return NULL;
  }
  PyObject *r = PyObject_RichCompare(a, b, op);
  Py_DECREF(a);
  Py_DECREF(b);
  return r;
}

EDGERT_PY_LOCKED(PyObject *, td_get_version, self, (TypedDictObject *self, void *c), (self, c))
static PyObject *td_get_version_locked(TypedDictObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->d ? edgert_dict_version(self->d) : 0);
}
static PyObject *td_get_key_type(TypedDictObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->k.spec);
}
static PyObject *td_get_value_type(TypedDictObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->v.spec);
}

static PyGetSetDef td_getset[] = {
    {"version", (getter)td_get_version, NULL,
     "The version tag: changes on every insert, delete and resize.", NULL},
    {"key_type", (getter)td_get_key_type, NULL, "The key type.", NULL},
    {"value_type", (getter)td_get_value_type, NULL, "The value type.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef td_methods[] = {
    {"get", (PyCFunction)(void (*)(void))td_get, METH_FASTCALL,
     "get(key, default=None): the value for key, else default."},
    {"setdefault", (PyCFunction)(void (*)(void))td_setdefault, METH_FASTCALL,
     "setdefault(key, default): the value for key, inserting default if absent."},
    {"pop", (PyCFunction)(void (*)(void))td_pop, METH_FASTCALL,
     "pop(key[, default]): remove key and return its value."},
    {"popitem", (PyCFunction)td_popitem, METH_NOARGS,
     "Remove and return the last (key, value) pair in iteration order."},
    {"clear", (PyCFunction)td_clear, METH_NOARGS, "Remove every entry."},
    {"update", (PyCFunction)(void (*)(void))td_update, METH_VARARGS | METH_KEYWORDS,
     "update([other], **kw): set every pair (all or nothing)."},
    {"copy", (PyCFunction)td_copy, METH_NOARGS, "A copy (values are inline: a deep copy)."},
    {"__copy__", (PyCFunction)td_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)td_deepcopy, METH_O, NULL},
    {"keys", (PyCFunction)td_keys, METH_NOARGS, "A set-like view of the keys."},
    {"values", (PyCFunction)td_values, METH_NOARGS,
     "A view of the values (exports the buffer protocol for fixed-size values)."},
    {"items", (PyCFunction)td_items, METH_NOARGS, "A set-like view of the (key, value) pairs."},
    {"_iter_values", (PyCFunction)td_iter_values, METH_NOARGS, NULL},
    {"_iter_items", (PyCFunction)td_iter_items, METH_NOARGS, NULL},
    {"__reversed__", (PyCFunction)td_reversed, METH_NOARGS,
     "Iterate the keys from the last entry to the first."},
    {"get_many", (PyCFunction)(void (*)(void))td_get_many, METH_VARARGS | METH_KEYWORDS,
     "get_many(keys, out=None, default=<KeyError>): look a buffer of keys up at once."},
    {"set_many", (PyCFunction)(void (*)(void))td_set_many, METH_VARARGS | METH_KEYWORDS,
     "set_many(keys, values): set keys[i] to values[i] (all or nothing)."},
    {"cache_stats", (PyCFunction)td_cache_stats, METH_NOARGS,
     "The inline cache's counters: hits, misses, bypassed, mode, active."},
    {"set_cache", (PyCFunction)td_set_cache, METH_O,
     "set_cache('auto' | 'on' | 'off'): the inline cache's mode (resets its counters)."},
    {"reserve", (PyCFunction)td_reserve, METH_O, "Make room for n entries in total."},
    {"__reduce__", (PyCFunction)td_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)td_reduce_ex, METH_O, NULL},
    {"__sizeof__", (PyCFunction)td_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyObject *td_copy(TypedDictObject *self, PyObject *unused);

/* td | other: a new TypedDict with other's items set over td's (other a
 * dict or TypedDict, as dict's | takes only dicts). */
static PyObject *td_or(PyObject *a, PyObject *b) {
  if (!TD_CHECK(a) || ((TypedDictObject *)a)->d == NULL || !(PyDict_Check(b) || TD_CHECK(b)))
    Py_RETURN_NOTIMPLEMENTED;
  PyObject *r = td_copy((TypedDictObject *)a, NULL);
  if (r != NULL && td_update_from((TypedDictObject *)r, b, NULL) < 0)
    Py_CLEAR(r);
  return r;
}

/* td |= other: update (any mapping or iterable of pairs), all or nothing. */
static PyObject *td_ior(PyObject *a, PyObject *b) {
  if (!TD_CHECK(a) || ((TypedDictObject *)a)->d == NULL)
    Py_RETURN_NOTIMPLEMENTED;
  if (td_update_from((TypedDictObject *)a, b, NULL) < 0)
    return NULL;
  return Py_NewRef(a);
}

static PyNumberMethods td_as_number = {
    .nb_or = td_or,
    .nb_inplace_or = td_ior,
};

static PyMappingMethods td_as_mapping = {
    .mp_length = (lenfunc)td_length,
    .mp_subscript = (binaryfunc)td_subscript,
    .mp_ass_subscript = (objobjargproc)td_ass_subscript,
};

static PySequenceMethods td_as_sequence = {
    .sq_contains = (objobjproc)td_contains,
};

PyTypeObject EdgertPy_TypedDictType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.TypedDict",
    .tp_basicsize = sizeof(TypedDictObject),
    .tp_dealloc = (destructor)td_dealloc,
    .tp_repr = (reprfunc)td_repr,
    .tp_as_number = &td_as_number,
    .tp_as_sequence = &td_as_sequence,
    .tp_as_mapping = &td_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_MAPPING,
    .tp_doc = "TypedDict(key_type, value_type, data=None, *, cache='auto')\n--\n\n"
              "A hash map whose keys share one type and whose values share one type,\n"
              "both stored inline in C. Types: int (int64), float (float64), bool, str,\n"
              "bytes, a registered custom type's name, or object.",
    .tp_richcompare = td_richcompare,
    .tp_weaklistoffset = offsetof(TypedDictObject, weakreflist),
    .tp_iter = (getiterfunc)td_iter,
    .tp_methods = td_methods,
    .tp_getset = td_getset,
    .tp_new = td_new,
};

int edgert_py_containers_dict_init(PyObject *m) {
  str_keys = PyUnicode_InternFromString("keys");
  if (str_keys == NULL)
    return -1;
  if (PyType_Ready(&TypedDictIterType) < 0 || PyType_Ready(&TypedDictValuesType) < 0 ||
      PyType_Ready(&EdgertPy_TypedDictType) < 0)
    return -1;
  Py_INCREF(&EdgertPy_TypedDictType);
  if (PyModule_AddObject(m, "TypedDict", (PyObject *)&EdgertPy_TypedDictType) < 0) {
    Py_DECREF(&EdgertPy_TypedDictType);
    return -1;
  }
  Py_INCREF(&TypedDictValuesType);
  if (PyModule_AddObject(m, "TypedDictValues", (PyObject *)&TypedDictValuesType) < 0) {
    Py_DECREF(&TypedDictValuesType);
    return -1;
  }
  return 0;
}
