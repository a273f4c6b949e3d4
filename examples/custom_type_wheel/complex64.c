/*
 * complex64.c: a custom inline type built against an INSTALLED edgert (a
 * wheel, or `pip install .`), with nothing but a C compiler: the headers
 * come from edgert.get_include(), the library to link from
 * edgert.get_library(). build_and_run.py compiles and uses it.
 *
 * "complex64" is numpy's complex64: two floats back to back, so a
 * TypedList("complex64") is an array a kernel reads as float[2*n]. Python
 * complex numbers, floats and ints are accepted (check), stored as two floats
 * (copy) and read back as complex (box).
 *
 * The callbacks run inside the interpreter and use a few Python C API
 * functions, declared here rather than taken from Python.h, so building needs
 * no Python headers: the interpreter that loads the library provides them.
 *
 * EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_BOXED (edgert/types.h) defines this
 * library's own register_custom_type_boxed entry point, forwarding to the
 * registry in libedgert: the library links the same libedgert.so.0 the
 * extension uses, so the type lands in the registry the package reads.
 */
#include <stddef.h>

#include "edgert/types.h"

typedef struct _object PyObject;
extern int PyNumber_Check(PyObject *o);
extern double PyComplex_RealAsDouble(PyObject *o);
extern double PyComplex_ImagAsDouble(PyObject *o);
extern PyObject *PyComplex_FromDoubles(double real, double imag);

typedef struct {
  float re;
  float im;
} complex64_t;

size_t complex64_size(void) { return sizeof(complex64_t); }

/* A number (int, float, complex, or anything with __float__/__complex__). */
int complex64_check(PyObject *obj) { return PyNumber_Check(obj); }

/* A failing conversion leaves its Python exception set, which the extension
 * raises after the call. */
void complex64_copy(void *dst, PyObject *src) {
  complex64_t *c = dst;
  c->re = (float)PyComplex_RealAsDouble(src);
  c->im = (float)PyComplex_ImagAsDouble(src);
}

PyObject *complex64_box(const void *src) {
  const complex64_t *c = src;
  return PyComplex_FromDoubles(c->re, c->im);
}

EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_BOXED(register_custom_type_boxed)

/* A kernel over a TypedList("complex64")'s storage: the sum of |x|^2. */
double complex64_norm2(const complex64_t *xs, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)xs[i].re * xs[i].re + (double)xs[i].im * xs[i].im;
  return s;
}
