/*
 * custom_types.c: the article's custom-type library, libcustom_types.so. It defines the Point inline type's callbacks and, with
 * the one-line helper from edgert/types.h, its own register_custom_type
 * entry point forwarding to the runtime's registry, so the article's flow
 * runs through ModuleLoader:
 *
 *   loader.load(path, abi)
 *   loader.call("register_custom_type", b"Point", sizeof_fp, check_fp, copy_fp)
 *
 * The callbacks receive Python objects (the host is CPython). The few
 * Python C API functions they use are declared here rather than taken from
 * Python.h, because fixtures build without Python's headers; the loading
 * interpreter provides the symbols. A Point is any object with numeric
 * attributes x and y (the article's PointObj, duck-typed); box_point turns
 * an inline Point back into a (x, y) tuple.
 */
#include <stddef.h>

#include "edgert/types.h"

typedef struct _object PyObject;
extern PyObject *PyObject_GetAttrString(PyObject *o, const char *name);
extern double PyFloat_AsDouble(PyObject *o);
extern int PyNumber_Check(PyObject *o);
extern void Py_DecRef(PyObject *o);
extern PyObject *PyErr_Occurred(void);
extern PyObject *Py_BuildValue(const char *fmt, ...);
extern int PyErr_ExceptionMatches(PyObject *exc);
extern void PyErr_Clear(void);
extern PyObject *PyExc_AttributeError;

typedef struct {
  double x;
  double y;
} Point;

size_t sizeof_point(void) { return sizeof(Point); }

/* 1 if obj.name is a number, 0 if not or absent, -1 if getting it raised
 * something other than AttributeError (left set for the caller). */
static int numeric_attr(PyObject *obj, const char *name) {
  PyObject *v = PyObject_GetAttrString(obj, name);
  if (v == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
      return -1;
    PyErr_Clear();
    return 0;
  }
  int ok = PyNumber_Check(v);
  Py_DecRef(v);
  return ok;
}

int check_point(PyObject *obj) {
  int x = numeric_attr(obj, "x");
  if (x <= 0)
    return x;
  return numeric_attr(obj, "y");
}

void copy_point(void *dst, PyObject *src) {
  Point *p = (Point *)dst;
  PyObject *x = PyObject_GetAttrString(src, "x");
  PyObject *y = x ? PyObject_GetAttrString(src, "y") : NULL;
  p->x = x ? PyFloat_AsDouble(x) : 0.0;
  p->y = y ? PyFloat_AsDouble(y) : 0.0;
  if (x)
    Py_DecRef(x);
  if (y)
    Py_DecRef(y);
}

PyObject *box_point(const void *src) {
  const Point *p = (const Point *)src;
  return Py_BuildValue("(dd)", p->x, p->y);
}

/* The article's entry point, and one that also takes a box callback. */
EDGERT_DEFINE_REGISTER_CUSTOM_TYPE()
EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_BOXED(register_custom_type_boxed)

/* A kernel over a TypedList('Point') buffer (passed as c_void_p): the
 * centroid's x. */
double point_mean_x(const Point *pts, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += pts[i].x;
  return n ? s / (double)n : 0.0;
}
