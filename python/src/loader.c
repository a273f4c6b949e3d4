/*
 * loader.c: the loader object (ModuleLoader), contracts from Python, and the
 * module functions of the loader part.
 *
 * Invariants:
 * - A ModuleLoader's `mod` and `funcs` are swapped by load() and read by
 *   the other methods in a critical section on the loader; a call looks its
 *   function up there and runs it outside, on a reference of its own.
 * - The module handle and the bound callables are func.c's (func.h); the
 *   conversion of arguments and results is conv.c's (conv.h).
 */
#include "func.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- contracts from Python ----------------------------------------------------- */

/* Fills c from an object with _encode(). 0, or -1 with an exception. */
static int contract_from(PyObject *abi, edgert_contract_t *c) {
  PyObject *enc = PyObject_CallMethod(abi, "_encode", NULL);
  if (enc == NULL)
    return -1;
  const char *name, *ret = NULL, *cc = NULL;
  PyObject *argt, *reto, *cco;
  PyObject *varo = Py_None;
  int rg = 1, use_errno = 0;
  if (!PyTuple_Check(enc) || (PyTuple_GET_SIZE(enc) != 5 && PyTuple_GET_SIZE(enc) != 7)) {
    Py_DECREF(enc);
    PyErr_SetString(PyExc_TypeError, "ABIContract._encode() must return a 5- or 7-tuple");
    return -1;
  }
  if (!PyArg_ParseTuple(enc, "sOOOp|pO", &name, &argt, &reto, &cco, &rg, &use_errno, &varo)) {
    Py_DECREF(enc);
    return -1;
  }
  if (reto != Py_None && (ret = PyUnicode_AsUTF8(reto)) == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  if (cco != Py_None && (cc = PyUnicode_AsUTF8(cco)) == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  PyObject *seq = edgert_py_sequence_fast(argt, "ABIContract arg types must be a sequence");
  if (seq == NULL) {
    Py_DECREF(enc);
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  const char *names[EDGERT_MAX_ARGS + 1];
  Py_ssize_t take = n > EDGERT_MAX_ARGS ? EDGERT_MAX_ARGS + 1 : n;
  for (Py_ssize_t i = 0; i < take; i++) {
    names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
    if (names[i] == NULL) {
      Py_DECREF(seq);
      Py_DECREF(enc);
      return -1;
    }
  }
  edgert_clear_error();
  int rc = edgert_contract_init(c, name, names, (size_t)n, ret, cc, rg);
  Py_DECREF(seq);
  if (rc == 0 && varo != Py_None) {
    long nfixed = PyLong_AsLong(varo);
    if (nfixed == -1 && PyErr_Occurred()) {
      Py_DECREF(enc);
      return -1;
    }
    rc = edgert_contract_set_variadic(c, nfixed < 0 || nfixed > EDGERT_MAX_ARGS
                                             ? EDGERT_MAX_ARGS + 1u
                                             : (unsigned)nfixed);
  }
  if (rc == 0)
    c->use_errno = (unsigned char)(use_errno != 0);
  Py_DECREF(enc);
  if (rc != 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

/* Contracts from None, one contract, or an iterable of them. *out is
 * PyMem-allocated (NULL when none). 0 or -1 with an exception. */
static int contracts_from(PyObject *abi, edgert_contract_t **out, Py_ssize_t *count) {
  *out = NULL;
  *count = 0;
  if (abi == NULL || abi == Py_None)
    return 0;
  int has = PyObject_HasAttrString(abi, "_encode");
  PyObject *seq;
  if (has)
    seq = PyTuple_Pack(1, abi);
  else {
    seq = edgert_py_sequence_fast(abi, "abi must be an ABIContract or an iterable of them");
    if (seq == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "abi must be an ABIContract or an iterable of them, not %s",
                   Py_TYPE(abi)->tp_name);
    }
  }
  if (seq == NULL)
    return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  edgert_contract_t *cs = n ? PyMem_Calloc((size_t)n, sizeof *cs) : NULL;
  if (n && cs == NULL) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
    if (!PyObject_HasAttrString(it, "_encode")) {
      PyErr_Format(PyExc_TypeError, "abi item %zd must be an ABIContract, not %s", i,
                   Py_TYPE(it)->tp_name);
      goto fail;
    }
    if (contract_from(it, &cs[i]) < 0)
      goto fail;
  }
  Py_DECREF(seq);
  *out = cs;
  *count = n;
  return 0;
fail:
  Py_DECREF(seq);
  PyMem_Free(cs);
  return -1;
}

/* Binds contracts in core module h; on success adds callables to `funcs`.
 * All or nothing for `funcs`. 0 or -1 with an exception. */
static int bind_all(edgert_py_mod_t *h, const edgert_contract_t *cs, Py_ssize_t n, PyObject *funcs) {
  PyObject *made = PyList_New(n);
  if (made == NULL)
    return -1;
  for (Py_ssize_t i = 0; i < n; i++) {
    edgert_func_t *fn = NULL;
    edgert_clear_error();
    int rc = edgert_module_bind(h->m, &cs[i], &fn);
    if (rc != 0) {
      Py_DECREF(made);
      edgert_py_raise(rc);
      return -1;
    }
    PyObject *f = edgert_py_make_bound(h, fn);
    if (f == NULL) {
      Py_DECREF(made);
      return -1;
    }
    PyList_SET_ITEM(made, i, f);
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *f = PyList_GET_ITEM(made, i);
    if (PyDict_SetItemString(funcs, cs[i].function_name, f) < 0) {
      Py_DECREF(made);
      return -1;
    }
  }
  Py_DECREF(made);
  return 0;
}

/* ---- ModuleLoader -------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  edgert_py_mod_t *mod;  /* the current module, or NULL */
  PyObject *funcs; /* name -> bound callable */
  PyObject *weakrefs;
} LoaderObject;

static edgert_py_logger_t loader_log;

static PyObject *loader_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, ":ModuleLoader", kwlist))
    return NULL;
  LoaderObject *self = (LoaderObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->funcs = PyDict_New();
  if (self->funcs == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static void loader_dealloc(LoaderObject *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs)
    PyObject_ClearWeakRefs((PyObject *)self);
  Py_CLEAR(self->funcs);
  Py_CLEAR(self->mod);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int loader_traverse(LoaderObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->funcs);
  return 0;
}

static int loader_clear(LoaderObject *self) {
  Py_CLEAR(self->funcs);
  return 0;
}

static int loader_loaded(LoaderObject *self) {
  return self->mod != NULL && !EDGERT_PY_LOAD(self->mod->unloaded);
}

static PyObject *no_module(const char *what) {
  PyErr_Format(EdgertPy_ModuleUnloadedError, "%s: no module is loaded; call load() first", what);
  return NULL;
}

/* `dependencies={name_or_path: sha256_hex}` as an array for the core (the
 * strings borrowed from the encoded keys in *keep and from the values,
 * which the dict holds). Returns the count, or -1 with an exception. */
static Py_ssize_t dependencies_from(PyObject *d, edgert_dependency_t **out, PyObject **keep) {
  if (!PyDict_Check(d)) {
    PyErr_Format(PyExc_TypeError,
                 "dependencies must be a dict {name or path: sha256 hex}, not %s",
                 Py_TYPE(d)->tp_name);
    return -1;
  }
  /* A snapshot of the items (one call: safe against other threads changing
   * the dict, free-threaded builds included), held in *keep. */
  *keep = PyDict_Items(d);
  if (*keep == NULL)
    return -1;
  Py_ssize_t n = PyList_GET_SIZE(*keep);
  if (n == 0)
    return 0;
  *out = PyMem_Calloc((size_t)n, sizeof **out);
  if (*out == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  Py_ssize_t i = 0;
  for (; i < n; i++) {
    PyObject *kv = PyList_GET_ITEM(*keep, i), *k = PyTuple_GET_ITEM(kv, 0),
             *v = PyTuple_GET_ITEM(kv, 1);
    if (!PyUnicode_Check(v)) {
      PyErr_Format(PyExc_TypeError,
                   "dependencies[%R] must be a str of 64 hex digits (its SHA-256), not %s", k,
                   Py_TYPE(v)->tp_name);
      return -1;
    }
    PyObject *kb = NULL;
    if (!PyUnicode_FSConverter(k, &kb))
      return -1;
    /* The encoded key takes the key's place in the snapshot (a new pair,
     * which holds kb and v from now on; k is not used after this). */
    PyObject *pair = PyTuple_Pack(2, kb, v);
    Py_DECREF(kb);
    if (pair == NULL || PyList_SetItem(*keep, i, pair) < 0)
      return -1;
    const char *hex = PyUnicode_AsUTF8(v); /* v is held by the pair */
    if (hex == NULL)
      return -1;
    (*out)[i].name = PyBytes_AS_STRING(kb);
    (*out)[i].sha256_hex = hex;
  }
  return i;
}

/* Wraps core handle m (consumed), binds contracts cs[0..n) in it and swaps
 * it into `self`, unloading the module loaded before. 0, or -1 with an
 * exception (m freed, `self` unchanged). */
static int install_module(LoaderObject *self, edgert_module_t *m, const edgert_contract_t *cs,
                          Py_ssize_t n, const char *how, const char *asked) {
  edgert_py_mod_t *h = PyObject_New(edgert_py_mod_t, &EdgertPy_ModType);
  if (h == NULL) {
    edgert_module_free(m);
    return -1;
  }
  h->m = m;
  h->gil_calls = 0;
  h->unloaded = 0;
  h->pending_unload = 0;
  PyObject *funcs = PyDict_New();
  if (funcs == NULL || bind_all(h, cs, n, funcs) < 0) {
    Py_XDECREF(funcs);
    edgert_py_mod_unload(h);
    Py_DECREF(h);
    return -1;
  }
  /* Swap in; the previous module (if any) is unloaded. */
  edgert_py_mod_t *old;
  PyObject *oldf;
  Py_BEGIN_CRITICAL_SECTION(self);
  old = self->mod;
  oldf = self->funcs;
  self->mod = h;
  self->funcs = funcs;
  Py_END_CRITICAL_SECTION();
  if (old != NULL) {
    if (!EDGERT_PY_LOAD(old->unloaded))
      edgert_py_mod_unload(old);
    Py_DECREF(old);
  }
  Py_XDECREF(oldf);
  const char *chosen = edgert_module_path(m);
  int named = strcmp(asked, chosen) != 0; /* a library name the search resolved */
  edgert_py_log(&loader_log, EDGERT_PY_DEBUG, "%s %s%s%s (sha256 %s, %zd contract%s%s)", how,
                chosen, named ? " for " : "", named ? asked : "", edgert_module_sha256(m), n,
                n == 1 ? "" : "s",
                edgert_module_shared_with_process(m) ? ", shared with the process" : "");
  return 0;
}

/* ---- isolation options (docs/isolation.md) --------------------------------- */

/* The isolation keywords of load(): what each may be, checked here so that
 * every message names its parameter (TypeError for a wrong type, ValueError
 * for a wrong value); the core checks them again (EDGERT_EINVAL). */
typedef struct {
  PyObject *isolation, *timeout, *memory_limit, *sandbox, *workers, *worker_path;
} iso_args_t;

/* 1 if `o` is an int that is not a bool (workers=True is a mistake). */
static int plain_int(PyObject *o) {
  return PyLong_Check(o) && !PyBool_Check(o);
}

/* Fills *out (and *pathb, the worker path's encoding, owned by the caller)
 * from the keywords: 1 when isolation="process", 0 for an in-process load,
 * -1 with an exception. */
static int isolation_from(const iso_args_t *a, edgert_isolate_options_t *out, PyObject **pathb) {
  *out = (edgert_isolate_options_t){.timeout = 0};
  *pathb = NULL;
  int isolated = 0;
  if (a->isolation != Py_None) {
    if (!PyUnicode_Check(a->isolation)) {
      PyErr_Format(PyExc_TypeError, "isolation must be None or \"process\", not %s",
                   Py_TYPE(a->isolation)->tp_name);
      return -1;
    }
    if (PyUnicode_CompareWithASCIIString(a->isolation, "process") != 0) {
      PyErr_Format(PyExc_ValueError, "isolation must be None or \"process\", not %R",
                   a->isolation);
      return -1;
    }
    isolated = 1;
  }
  if (a->timeout != Py_None) {
    if (PyBool_Check(a->timeout) || !(PyFloat_Check(a->timeout) || PyLong_Check(a->timeout))) {
      PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %s",
                   Py_TYPE(a->timeout)->tp_name);
      return -1;
    }
    double t = PyFloat_AsDouble(a->timeout);
    if (t == -1.0 && PyErr_Occurred())
      return -1;
    if (!(t > 0) || isnan(t)) {
      PyErr_Format(PyExc_ValueError,
                   "timeout must be a positive number of seconds or None (no limit), not %R",
                   a->timeout);
      return -1;
    }
    out->timeout = isinf(t) ? 0 : t;
  }
  if (a->memory_limit != Py_None) {
    if (!plain_int(a->memory_limit)) {
      PyErr_Format(PyExc_TypeError, "memory_limit must be an int (bytes) or None, not %s",
                   Py_TYPE(a->memory_limit)->tp_name);
      return -1;
    }
    int ovf = 0;
    long long v = PyLong_AsLongLongAndOverflow(a->memory_limit, &ovf);
    if (v == -1 && PyErr_Occurred())
      return -1;
    if (ovf > 0 || (ovf == 0 && (unsigned long long)v > SIZE_MAX)) {
      PyErr_Format(PyExc_OverflowError, "memory_limit %R is larger than this machine's "
                   "address space", a->memory_limit);
      return -1;
    }
    if (ovf < 0 || v <= 0) {
      PyErr_Format(PyExc_ValueError,
                   "memory_limit must be a positive number of bytes or None (no limit), not %R",
                   a->memory_limit);
      return -1;
    }
    out->memory_limit = (size_t)v;
  }
  if (a->sandbox != Py_None) {
    if (!PyUnicode_Check(a->sandbox)) {
      PyErr_Format(PyExc_TypeError, "sandbox must be \"none\" or \"strict\", not %s",
                   Py_TYPE(a->sandbox)->tp_name);
      return -1;
    }
    if (PyUnicode_CompareWithASCIIString(a->sandbox, "strict") == 0) {
      out->sandbox = EDGERT_SANDBOX_STRICT;
    } else if (PyUnicode_CompareWithASCIIString(a->sandbox, "none") != 0) {
      PyErr_Format(PyExc_ValueError, "sandbox must be \"none\" or \"strict\", not %R",
                   a->sandbox);
      return -1;
    }
  }
  if (a->workers != Py_None) {
    if (!plain_int(a->workers)) {
      PyErr_Format(PyExc_TypeError, "workers must be an int, not %s",
                   Py_TYPE(a->workers)->tp_name);
      return -1;
    }
    int ovf = 0;
    long v = PyLong_AsLongAndOverflow(a->workers, &ovf);
    if (v == -1 && PyErr_Occurred())
      return -1;
    if (ovf != 0 || v < 1 || v > (long)EDGERT_ISOLATE_MAX_WORKERS) {
      PyErr_Format(PyExc_ValueError, "workers must be between 1 and %u, not %R",
                   EDGERT_ISOLATE_MAX_WORKERS, a->workers);
      return -1;
    }
    out->workers = (unsigned)v;
  }
  if (a->worker_path != Py_None) {
    if (!PyUnicode_FSConverter(a->worker_path, pathb))
      return -1;
    out->worker_path = PyBytes_AS_STRING(*pathb);
  }
  if (!isolated) {
    /* An option of isolation without it would be silently ignored. */
    static const char *const names[] = {"timeout", "memory_limit", "sandbox", "workers",
                                        "worker_path"};
    /* (the defaults, sandbox="none" and workers=1, may be spelled out) */
    PyObject *const given[] = {a->timeout, a->memory_limit,
                               out->sandbox == EDGERT_SANDBOX_STRICT ? a->sandbox : Py_None,
                               out->workers > 1 ? a->workers : Py_None, a->worker_path};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (given[i] != Py_None) {
        PyErr_Format(PyExc_ValueError,
                     "%s=%R applies to isolated modules only: pass isolation=\"process\" too",
                     names[i], given[i]);
        Py_CLEAR(*pathb);
        return -1;
      }
  }
  return isolated;
}

PyObject *edgert_py_isolation_options_dict(const edgert_isolate_options_t *o) {
  PyObject *timeout = o->timeout > 0 ? PyFloat_FromDouble(o->timeout) : Py_NewRef(Py_None);
  PyObject *mem = o->memory_limit > 0 ? PyLong_FromSize_t(o->memory_limit) : Py_NewRef(Py_None);
  PyObject *path = o->worker_path != NULL ? PyUnicode_DecodeFSDefault(o->worker_path)
                                          : Py_NewRef(Py_None);
  if (timeout == NULL || mem == NULL || path == NULL) {
    Py_XDECREF(timeout);
    Py_XDECREF(mem);
    Py_XDECREF(path);
    return NULL;
  }
  return Py_BuildValue("{s:s,s:N,s:N,s:s,s:I,s:N}", "isolation", "process", "timeout", timeout,
                       "memory_limit", mem, "sandbox",
                       o->sandbox == EDGERT_SANDBOX_STRICT ? "strict" : "none", "workers",
                       o->workers != 0 ? o->workers : 1u, "worker_path", path);
}

PyObject *edgert_py_isolation_dict(const edgert_module_t *m) {
  edgert_isolate_options_t o;
  if (m == NULL || edgert_isolate_options(m, &o) != 1)
    Py_RETURN_NONE;
  return edgert_py_isolation_options_dict(&o);
}

static PyObject *loader_load(LoaderObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path",      "abi",          "expected_sha256", "max_size",
                           "isolate_symbols", "dependencies", "isolation",   "timeout",
                           "memory_limit", "sandbox",   "workers",         "worker_path",
                           NULL};
  PyObject *pathb = NULL, *abi = Py_None, *exp = Py_None, *maxo = Py_None, *depo = Py_None;
  iso_args_t ia = {Py_None, Py_None, Py_None, Py_None, Py_None, Py_None};
  int isolate = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O$OOpOOOOOOO:load", kwlist,
                                   PyUnicode_FSConverter, &pathb, &abi, &exp, &maxo, &isolate,
                                   &depo, &ia.isolation, &ia.timeout, &ia.memory_limit,
                                   &ia.sandbox, &ia.workers, &ia.worker_path))
    return NULL;
  PyObject *result = NULL, *depkeys = NULL, *workerb = NULL;
  edgert_isolate_options_t iso;
  edgert_dependency_t *deps = NULL;
  edgert_contract_t *cs = NULL;
  Py_ssize_t n = 0;
  const char *hex = NULL;
  edgert_load_options_t opts = {.max_size = 0};
  if (exp != Py_None) {
    if (!PyUnicode_Check(exp)) {
      PyErr_Format(PyExc_TypeError, "expected_sha256 must be a str of 64 hex digits or None, not %s",
                   Py_TYPE(exp)->tp_name);
      goto out;
    }
    hex = PyUnicode_AsUTF8(exp);
    if (hex == NULL)
      goto out;
  }
  if (maxo != Py_None) {
    Py_ssize_t v = PyNumber_AsSsize_t(maxo, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred())
      goto out;
    if (v <= 0) {
      PyErr_SetString(PyExc_ValueError, "max_size must be a positive int");
      goto out;
    }
    opts.max_size = (size_t)v;
  }
  if (isolate)
    opts.flags |= EDGERT_LOAD_ISOLATE_SYMBOLS;
  int isolated = isolation_from(&ia, &iso, &workerb);
  if (isolated < 0)
    goto out;
  if (isolated) {
    if (isolate) {
      PyErr_SetString(PyExc_ValueError,
                      "isolate_symbols=True cannot be combined with isolation=\"process\": an "
                      "isolated module is never mapped here, and in its worker its symbols "
                      "are always its own");
      goto out;
    }
    opts.isolation = &iso;
  }
  if (depo != Py_None &&
      (opts.ndependencies = (size_t)dependencies_from(depo, &deps, &depkeys)) == (size_t)-1)
    goto out;
  opts.dependencies = deps;
  if (contracts_from(abi, &cs, &n) < 0)
    goto out;
  const char *path = PyBytes_AS_STRING(pathb);
  edgert_module_t *m = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  edgert_clear_error();
  rc = edgert_module_load_ex(path, hex, &opts, &m);
  Py_END_ALLOW_THREADS
  if (rc != 0) {
    int e = errno;
    if (rc == EDGERT_EIO && e != 0) {
      /* The message quotes the path, which need not be UTF-8; the
       * filename is the path as the user's str (os.fsdecode), never bytes. */
      const char *msg = edgert_last_error();
      PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
      PyObject *fname = text ? PyUnicode_DecodeFSDefault(path) : NULL;
      PyObject *a = fname ? Py_BuildValue("(iNN)", e, text, fname) : NULL;
      if (fname == NULL)
        Py_XDECREF(text);
      if (a != NULL) {
        PyErr_SetObject(PyExc_OSError, a);
        Py_DECREF(a);
      }
    } else {
      edgert_py_raise(rc);
    }
    edgert_py_log(&loader_log, rc == EDGERT_EINTEGRITY ? EDGERT_PY_ERROR : EDGERT_PY_WARNING,
                  "load of %s refused: %s", path, edgert_last_error());
    goto out;
  }
  if (install_module(self, m, cs, n, "loaded", path) < 0)
    goto out;
  Py_INCREF(self);
  result = (PyObject *)self;
out:
  PyMem_Free(cs);
  PyMem_Free(deps);
  Py_XDECREF(depkeys);
  Py_XDECREF(workerb);
  Py_XDECREF(pathb);
  return result;
}

/* ModuleLoader.open_loaded(sha256, abi=None, *, name=None, isolate_symbols=False):
 * binds to the module with these bytes that the process has loaded (any
 * loader), reading no file (edgert_module_open_loaded). */
static PyObject *loader_open_loaded(LoaderObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"sha256", "abi", "name", "isolate_symbols", NULL};
  PyObject *hexo, *abi = Py_None, *nameb = NULL;
  int isolate = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U|O$O&p:open_loaded", kwlist, &hexo, &abi,
                                   PyUnicode_FSConverter, &nameb, &isolate))
    return NULL;
  PyObject *result = NULL;
  edgert_contract_t *cs = NULL;
  Py_ssize_t n = 0;
  const char *hex = PyUnicode_AsUTF8(hexo);
  if (hex == NULL || contracts_from(abi, &cs, &n) < 0)
    goto out;
  char label[96];
  const char *name = label;
  if (nameb != NULL)
    name = PyBytes_AS_STRING(nameb);
  else
    snprintf(label, sizeof label, "<module sha256 %.64s>", hex);
  edgert_load_options_t opts = {.flags = isolate ? EDGERT_LOAD_ISOLATE_SYMBOLS : 0u};
  edgert_module_t *m = NULL;
  edgert_clear_error();
  int rc = edgert_module_open_loaded(hex, name, &opts, &m);
  if (rc == EDGERT_ENOTFOUND) {
    PyErr_SetString(PyExc_LookupError, edgert_last_error());
    goto out;
  }
  if (rc != 0) {
    edgert_py_raise(rc);
    goto out;
  }
  if (install_module(self, m, cs, n, "opened loaded", name) < 0)
    goto out;
  Py_INCREF(self);
  result = (PyObject *)self;
out:
  PyMem_Free(cs);
  Py_XDECREF(nameb);
  return result;
}

/* _edgert.module_loaded(sha256, isolate_symbols=False) -> bool */
static PyObject *module_loaded(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *kwlist[] = {"sha256", "isolate_symbols", NULL};
  PyObject *hexo;
  int isolate = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U|$p:module_loaded", kwlist, &hexo, &isolate))
    return NULL;
  const char *hex = PyUnicode_AsUTF8(hexo);
  if (hex == NULL)
    return NULL;
  edgert_load_options_t opts = {.flags = isolate ? EDGERT_LOAD_ISOLATE_SYMBOLS : 0u};
  edgert_module_t *m = NULL;
  edgert_clear_error();
  int rc = edgert_module_open_loaded(hex, "module_loaded", &opts, &m);
  if (rc == EDGERT_ENOTFOUND)
    Py_RETURN_FALSE;
  if (rc != 0)
    return edgert_py_raise(rc);
  Py_BEGIN_ALLOW_THREADS
  edgert_module_free(m);
  Py_END_ALLOW_THREADS
  Py_RETURN_TRUE;
}

/* ---- plan_dependencies: the core's dependency report ------------------
 * The core calls the visitor under its load lock, so the GIL is released
 * around it (the lock's holders may log through Python) and the visitor
 * only copies each report into C memory; the Python objects are built
 * after. */

typedef struct {
  char *s[6]; /* name, needed_by, path, via, sha256, reason */
  int kind, depth;
} dep_row_t;

typedef struct {
  dep_row_t *v;
  size_t n, cap;
  int oom;
} dep_rows_t;

static void dep_rows_free(dep_rows_t *r) {
  for (size_t i = 0; i < r->n; i++)
    for (int k = 0; k < 6; k++)
      free(r->v[i].s[k]);
  free(r->v);
}

static int dep_visit(const edgert_dependency_report_t *d, void *ud) {
  dep_rows_t *r = ud;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    dep_row_t *g = realloc(r->v, cap * sizeof *g);
    if (g == NULL) {
      r->oom = 1;
      return EDGERT_ENOMEM;
    }
    r->v = g;
    r->cap = cap;
  }
  dep_row_t *row = &r->v[r->n];
  const char *src[6] = {d->name, d->needed_by, d->path, d->via, d->sha256_hex, d->reason};
  memset(row, 0, sizeof *row);
  row->kind = (int)d->kind;
  row->depth = d->depth;
  r->n++; /* counted now: dep_rows_free frees what was copied */
  for (int k = 0; k < 6; k++)
    if (src[k] != NULL && (row->s[k] = strdup(src[k])) == NULL) {
      r->oom = 1;
      return EDGERT_ENOMEM;
    }
  return 0;
}

static PyObject *opt_fsstr(const char *s) {
  if (s == NULL)
    Py_RETURN_NONE;
  return PyUnicode_DecodeFSDefault(s);
}

/* _edgert.plan_dependencies(path, *, dependencies=None, max_size=None) -> list[dict] */
static PyObject *plan_dependencies(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *kwlist[] = {"path", "dependencies", NULL};
  static const char *const kinds[] = {"",         "in_process", "trusted",   "listed",
                                      "mismatch", "unlisted",   "not_found", "bad_soname"};
  PyObject *pathb = NULL, *depo = Py_None, *depkeys = NULL, *out = NULL;
  edgert_dependency_t *deps = NULL;
  edgert_load_options_t opts = {0};
  dep_rows_t rows = {NULL, 0, 0, 0};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|$O:plan_dependencies", kwlist,
                                   PyUnicode_FSConverter, &pathb, &depo))
    return NULL;
  if (depo != Py_None &&
      (opts.ndependencies = (size_t)dependencies_from(depo, &deps, &depkeys)) == (size_t)-1)
    goto done;
  opts.dependencies = deps;
  const char *path = PyBytes_AS_STRING(pathb);
  int rc;
  Py_BEGIN_ALLOW_THREADS
  edgert_clear_error();
  rc = edgert_module_plan_dependencies(path, &opts, dep_visit, &rows);
  Py_END_ALLOW_THREADS
  if (rows.oom) {
    PyErr_NoMemory();
    goto done;
  }
  if (rc != 0) {
    int e = errno;
    if (rc == EDGERT_EIO && e != 0) {
      const char *msg = edgert_last_error();
      PyObject *a = Py_BuildValue("(iNN)", e,
                                  PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg),
                                                       "backslashreplace"),
                                  PyUnicode_DecodeFSDefault(path));
      if (a != NULL) {
        PyErr_SetObject(PyExc_OSError, a);
        Py_DECREF(a);
      }
    } else {
      edgert_py_raise(rc);
    }
    goto done;
  }
  if ((out = PyList_New(0)) == NULL)
    goto done;
  for (size_t i = 0; i < rows.n; i++) {
    dep_row_t *d = &rows.v[i];
    const char *kind = d->kind > 0 && d->kind <= 7 ? kinds[d->kind] : "unknown";
    PyObject *row = Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:s,s:N,s:N,s:i}", "name", opt_fsstr(d->s[0]), "needed_by",
        opt_fsstr(d->s[1]), "path", opt_fsstr(d->s[2]), "via", opt_fsstr(d->s[3]), "kind",
        kind, "sha256", opt_fsstr(d->s[4]), "reason", opt_fsstr(d->s[5]), "depth", d->depth);
    if (row == NULL || PyList_Append(out, row) < 0) {
      Py_XDECREF(row);
      Py_CLEAR(out);
      goto done;
    }
    Py_DECREF(row);
  }
done:
  dep_rows_free(&rows);
  PyMem_Free(deps);
  Py_XDECREF(depkeys);
  Py_DECREF(pathb);
  return out;
}

EDGERT_PY_LOCKED(PyObject *, loader_bind, self, (LoaderObject *self, PyObject *abi), (self, abi))
static PyObject *loader_bind_locked(LoaderObject *self, PyObject *abi) {
  if (!loader_loaded(self))
    return no_module("bind");
  edgert_contract_t *cs = NULL;
  Py_ssize_t n = 0;
  if (contracts_from(abi, &cs, &n) < 0)
    return NULL;
  int rc = bind_all(self->mod, cs, n, self->funcs);
  PyMem_Free(cs);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *lookup_bound(LoaderObject *self, PyObject *name) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "function name must be str, not %s", Py_TYPE(name)->tp_name);
    return NULL;
  }
  PyObject *f = self->funcs ? PyDict_GetItemWithError(self->funcs, name) : NULL;
  if (f != NULL)
    return f;
  if (PyErr_Occurred())
    return NULL;
  if (self->mod == NULL)
    return no_module("call");
  if (EDGERT_PY_LOAD(self->mod->unloaded)) {
    PyErr_Format(EdgertPy_ModuleUnloadedError, "cannot call '%U': module %s is unloaded", name,
                 edgert_module_path(self->mod->m));
    return NULL;
  }
  PyErr_Format(EdgertPy_SymbolNotFoundError,
               "no contract is bound for '%U' in module %s: pass an ABIContract for it to "
               "load() or bind()",
               name, edgert_module_path(self->mod->m));
  return NULL;
}

static PyObject *loader_call(LoaderObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (EDGERT__UNLIKELY(nargs < 1)) {
    PyErr_SetString(PyExc_TypeError, "call() needs the function name");
    return NULL;
  }
  /* The call runs on a reference of its own: a callback (or another
   * thread) could rebind and drop `f` from the dict. */
  PyObject *b = NULL;
  Py_BEGIN_CRITICAL_SECTION(self);
  PyObject *f = lookup_bound(self, args[0]);
  if (EDGERT__LIKELY(f != NULL))
    b = Py_XNewRef(PyCFunction_GET_SELF(f)); /* a bound callable always has a __self__ */
  Py_END_CRITICAL_SECTION();
  if (EDGERT__UNLIKELY(b == NULL))
    return NULL;
  PyObject *r = edgert_py_bound_self_call(b, args + 1, nargs - 1);
  Py_DECREF(b);
  return r;
}

EDGERT_PY_LOCKED(PyObject *, loader_function, self,
                 (LoaderObject *self, PyObject *name),
                 (self, name))
static PyObject *loader_function_locked(LoaderObject *self, PyObject *name) {
  PyObject *f = lookup_bound(self, name);
  Py_XINCREF(f);
  return f;
}

EDGERT_PY_LOCKED(PyObject *, loader_address_of, self,
                 (LoaderObject *self, PyObject *name),
                 (self, name))
static PyObject *loader_address_of_locked(LoaderObject *self, PyObject *name) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "symbol name must be str, not %s", Py_TYPE(name)->tp_name);
    return NULL;
  }
  if (!loader_loaded(self))
    return no_module("address_of");
  const char *s = PyUnicode_AsUTF8(name);
  if (s == NULL)
    return NULL;
  void *a = NULL;
  edgert_clear_error();
  int rc = edgert_module_address_of(self->mod->m, s, &a);
  if (rc != 0)
    return edgert_py_raise(rc);
  return PyLong_FromVoidPtr(a);
}

EDGERT_PY_LOCKED(PyObject *, loader_verify, self, (LoaderObject *self, PyObject *hex), (self, hex))
static PyObject *loader_verify_locked(LoaderObject *self, PyObject *hex) {
  if (!PyUnicode_Check(hex)) {
    PyErr_Format(PyExc_TypeError, "the expected SHA-256 must be a str of 64 hex digits, not %s",
                 Py_TYPE(hex)->tp_name);
    return NULL;
  }
  if (self->mod == NULL)
    return no_module("verify_signature");
  const char *s = PyUnicode_AsUTF8(hex);
  if (s == NULL)
    return NULL;
  if ((size_t)PyUnicode_GET_LENGTH(hex) != strlen(s) || strlen(s) != 64 ||
      !PyUnicode_IS_ASCII(hex)) {
    PyErr_Format(PyExc_ValueError,
                 "the SHA-256 to verify must be 64 hex digits, got %zd characters%s",
                 PyUnicode_GET_LENGTH(hex), PyUnicode_IS_ASCII(hex) ? "" : " (non-ASCII)");
    return NULL;
  }
  edgert_clear_error();
  int rc = edgert_module_verify(self->mod->m, s);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyBool_FromLong(rc);
}

EDGERT_PY_LOCKED(PyObject *, loader_unload, self,
                 (LoaderObject *self, PyObject *unused),
                 (self, unused))
static PyObject *loader_unload_locked(LoaderObject *self, PyObject *unused) {
  (void)unused;
  if (self->mod != NULL && !EDGERT_PY_LOAD(self->mod->unloaded)) {
    edgert_py_log(&loader_log, EDGERT_PY_DEBUG, "unloading %s", edgert_module_path(self->mod->m));
    edgert_py_mod_unload(self->mod);
  }
  Py_RETURN_NONE;
}

/* The loader's module handle (new reference), or NULL with an exception. */
static edgert_py_mod_t *current_mod(LoaderObject *self, const char *what) {
  edgert_py_mod_t *h = NULL;
  Py_BEGIN_CRITICAL_SECTION(self);
  if (loader_loaded(self)) {
    h = self->mod;
    Py_INCREF(h);
  }
  Py_END_CRITICAL_SECTION();
  if (h == NULL)
    no_module(what);
  return h;
}

static PyObject *loader_reload(LoaderObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path", NULL};
  PyObject *pathb = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&:reload", kwlist, PyUnicode_FSConverter,
                                   &pathb))
    return NULL;
  edgert_py_mod_t *h = current_mod(self, "reload");
  if (h == NULL) {
    Py_XDECREF(pathb);
    return NULL;
  }
  const char *path = pathb != NULL ? PyBytes_AS_STRING(pathb) : NULL;
  unsigned long before = edgert_module_generation(h->m);
  int rc = edgert_py_mod_reload(h, path);
  if (rc == 0)
    edgert_py_log(&loader_log, EDGERT_PY_INFO,
                  "reloaded %s (sha256 %s): calls run on mapping generation %lu; generation "
                  "%lu is released when its last call returns",
                  path ? path : edgert_module_path(h->m), edgert_module_sha256(h->m),
                  edgert_module_generation(h->m), before);
  else
    edgert_py_log(&loader_log, EDGERT_PY_WARNING, "reload of %s refused: %s",
                  path ? path : edgert_module_path(h->m), edgert_last_error());
  Py_DECREF(h);
  Py_XDECREF(pathb);
  if (rc != 0)
    return NULL;
  Py_INCREF(self);
  return (PyObject *)self;
}

static PyObject *loader_stats(LoaderObject *self, PyObject *unused) {
  (void)unused;
  edgert_py_mod_t *h = current_mod(self, "stats");
  if (h == NULL)
    return NULL;
  edgert_module_stats_t st;
  edgert_module_stats(h->m, &st);
  Py_DECREF(h);
  PyObject *crashed = st.crashed_generation ? PyLong_FromUnsignedLong(st.crashed_generation)
                                            : Py_NewRef(Py_None);
  if (crashed == NULL)
    return NULL;
  return Py_BuildValue("{s:k,s:N,s:n,s:n,s:n,s:O}", "generation", st.generation,
                       "crashed_generation", crashed, "live_mappings",
                       (Py_ssize_t)st.live_mappings, "calls_in_flight",
                       (Py_ssize_t)st.calls_in_flight, "old_calls_in_flight",
                       (Py_ssize_t)st.old_calls_in_flight, "quarantined",
                       st.quarantined ? Py_True : Py_False);
}

/* isolation_stats(): the core's counters of an isolated module. */
static PyObject *loader_isolation_stats(LoaderObject *self, PyObject *unused) {
  (void)unused;
  edgert_py_mod_t *h = current_mod(self, "isolation_stats");
  if (h == NULL)
    return NULL;
  edgert_isolate_stats_t st;
  edgert_clear_error();
  int rc = edgert_isolate_options(h->m, NULL) == 1 ? edgert_isolate_stats(h->m, &st) : 1;
  if (rc != 0) {
    if (rc > 0)
      PyErr_Format(PyExc_ValueError,
                   "isolation_stats: module %s was not loaded with isolation=\"process\"",
                   edgert_module_path(h->m));
    else
      edgert_py_raise(rc);
    Py_DECREF(h);
    return NULL;
  }
  Py_DECREF(h);
  return Py_BuildValue("{s:K,s:K,s:K,s:K,s:I,s:d,s:d,s:d,s:d}", "calls", st.calls, "crashes",
                       st.crashes, "timeouts", st.timeouts, "respawns", st.respawns,
                       "workers_running", st.workers_running, "latency_p50_us",
                       st.latency_p50_us, "latency_p90_us", st.latency_p90_us,
                       "latency_p99_us", st.latency_p99_us, "latency_max_us",
                       st.latency_max_us);
}

static PyObject *loader_enter(LoaderObject *self, PyObject *unused) {
  (void)unused;
  Py_INCREF(self);
  return (PyObject *)self;
}

static PyObject *loader_exit(LoaderObject *self, PyObject *args) {
  (void)args;
  PyObject *r = loader_unload(self, NULL);
  Py_XDECREF(r);
  if (r == NULL)
    return NULL;
  Py_RETURN_FALSE;
}

EDGERT_PY_LOCKED(PyObject *, loader_get_sha256, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_sha256_locked(LoaderObject *self, void *c) {
  (void)c;
  if (!loader_loaded(self))
    Py_RETURN_NONE;
  return PyUnicode_FromString(edgert_module_sha256(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_path, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_path_locked(LoaderObject *self, void *c) {
  (void)c;
  if (!loader_loaded(self))
    Py_RETURN_NONE;
  return PyUnicode_DecodeFSDefault(edgert_module_path(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_deps, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_deps_locked(LoaderObject *self, void *c) {
  (void)c;
  return edgert_py_mod_dependencies(loader_loaded(self) ? self->mod : NULL);
}

EDGERT_PY_LOCKED(PyObject *, loader_get_shared, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_shared_locked(LoaderObject *self, void *c) {
  (void)c;
  if (!loader_loaded(self))
    Py_RETURN_NONE;
  return PyBool_FromLong(edgert_module_shared_with_process(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_isolated, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_isolated_locked(LoaderObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(loader_loaded(self) && edgert_module_symbols_isolated(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_isolation, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_isolation_locked(LoaderObject *self, void *c) {
  (void)c;
  return edgert_py_isolation_dict(loader_loaded(self) ? self->mod->m : NULL);
}

EDGERT_PY_LOCKED(PyObject *, loader_get_loaded, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_loaded_locked(LoaderObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(loader_loaded(self));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_quarantined, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_quarantined_locked(LoaderObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(loader_loaded(self) && edgert_module_quarantined(self->mod->m));
}

EDGERT_PY_LOCKED(PyObject *, loader_get_functions, self, (LoaderObject *self, void *c), (self, c))
static PyObject *loader_get_functions_locked(LoaderObject *self, void *c) {
  (void)c;
  if (self->funcs == NULL)
    return PyTuple_New(0);
  PyObject *keys = PyDict_Keys(self->funcs);
  if (keys == NULL)
    return NULL;
  PyObject *t = PyList_AsTuple(keys);
  Py_DECREF(keys);
  return t;
}

EDGERT_PY_LOCKED(PyObject *, loader_repr, self, (LoaderObject *self), (self))
static PyObject *loader_repr_locked(LoaderObject *self) {
  if (self->mod == NULL)
    return PyUnicode_FromString("<ModuleLoader: nothing loaded>");
  return PyUnicode_FromFormat("<ModuleLoader %s%s sha256=%.16s...>",
                              edgert_module_path(self->mod->m),
                              EDGERT_PY_LOAD(self->mod->unloaded) ? " (unloaded)" : "",
                              edgert_module_sha256(self->mod->m));
}

static PyMethodDef loader_methods[] = {
    {"load", (PyCFunction)(void (*)(void))loader_load, METH_VARARGS | METH_KEYWORDS,
     "load(path, abi=None, *, expected_sha256=None, max_size=None, isolate_symbols=False, "
     "dependencies=None, isolation=None, timeout=None, memory_limit=None, sandbox=\"none\", "
     "workers=1, worker_path=None)"
     " -> self\n\n"
     "Reads the module once into sealed memory, checks it is a 64-bit ELF shared object "
     "for this machine, verifies the SHA-256 of the sealed bytes (when expected_sha256 is "
     "given) before any of its code runs, maps it and binds every contract in abi (an "
     "ABIContract or an iterable of them). A missing symbol fails the load naming it. "
     "isolate_symbols=True maps it with RTLD_DEEPBIND: its references to its own symbols "
     "bind inside it, whatever LD_PRELOAD or RTLD_GLOBAL libraries define (refused under "
     "AddressSanitizer). A path without '/' is a library name (\"libz.so.1\", or \"z\" as "
     "ctypes.util.find_library takes it) searched as the dynamic linker does; .path is the "
     "file chosen. A library the process already maps (libc, libm, ...) is bound to the "
     "process's instance after its on-disk file's hash check (.shared_with_process). "
     "Replaces (and unloads) a module loaded before.\n\n"
     "isolation=\"process\" verifies the module as usual but never maps it here: each call "
     "runs in a worker process (docs/isolation.md) with a per-call timeout (seconds; "
     "KernelTimeout), a memory_limit (bytes of address space per worker), sandbox "
     "\"strict\" (seccomp: exec, fork, sockets, writing files are denied), workers "
     "(1 to 64 processes) and worker_path (the edgert-worker program; default "
     "$EDGERT_WORKER, else the one beside libedgert)."},
    {"open_loaded", (PyCFunction)(void (*)(void))loader_open_loaded, METH_VARARGS | METH_KEYWORDS,
     "open_loaded(sha256, abi=None, *, name=None, isolate_symbols=False) -> self\n\n"
     "Binds to the module with SHA-256 sha256 that this process has already loaded (by any "
     "loader), without opening, reading or hashing a file, and binds every contract in abi. "
     "LookupError if no module with these bytes is loaded. name is the path shown in "
     "messages. Shares the mapping and its quarantine (unlike load(), it does not clear "
     "it). Replaces (and unloads) a module loaded before."},
    {"bind", (PyCFunction)loader_bind, METH_O,
     "bind(abi) -> None\n\nBinds more contracts (an ABIContract or an iterable)."},
    {"call", (PyCFunction)(void (*)(void))loader_call, METH_FASTCALL,
     "call(name, *args)\n\nCalls a bound function with strict argument conversion."},
    {"function", (PyCFunction)loader_function, METH_O,
     "function(name) -> callable\n\nThe fast bound callable for a bound function."},
    {"address_of", (PyCFunction)loader_address_of, METH_O,
     "address_of(name) -> int\n\nThe address of a function or data symbol the module defines."},
    {"verify_signature", (PyCFunction)loader_verify, METH_O,
     "verify_signature(sha256_hex) -> bool\n\nConstant-time comparison of the loaded "
     "bytes' SHA-256 with sha256_hex; ValueError if it is not 64 hex digits."},
    {"reload", (PyCFunction)(void (*)(void))loader_reload, METH_VARARGS | METH_KEYWORDS,
     "reload(path=None)\n\nMaps a fresh verified copy of the loaded module (read from `path`, "
     "default where it was loaded from; its SHA-256 must be the module's). Functions bound "
     "before call the fresh copy; calls in flight finish on the old one, released when the "
     "last of them returns. Lifts a quarantine. Returns the loader."},
    {"stats", (PyCFunction)loader_stats, METH_NOARGS,
     "stats()\n\nA dict: generation (of the mapping calls run on now: 1 after load, +1 per "
     "reload), crashed_generation (the mapping a call last crashed on, or None), "
     "live_mappings, calls_in_flight, old_calls_in_flight, quarantined."},
    {"isolation_stats", (PyCFunction)loader_isolation_stats, METH_NOARGS,
     "isolation_stats()\n\nA dict for a module loaded with isolation=\"process\": calls "
     "(isolated calls made, every outcome), crashes (worker deaths during a call), timeouts, "
     "respawns (workers started after the first of each slot), workers_running, and the "
     "wall time of the last (up to) 1024 calls that returned in microseconds: "
     "latency_p50_us, latency_p90_us, latency_p99_us, latency_max_us. ValueError for an "
     "in-process module."},
    {"unload", (PyCFunction)loader_unload, METH_NOARGS,
     "unload() -> None\n\nAfterwards every call and bound callable raises ModuleUnloadedError."},
    {"__enter__", (PyCFunction)loader_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)loader_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loader_getset[] = {
    {"sha256", (getter)loader_get_sha256, NULL,
     "Hex SHA-256 of the loaded bytes, or None if nothing is loaded.", NULL},
    {"path", (getter)loader_get_path, NULL,
     "The loaded module's path (the one a library name resolved to), or None.", NULL},
    {"dependencies", (getter)loader_get_deps, NULL,
     "[(name, path, sha256)]: the dependencies edgert verified and mapped for the module "
     "(those listed in load(dependencies=...) or the manifest), [] if none or nothing is "
     "loaded.",
     NULL},
    {"shared_with_process", (getter)loader_get_shared, NULL,
     "True if the module is the process's own instance of its file (libc, libm, a library "
     "the process mapped before), False for a private verified copy, None if nothing is "
     "loaded.",
     NULL},
    {"loaded", (getter)loader_get_loaded, NULL, "Whether a module is loaded.", NULL},
    {"isolation", (getter)loader_get_isolation, NULL,
     "The loaded module's isolation options as load() takes them (a dict: isolation, "
     "timeout, memory_limit, sandbox, workers, worker_path), or None for an in-process "
     "module or when nothing is loaded.",
     NULL},
    {"isolate_symbols", (getter)loader_get_isolated, NULL,
     "Whether the loaded module was loaded with isolate_symbols=True.", NULL},
    {"quarantined", (getter)loader_get_quarantined, NULL,
     "Whether the module's mapping crashed and is quarantined until reload().", NULL},
    {"functions", (getter)loader_get_functions, NULL, "Names of the bound functions.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.ModuleLoader",
    .tp_basicsize = sizeof(LoaderObject),
    .tp_dealloc = (destructor)loader_dealloc,
    .tp_repr = (reprfunc)loader_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ModuleLoader()\n\nLoads verified shared objects and calls their functions "
              "through ABI contracts.",
    .tp_traverse = (traverseproc)loader_traverse,
    .tp_clear = (inquiry)loader_clear,
    .tp_weaklistoffset = offsetof(LoaderObject, weakrefs),
    .tp_methods = loader_methods,
    .tp_getset = loader_getset,
    .tp_new = loader_new,
};

/* _edgert._bound_try_call(f, *args) -> (missed, result): edgert_py_bound_call
 * with a miss flag, for tests of the path other parts use. */
static PyObject *bound_try_call(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
  (void)m;
  if (nargs < 1 || !edgert_py_is_bound(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_bound_try_call(f, *args): f must be a bound callable");
    return NULL;
  }
  int missed = -1;
  PyObject *r = edgert_py_bound_call(args[0], args + 1, nargs - 1, &missed);
  if (r == NULL && !missed)
    return NULL;
  if (r == NULL && PyErr_Occurred()) {
    PyErr_SetString(PyExc_SystemError, "a miss left an exception set");
    return NULL;
  }
  PyObject *t = Py_BuildValue("(NO)", PyBool_FromLong(missed), r ? r : Py_None);
  Py_XDECREF(r);
  return t;
}

/* edgert_interposable_calls' callback: appends the name to a list. */
static int add_interposable(void *ud, const char *name, unsigned how) {
  (void)how;
  PyObject *s = PyUnicode_DecodeFSDefault(name);
  int rc = s == NULL ? -1 : PyList_Append((PyObject *)ud, s);
  Py_XDECREF(s);
  return rc < 0 ? 1 : 0; /* nonzero stops the walk; the exception is set */
}

/* _edgert.interposable_calls(path) -> sorted list of names. */
static PyObject *interposable_calls(PyObject *m, PyObject *arg) {
  (void)m;
  PyObject *pathb = NULL;
  if (!PyUnicode_FSConverter(arg, &pathb))
    return NULL;
  PyObject *names = PyList_New(0);
  if (names == NULL) {
    Py_DECREF(pathb);
    return NULL;
  }
  edgert_clear_error();
  int rc = edgert_interposable_calls(PyBytes_AS_STRING(pathb), add_interposable, names);
  Py_DECREF(pathb);
  if (rc == 1) { /* the callback's Python error */
    Py_DECREF(names);
    return NULL;
  }
  if (rc != 0) {
    Py_DECREF(names);
    return edgert_py_raise(rc);
  }
  if (PyList_Sort(names) < 0) {
    Py_DECREF(names);
    return NULL;
  }
  return names;
}

/* _edgert.get_errno() -> int: this thread's saved errno (edgert_get_errno). */
static PyObject *get_errno_py(PyObject *m, PyObject *unused) {
  (void)m, (void)unused;
  return PyLong_FromLong(edgert_get_errno());
}

/* _edgert.set_errno(value) -> int: sets it, returns the old value. */
static PyObject *set_errno_py(PyObject *m, PyObject *arg) {
  (void)m;
  int overflow = 0;
  long v = PyLong_AsLongAndOverflow(arg, &overflow);
  if (v == -1 && PyErr_Occurred())
    return NULL;
  if (overflow || v < INT_MIN || v > INT_MAX) {
    PyErr_Format(PyExc_OverflowError, "set_errno(%R): errno is a C int", arg);
    return NULL;
  }
  return PyLong_FromLong(edgert_set_errno((int)v));
}

static PyMethodDef module_methods[] = {
    {"get_errno", get_errno_py, METH_NOARGS,
     "get_errno() -> int\n\nThe errno this thread saved right after its last call of a "
     "use_errno=True contract (ctypes.get_errno's semantics)."},
    {"set_errno", set_errno_py, METH_O,
     "set_errno(value) -> int\n\nSets this thread's saved errno (stored into errno right "
     "before each use_errno=True call) and returns the previous value."},
    {"module_loaded", (PyCFunction)(void (*)(void))module_loaded, METH_VARARGS | METH_KEYWORDS,
     "module_loaded(sha256, *, isolate_symbols=False) -> bool\n\nWhether a module with "
     "these bytes is loaded in this process (by any loader); reads no file."},
    {"plan_dependencies", (PyCFunction)(void (*)(void))plan_dependencies,
     METH_VARARGS | METH_KEYWORDS,
     "plan_dependencies(path, *, dependencies=None) -> list[dict]\n\nWhat load(path, "
     "dependencies=...) would do with each dependency of the closure, resolved by the "
     "loader's own code; reads the files, loads and runs nothing. Each dict: name, "
     "needed_by, path, via, kind ('in_process', 'trusted', 'listed', 'mismatch', "
     "'unlisted', 'not_found', 'bad_soname'), sha256, reason, depth."},
    {"_bound_try_call", (PyCFunction)(void (*)(void))bound_try_call, METH_FASTCALL,
     "_bound_try_call(f, *args) -> (missed, result): the miss-flag call path (tests)."},
    {"interposable_calls", (PyCFunction)interposable_calls, METH_O,
     "interposable_calls(path) -> list[str]\n\nThe symbols the module at path defines and "
     "also reaches through its PLT or GOT (sorted): an LD_PRELOAD or RTLD_GLOBAL library "
     "defining one of them takes over the module's own calls to it. Reads the file; "
     "loads nothing."},
    {NULL, NULL, 0, NULL},
};

int edgert_py_loader_init(PyObject *m) {
  if (PyModule_AddFunctions(m, module_methods) < 0)
    return -1;
  if (PyType_Ready(&EdgertPy_ModType) < 0 || PyType_Ready(&EdgertPy_BoundType) < 0 ||
      PyType_Ready(&LoaderType) < 0)
    return -1;
  if (edgert_py_logger_init(&loader_log, "edgert.loader") < 0)
    return -1;
  if (PyModule_AddObjectRef(m, "_Bound", (PyObject *)&EdgertPy_BoundType) < 0)
    return -1;
  Py_INCREF(&LoaderType);
  if (PyModule_AddObject(m, "ModuleLoader", (PyObject *)&LoaderType) < 0) {
    Py_DECREF(&LoaderType);
    return -1;
  }
  return 0;
}
