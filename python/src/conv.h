/*
 * conv.h: the conversion table, what func.c calls to turn Python arguments
 * into C argument slots and C results into Python objects.
 *
 * One row per edgert_ctype_t (the shape of CPython's ctypes field table in
 * Modules/_ctypes/cfield.c, our own code): a setter for an argument, a getter
 * for a result, and the words a refused argument's message uses. The call
 * path's fast lane (exact floats and small ints, func.c) stays in front of
 * the table; every other argument goes through its row's setter.
 *
 * Invariants:
 * - Conversion is strict and lossless: a setter stores the value or refuses
 *   it with a CV_* code, never rounds, truncates or wraps.
 * - A refusal is described in a small record (conv_err_t) and becomes an
 *   exception only in edgert_py_conv_raise, when the caller wants one (the
 *   miss path of edgert_py_bound_call builds none).
 * - A setter that needs something kept until the call returns (a buffer
 *   view, a string copy) records it in the call's conv_hold_t under the
 *   argument's index; conv_hold_release undoes all of it. Only rows with
 *   `held` set touch the hold, so calls without them pass NULL.
 */
#ifndef EDGERT_PY_CONV_H
#define EDGERT_PY_CONV_H

#include "ext.h"

#include <stdint.h>

enum {
  CV_OK = 0, CV_COUNT, CV_TYPE, CV_OVERFLOW, CV_FORMAT, CV_NOTCONTIG, CV_NUL, CV_PYERR,
  CV_READONLY /* a read-only buffer for a non-const pointer */
};

/* Why an argument was refused. */
typedef struct {
  int kind;           /* CV_* */
  unsigned index;     /* 0-based argument */
  PyObject *obj;      /* the argument (borrowed) */
  char fmt[24];       /* the buffer's format, for CV_FORMAT */
  Py_ssize_t itemsize;
  Py_ssize_t at;      /* CV_NUL: offset of the NUL (bytes, or characters of a str) */
} conv_err_t;

/* Bytes of the call frame that hold small string copies; a copy that does
 * not fit what is left goes on the heap. Most strings a kernel gets (names,
 * modes, keys) fit, so they cost no allocation. */
#define CV_SMALL 256

/*
 * What one call's conversion holds until the call returns: buffer views
 * (held 1) and heap copies of strings (held 2), at most one per argument,
 * plus `small`, a bump area for string copies that fit.
 */
typedef struct {
  Py_buffer views[EDGERT_MAX_ARGS];
  void *heap[EDGERT_MAX_ARGS];
  unsigned char held[EDGERT_MAX_ARGS]; /* 1 view, 2 heap copy */
  unsigned used;
  size_t top; /* bytes of `small` in use */
  _Alignas(max_align_t) unsigned char small[CV_SMALL];
} conv_hold_t;

/* Ready for `n` arguments. */
static inline void conv_hold_init(conv_hold_t *h, unsigned n) {
  h->used = n;
  h->top = 0;
  memset(h->held, 0, n);
}
/* Releases every view and copy the setters recorded. */
void conv_hold_release(conv_hold_t *h);

/* Argument i: stores `o` in *v, or returns a CV_* code (details of a
 * CV_FORMAT or CV_NUL in *e). `h` is NULL for rows without `held`. */
typedef int (*conv_set_t)(const edgert_abi_type_t *t, PyObject *o, unsigned i,
                          edgert_value_t *v, conv_hold_t *h, conv_err_t *e);
/* A new Python object for the result at `p`, or NULL with an exception
 * (`fname` names the function in it). */
typedef PyObject *(*conv_get_t)(const void *p, const char *fname);

typedef struct {
  conv_set_t set;       /* refuses everything for EDGERT_CT_VOID */
  conv_get_t get;
  const char *expected; /* "float or int": what the argument must be */
  const char *range;    /* "0..255": what fits, for OverflowError */
  unsigned char held;   /* the setter may record into a conv_hold_t */
} conv_row_t;

extern const conv_row_t conv_table[EDGERT_CT__COUNT];

/* Converts argument i through its row: CV_OK, or the code with *e filled. */
static inline int conv_arg(const edgert_abi_type_t *t, PyObject *o, unsigned i,
                           edgert_value_t *v, conv_hold_t *h, conv_err_t *e) {
  int rc = conv_table[t->code].set(t, o, i, v, h, e);
  if (EDGERT__UNLIKELY(rc != CV_OK)) {
    e->kind = rc;
    e->index = i;
    e->obj = o;
  }
  return rc;
}

/* Sets the exception for a refused call of `fn` with `got` arguments whose
 * contract types are `args` (CV_PYERR: already set). */
void conv_raise(edgert_func_t *fn, const edgert_abi_type_t *args, unsigned nargs,
                const conv_err_t *e, Py_ssize_t got);

/*
 * Extra argument i of a variadic call: its C type from the object, in *t,
 * and its value in *v (ctypes' rules): an int is c_int (OverflowError
 * beyond it), a float c_double, bytes a private char * copy, None NULL, a
 * ctypes simple instance its own type (c_long(5)), byref()/a ctypes pointer
 * or array/any contiguous buffer its address (c_void_p); str is refused.
 * `h` must not be NULL. CV_OK, or the code with *e filled.
 */
int conv_extra(PyObject *o, unsigned i, edgert_abi_type_t *t, edgert_value_t *v,
               conv_hold_t *h, conv_err_t *e);
/* Sets the exception for a refused extra argument (`nfixed` fixed ones). */
void conv_raise_extra(edgert_func_t *fn, unsigned nfixed, const conv_err_t *e);

/* A result, large enough for every return type (long double included). */
typedef union {
  long double ld;
  unsigned char raw[32];
} conv_ret_t;

#endif /* EDGERT_PY_CONV_H */
