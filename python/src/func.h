/*
 * func.h: the module handle and the bound function (func.c), what the
 * loader object (loader.c) builds and holds.
 */
#ifndef EDGERT_PY_FUNC_H
#define EDGERT_PY_FUNC_H

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

/* Calls the bound function whose _Bound is `self` (loader.call's path). */
PyObject *edgert_py_bound_self_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif /* EDGERT_PY_FUNC_H */
