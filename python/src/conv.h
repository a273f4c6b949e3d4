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
  CV_READONLY, /* a read-only buffer for a non-const pointer */
  CV_ALIGN     /* a buffer whose start is not aligned for its items */
};

/* Why an argument was refused. */
typedef struct {
  int kind;           /* CV_* */
  unsigned index;     /* 0-based argument */
  PyObject *obj;      /* the argument (borrowed) */
  char fmt[24];       /* the buffer's format, for CV_FORMAT */
  Py_ssize_t itemsize;
  Py_ssize_t at;      /* CV_NUL: offset of the NUL (bytes, or characters of a str) */
  char why[200];      /* CV_FORMAT of a struct buffer: what differs (set only then) */
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
  unsigned char held[EDGERT_MAX_ARGS]; /* 1 view, 2 heap copy, 3 callback (callback.c) */
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

/* ---- struct.c: ctypes.Structure classes (their layouts are the core's) ---- */

/* The head of a ctypes instance (CPython's CDataObject): its bytes are at
 * b_ptr. Read only when edgert_py_bptr_ok is 1, which define_struct sets
 * after checking b_ptr and b_size against the buffer protocol. */
typedef struct {
  PyObject_HEAD
  char *b_ptr;
  int b_needsfree;
  PyObject *b_base;
  Py_ssize_t b_size;
} edgert_py_cdata_t;
extern int edgert_py_bptr_ok;

/* The layout `tp` (or its nearest known base) was defined as, or NULL. */
const edgert_struct_t *edgert_py_struct_of_type(PyTypeObject *tp);
/* The class of layout `s` (new reference), or NULL with TypeError. */
PyObject *edgert_py_struct_class(const edgert_struct_t *s);
/* A new instance of s's class holding the struct bytes at `p`. */
PyObject *edgert_py_struct_result(const edgert_struct_t *s, const void *p);
/* A struct argument by value: CV_OK with view->buf its bytes (a view to
 * release only when view->obj is set), or CV_TYPE. */
int edgert_py_struct_arg(const edgert_struct_t *s, PyObject *o, Py_buffer *view);
/* A POINTER(S) buffer: CV_OK with `view` held, CV_NOTCONTIG, or CV_FORMAT
 * with e->fmt, e->itemsize and e->why set. */
int edgert_py_struct_buffer(const edgert_struct_t *s, PyObject *o, Py_buffer *view,
                            conv_err_t *e);
/* ---- callback.c: the FUNCPTR row (CFUNCTYPE arguments) ---------------- */

/* The setter: None, a bound function, a keep handle, an address or a
 * callable (a closure for this call, recorded in `h` as held kind 3). */
int conv_cb_set(const edgert_abi_type_t *t, PyObject *o, unsigned i, edgert_value_t *v,
                conv_hold_t *h, conv_err_t *e);
/* Frees a held kind 3 context (conv_hold_release calls it). */
void conv_cb_free(void *ctx);
/* After the call, before conv_hold_release: the first exception a per-call
 * callback kept (new reference, *index its argument, *after the invocations
 * that followed it), or NULL. */
PyObject *conv_cb_take(conv_hold_t *h, unsigned *index, size_t *after);
/* Raises CallbackError from `exc` (stolen), or, when the call itself failed
 * with `rc`, that error with `exc` as its context. Returns NULL. */
PyObject *conv_cb_raise(edgert_func_t *fn, unsigned index, size_t after, PyObject *exc,
                        int rc);

#endif /* EDGERT_PY_CONV_H */
