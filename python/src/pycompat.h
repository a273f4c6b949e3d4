/*
 * pycompat.h: the CPython C-API differences between the versions the
 * extension supports, CPython 3.10 to 3.13, in one place.
 *
 * Invariant: call sites use the newest public spelling, and this header
 * supplies it on the versions that lack it, with exactly the contract of the
 * public function it stands for, and each block below is deleted as the
 * floor rises past the version in its #if. Three files outside this one
 * still test PY_VERSION_HEX, each to read an object layout a version
 * changed, with no public equivalent: ext.h's two-digit ints and nexus.c's
 * dict version tag (3.12), guard.c's current frame in the thread state
 * (3.11, 3.13).
 *
 *   public name                   since  older versions
 *   PyFloat_Unpack2               3.11   _PyFloat_Unpack2 (same contract)
 *   PyUnstable_Long_IsCompact,    3.12   one digit at most: |Py_SIZE| <= 1,
 *   PyUnstable_Long_CompactValue         the value Py_SIZE * ob_digit[0]
 *   PyObject_GetOptionalAttr      3.13   _PyObject_LookupAttr (same contract;
 *                                        removed from the headers in 3.13)
 *   PyErr_GetRaisedException,     3.12   PyErr_Fetch, normalised, with the
 *   PyErr_SetRaisedException             traceback on the exception /
 *                                        PyErr_Restore of its type, itself
 *                                        and its traceback
 *   PyThreadState_GetUnchecked    3.13   _PyThreadState_UncheckedGet (same
 *                                        contract)
 *   Py_HashBuffer                 3.14   _Py_HashBytes, exported by every
 *                                        version; 3.13 declares it only in
 *                                        its internal headers
 *   PyDict_GetItemRef             3.13   PyDict_GetItemWithError plus a
 *                                        reference
 *   Py_BEGIN/END_CRITICAL_SECTION 3.13   plain blocks: only free-threaded
 *   (and ..._SECTION2)                   builds (3.13+) lock, and 3.13's
 *                                        own are plain blocks with a GIL
 *
 * The floor is 3.10 (pyproject's requires-python and CMake say the same):
 * 3.9 lacks Py_NewRef, Py_TPFLAGS_MAPPING/SEQUENCE and the match statement
 * those flags serve, is past its end of life (October 2025), and the test
 * dependencies' current releases no longer support it.
 */
#ifndef EDGERT_PY_PYCOMPAT_H
#define EDGERT_PY_PYCOMPAT_H

#ifndef Py_PYTHON_H
#error "pycompat.h must be included after Python.h (include ext.h, which does both)"
#endif

#if PY_VERSION_HEX < 0x030A0000
#error "edgert needs CPython 3.10 or newer; this Python.h is " PY_VERSION
#endif

/* IEEE 754 half precision at `p` (2 bytes; little-endian if `le`). */
#if PY_VERSION_HEX < 0x030B0000
static inline double PyFloat_Unpack2(const char *p, int le) {
  return _PyFloat_Unpack2((const unsigned char *)p, le);
}
#endif

/* A compact int is one CPython stores in a single digit (|v| < 2**30 with
 * 30-bit digits); its value is read without a call. Both take an exact int
 * or subclass; CompactValue only a compact one. */
#if PY_VERSION_HEX < 0x030C0000
static inline int PyUnstable_Long_IsCompact(const PyLongObject *op) {
  Py_ssize_t size = Py_SIZE((PyObject *)op);
  return size >= -1 && size <= 1;
}
static inline Py_ssize_t PyUnstable_Long_CompactValue(const PyLongObject *op) {
  return Py_SIZE((PyObject *)op) * (Py_ssize_t)op->ob_digit[0];
}
#endif

/* The exception being raised as one object (new reference, NULL when none),
 * and the error indicator cleared; Set raises `exc` (stolen) again. */
#if PY_VERSION_HEX < 0x030C0000
static inline PyObject *PyErr_GetRaisedException(void) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (tb != NULL && v != NULL)
    PyException_SetTraceback(v, tb);
  Py_XDECREF(t);
  Py_XDECREF(tb);
  return v;
}
static inline void PyErr_SetRaisedException(PyObject *exc) {
  if (exc == NULL) {
    PyErr_Clear();
    return;
  }
  PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}
#endif

/* The calling thread's state, NULL when it has none, without the check
 * PyThreadState_Get() makes. */
#if PY_VERSION_HEX < 0x030D0000
static inline PyThreadState *PyThreadState_GetUnchecked(void) {
  return _PyThreadState_UncheckedGet();
}
#endif

/* obj.attr_name without raising AttributeError: 1 with *result a new
 * reference, 0 with *result NULL when there is no such attribute, -1 with an
 * exception (and *result NULL) on any other error. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyObject_GetOptionalAttr(PyObject *obj, PyObject *attr_name,
                                           PyObject **result) {
  return _PyObject_LookupAttr(obj, attr_name, result);
}
#endif

/* Python's hash of the `len` bytes at `ptr`: hash(bytes) of them, and
 * hash(str) of them when they are ASCII. Never fails. */
#if PY_VERSION_HEX < 0x030E0000
#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(Py_hash_t) _Py_HashBytes(const void *src, Py_ssize_t len);
#endif
static inline Py_hash_t Py_HashBuffer(const void *ptr, Py_ssize_t len) {
  return _Py_HashBytes(ptr, len);
}
#endif

/* dict[key] as a new reference: 1 with *result set, 0 with *result NULL
 * when the key is absent, -1 with an exception (and *result NULL). Not to
 * be called with an exception pending (before 3.13 it would take that one
 * for its own and return -1). */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyDict_GetItemRef(PyObject *mp, PyObject *key, PyObject **result) {
  PyObject *item = PyDict_GetItemWithError(mp, key);
  *result = Py_XNewRef(item);
  if (item != NULL)
    return 1;
  return PyErr_Occurred() ? -1 : 0;
}
#endif

/* A per-object lock held for the block (free-threaded builds; the GIL
 * serializes everything on the others). */
#if PY_VERSION_HEX < 0x030D0000
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#define Py_BEGIN_CRITICAL_SECTION2(a, b) {
#define Py_END_CRITICAL_SECTION2() }
#endif

#endif /* EDGERT_PY_PYCOMPAT_H */
