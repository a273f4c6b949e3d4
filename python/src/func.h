/*
 * func.h: the module handle and the bound function (func.c), what the
 * loader object (loader.c) builds and holds.
 */
#ifndef EDGERT_PY_FUNC_H
#define EDGERT_PY_FUNC_H

#include "conv.h"
#include "ext.h"

/* _Module: one core module handle. ModuleLoader and every bound callable
 * made from it hold a reference (see the invariants in func.c). */
typedef struct {
  PyObject_HEAD
  edgert_module_t *m;
  Py_ssize_t gil_calls; /* calls in progress holding the GIL */
  int unloaded;         /* unload() was called (Python's view) */
  int pending_unload;   /* the core unload waits for gil_calls == 0 */
} edgert_py_mod_t;

extern PyTypeObject EdgertPy_ModType;   /* edgert._edgert._Module */
extern PyTypeObject EdgertPy_BoundType; /* edgert._edgert._Bound, a bound callable's __self__ */

/* Marks h unloaded and unloads the core module, now or (a call holding the
 * GIL in progress) when the outermost such call returns. */
void edgert_py_mod_unload(edgert_py_mod_t *h);
/* Maps a fresh verified copy of h's module (edgert_module_reload; `path`
 * NULL = where it was loaded from): 0, or -1 with an exception set. Runs
 * with the GIL held, so no call that keeps the GIL (and is not counted by
 * the core) can be running on the old mapping; refused from inside such a
 * call of the same module (RuntimeError). */
int edgert_py_mod_reload(edgert_py_mod_t *h, const char *path);
/* [(name, path, sha256)]: the dependencies edgert verified and mapped for
 * h's module (edgert_module_dependency), [] when unloaded. New reference. */
PyObject *edgert_py_mod_dependencies(edgert_py_mod_t *h);
/* The isolation options of module m as load() takes them (a new dict), or
 * None (new reference) for an in-process module; NULL with an exception.
 * loader.c. */
PyObject *edgert_py_isolation_dict(const edgert_module_t *m);
/* Isolation options as load()'s keywords (a new dict: "isolation",
 * "timeout" and "memory_limit" (None for no limit), "sandbox", "workers",
 * "worker_path"); the one spelling of them for loaders and manifests.
 * loader.c. */
PyObject *edgert_py_isolation_options_dict(const edgert_isolate_options_t *o);
/* A new bound callable for fn, bound in h's module (new reference). A
 * function of an isolated module (edgert/isolate.h) gets a lane of its own
 * (func.c's iso lane), chosen here, so in-process calls never test for it. */
PyObject *edgert_py_make_bound(edgert_py_mod_t *h, edgert_func_t *fn);

/* _Bound: a bound callable's __self__ (func.c). Its float lane's body is
 * below so that the nexus (nexus.c) can run it inline. */
typedef struct {
  PyObject_HEAD
  edgert_func_t *fn;
  edgert_py_mod_t *mod;
  PyMethodDef def;
  unsigned nargs;
  int release_gil;
  int cleanup; /* some argument needs a conv_hold_t (buffer, string copy) */
  int callbacks; /* some argument is a CFUNCTYPE (callback.c) */
  int isolated; /* a function of an isolated module (edgert/isolate.h): call_isolated */
  /* The callback signature this function was last found to match
   * (edgert_py_bound_fnptr): signatures are interned, so one compare. */
  _Atomic(const edgert_fnsig_t *) fnsig_ok;
  int fast;    /* GIL kept, <= FAST_MAX arguments, each a double or a 64-bit int */
  int variadic; /* extra arguments after the nargs fixed ones (bound_invoke_var) */
  unsigned char fastcode[EDGERT_MAX_ARGS];
  PyTypeObject *stype[EDGERT_MAX_ARGS]; /* FC_STRUCT: the one class the lane takes
                                           (borrowed: struct.c's dicts keep it) */
  edgert_abi_type_t ret;
  edgert_abi_type_t args[EDGERT_MAX_ARGS];
  PyObject *weakrefs; /* edgert._pickle keeps unpickled functions weakly, by content */
} BoundObject;

/* A call that keeps the GIL, or on a free-threaded build stays attached:
 * see the invariants in func.c for who keeps unload() out of it. */
static inline int edgert_py_call_attached(edgert_py_mod_t *h, edgert_func_t *fn,
                                          edgert_value_t *v, void *ret) {
  EDGERT_PY_CALLER_ENTER(PyThreadState_GetUnchecked()); /* attached: never NULL */
#ifdef Py_GIL_DISABLED
  (void)h;
  int rc = edgert_func_call_values(fn, v, ret);
#else
  h->gil_calls++;
  int rc = edgert_func_call_serialized(fn, v, ret);
  if (--h->gil_calls == 0 && EDGERT__UNLIKELY(h->pending_unload))
    edgert_py_mod_unload(h);
#endif
  EDGERT_PY_CALLER_LEAVE();
  return rc;
}

/*
 * The float lane, for the commonest kernel shape: double f(double, double)
 * (and double f(double)) keeping the GIL, called with exact floats. No loop,
 * no per-argument code and no return switch. For n = 1 or 2 (a constant at
 * each use, b's lane being that width's: edgert_py_bound_float_width):
 * NULL with *took = 0 when the arguments are not n exact floats or the
 * module is unloaded (the caller then takes the general path, which says
 * why), else *took = 1 and the result (NULL with the error set). It keeps
 * the GIL; Python code runs only if the kernel calls back into Python, or
 * while a deferred unload (edgert_py_mod_unload) releases the GIL, so a
 * caller that holds no reference to the bound function must keep it alive
 * otherwise (the nexus's grave, python/src/nexus.c).
 */
static inline PyObject *edgert_py_floats_lane(BoundObject *b, PyObject *const *args,
                                              Py_ssize_t nargs, int n, int *took) {
  edgert_py_mod_t *h = b->mod;
  if (EDGERT__LIKELY(nargs == n && PyFloat_CheckExact(args[0]) &&
                     (n == 1 || PyFloat_CheckExact(args[1])) && !EDGERT_PY_LOAD(h->unloaded))) {
    *took = 1;
    edgert_value_t v[2];
    v[0].d = PyFloat_AS_DOUBLE(args[0]);
    if (n == 2)
      v[1].d = PyFloat_AS_DOUBLE(args[1]);
    conv_ret_t r;
    int rc = edgert_py_call_attached(h, b->fn, v, &r);
    if (EDGERT__UNLIKELY(rc != 0))
      return edgert_py_raise(rc);
    return PyFloat_FromDouble(*(const double *)r.raw);
  }
  *took = 0;
  return NULL;
}

/* 2 or 1 when `bound` (edgert_py_is_bound) takes the float lane of that
 * width (its _Bound in *self, borrowed), else 0. */
int edgert_py_bound_float_width(PyObject *bound, BoundObject **self);

/* Calls the bound function whose _Bound is `self` (loader.call's path). */
PyObject *edgert_py_bound_self_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif /* EDGERT_PY_FUNC_H */
