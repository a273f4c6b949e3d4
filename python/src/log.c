/*
 * log.c: logging through Python's logging module at the cost of one cached
 * level check when the level is off.
 *
 * Logger._cache maps a level to whether it is enabled; logging clears it
 * whenever a level changes anywhere (setLevel, disable, manager changes), so
 * a hit in it is always current. On a miss isEnabledFor() answers and fills
 * it. The dict object itself is never replaced, so holding it is safe.
 *
 * Threads: the loggers and level_objs are set at module init and only read
 * after. The cache is logging's own dict, which other threads clear and
 * fill: it is read with PyDict_GetItemRef (a strong reference, as the
 * free-threading guide asks of a dict others change).
 */
#include "ext.h"

#include <stdarg.h>

static PyObject *level_objs[6]; /* 0, 10, ..., 50 as ints */

int edgert_py_logger_init(edgert_py_logger_t *lg, const char *name) {
  lg->logger = NULL;
  lg->cache = NULL;
  for (int i = 0; i < 6; i++)
    if (level_objs[i] == NULL && (level_objs[i] = PyLong_FromLong(i * 10)) == NULL)
      return -1;
  PyObject *logging = PyImport_ImportModule("logging");
  if (logging == NULL)
    return -1;
  lg->logger = PyObject_CallMethod(logging, "getLogger", "s", name);
  Py_DECREF(logging);
  if (lg->logger == NULL)
    return -1;
  lg->cache = PyObject_GetAttrString(lg->logger, "_cache");
  if (lg->cache != NULL && !PyDict_Check(lg->cache))
    Py_CLEAR(lg->cache);
  PyErr_Clear(); /* without a cache we simply ask every time */
  return 0;
}

int edgert_py_log_enabled(edgert_py_logger_t *lg, int level) {
  if (lg->logger == NULL)
    return 0;
  PyObject *key = (level >= 0 && level <= 50 && level % 10 == 0)
                      ? level_objs[level / 10]
                      : NULL;
  /* The lookup may not run with an exception pending (a failing call logs
   * while raising): that case asks isEnabledFor below, around which the
   * exception is kept. */
  if (lg->cache != NULL && key != NULL && !PyErr_Occurred()) {
    PyObject *hit = NULL;
    int found = PyDict_GetItemRef(lg->cache, key, &hit);
    if (found > 0) {
      int on = hit == Py_True;
      Py_DECREF(hit);
      return on;
    }
    if (found < 0)
      PyErr_Clear();
  }
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  PyObject *r = PyObject_CallMethod(lg->logger, "isEnabledFor", "i", level);
  int on = 0;
  if (r == NULL)
    PyErr_Clear();
  else {
    on = PyObject_IsTrue(r) == 1;
    Py_DECREF(r);
  }
  PyErr_Restore(et, ev, tb);
  return on;
}

void edgert_py_log(edgert_py_logger_t *lg, int level, const char *fmt, ...) {
  if (!edgert_py_log_enabled(lg, level))
    return;
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  va_list ap;
  va_start(ap, fmt);
  PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
  va_end(ap);
  if (msg != NULL) {
    /* logger.log(level, "%s", msg): the message is never re-formatted. */
    PyObject *r = PyObject_CallMethod(lg->logger, "log", "isO", level, "%s", msg);
    Py_XDECREF(r);
    Py_DECREF(msg);
  }
  PyErr_Clear();
  PyErr_Restore(et, ev, tb);
}

PyObject *edgert_py_describe(PyObject *obj) {
  PyTypeObject *t = Py_TYPE(obj);
  if (PyLong_CheckExact(obj) || PyFloat_CheckExact(obj) || PyBool_Check(obj) ||
      obj == Py_None)
    return PyUnicode_FromString(t->tp_name);
  PyObject *shape = PyObject_GetAttrString(obj, "shape");
  if (shape != NULL && PyTuple_Check(shape)) {
    PyObject *dtype = PyObject_GetAttrString(obj, "dtype");
    PyObject *r = dtype ? PyUnicode_FromFormat("%s(%S, %R)", t->tp_name, dtype, shape)
                        : NULL;
    if (dtype == NULL) {
      PyErr_Clear();
      r = PyUnicode_FromFormat("%s%R", t->tp_name, shape);
    }
    Py_XDECREF(dtype);
    Py_DECREF(shape);
    return r;
  }
  Py_XDECREF(shape);
  PyErr_Clear();
  if (PyObject_CheckBuffer(obj) || PySequence_Check(obj) || PyMapping_Check(obj)) {
    Py_ssize_t n = PyObject_Length(obj);
    if (n >= 0)
      return PyUnicode_FromFormat("%s[%zd]", t->tp_name, n);
    PyErr_Clear();
  }
  return PyUnicode_FromString(t->tp_name);
}

PyObject *edgert_py_describe_args(PyObject *const *args, Py_ssize_t nargs) {
  PyObject *parts = PyList_New(nargs);
  if (parts == NULL)
    return NULL;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *d = edgert_py_describe(args[i]);
    if (d == NULL) {
      Py_DECREF(parts);
      return NULL;
    }
    PyList_SET_ITEM(parts, i, d);
  }
  return edgert_py_join_format(parts, "(%U)");
}

PyObject *edgert_py_join_format(PyObject *parts, const char *fmt) {
  PyObject *sep = PyUnicode_FromString(", ");
  PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
  Py_XDECREF(sep);
  Py_DECREF(parts);
  if (joined == NULL)
    return NULL;
  PyObject *r = PyUnicode_FromFormat(fmt, joined);
  Py_DECREF(joined);
  return r;
}
