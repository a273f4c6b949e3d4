/*
 * ext.h: what the files of the _edgert extension share.
 *
 * The extension is thin: it parses arguments, owns core handles inside Python
 * objects, releases the GIL around long calls and translates core errors in
 * exactly one place (errors.c). The files of python/src, one per part of
 * the core where there is one (guard.c <-> src/guard.c, nexus.c <->
 * src/nexus.c):
 *   ext.h              what the files share (this index)
 *   pycompat.h         the differences between CPython versions
 *   module.c           module init, calls each part's init below
 *   errors.c           exception types, edgert_py_raise(), the builders of
 *                      CompiledModeFailure and FallbackMismatchError
 *   log.c              cached-level logging through Python's logging module
 *   conv.h, conv.c     the conversion table: one setter and getter per C type
 *   func.h, func.c     the module handle and the bound function (the call path)
 *   loader.c           ModuleLoader, contracts from Python
 *   manifest.c         ABI contracts and the manifest reader (parse_manifest)
 *   guard.c            ExplicitFallback (drives edgert/guard_policy.h) and the
 *                      crash guard's host probe
 *   compare.c          the result comparison and argument snapshots
 *   containers.c       TypedDict/TypedList shared parts, register_type
 *   containers_list.c  TypedList
 *   containers_dict.c  TypedDict
 *   nexus.c            Nexus and kernel handles (drives edgert/nexus_policy.h)
 *   sign.c             KeySet and signed manifests (edgert.signing)
 *   isolate.c          shared_buffer / SharedBuffer (process isolation's
 *                      shared memory); isolated calls are func.c's iso lane
 */
#ifndef EDGERT_PY_EXT_H
#define EDGERT_PY_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pycompat.h"

#include "edgert.h"

/* ---- free threading (docs/free-threading.md) ---------------------------
 * The module declares Py_MOD_GIL_NOT_USED, so on a free-threaded build
 * (Py_GIL_DISABLED) the state the GIL used to serialize is protected here:
 * - an object's mutable state by a critical section on that object
 *   (CPython's per-object lock, what list and dict use). On builds with a
 *   GIL, 3.13's macros are plain blocks, and pycompat.h gives older
 *   versions the same: no cost there.
 * - counters and flags read without a lock by relaxed atomics on
 *   free-threaded builds, plain accesses with a GIL.
 * EDGERT_PY_LOCKED(rtype, name, obj, params, args) defines `name params` as
 * `name##_locked args` run in a critical section on `obj` (what Argument
 * Clinic's @critical_section generates for CPython's own methods); the
 * caller then writes the body as `name##_locked`. */

#define EDGERT_PY_LOCKED(rtype, name, obj, params, args)                                     \
  static rtype name##_locked params;                                                         \
  static rtype name params {                                                                 \
    rtype locked_result_;                                                                    \
    Py_BEGIN_CRITICAL_SECTION(obj);                                                          \
    locked_result_ = name##_locked args;                                                     \
    Py_END_CRITICAL_SECTION();                                                               \
    return locked_result_;                                                                   \
  }

#ifdef Py_GIL_DISABLED
#define EDGERT_PY_ADD(x, n) ((void)__atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED))
#define EDGERT_PY_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define EDGERT_PY_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#else
#define EDGERT_PY_ADD(x, n) ((void)((x) += (n)))
#define EDGERT_PY_LOAD(x) (x)
#define EDGERT_PY_STORE(x, v) ((void)((x) = (v)))
#endif

/* PySequence_Fast, except that free-threaded builds copy a list into a
 * tuple: the items of a list that another thread may change cannot be
 * borrowed there (3.14's Py_BEGIN_CRITICAL_SECTION_SEQUENCE_FAST is for the
 * same). New reference, or NULL with an exception. */
static inline PyObject *edgert_py_sequence_fast(PyObject *o, const char *msg) {
#ifdef Py_GIL_DISABLED
  if (PyList_CheckExact(o))
    return PyList_AsTuple(o);
#endif
  return PySequence_Fast(o, msg);
}

/* Each part adds its types and functions to the module; 0 or -1 with an exception. */
int edgert_py_errors_init(PyObject *m);
int edgert_py_loader_init(PyObject *m);
int edgert_py_manifest_init(PyObject *m);
int edgert_py_fallback_init(PyObject *m);
int edgert_py_containers_init(PyObject *m);
int edgert_py_nexus_init(PyObject *m);
int edgert_py_sign_init(PyObject *m);
int edgert_py_struct_init(PyObject *m);
int edgert_py_callback_init(PyObject *m);
int edgert_py_isolate_init(PyObject *m);
/* isolate.c: edgert.SharedBuffer (shared memory for isolated calls). */
extern PyTypeObject EdgertPy_SharedBufferType;
/* manifest.c: a parsed manifest's modules as parse_manifest returns them
 * (a new list of dicts), or NULL with an exception. */
PyObject *edgert_py_manifest_to_list(const edgert_manifest_t *m);
/* A contract as ABIContract.to_dict() writes it (canonical type names), or
 * NULL with an exception. manifest.c. */
PyObject *edgert_py_contract_to_dict(const edgert_contract_t *c);

/* ---- guard.c: the crash guard's host probe ---------------------------- */

/*
 * The thread state of the binding call in progress on this thread (NULL
 * outside one). A bound call sets it around the core's call, so the crash
 * guard's host probe reads it from thread-local storage in one load instead
 * of asking PyGILState for the thread's state at every armed call (the probe
 * runs at each guarded call: see host_probe in guard.c). Only a call in
 * progress sets it, and that call keeps its thread state alive, so the probe
 * never reads a state that was deleted. Other guarded calls (a C host on a
 * thread Python knows) still get the answer from PyGILState.
 */
#if defined(__GNUC__)
extern _Thread_local PyThreadState *edgert_py_caller_ts __attribute__((tls_model("initial-exec")));
#else
extern _Thread_local PyThreadState *edgert_py_caller_ts;
#endif
/* Brackets a call into the core made by the binding on behalf of `ts`. */
#define EDGERT_PY_CALLER_ENTER(ts)                                                          \
  PyThreadState *edgert_py_caller_prev_ = edgert_py_caller_ts;                              \
  edgert_py_caller_ts = (ts)
#define EDGERT_PY_CALLER_LEAVE() (edgert_py_caller_ts = edgert_py_caller_prev_)

/* ---- errors.c --------------------------------------------------------- */

/* The exception types, created at init and owned by the module. */
extern PyObject *EdgertPy_Error;                 /* edgert.EdgertError(Exception) */
extern PyObject *EdgertPy_IntegrityError;        /* IntegrityError(EdgertError) */
extern PyObject *EdgertPy_ModuleFormatError;     /* ModuleFormatError(EdgertError, ValueError) */
extern PyObject *EdgertPy_SymbolNotFoundError;   /* SymbolNotFoundError(EdgertError, LookupError) */
extern PyObject *EdgertPy_ManifestError;         /* ManifestError(EdgertError, ValueError) */
extern PyObject *EdgertPy_ModuleUnloadedError;   /* ModuleUnloadedError(EdgertError, RuntimeError) */
extern PyObject *EdgertPy_KernelCrash;           /* KernelCrash(EdgertError) */
extern PyObject *EdgertPy_QuarantinedError;      /* QuarantinedError(EdgertError, RuntimeError) */
extern PyObject *EdgertPy_CompiledModeFailure;   /* CompiledModeFailure(EdgertError, RuntimeError) */
extern PyObject *EdgertPy_FallbackMismatchError; /* FallbackMismatchError(EdgertError, ValueError) */
extern PyObject *EdgertPy_SignatureError;        /* SignatureError(IntegrityError) */
extern PyObject *EdgertPy_UnknownKeyError;       /* UnknownKeyError(SignatureError) */
extern PyObject *EdgertPy_ManifestExpiredError;  /* ManifestExpiredError(SignatureError) */
extern PyObject *EdgertPy_RollbackError;         /* RollbackError(SignatureError) */
extern PyObject *EdgertPy_StateFileError;        /* StateFileError(EdgertError, OSError) */
extern PyObject *EdgertPy_CallbackError;         /* CallbackError(EdgertError, RuntimeError): callback.c */
extern PyObject *EdgertPy_KernelTimeout;         /* KernelTimeout(EdgertError, TimeoutError) */

/*
 * The builders of the two fallback exceptions, so that each class has the
 * same attributes wherever it is raised (a nexus kernel, run_with_guard,
 * fallback_to_python). Each raises and returns NULL; every object argument
 * is borrowed, and a NULL one becomes None.
 * - CompiledModeFailure(msg): `__cause__` (and `__context__`) = cause when
 *   not NULL; attributes `kernel`, `version`.
 * - FallbackMismatchError(msg): attributes `kernel`, `version`, `compiled`,
 *   `reference`, `difference`.
 */
PyObject *edgert_py_compiled_failure(PyObject *msg, PyObject *cause,
                                     PyObject *kernel, PyObject *version);
PyObject *edgert_py_mismatch(PyObject *msg, PyObject *kernel, PyObject *version,
                             PyObject *compiled, PyObject *reference,
                             PyObject *difference);

/*
 * Raise the Python exception for core error `err`, with the calling thread's
 * edgert_last_error() as its message (or `err`'s description when that is
 * empty). EDGERT_ECRASH raises KernelCrash from edgert_last_crash(), with
 * attributes signal, signal_name, address, function, module, sent,
 * sender_pid and unhealthy. Always
 * returns NULL, so callers can `return edgert_py_raise(rc);`.
 */
PyObject *edgert_py_raise(int err);

/* ---- log.c ------------------------------------------------------------ */

/*
 * A Python logger whose enabled check costs one dict lookup when the answer
 * is cached: it reads the logger's own level cache (Logger._cache, which
 * logging clears on every setLevel/disable) and asks isEnabledFor() only on a
 * miss, which also fills that cache.
 */
typedef struct edgert_py_logger_s {
  PyObject *logger; /* logging.getLogger(name), owned */
  PyObject *cache;  /* logger._cache, owned */
} edgert_py_logger_t;

/* logging levels, as the logging module numbers them */
#define EDGERT_PY_DEBUG 10
#define EDGERT_PY_INFO 20
#define EDGERT_PY_WARNING 30
#define EDGERT_PY_ERROR 40

/* Binds `lg` to logging.getLogger(name). 0, or -1 with an exception. */
int edgert_py_logger_init(edgert_py_logger_t *lg, const char *name);
/* 1 if `level` is enabled, 0 if not. Never raises (a broken logger is "off"). */
int edgert_py_log_enabled(edgert_py_logger_t *lg, int level);
/* Logs PyUnicode_FromFormat(fmt, ...) at `level` if enabled. Keeps any
 * pending exception intact; an error inside logging is swallowed. */
void edgert_py_log(edgert_py_logger_t *lg, int level, const char *fmt, ...);
/* A short description of an argument for logs: "float", "bytes[12]",
 * "ndarray(float64, (3, 4))", "TypedList(float)[5]". New reference or NULL. */
PyObject *edgert_py_describe(PyObject *obj);
/* PyUnicode_FromFormat(fmt, ", ".join(parts)), `fmt` holding one %U.
 * Steals `parts` (a list of str). New reference or NULL. */
PyObject *edgert_py_join_format(PyObject *parts, const char *fmt);
/* "(float, bytes[12])" for a vector of arguments. New reference or NULL. */
PyObject *edgert_py_describe_args(PyObject *const *args, Py_ssize_t nargs);

/* ---- loader.c (what other parts call) -------------------------------- */
/*
 * A bound callable is what ModuleLoader.function(name) returns: a builtin
 * function object (METH_FASTCALL) whose __self__ holds the edgert_func_t and
 * a reference keeping its module handle alive.
 */
/* 1 if `o` is a bound callable from ModuleLoader.function(), else 0. Never raises. */
int edgert_py_is_bound(PyObject *o);
/* The core function behind a bound callable (borrowed; valid while `o`
 * lives), or NULL (no exception) if `o` is not one. */
edgert_func_t *edgert_py_bound_func(PyObject *o);
/* The C address of bound callable `o` (edgert_py_is_bound) to pass where a
 * function pointer of signature `sig` is expected, or NULL with TypeError
 * naming the first difference (ModuleUnloadedError if unloaded). A match
 * is remembered per bound callable, so a repeated check is one compare. */
void *edgert_py_bound_fnptr(PyObject *o, const edgert_fnsig_t *sig);
/* Reloads the module of bound callable `o` when a call on its mapping
 * crashed (edgert_py_mod_reload): 1 reloaded, 0 nothing to do (not a bound
 * callable, or not quarantined), -1 with an exception. */
int edgert_py_bound_reload_if_crashed(PyObject *o);
/*
 * Calls a bound callable exactly as calling it does (conversion, GIL release
 * per contract, errors), except: when `missed` is non-NULL and the argument
 * conversion refuses the arguments (count, type, overflow, buffer format),
 * returns NULL with NO exception set and *missed = 1, having built no
 * exception object. Otherwise *missed (if given) is set to 0. Unloaded,
 * quarantined and crashed calls raise as usual. `bound` must satisfy
 * edgert_py_is_bound. Returns a new reference or NULL.
 */
PyObject *edgert_py_bound_call(PyObject *bound, PyObject *const *args,
                               Py_ssize_t nargs, int *missed);
/*
 * The lane edgert_py_bound_call takes for `bound` (which must satisfy
 * edgert_py_is_bound and be given to the lane with `missed` non-NULL):
 * chosen once, by a caller that calls the same bound callable many times
 * (the nexus, when a version is installed), so each call skips the choice.
 */
typedef PyObject *(*edgert_py_lane_t)(PyObject *bound, PyObject *const *args,
                                      Py_ssize_t nargs, int *missed);
edgert_py_lane_t edgert_py_bound_lane(PyObject *bound);

/* ---- manifest.c (what other parts call) ------------------------------ */
/* (manifest part: declarations go here) */

/* ---- compare.c (what other parts call) ------------------------------- */
/*
 * Compares a compiled result with a reference result the way
 * ExplicitFallback does: numbers within `tolerance` (absolute or relative,
 * NaN equals NaN), None, bools, str, bytes, sequences, mappings and buffers
 * (numpy arrays, array.array, TypedList) elementwise, nested mixes.
 * Returns 1 if they match, 0 if not (then *diff, if diff is not NULL, is a
 * new str describing the first difference, e.g. "at [2]: 3.0 != 3.5"), or
 * -1 with an exception set. May run Python code (__eq__, __len__, ...).
 * Needs the GIL.
 */
int edgert_py_results_match(PyObject *a, PyObject *b, double tolerance,
                            PyObject **diff);
/*
 * Snapshots of the arguments that export a writable buffer, for running two
 * sides on the same arguments when a side writes through them (an output
 * array, an in-place update): take one before the first side and one after
 * it, restore the first before the second side runs, then match the second
 * snapshot against what the second side left. Read-only buffers and other
 * objects are not copied. Needs the GIL; no buffer stays exported between
 * calls.
 * - take: 0 with *out a new snapshot, or NULL when no argument exports a
 *   writable buffer (nothing is allocated then); -1 with an exception.
 * - restore: writes the snapshot back; 0, or -1 with an exception
 *   (RuntimeError naming the argument if it changed size since). Called
 *   while an exception is set (a call that is raising), it keeps that
 *   exception and drops its own failure (still returning -1).
 * - match: compares the snapshot (as `a`) with the arguments' contents now
 *   (as `b`) by the rules of edgert_py_results_match; 1, 0 with *diff a new
 *   str such as "argument 1 at [3]: 6.0 != 7.0", or -1 with an exception.
 * - free: NULL does nothing.
 */
typedef struct edgert_py_snap_s edgert_py_snap_t;
int edgert_py_snap_take(PyObject *const *args, Py_ssize_t nargs, edgert_py_snap_t **out);
int edgert_py_snap_restore(const edgert_py_snap_t *s, PyObject *const *args);
int edgert_py_snap_match(const edgert_py_snap_t *s, PyObject *const *args, double tolerance,
                         PyObject **diff);
void edgert_py_snap_free(edgert_py_snap_t *s);

/* ---- containers.c (what other parts call) ---------------------------- */

/* An element type as the binding sees it: `kind` 0 (and `type` NULL) is the
 * generic `object` fallback, which lives in the pure-Python package. */
typedef struct edgert_py_elem_s {
  const edgert_type_t *type;
  int kind;       /* edgert_kind_t, or 0 for object */
  size_t size;    /* inline size */
  PyObject *spec; /* canonical spec (int, float, bool, str, bytes, object or
                     the custom name as str); borrowed from the module's
                     lifetime (types) or owned by the container (names) */
} edgert_py_elem_t;

/* Resolves a user's type spec (int, float, bool, str, bytes, object, their
 * names, "int64"/"float64", or a registered custom name as str or bytes).
 * 0 with *out filled (out->spec is a new reference), -1 with TypeError or
 * ValueError naming the spec. */
int edgert_py_elem_resolve(PyObject *spec, edgert_py_elem_t *out);
/* "int", "float", "bool", "str", "bytes", "object" or the custom name. */
const char *edgert_py_elem_name(const edgert_py_elem_t *e);
/* Buffer format of the element ("q", "d", "?"), NULL for other kinds. */
const char *edgert_py_elem_format(const edgert_py_elem_t *e);
/* Whether a buffer of item `format` and `itemsize` holds the element's C
 * items exactly (int: any 8-byte signed integer format, "q", "<q", "l",
 * "=q"...; float: a double; bool: '?'), read by the core's one format parser
 * (edgert_buffer_item_parse). 0 for kinds without a format. */
int edgert_py_elem_buffer_is(const edgert_py_elem_t *e, const char *format, Py_ssize_t itemsize);
/* Converts `o` to the element's C representation at `out` (str/bytes: a
 * descriptor borrowing o's buffer, valid while o lives). `role` names it in
 * errors ("TypedDict key"). 0, or -1 with TypeError/OverflowError (or the
 * custom check/copy callbacks' own exception). May run Python code for
 * custom types. */
int edgert_py_to_c(const edgert_py_elem_t *e, PyObject *o, void *out, const char *role);
/* A count argument (reserve(n) and the like): 0 with *out set, or -1 with
 * TypeError (not an integer), OverflowError or ValueError (negative),
 * each naming `what`. */
int edgert_py_count_arg(PyObject *arg, const char *what, size_t *out);
/* A new Python object for the C value at `src`, or NULL with an exception. */
PyObject *edgert_py_from_c(const edgert_py_elem_t *e, const void *src);
/* TypedList(e) holding a copy of the n C values at `items`: new reference. */
PyObject *edgert_py_list_from_c(const edgert_py_elem_t *e, const void *items, size_t n);

/* Set once by edgert.containers (via _edgert._containers_setup). */
extern PyObject *EdgertPy_GenericDict, *EdgertPy_GenericList, *EdgertPy_KeysView,
    *EdgertPy_ItemsView, *EdgertPy_MappingABC;
extern PyTypeObject EdgertPy_TypedDictType, EdgertPy_TypedListType;
/* A pointer argument's fast path (conv.c): when `o` is exactly a TypedList
 * of int, float or bool items, exports its storage into `view` (buf, len,
 * itemsize, format, readonly; no shape: what a call reads) pinned and
 * counted as its buffer export is, so PyBuffer_Release ends it; sets *kind
 * (EDGERT_KIND_INT64, _FLOAT64 or _BOOL) and returns 1, without the format
 * string's round trip; else 0 with nothing exported and no exception (the
 * general path then runs). */
int edgert_py_list_scalar_view(PyObject *o, Py_buffer *view, int *kind);
int edgert_py_containers_dict_init(PyObject *m);
int edgert_py_containers_list_init(PyObject *m);

/* An exact int as int64 without a call for compact values (one digit,
 * |v| < 2**30 on 30-bit digits) and, before 3.12, whose int layout is
 * Py_SIZE digits, for two (|v| < 2**60). 1 with *out set, 0 when it does not
 * fit in int64 (no exception). `o` must pass PyLong_CheckExact. */
static inline int edgert_py_exact_int64(PyObject *o, int64_t *out) {
  if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
    *out = PyUnstable_Long_CompactValue((PyLongObject *)o);
    return 1;
  }
#if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
  const digit *dg = ((PyLongObject *)o)->ob_digit;
  switch (Py_SIZE(o)) {
  case 2:
    *out = (int64_t)dg[0] | ((int64_t)dg[1] << PyLong_SHIFT);
    return 1;
  case -2:
    *out = -((int64_t)dg[0] | ((int64_t)dg[1] << PyLong_SHIFT));
    return 1;
  default:
    break;
  }
#endif
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow)
    return 0;
  *out = v;
  return 1;
}

/*
 * A float object holding `d`. `*cache` is a float the container keeps: when
 * nobody else holds it (its refcount is 1), no code can observe it, so it
 * is refilled and handed out again instead of allocating (the loop
 * `for k in keys: total += td[k]` then allocates no float at all).
 * Free-threaded builds allocate every time: there a reference count of 1
 * read without a lock does not prove that no other thread still reads the
 * float (its last reader's decref need not be ordered before our write).
 * Called inside the container's critical section.
 */
static inline PyObject *edgert_py_box_float(PyObject **cache, double d) {
#ifdef Py_GIL_DISABLED
  (void)cache;
  return PyFloat_FromDouble(d);
#else
  PyObject *f = *cache;
  if (f != NULL && Py_REFCNT(f) == 1) {
    ((PyFloatObject *)f)->ob_fval = d;
    Py_INCREF(f);
    return f;
  }
  f = PyFloat_FromDouble(d);
  if (f == NULL)
    return NULL;
  Py_INCREF(f);
  Py_XSETREF(*cache, f);
  return f;
#endif
}

#endif /* EDGERT_PY_EXT_H */
