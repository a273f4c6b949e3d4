/*
 * func.c: the module handle (_Module) and the bound function (_Bound and
 * the builtin callable ModuleLoader.function() returns): the call path.
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
 *   every call there (edgert_py_call_attached, func.h) and `unloaded` is a relaxed atomic.
 * - Arguments go through the fast lane (exact floats and small ints, GIL
 *   kept) or else the conversion table (conv.h), strict and lossless; a
 *   refused argument becomes an exception only when the caller wants one
 *   (edgert_py_bound_call's miss path builds none). Buffers and converted
 *   strings are released after every call, on every path.
 * - A function of a module loaded with isolation="process" is called
 *   through its own lane (bound_call_iso), chosen when it is bound: the
 *   general path's conversion with the buffers held, then call_isolated
 *   instead of call_converted. The fast in-process lanes never test for
 *   isolation; the general path tests it once, in its held-buffers branch.
 */
#include "func.h"

#include "conv.h"

#include <stdatomic.h>
#include <string.h>
#include <wchar.h>

/* ---- _Module: one core handle ---------------------------------------------- */

void edgert_py_mod_unload(edgert_py_mod_t *h) {
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

int edgert_py_mod_reload(edgert_py_mod_t *h, const char *path) {
  if (EDGERT_PY_LOAD(h->unloaded)) {
    PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot reload module %s: it is unloaded",
                 edgert_module_path(h->m));
    return -1;
  }
#ifndef Py_GIL_DISABLED
  /* A call keeping the GIL is not counted by the core: releasing its
   * mapping under it would unmap running code. */
  if (h->gil_calls > 0) {
    PyErr_Format(PyExc_RuntimeError,
                 "cannot reload module %s from inside one of its own calls",
                 edgert_module_path(h->m));
    return -1;
  }
#endif
  edgert_clear_error();
  int rc = edgert_module_reload(h->m, path, NULL);
  if (rc != 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

static void mod_dealloc(edgert_py_mod_t *h) {
  edgert_module_t *m = h->m;
  h->m = NULL;
  if (m != NULL) {
    Py_BEGIN_ALLOW_THREADS
    edgert_module_free(m);
    Py_END_ALLOW_THREADS
  }
  Py_TYPE(h)->tp_free((PyObject *)h);
}

PyTypeObject EdgertPy_ModType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert._edgert._Module",
    .tp_basicsize = sizeof(edgert_py_mod_t),
    .tp_dealloc = (destructor)mod_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded module handle (internal).",
};

/* ---- _Bound: what a bound callable's __self__ is ---------------------------- */


static void bound_dealloc(BoundObject *b) {
  if (b->weakrefs != NULL)
    PyObject_ClearWeakRefs((PyObject *)b);
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

/* (sha256, path, contract as ABIContract.to_dict(), isolate_symbols): what
 * edgert._pickle writes for this function; refused once its module is
 * unloaded (there is nothing to call). Never an address. */
static PyObject *bound_get_pickle_state(BoundObject *b, void *closure) {
  (void)closure;
  edgert_module_t *m = b->mod->m;
  if (EDGERT_PY_LOAD(b->mod->unloaded)) {
    PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot pickle '%s': module %s is unloaded",
                 edgert_func_name(b->fn), edgert_module_path(m));
    return NULL;
  }
  PyObject *d = edgert_py_contract_to_dict(edgert_func_contract(b->fn));
  if (d == NULL)
    return NULL;
  PyObject *path = PyUnicode_DecodeFSDefault(edgert_module_path(m));
  if (path == NULL) {
    Py_DECREF(d);
    return NULL;
  }
  return Py_BuildValue("(sNNN)", edgert_module_sha256(m), path, d,
                       PyBool_FromLong(edgert_module_symbols_isolated(m)));
}

/* The attribute named after the function is its callable again: a bound
 * callable pickles as getattr(<its _Bound>, <its name>) (how a builtin
 * method with a __self__ reduces), and edgert._pickle rebuilds the _Bound. */
static PyObject *bound_getattro(BoundObject *b, PyObject *name) {
  if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, b->def.ml_name) == 0) {
    PyObject *modname = PyUnicode_FromString("edgert.loader");
    if (modname == NULL)
      return NULL;
    PyObject *f = PyCFunction_NewEx(&b->def, (PyObject *)b, modname);
    Py_DECREF(modname);
    return f;
  }
  return PyObject_GenericGetAttr((PyObject *)b, name);
}

PyObject *edgert_py_mod_dependencies(edgert_py_mod_t *h) {
  PyObject *out = PyList_New(0);
  if (out == NULL || h == NULL || EDGERT_PY_LOAD(h->unloaded))
    return out;
  size_t n = edgert_module_dependency_count(h->m);
  for (size_t i = 0; i < n; i++) {
    const char *name, *path, *sha;
    if (edgert_module_dependency(h->m, i, &name, &path, &sha) != 0)
      break; /* unloaded or reloaded meanwhile: what was read so far */
    PyObject *t = Py_BuildValue("(NNs)", PyUnicode_DecodeFSDefault(name),
                                PyUnicode_DecodeFSDefault(path), sha);
    if (t == NULL || PyList_Append(out, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(out);
      return NULL;
    }
    Py_DECREF(t);
  }
  return out;
}

static PyObject *bound_get_dependencies(BoundObject *b, void *closure) {
  (void)closure;
  return edgert_py_mod_dependencies(b->mod);
}

/* Whether a call can still reach the function (its module is not unloaded). */
static PyObject *bound_get_live(BoundObject *b, void *closure) {
  (void)closure;
  return PyBool_FromLong(!EDGERT_PY_LOAD(b->mod->unloaded));
}

/* The module's isolation options (a dict as load() takes them), or None. */
static PyObject *bound_get_isolation(BoundObject *b, void *closure) {
  (void)closure;
  return edgert_py_isolation_dict(b->mod->m);
}

static PyGetSetDef bound_getset[] = {
    {"_isolation", (getter)bound_get_isolation, NULL,
     "The module's isolation options (as load() takes them), or None in-process.", NULL},
    {"_live", (getter)bound_get_live, NULL, "Whether its module is still loaded.", NULL},
    {"_dependencies", (getter)bound_get_dependencies, NULL,
     "[(name, path, sha256)]: the dependencies edgert verified for its module.", NULL},
    {"_pickle_state", (getter)bound_get_pickle_state, NULL,
     "(sha256, path, contract dict, isolate_symbols): the content reference pickling writes.",
     NULL},
    {"signature", (getter)bound_get_contract, NULL, "The C signature, as text.", NULL},
    {"address", (getter)bound_get_address, NULL, "The function's address.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject EdgertPy_BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert._edgert._Bound",
    .tp_basicsize = sizeof(BoundObject),
    .tp_dealloc = (destructor)bound_dealloc,
    .tp_repr = (reprfunc)bound_repr,
    .tp_getattro = (getattrofunc)bound_getattro,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_weaklistoffset = offsetof(BoundObject, weakrefs),
    .tp_getset = bound_getset,
    .tp_doc = "The function a bound callable calls (internal).",
};

/* ---- the call --------------------------------------------------------------- */


static PyObject *raise_unloaded(BoundObject *b) {
  PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot call '%s': module %s is unloaded",
               edgert_func_name(b->fn), edgert_module_path(b->mod->m));
  return NULL;
}

/* Calls b's function with converted values: with the GIL released when its
 * contract says so, else attached (edgert_py_call_attached). */
static int call_converted(BoundObject *b, edgert_py_mod_t *h, edgert_value_t *v,
                          void *ret) {
  int rc;
  if (b->release_gil) {
    Py_BEGIN_ALLOW_THREADS
    EDGERT_PY_CALLER_ENTER(_save);
    rc = edgert_func_call_values(b->fn, v, ret);
    EDGERT_PY_CALLER_LEAVE();
    Py_END_ALLOW_THREADS
  } else {
    rc = edgert_py_call_attached(h, b->fn, v, ret);
  }
  return rc;
}

/* A variadic function called with extra arguments: the fixed ones through
 * the table, the extra ones typed by conv_extra, the call through the core's
 * variadic entry (counted, so it needs no GIL bookkeeping). */
static PyObject *bound_invoke_var(BoundObject *b, PyObject *const *args, Py_ssize_t nargs,
                                  int *missed) {
  if (nargs > EDGERT_MAX_ARGS) {
    if (missed) {
      *missed = 1;
      return NULL;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (fixed and extra), got %zd",
                 edgert_func_name(b->fn), EDGERT_MAX_ARGS, nargs);
    return NULL;
  }
  edgert_value_t v[EDGERT_MAX_ARGS];
  edgert_abi_type_t extra[EDGERT_MAX_ARGS];
  conv_err_t err;
  conv_hold_t hold;
  conv_ret_t ret;
  conv_hold_init(&hold, (unsigned)nargs);
  unsigned i = 0;
  for (; i < b->nargs; i++)
    if (conv_arg(&b->args[i], args[i], i, &v[i], &hold, &err) != CV_OK)
      goto refused;
  for (; i < (unsigned)nargs; i++)
    if (conv_extra(args[i], i, &extra[i - b->nargs], &v[i], &hold, &err) != CV_OK)
      goto refused;
  int rc;
  if (b->release_gil) {
    Py_BEGIN_ALLOW_THREADS
    EDGERT_PY_CALLER_ENTER(_save);
    rc = edgert_func_call_variadic(b->fn, v, (size_t)nargs, extra, &ret);
    EDGERT_PY_CALLER_LEAVE();
    Py_END_ALLOW_THREADS
  } else {
    EDGERT_PY_CALLER_ENTER(PyThreadState_GetUnchecked()); /* attached: never NULL */
    rc = edgert_func_call_variadic(b->fn, v, (size_t)nargs, extra, &ret);
    EDGERT_PY_CALLER_LEAVE();
  }
  conv_hold_release(&hold);
  if (EDGERT__UNLIKELY(rc != 0))
    return edgert_py_raise(rc);
  return conv_table[b->ret.code].get(ret.raw, edgert_func_name(b->fn));
refused:
  conv_hold_release(&hold);
  if (missed) {
    if (err.kind == CV_PYERR) {
      if (!PyErr_ExceptionMatches(PyExc_TypeError) &&
          !PyErr_ExceptionMatches(PyExc_ValueError) &&
          !PyErr_ExceptionMatches(PyExc_OverflowError) &&
          !PyErr_ExceptionMatches(PyExc_BufferError))
        return NULL;
      PyErr_Clear();
    }
    *missed = 1;
    return NULL;
  }
  if (err.index < b->nargs)
    conv_raise(b->fn, b->args, b->nargs, &err, nargs);
  else
    conv_raise_extra(b->fn, b->nargs, &err);
  return NULL;
}

/* call_isolated's return when it raised a Python exception itself (not an
 * EDGERT code: those are 0 or negative). */
#define CALL_RAISED 1
static int call_isolated(BoundObject *b, edgert_value_t *v, const conv_hold_t *hold, void *ret);

static PyObject *bound_invoke(BoundObject *b, PyObject *const *args, Py_ssize_t nargs,
                              int *missed) {
  edgert_py_mod_t *h = b->mod;
  if (missed)
    *missed = 0;
  if (EDGERT__UNLIKELY(EDGERT_PY_LOAD(h->unloaded)))
    return raise_unloaded(b);
  conv_err_t err;
  if (EDGERT__UNLIKELY((size_t)nargs != b->nargs)) {
    if (b->variadic && (size_t)nargs > b->nargs)
      return bound_invoke_var(b, args, nargs, missed);
    if (missed) {
      *missed = 1;
      return NULL;
    }
    err.kind = CV_COUNT;
    conv_raise(b->fn, b->args, b->nargs, &err, nargs);
    return NULL;
  }
  edgert_value_t v[EDGERT_MAX_ARGS + 1];
  conv_ret_t ret;
  void *retp = &ret, *heap = NULL;
  if (EDGERT__UNLIKELY(b->ret.code == EDGERT_CT_STRUCT &&
                       edgert_struct_size(b->ret.layout) > sizeof ret)) {
    retp = heap = PyMem_Malloc(edgert_struct_size(b->ret.layout));
    if (heap == NULL)
      return PyErr_NoMemory();
  }
  int rc;
  if (!b->cleanup) {
    for (unsigned i = 0; i < b->nargs; i++)
      if (EDGERT__UNLIKELY(conv_arg(&b->args[i], args[i], i, &v[i], NULL, &err) != CV_OK))
        goto refused;
    rc = call_converted(b, h, v, retp);
  } else {
    conv_hold_t hold;
    conv_hold_init(&hold, b->nargs);
    for (unsigned i = 0; i < b->nargs; i++)
      if (conv_arg(&b->args[i], args[i], i, &v[i], &hold, &err) != CV_OK) {
        conv_hold_release(&hold);
        goto refused;
      }
    rc = EDGERT__UNLIKELY(b->isolated) ? call_isolated(b, v, &hold, retp)
                                       : call_converted(b, h, v, retp);
    if (EDGERT__UNLIKELY(b->callbacks)) {
      unsigned at = 0;
      size_t after = 0;
      PyObject *exc = conv_cb_take(&hold, &at, &after);
      conv_hold_release(&hold);
      if (exc != NULL)
        return conv_cb_raise(b->fn, at, after, exc, rc);
    } else {
      conv_hold_release(&hold);
    }
  }
  if (EDGERT__UNLIKELY(rc != 0)) {
    PyMem_Free(heap);
    return rc == CALL_RAISED ? NULL : edgert_py_raise(rc);
  }
  if (EDGERT__UNLIKELY(b->ret.code == EDGERT_CT_STRUCT)) {
    PyObject *r = edgert_py_struct_result(b->ret.layout, retp);
    PyMem_Free(heap);
    return r;
  }
  return conv_table[b->ret.code].get(ret.raw, edgert_func_name(b->fn));

refused:
  if (heap != NULL)
    PyMem_Free(heap);
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
  conv_raise(b->fn, b->args, b->nargs, &err, nargs);
  return NULL;
}

/* The fast path of a call: contracts whose arguments are all c_double or
 * 64-bit integers, called with exact floats and ints, keeping the GIL.
 * Anything else (or a value that needs a check the fast path does not make)
 * goes through bound_invoke, which handles every case. */
#define FAST_MAX 6
enum { FC_NONE = 0, FC_DOUBLE, FC_I64, FC_STRUCT };

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
  edgert_py_mod_t *h = b->mod;
  if (EDGERT__LIKELY(b->fast && (size_t)nargs == b->nargs && !EDGERT_PY_LOAD(h->unloaded))) {
    if (missed)
      *missed = 0;
    edgert_value_t v[FAST_MAX];
    for (Py_ssize_t i = 0; i < nargs; i++) {
      PyObject *o = args[i];
      if (b->fastcode[i] == FC_DOUBLE) {
        if (EDGERT__UNLIKELY(!PyFloat_CheckExact(o)))
          goto slow;
        v[i].d = PyFloat_AS_DOUBLE(o);
      } else if (b->fastcode[i] == FC_STRUCT) {
        /* an instance of exactly the class: its bytes, in place */
        if (EDGERT__UNLIKELY(Py_TYPE(o) != b->stype[i]))
          goto slow;
        v[i].p = ((edgert_py_cdata_t *)o)->b_ptr;
      } else {
        if (EDGERT__UNLIKELY(!PyLong_CheckExact(o) || !fast_i64(o, &v[i].i)))
          goto slow;
      }
    }
    conv_ret_t r;
    int rc = edgert_py_call_attached(h, b->fn, v, &r);
    if (EDGERT__UNLIKELY(rc != 0))
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
      return conv_table[b->ret.code].get(r.raw, edgert_func_name(b->fn));
    }
  }
slow:
  return bound_invoke(b, args, nargs, missed);
}

static PyObject *bound_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  return bound_dispatch((BoundObject *)self, args, nargs, NULL);
}

static PyObject *bound_call_iso(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

PyObject *edgert_py_bound_self_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  BoundObject *b = (BoundObject *)self;
  /* loader.call(name, ...) of an isolated function: its own lane too */
  if (EDGERT__UNLIKELY(b->def.ml_meth == (PyCFunction)(void (*)(void))bound_call_iso))
    return bound_invoke(b, args, nargs, NULL);
  return bound_dispatch(b, args, nargs, NULL);
}

static PyObject *bound_call_d2(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  BoundObject *b = (BoundObject *)self;
  int took;
  PyObject *r = edgert_py_floats_lane(b, args, nargs, 2, &took);
  return EDGERT__LIKELY(took) ? r : bound_invoke(b, args, nargs, NULL);
}

static PyObject *bound_call_d1(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  BoundObject *b = (BoundObject *)self;
  int took;
  PyObject *r = edgert_py_floats_lane(b, args, nargs, 1, &took);
  return EDGERT__LIKELY(took) ? r : bound_invoke(b, args, nargs, NULL);
}


/* ---- isolated calls (edgert/isolate.h) ----------------------------------------
 *
 * Arguments convert exactly as for an in-process call (the same table, the
 * same errors); then each pointer argument's memory gets its size from the
 * buffer view the conversion holds, so that the core can pass it by
 * reference (it lies in shared memory edgert made) or copy it into the
 * worker (EDGERT_BUF_IN) and back after the call (EDGERT_BUF_OUT, unless the
 * contract's type is const or the buffer is read-only). The call always
 * waits with the GIL released (the kernel runs in another process, so the
 * GIL protects nothing it touches), and the thread's interrupt check takes
 * the GIL back to run Python's signal handlers: Ctrl-C kills the worker and
 * the call raises KeyboardInterrupt.
 */

/* The interrupt check (edgert_isolate_set_interrupt): `ud` is the waiting
 * call's thread state. Nonzero when a handler raised; the exception stays
 * set in the thread state for the call to raise. */
static int iso_interrupt(void *ud) {
  PyEval_RestoreThread((PyThreadState *)ud);
  int raised = PyErr_CheckSignals() != 0;
  (void)PyEval_SaveThread();
  return raised;
}

/* bufs[i] for each argument: the size of a pointer argument's memory as far
 * as the conversion knows it (a buffer's view: from the pointer to the end
 * of the view, 0 for an empty one). A c_char_p or c_wchar_p string the core
 * copies with its NUL. An address given as an int is passed only when it
 * points into shared memory (edgert.shared_buffer, a shared TypedList):
 * anything else has no size to copy, so it is refused here, naming the
 * argument and what to pass instead. -1 with TypeError set. */
static int iso_buffers(const BoundObject *b, edgert_value_t *v, const conv_hold_t *h,
                       edgert_arg_buffer_t *bufs) {
  for (unsigned i = 0; i < b->nargs; i++) {
    const edgert_abi_type_t *t = &b->args[i];
    bufs[i].nbytes = 0;
    bufs[i].flags = 0;
    if ((t->code != EDGERT_CT_POINTER && t->code != EDGERT_CT_VOID_P) || v[i].p == NULL)
      continue;
    if (h->held[i] == 1) {
      const Py_buffer *view = &h->views[i];
      const char *end = (const char *)view->buf + view->len, *at = v[i].p;
      bufs[i].nbytes = (size_t)(end - at);
      bufs[i].flags = EDGERT_BUF_IN | (t->is_const || view->readonly ? 0u : EDGERT_BUF_OUT);
    } else if (!edgert_isolate_shm_contains(v[i].p, 1)) {
      PyErr_Format(PyExc_TypeError,
                   "%s() argument %u: a function running in an isolated worker needs the size "
                   "of the memory a pointer argument points to: pass a buffer (array, numpy "
                   "array, TypedList, bytearray) or memory from edgert.shared_buffer(), not an "
                   "address",
                   edgert_func_name(b->fn), i + 1);
      return -1;
    }
  }
  return 0;
}

/* The isolated call of converted arguments: each pointer's size from the
 * conversion's views, the wait with the GIL released and Ctrl-C checked. */
static int call_isolated(BoundObject *b, edgert_value_t *v, const conv_hold_t *hold, void *ret) {
  edgert_arg_buffer_t bufs[EDGERT_MAX_ARGS];
  if (iso_buffers(b, v, hold, bufs) != 0)
    return CALL_RAISED;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  edgert_isolate_set_interrupt(iso_interrupt, _save);
  rc = edgert_isolate_call(b->fn, v, bufs, ret);
  edgert_isolate_set_interrupt(NULL, NULL);
  Py_END_ALLOW_THREADS
  return rc;
}

static PyObject *bound_call_iso(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  return bound_invoke((BoundObject *)self, args, nargs, NULL);
}

int edgert_py_is_bound(PyObject *o) {
  if (o == NULL || !PyCFunction_Check(o))
    return 0;
  PyCFunction f = PyCFunction_GET_FUNCTION(o);
  return (f == (PyCFunction)(void (*)(void))bound_call ||
          f == (PyCFunction)(void (*)(void))bound_call_d2 ||
          f == (PyCFunction)(void (*)(void))bound_call_d1 ||
          f == (PyCFunction)(void (*)(void))bound_call_iso) &&
         PyCFunction_GET_SELF(o) != NULL && Py_TYPE(PyCFunction_GET_SELF(o)) == &EdgertPy_BoundType;
}

edgert_func_t *edgert_py_bound_func(PyObject *o) {
  return edgert_py_is_bound(o) ? ((BoundObject *)PyCFunction_GET_SELF(o))->fn : NULL;
}

void *edgert_py_bound_fnptr(PyObject *o, const edgert_fnsig_t *sig) {
  BoundObject *b = (BoundObject *)PyCFunction_GET_SELF(o);
  if (EDGERT__UNLIKELY(EDGERT_PY_LOAD(b->mod->unloaded))) {
    raise_unloaded(b);
    return NULL;
  }
  if (EDGERT__LIKELY(atomic_load_explicit(&b->fnsig_ok, memory_order_relaxed) == sig))
    return edgert_func_address(b->fn);
  if (b->def.ml_meth == (PyCFunction)(void (*)(void))bound_call_iso) {
    PyErr_Format(PyExc_TypeError,
                 "the bound function %s runs in an isolated worker process: its code is not "
                 "mapped in this process, so it cannot be passed as a C callback",
                 edgert_func_name(b->fn));
    return NULL;
  }
  if (edgert_fnsig_check_contract(sig, edgert_func_contract(b->fn)) != 0) {
    char want[EDGERT_ABI_TYPE_NAME_MAX];
    edgert_abi_type_t t = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0, .sig = sig};
    char why[800];
    snprintf(why, sizeof why, "%s", edgert_last_error());
    if (edgert_abi_type_name(&t, want, sizeof want) != 0)
      snprintf(want, sizeof want, "CFUNCTYPE");
    PyErr_Format(PyExc_TypeError,
                 "the bound function %s does not match the callback type %s: %s",
                 edgert_func_name(b->fn), want, why);
    return NULL;
  }
  atomic_store_explicit(&b->fnsig_ok, sig, memory_order_relaxed);
  return edgert_func_address(b->fn);
}

int edgert_py_bound_reload_if_crashed(PyObject *o) {
  if (!edgert_py_is_bound(o))
    return 0;
  edgert_py_mod_t *h = ((BoundObject *)PyCFunction_GET_SELF(o))->mod;
  if (EDGERT_PY_LOAD(h->unloaded) || !edgert_module_quarantined(h->m))
    return 0;
  return edgert_py_mod_reload(h, NULL) < 0 ? -1 : 1;
}

/* The float lane of width n (1 or 2, a constant at each use) when the
 * arguments fit it, else the general path; *missed as edgert_py_bound_call
 * says. */
static inline PyObject *floats_or_dispatch(BoundObject *b, PyObject *const *args,
                                           Py_ssize_t nargs, int n, int *missed) {
  int took;
  PyObject *r = edgert_py_floats_lane(b, args, nargs, n, &took);
  if (EDGERT__LIKELY(took)) {
    if (missed)
      *missed = 0;
    return r;
  }
  return bound_dispatch(b, args, nargs, missed);
}

/* The lanes edgert_py_bound_lane hands out: edgert_py_bound_call with the
 * choice of lane made once. `bound` satisfies edgert_py_is_bound. */
#define BOUND_SELF(bound) ((BoundObject *)((PyCFunctionObject *)(bound))->m_self)

static PyObject *lane_call_d2(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                              int *missed) {
  return floats_or_dispatch(BOUND_SELF(bound), args, nargs, 2, missed);
}

static PyObject *lane_call_d1(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                              int *missed) {
  return floats_or_dispatch(BOUND_SELF(bound), args, nargs, 1, missed);
}

/* The conversion table's path, for a function with no fast lane (its
 * arguments or return are not all doubles and 64-bit integers, or it
 * releases the GIL) and for an isolated one. */
static PyObject *lane_call_invoke(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                                  int *missed) {
  return bound_invoke(BOUND_SELF(bound), args, nargs, missed);
}

static PyObject *lane_call_general(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                                   int *missed) {
  return bound_dispatch(BOUND_SELF(bound), args, nargs, missed);
}

PyObject *edgert_py_bound_call(PyObject *bound, PyObject *const *args, Py_ssize_t nargs,
                               int *missed) {
  /* `bound` satisfies edgert_py_is_bound (the callers check it once: the
   * nexus when a version is installed), so it is not checked again here.
   * The lane a direct call takes, so that the call costs what the bare
   * bound call does. */
  return edgert_py_bound_lane(bound)(bound, args, nargs, missed);
}

edgert_py_lane_t edgert_py_bound_lane(PyObject *bound) {
  PyCFunction lane = PyCFunction_GET_FUNCTION(bound);
  if (lane == (PyCFunction)(void (*)(void))bound_call_d2)
    return lane_call_d2;
  if (lane == (PyCFunction)(void (*)(void))bound_call_d1)
    return lane_call_d1;
  if (lane == (PyCFunction)(void (*)(void))bound_call_iso)
    return lane_call_invoke;
  return BOUND_SELF(bound)->fast ? lane_call_general : lane_call_invoke;
}

int edgert_py_bound_float_width(PyObject *bound, BoundObject **self) {
  PyCFunction lane = PyCFunction_GET_FUNCTION(bound);
  *self = BOUND_SELF(bound);
  if (lane == (PyCFunction)(void (*)(void))bound_call_d2)
    return 2;
  return lane == (PyCFunction)(void (*)(void))bound_call_d1;
}

/* A new bound callable for fn (new reference). */
PyObject *edgert_py_make_bound(edgert_py_mod_t *h, edgert_func_t *fn) {
  BoundObject *b = PyObject_New(BoundObject, &EdgertPy_BoundType);
  if (b == NULL)
    return NULL;
  const edgert_contract_t *c = edgert_func_contract(fn);
  b->fn = fn;
  b->weakrefs = NULL;
  Py_INCREF(h);
  b->mod = h;
  b->nargs = c->nargs;
  b->release_gil = c->release_gil != 0;
  b->ret = c->ret;
  b->cleanup = 0;
  b->callbacks = 0;
  atomic_init(&b->fnsig_ok, NULL);
  b->variadic = c->variadic != 0;
  for (unsigned i = 0; i < c->nargs; i++) {
    b->args[i] = c->args[i];
    if (conv_table[c->args[i].code].held)
      b->cleanup = 1;
    if (c->args[i].code == EDGERT_CT_FUNCPTR)
      b->callbacks = 1;
  }
  b->fast = !b->release_gil && c->nargs <= FAST_MAX && edgert_func_is_fast(fn);
  for (unsigned i = 0; i < c->nargs; i++) {
    edgert_ctype_t k = c->args[i].code;
    b->fastcode[i] = k == EDGERT_CT_DOUBLE                            ? FC_DOUBLE
                     : (k == EDGERT_CT_LONG || k == EDGERT_CT_LONGLONG) ? FC_I64
                                                                        : FC_NONE;
    b->stype[i] = NULL;
    if (k == EDGERT_CT_STRUCT && edgert_py_bptr_ok == 1) {
      PyObject *cls = edgert_py_struct_class(c->args[i].layout);
      if (cls == NULL) {
        PyErr_Clear();
      } else {
        b->stype[i] = (PyTypeObject *)cls;
        Py_DECREF(cls);
        b->fastcode[i] = FC_STRUCT;
      }
    }
    if (b->fastcode[i] == FC_NONE)
      b->fast = 0;
  }
  b->def.ml_name = edgert_func_name(fn);
  b->def.ml_meth = (PyCFunction)(void (*)(void))bound_call;
  if (b->fast && b->ret.code == EDGERT_CT_DOUBLE && c->nargs <= 2 && c->nargs >= 1 &&
      b->fastcode[0] == FC_DOUBLE && (c->nargs == 1 || b->fastcode[1] == FC_DOUBLE))
    b->def.ml_meth = c->nargs == 2 ? (PyCFunction)(void (*)(void))bound_call_d2
                                   : (PyCFunction)(void (*)(void))bound_call_d1;
  b->isolated = edgert_isolate_options(h->m, NULL) == 1;
  if (b->isolated) {
    b->fast = 0;
    b->cleanup = 1; /* call_isolated sizes pointers from the held views */
    b->def.ml_meth = (PyCFunction)(void (*)(void))bound_call_iso;
  }
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

