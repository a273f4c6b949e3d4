/*
 * floor_ext.c: the floor of the loader bench. A hand-written METH_FASTCALL
 * extension calling the same C functions in another shared object
 * (libbenchk.so) through function pointers it got from dlsym: what a
 * hand-written binding costs, with no generality at all.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static double (*p_add)(double, double);
static int64_t (*p_inc)(int64_t);
static void (*p_noop)(void);
static float (*p_addf)(float, float);
static int32_t (*p_mul3)(int32_t, int32_t, int32_t);
static double (*p_mix5)(int32_t, double, float, int64_t, uint8_t);
static double (*p_sum_f64)(const double *, size_t);
static int32_t (*p_seven)(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t);
static long double (*p_halve_ld)(long double);
static int32_t (*p_first_c)(const char *);

static void *sym(void *h, const char *name) {
  void *p = dlsym(h, name);
  if (p == NULL)
    PyErr_Format(PyExc_RuntimeError, "libbenchk has no %s", name);
  return p;
}

static PyObject *f_init(PyObject *m, PyObject *arg) {
  (void)m;
  const char *path = PyUnicode_AsUTF8(arg);
  if (path == NULL)
    return NULL;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    return PyErr_Format(PyExc_OSError, "dlopen %s: %s", path, dlerror());
  if (!(p_add = sym(h, "add")) || !(p_inc = sym(h, "inc")) || !(p_noop = sym(h, "noop")) ||
      !(p_addf = sym(h, "addf")) || !(p_mul3 = sym(h, "mul3")) || !(p_mix5 = sym(h, "mix5")) ||
      !(p_sum_f64 = sym(h, "sum_f64")) || !(p_seven = sym(h, "seven")) ||
      !(p_halve_ld = sym(h, "halve_ld")) || !(p_first_c = sym(h, "first_c")))
    return NULL;
  Py_RETURN_NONE;
}

static int nargs_is(Py_ssize_t n, Py_ssize_t want) {
  if (n == want)
    return 1;
  PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, n);
  return 0;
}

static PyObject *f_add(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 2))
    return NULL;
  double x = PyFloat_AsDouble(a[0]);
  if (x == -1.0 && PyErr_Occurred())
    return NULL;
  double y = PyFloat_AsDouble(a[1]);
  if (y == -1.0 && PyErr_Occurred())
    return NULL;
  return PyFloat_FromDouble(p_add(x, y));
}

static PyObject *f_inc(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 1))
    return NULL;
  long long x = PyLong_AsLongLong(a[0]);
  if (x == -1 && PyErr_Occurred())
    return NULL;
  return PyLong_FromLongLong(p_inc(x));
}

static PyObject *f_noop(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  (void)a;
  if (!nargs_is(n, 0))
    return NULL;
  p_noop();
  Py_RETURN_NONE;
}

static PyObject *f_addf(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 2))
    return NULL;
  double x = PyFloat_AsDouble(a[0]);
  if (x == -1.0 && PyErr_Occurred())
    return NULL;
  double y = PyFloat_AsDouble(a[1]);
  if (y == -1.0 && PyErr_Occurred())
    return NULL;
  return PyFloat_FromDouble(p_addf((float)x, (float)y));
}

static PyObject *f_mul3(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 3))
    return NULL;
  long v[3];
  for (int i = 0; i < 3; i++) {
    v[i] = PyLong_AsLong(a[i]);
    if (v[i] == -1 && PyErr_Occurred())
      return NULL;
  }
  return PyLong_FromLong(p_mul3((int32_t)v[0], (int32_t)v[1], (int32_t)v[2]));
}

static PyObject *f_mix5(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 5))
    return NULL;
  long x0 = PyLong_AsLong(a[0]);
  double x1 = PyFloat_AsDouble(a[1]);
  double x2 = PyFloat_AsDouble(a[2]);
  long long x3 = PyLong_AsLongLong(a[3]);
  long x4 = PyLong_AsLong(a[4]);
  if (PyErr_Occurred())
    return NULL;
  return PyFloat_FromDouble(p_mix5((int32_t)x0, x1, (float)x2, x3, (uint8_t)x4));
}

static PyObject *f_sum_f64(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 2))
    return NULL;
  Py_buffer v;
  if (PyObject_GetBuffer(a[0], &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
    return NULL;
  size_t k = PyLong_AsSize_t(a[1]);
  if (k == (size_t)-1 && PyErr_Occurred()) {
    PyBuffer_Release(&v);
    return NULL;
  }
  double r = p_sum_f64((const double *)v.buf, k);
  PyBuffer_Release(&v);
  return PyFloat_FromDouble(r);
}

static PyObject *f_seven(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 7))
    return NULL;
  long v[7];
  for (int i = 0; i < 7; i++) {
    v[i] = PyLong_AsLong(a[i]);
    if (v[i] == -1 && PyErr_Occurred())
      return NULL;
  }
  return PyLong_FromLong(p_seven((int32_t)v[0], (int32_t)v[1], (int32_t)v[2], (int32_t)v[3],
                                 (int32_t)v[4], (int32_t)v[5], (int32_t)v[6]));
}

static PyObject *f_halve_ld(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 1))
    return NULL;
  double x = PyFloat_AsDouble(a[0]);
  if (x == -1.0 && PyErr_Occurred())
    return NULL;
  return PyFloat_FromDouble((double)p_halve_ld(x));
}

/* Hands the kernel the bytes object's own buffer, as the least any binding
 * can do (it lets a kernel write into an immutable object: edgert copies). */
static PyObject *f_first_c(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 1))
    return NULL;
  const char *s = PyBytes_AsString(a[0]);
  if (s == NULL)
    return NULL;
  return PyLong_FromLong(p_first_c(s));
}

/* What a careful hand-written binding does: refuse an embedded NUL, hand the
 * kernel a malloc'd NUL-terminated copy, free it. */
static PyObject *f_first_c_copy(PyObject *m, PyObject *const *a, Py_ssize_t n) {
  (void)m;
  if (!nargs_is(n, 1))
    return NULL;
  char *s;
  Py_ssize_t len;
  if (PyBytes_AsStringAndSize(a[0], &s, &len) < 0)
    return NULL;
  if (memchr(s, 0, (size_t)len) != NULL)
    return PyErr_Format(PyExc_ValueError, "embedded NUL");
  char *copy = malloc((size_t)len + 1);
  if (copy == NULL)
    return PyErr_NoMemory();
  memcpy(copy, s, (size_t)len);
  copy[len] = '\0';
  int32_t r = p_first_c(copy);
  free(copy);
  return PyLong_FromLong(r);
}

static PyMethodDef methods[] = {
    {"init", (PyCFunction)f_init, METH_O, "init(path): dlopen libbenchk.so"},
    {"add", (PyCFunction)(void (*)(void))f_add, METH_FASTCALL, NULL},
    {"inc", (PyCFunction)(void (*)(void))f_inc, METH_FASTCALL, NULL},
    {"noop", (PyCFunction)(void (*)(void))f_noop, METH_FASTCALL, NULL},
    {"addf", (PyCFunction)(void (*)(void))f_addf, METH_FASTCALL, NULL},
    {"mul3", (PyCFunction)(void (*)(void))f_mul3, METH_FASTCALL, NULL},
    {"mix5", (PyCFunction)(void (*)(void))f_mix5, METH_FASTCALL, NULL},
    {"sum_f64", (PyCFunction)(void (*)(void))f_sum_f64, METH_FASTCALL, NULL},
    {"seven", (PyCFunction)(void (*)(void))f_seven, METH_FASTCALL, NULL},
    {"halve_ld", (PyCFunction)(void (*)(void))f_halve_ld, METH_FASTCALL, NULL},
    {"first_c", (PyCFunction)(void (*)(void))f_first_c, METH_FASTCALL, NULL},
    {"first_c_copy", (PyCFunction)(void (*)(void))f_first_c_copy, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "floor_ext",
                                 "Hand-written floor for the loader bench.", -1, methods,
                                 NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_floor_ext(void) { return PyModule_Create(&def); }
