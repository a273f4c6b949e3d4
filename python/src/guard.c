/*
 * guard.c: the C side of ExplicitFallback, the binding's mirror of the
 * core's src/guard.c.
 *
 * run_with_guard and fallback_to_python are METH_FASTCALL builtins that the
 * Python class ExplicitFallback holds as plain class attributes, so
 * `ExplicitFallback.run_with_guard(f, ref, x)` is one direct builtin call
 * that makes one vectorcall of `f`. On success the only extra work is a
 * counter and one cached logging level check (log.c); names, argument
 * shapes and messages are built only when a record is emitted or an error
 * raised.
 *
 * The policy is the core's (edgert/guard_policy.h): run_with_guard is its
 * production mode, fallback_to_python its strict mode without fallback;
 * this file runs the Python callables and raises, the header's transitions
 * decide the next step and count it in the core's process-wide counters,
 * which edgert_guard_call counts in too. On a strict match the COMPILED
 * result is returned (and the compiled side's writes into buffer arguments
 * are what the buffers keep), as in C.
 *
 * Invariants: the counters are the core's host block, updated with relaxed
 * atomic loads and stores under the GIL (no locked instruction on the fast
 * path), or its shared block, with relaxed atomic adds, on free-threaded
 * builds (SERIALIZED below); an exception that is
 * not an Exception (KeyboardInterrupt, SystemExit, GeneratorExit) is never
 * caught or wrapped, as the article's `except Exception` does not; the
 * original error is always the __cause__ of CompiledModeFailure.
 *
 * This file also gives the crash guard its CPython host probe (host_probe
 * below), installed when the extension is imported, so that a fault in a
 * Python callback that a kernel made is never "contained" by jumping over
 * live interpreter frames.
 */
#include "ext.h"

#include <string.h>

static edgert_py_logger_t fb_log;

/* Which counter block of the core this host updates (edgert/guard_policy.h):
 * with a GIL every update is serialized by it. */
#ifdef Py_GIL_DISABLED
#define SERIALIZED 0
#else
#define SERIALIZED 1
#endif
static edgert_guard_counts_t *counts; /* edgert_guard_counts_block(SERIALIZED), set at init */

/* The raise sites: errors.c's builders, with no kernel or version (None
 * outside a nexus). Both borrow their arguments (msg may be NULL: an error
 * is then pending), raise and return NULL. */
static PyObject *guard_compiled_failure(PyObject *msg, PyObject *cause) {
  return msg != NULL ? edgert_py_compiled_failure(msg, cause, NULL, NULL) : NULL;
}

static PyObject *guard_mismatch(PyObject *msg, PyObject *compiled, PyObject *reference,
                                PyObject *difference) {
  return msg != NULL ? edgert_py_mismatch(msg, NULL, NULL, compiled, reference, difference)
                     : NULL;
}

/* A callable's name for logs and messages: __name__, or its type's name. */
static PyObject *callable_name(PyObject *f) {
  PyObject *n = PyObject_GetAttrString(f, "__name__");
  if (n == NULL || !PyUnicode_Check(n)) {
    Py_XDECREF(n);
    PyErr_Clear();
    n = PyUnicode_FromString(Py_TYPE(f)->tp_name);
  }
  return n;
}

/* Keyword arguments: tolerance (edgert_guard_option_problem's rule: finite
 * and >= 0) and, when allowed, fallback_enabled. */
static int parse_kwargs(const char *fname, PyObject *const *kwvalues, PyObject *kwnames,
                        int allow_fallback, double *tolerance, int *fallback_enabled) {
  if (kwnames == NULL)
    return 0;
  Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *key = PyTuple_GET_ITEM(kwnames, i);
    PyObject *value = kwvalues[i];
    if (PyUnicode_CompareWithASCIIString(key, "tolerance") == 0) {
      if (PyBool_Check(value) || !(PyFloat_Check(value) || PyLong_Check(value))) {
        PyErr_Format(PyExc_TypeError, "%s(): tolerance must be a float, not %.100s", fname,
                     Py_TYPE(value)->tp_name);
        return -1;
      }
      double t = PyFloat_AsDouble(value);
      if (t == -1.0 && PyErr_Occurred())
        return -1;
      const char *problem = edgert_guard_option_problem(0, 0, 1, t);
      if (problem != NULL) {
        PyErr_Format(PyExc_ValueError, "%s(): %s, got %R", fname, problem, value);
        return -1;
      }
      *tolerance = t;
    } else if (allow_fallback && PyUnicode_CompareWithASCIIString(key, "fallback_enabled") == 0) {
      int b = PyObject_IsTrue(value);
      if (b < 0)
        return -1;
      *fallback_enabled = b;
    } else {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
      return -1;
    }
  }
  return 0;
}

/* The pending exception, normalized, with its traceback attached; NULL
 * (exception still pending) if it is not an Exception and must propagate. */
static PyObject *take_exception(void) {
  PyObject *v = PyErr_GetRaisedException();
  if (v == NULL || !PyErr_GivenExceptionMatches(v, PyExc_Exception)) {
    PyErr_SetRaisedException(v);
    return NULL;
  }
  return v;
}

/* "KernelCrash: kernel crashed: ..." for an exception. */
static PyObject *exc_text(PyObject *exc) {
  return PyUnicode_FromFormat("%s: %S", _PyType_Name(Py_TYPE(exc)), exc);
}

/*
 * The compiled call failed with `exc` (owned). Falls back or raises, logs.
 */
static PyObject *compiled_failed(PyObject *compiled, PyObject *reference,
                                 PyObject *const *args, Py_ssize_t n, PyObject *exc,
                                 int fallback_enabled) {
  edgert_guard_step_t step = edgert_guard_compiled_failed(
      counts, fallback_enabled, PyErr_GivenExceptionMatches(exc, EdgertPy_KernelCrash),
      SERIALIZED);
  PyObject *cname = callable_name(compiled);
  PyObject *shapes = cname ? edgert_py_describe_args(args, n) : NULL;
  PyObject *what = shapes ? exc_text(exc) : NULL;
  if (what == NULL) {
    Py_XDECREF(cname);
    Py_XDECREF(shapes);
    Py_DECREF(exc);
    return NULL;
  }
  PyObject *result = NULL;
  if (step == EDGERT_GUARD_FAIL) {
    edgert_py_log(&fb_log, EDGERT_PY_ERROR,
                  "run_with_guard: compiled %U%U failed with %U; fallback disabled: "
                  "raising CompiledModeFailure",
                  cname, shapes, what);
    PyObject *msg = PyUnicode_FromFormat("compiled path %U%U failed and fallback is disabled: %U",
                                         cname, shapes, what);
    guard_compiled_failure(msg, exc); /* raise site 1 */
    Py_XDECREF(msg);
    Py_DECREF(exc);
    goto out;
  }
  PyObject *rname = callable_name(reference);
  if (rname == NULL) {
    Py_DECREF(exc);
    goto out;
  }
  edgert_py_log(&fb_log, EDGERT_PY_WARNING,
                "run_with_guard: compiled %U%U failed with %U; falling back to reference %U",
                cname, shapes, what, rname);
  result = PyObject_Vectorcall(reference, args, (size_t)n, NULL);
  if (result == NULL) {
    edgert_guard_reference_failed(counts, SERIALIZED);
    /* The reference's error propagates, chained to the compiled one. */
    PyObject *v = PyErr_GetRaisedException();
    if (v != NULL)
      PyException_SetContext(v, Py_NewRef(exc));
    PyErr_SetRaisedException(v);
    edgert_py_log(&fb_log, EDGERT_PY_ERROR, "run_with_guard: reference %U%U failed too", rname,
                  shapes);
  }
  Py_DECREF(rname);
  Py_DECREF(exc);
out:
  Py_DECREF(cname);
  Py_DECREF(shapes);
  Py_DECREF(what);
  return result;
}

static PyObject *run_with_guard(PyObject *self, PyObject *const *args, Py_ssize_t nargsf,
                                PyObject *kwnames) {
  (void)self;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (EDGERT__UNLIKELY(nargs < 2)) {
    PyErr_Format(PyExc_TypeError,
                 "run_with_guard() needs the compiled and the reference callables, got %zd "
                 "positional argument%s",
                 nargs, nargs == 1 ? "" : "s");
    return NULL;
  }
  double tolerance = 1e-9;
  int fallback_enabled = 0;
  if (EDGERT__UNLIKELY(kwnames != NULL) &&
      parse_kwargs("run_with_guard", args + nargs, kwnames, 1, &tolerance, &fallback_enabled) < 0)
    return NULL;
  PyObject *compiled = args[0], *reference = args[1];
  Py_ssize_t n = nargs - 2;
  edgert_guard_enter(counts, 0, SERIALIZED);
  PyObject *r = PyObject_Vectorcall(compiled, args + 2, (size_t)n, NULL);
  if (EDGERT__LIKELY(r != NULL)) {
    (void)edgert_guard_compiled_returned(counts, 0, SERIALIZED); /* RETURN_COMPILED */
    if (EDGERT__UNLIKELY(edgert_py_log_enabled(&fb_log, EDGERT_PY_DEBUG))) {
      PyObject *cname = callable_name(compiled);
      PyObject *shapes = cname ? edgert_py_describe_args(args + 2, n) : NULL;
      if (shapes != NULL)
        edgert_py_log(&fb_log, EDGERT_PY_DEBUG, "run_with_guard: compiled %U%U succeeded",
                      cname, shapes);
      else
        PyErr_Clear();
      Py_XDECREF(cname);
      Py_XDECREF(shapes);
    }
    return r;
  }
  PyObject *exc = take_exception();
  if (exc == NULL)
    return NULL; /* not an Exception: it propagates untouched */
  return compiled_failed(compiled, reference, args + 2, n, exc, fallback_enabled);
}

static PyObject *validate_both(PyObject *compiled, PyObject *reference, PyObject *const *args,
                               Py_ssize_t n, double tolerance, const edgert_py_snap_t *before,
                               edgert_py_snap_t **after);

static PyObject *fallback_to_python(PyObject *self, PyObject *const *args, Py_ssize_t nargsf,
                                    PyObject *kwnames) {
  (void)self;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 2) {
    PyErr_Format(PyExc_TypeError,
                 "fallback_to_python() needs the compiled and the reference callables, got "
                 "%zd positional argument%s",
                 nargs, nargs == 1 ? "" : "s");
    return NULL;
  }
  double tolerance = 1e-9;
  if (kwnames != NULL &&
      parse_kwargs("fallback_to_python", args + nargs, kwnames, 0, &tolerance, NULL) < 0)
    return NULL;
  PyObject *compiled = args[0], *reference = args[1];
  Py_ssize_t n = nargs - 2;
  edgert_guard_enter(counts, 1, SERIALIZED);
  /* Buffer arguments the sides write through: each side starts from the
   * same contents and their writes are compared; a raise leaves them as
   * they were before the call. */
  edgert_py_snap_t *before, *after = NULL;
  if (edgert_py_snap_take(args + 2, n, &before) < 0)
    return NULL;
  PyObject *r = validate_both(compiled, reference, args + 2, n, tolerance, before, &after);
  if (r == NULL && before != NULL)
    edgert_py_snap_restore(before, args + 2); /* keeps the call's error */
  edgert_py_snap_free(before);
  edgert_py_snap_free(after);
  return r;
}

/* fallback_to_python's work: the compiled side, then the reference from
 * the same inputs (`before` restored), then the comparison of results and
 * of what each wrote into buffer arguments (*after: the compiled side's
 * writes, owned by the caller). */
static PyObject *validate_both(PyObject *compiled, PyObject *reference, PyObject *const *args,
                               Py_ssize_t n, double tolerance, const edgert_py_snap_t *before,
                               edgert_py_snap_t **after) {
  PyObject *cres = PyObject_Vectorcall(compiled, args, (size_t)n, NULL);
  if (cres == NULL) {
    PyObject *exc = take_exception();
    if (exc == NULL)
      return NULL;
    /* strict mode has no fallback: the step is FAIL */
    (void)edgert_guard_compiled_failed(counts, 0,
                                       PyErr_GivenExceptionMatches(exc, EdgertPy_KernelCrash),
                                       SERIALIZED);
    PyObject *cname = callable_name(compiled);
    PyObject *shapes = cname ? edgert_py_describe_args(args, n) : NULL;
    PyObject *what = shapes ? exc_text(exc) : NULL;
    if (what != NULL) {
      edgert_py_log(&fb_log, EDGERT_PY_ERROR,
                    "fallback_to_python: compiled %U%U failed with %U; raising CompiledModeFailure",
                    cname, shapes, what);
      PyObject *msg = PyUnicode_FromFormat("compiled path %U%U failed during validation: %U",
                                           cname, shapes, what);
      guard_compiled_failure(msg, exc); /* raise site 2 */
      Py_XDECREF(msg);
    }
    Py_DECREF(exc);
    Py_XDECREF(cname);
    Py_XDECREF(shapes);
    Py_XDECREF(what);
    return NULL;
  }
  if (before != NULL) {
    if (edgert_py_snap_take(args, n, after) < 0 || edgert_py_snap_restore(before, args) < 0) {
      Py_DECREF(cres);
      return NULL;
    }
  }
  PyObject *rres = PyObject_Vectorcall(reference, args, (size_t)n, NULL);
  if (rres == NULL) {
    edgert_guard_reference_failed(counts, SERIALIZED);
    Py_DECREF(cres);
    return NULL;
  }
  PyObject *diff = NULL;
  int m = edgert_py_results_match(cres, rres, tolerance, &diff);
  if (m == 1 && *after != NULL)
    m = edgert_py_snap_match(*after, args, tolerance, &diff);
  if (m < 0) {
    Py_DECREF(cres);
    Py_DECREF(rres);
    return NULL;
  }
  PyObject *cname = NULL, *rname = NULL, *shapes = NULL;
  if (edgert_guard_compared(counts, m == 1, SERIALIZED) == EDGERT_GUARD_RETURN_COMPILED) {
    /* The compiled result is the call's, and so are the compiled side's
     * writes: the buffers go back to what it left. */
    if (*after != NULL && edgert_py_snap_restore(*after, args) < 0) {
      Py_DECREF(cres);
      Py_DECREF(rres);
      return NULL;
    }
    if (edgert_py_log_enabled(&fb_log, EDGERT_PY_DEBUG)) {
      cname = callable_name(compiled);
      rname = cname ? callable_name(reference) : NULL;
      shapes = rname ? edgert_py_describe_args(args, n) : NULL;
      if (shapes != NULL)
        edgert_py_log(&fb_log, EDGERT_PY_DEBUG,
                      "fallback_to_python: compiled %U and reference %U agree on %U", cname,
                      rname, shapes);
      else
        PyErr_Clear();
    }
    Py_XDECREF(cname);
    Py_XDECREF(rname);
    Py_XDECREF(shapes);
    Py_DECREF(rres);
    return cres;
  }
  cname = callable_name(compiled);
  rname = cname ? callable_name(reference) : NULL;
  shapes = rname ? edgert_py_describe_args(args, n) : NULL;
  if (shapes != NULL) {
    char tol[32];
    PyOS_snprintf(tol, sizeof tol, "%g", tolerance);
    PyObject *msg = PyUnicode_FromFormat(
        "compiled %U and reference %U differ on %U (tolerance %s): %U", cname, rname, shapes,
        tol, diff);
    if (msg != NULL)
      edgert_py_log(&fb_log, EDGERT_PY_ERROR, "fallback_to_python: %U", msg);
    guard_mismatch(msg, cres, rres, diff); /* raise site 3 */
    Py_XDECREF(msg);
  }
  Py_XDECREF(cname);
  Py_XDECREF(rname);
  Py_XDECREF(shapes);
  Py_DECREF(diff);
  Py_DECREF(cres);
  Py_DECREF(rres);
  return NULL;
}

/* ExplicitFallback.stats(): the core's counters, which C calls show in too. */
static PyObject *get_stats(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  edgert_guard_counts_t c;
  edgert_guard_counts(&c);
  return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "calls",
                       (unsigned long long)c.calls, "compiled", (unsigned long long)c.compiled,
                       "failures", (unsigned long long)c.failures, "crashes",
                       (unsigned long long)c.crashes, "fallbacks",
                       (unsigned long long)c.fallbacks, "reference_failures",
                       (unsigned long long)c.reference_failures, "validations",
                       (unsigned long long)c.validations, "matches",
                       (unsigned long long)c.matches, "mismatches",
                       (unsigned long long)c.mismatches);
}

static PyObject *reset_stats(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  edgert_guard_counts_reset();
  Py_RETURN_NONE;
}

static PyObject *results_match(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  (void)self;
  double tolerance = 1e-9;
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "results_match() takes 2 positional arguments, got %zd",
                 nargs);
    return NULL;
  }
  if (kwnames != NULL &&
      parse_kwargs("results_match", args + nargs, kwnames, 0, &tolerance, NULL) < 0)
    return NULL;
  PyObject *diff = NULL;
  int m = edgert_py_results_match(args[0], args[1], tolerance, &diff);
  if (m < 0)
    return NULL;
  if (m == 1)
    Py_RETURN_NONE;
  return diff;
}

static PyObject *guard_install(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  int rc = edgert_guard_install();
  if (rc == EDGERT_EUNSUPPORTED)
    Py_RETURN_FALSE;
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_TRUE;
}

/*
 * The crash guard's host probe (edgert_guard_set_host_probe): the calling
 * thread's current interpreter frame and its PyGILState_Ensure depth. Both
 * stay put while the thread runs a kernel, with the GIL held or released;
 * a kernel that calls back into Python (a ctypes or cffi callback: both go
 * through PyGILState_Ensure, which increments gilstate_counter, and push a
 * frame for Python code) changes at least one of them until the callback
 * returns. The thread state is the thread's own (PyGILState's thread-local
 * slot, valid with or without the GIL; NULL on a thread Python never saw),
 * not the GIL holder's: on 3.10 and 3.11 _PyThreadState_UncheckedGet() is
 * whichever thread holds the GIL, which, with the GIL released around the
 * kernel, may be another thread. Runs in a signal handler: loads only
 * (pthread_getspecific reads the thread's own slot array and takes no lock
 * in glibc and musl). A thread of a subinterpreter is seen through its main
 * interpreter thread state, if any (docs/guard.md).
 */
static int probe_on; /* 0 after Python's finalization began (py_atexit) */

#if defined(__GNUC__)
_Thread_local PyThreadState *edgert_py_caller_ts __attribute__((tls_model("initial-exec")));
#else
_Thread_local PyThreadState *edgert_py_caller_ts;
#endif

static void host_probe(edgert_guard_host_state_t *out) {
  PyThreadState *ts = edgert_py_caller_ts;
  if (ts == NULL)
    ts = probe_on ? PyGILState_GetThisThreadState() : NULL;
  if (ts == NULL) {
    out->word[0] = 0;
    out->word[1] = 0;
    return;
  }
#if PY_VERSION_HEX >= 0x030D0000
  out->word[0] = (uintptr_t)ts->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
  out->word[0] = ts->cframe != NULL ? (uintptr_t)ts->cframe->current_frame : 0;
#else
  out->word[0] = (uintptr_t)ts->frame;
#endif
  out->word[1] = (uintptr_t)(unsigned)ts->gilstate_counter;
}

/* Finalization deletes the thread-local slot the probe reads: stop first. */
static void py_atexit(void) {
  edgert_guard_set_host_probe(NULL);
  probe_on = 0;
}

static PyObject *process_health(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  const char *reason = NULL;
  int ok = edgert_process_healthy(&reason);
  if (ok)
    return Py_BuildValue("(OO)", Py_True, Py_None);
  return Py_BuildValue("(Os)", Py_False, reason != NULL ? reason : "");
}

static PyObject *guard_enabled(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  return PyBool_FromLong(edgert_guard_enabled());
}

static PyMethodDef fallback_methods[] = {
    {"run_with_guard", (PyCFunction)(void (*)(void))run_with_guard,
     METH_FASTCALL | METH_KEYWORDS,
     "run_with_guard(compiled, reference, *args, tolerance=1e-9, fallback_enabled=False)\n--\n\n"
     "Calls compiled(*args). If it raises (a contained crash included), raises\n"
     "CompiledModeFailure from that error, or returns reference(*args) when\n"
     "fallback_enabled is true."},
    {"fallback_to_python", (PyCFunction)(void (*)(void))fallback_to_python,
     METH_FASTCALL | METH_KEYWORDS,
     "fallback_to_python(compiled, reference, *args, tolerance=1e-9)\n--\n\n"
     "Runs both and compares the results; returns the compiled result when they\n"
     "match (the buffers keep the compiled side's writes), raises FallbackMismatchError naming the first difference when not,\n"
     "and CompiledModeFailure when the compiled call raises."},
    {"_fallback_stats", get_stats, METH_NOARGS,
     "The guarded-call counters (the core's: edgert_guard_call counts there too)."},
    {"_fallback_reset_stats", reset_stats, METH_NOARGS,
     "Zeroes the guarded-call counters (edgert_guard_counts_reset)."},
    {"_results_match", (PyCFunction)(void (*)(void))results_match,
     METH_FASTCALL | METH_KEYWORDS,
     "_results_match(a, b, *, tolerance=1e-9) -> None if they match, else the difference."},
    {"_guard_install", guard_install, METH_NOARGS,
     "Puts the crash guard's signal handlers back in front; False if the guard is off."},
    {"_guard_enabled", guard_enabled, METH_NOARGS, "Whether crash containment is on."},
    {"_process_health", process_health, METH_NOARGS,
     "(healthy, reason): whether a contained crash inside the C library or the dynamic\n"
     "linker left the process in doubt, and why (None while healthy)."},
    {NULL, NULL, 0, NULL}};

int edgert_py_fallback_init(PyObject *m) {
  if (edgert_py_logger_init(&fb_log, "edgert.fallback") < 0)
    return -1;
  counts = edgert_guard_counts_block(SERIALIZED);
  if (!probe_on) {
    if (Py_AtExit(py_atexit) < 0) {
      PyErr_SetString(PyExc_RuntimeError,
                      "edgert: cannot register the crash guard's exit hook (Py_AtExit is full)");
      return -1;
    }
    probe_on = 1;
    edgert_guard_set_host_probe(host_probe);
  }
  return PyModule_AddFunctions(m, fallback_methods);
}
