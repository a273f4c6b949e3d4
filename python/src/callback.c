/*
 * callback.c: CFUNCTYPE arguments (the conversion table's FUNCPTR row) and
 * keep handles (edgert.callback), over the core's closures
 * (edgert/callback.h).
 *
 * What a CFUNCTYPE argument accepts, in this order: None (NULL); a bound
 * edgert function whose contract is the callback's signature (its C address
 * passes, no Python in between); a keep handle of the same signature (its
 * closure's code); an int (an address, as ModuleLoader.address_of returns);
 * any other callable (a Python callback, through a closure made for this
 * call). Anything else is refused.
 *
 * Invariants:
 * - A per-call closure lives exactly as long as the call: the setter records
 *   its context in the call's conv_hold_t (held kind 3) and
 *   conv_hold_release frees it, on every path. Its callable is borrowed:
 *   the caller's argument vector holds it for the whole call. A keep
 *   handle's closure lives until release() or the handle's deallocation,
 *   and owns its callable.
 * - The handler takes the GIL itself (PyGILState_Ensure), so a callback runs
 *   whether the call released the GIL or not, on the calling thread or on a
 *   thread the C code started.
 * - Exceptions are never lost. In a per-call closure the first exception is
 *   kept (a compare-and-swap, so callbacks from several C threads agree on
 *   which is first) and every later invocation in that call returns zero to
 *   C without running Python; the call then raises CallbackError from it.
 *   A keep handle's callback may run outside any edgert call, so its
 *   exceptions go to sys.unraisablehook, as ctypes reports its callbacks'.
 *   Either way the callback returns a zero value to C.
 * - POINTER(t) arguments reach the callable as an edgert.CallbackPointer of
 *   the one t at that address (None for NULL): p[0] reads and writes it
 *   through the conversion table, like ctypes' p[0]. One still referenced
 *   when the callback returns is invalidated (p[0] then raises), so keeping
 *   it cannot read freed memory later.
 * - Free-threaded builds (docs/free-threading.md): a CallbackPointer's
 *   address and a keep handle's context are read and cleared inside a
 *   critical section on their object (plain blocks with a GIL), so a thread
 *   that kept a CallbackPointer cannot read or write through it after the
 *   callback returned, and release() in two threads frees a closure once;
 *   nothing runs Python code or blocks inside those sections.
 */
#include "conv.h"
#include "func.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__GNUC__)
#define EDGERT__NOINLINE __attribute__((noinline, cold))
#else
#define EDGERT__NOINLINE
#endif

PyObject *EdgertPy_CallbackError;

typedef struct cb_ctx_s {
  edgert_closure_t *closure;
  PyObject *callable; /* borrowed in a call, owned by a keep handle */
  const edgert_fnsig_t *sig;
  _Atomic(PyObject *) exc; /* the first exception (owned), per-call closures */
  atomic_size_t after;     /* invocations after it */
  int keep;
  size_t ret_size; /* bytes of the return type */
  /* POINTER argument objects nobody kept, reused by the next invocation
   * (touched only with the GIL held; unused on free-threaded builds). */
  PyObject *spare[EDGERT_MAX_CALLBACK_ARGS];
} cb_ctx_t;

/* ---- the handler --------------------------------------------------------- */

/* ---- POINTER arguments: edgert.CallbackPointer ----------------------------- */

/* A POINTER(t) argument of a Python callback: p[0] reads (and p[0] = v
 * writes) the one item at `addr`, converted by the conversion table's row
 * of the pointee (an address for a pointer pointee). Holds no references,
 * so it is not tracked by the GC. `addr` is NULL once the callback returned
 * while someone still held it. */
typedef struct {
  PyObject_HEAD
  void *addr;
  const edgert_abi_type_t *t; /* the POINTER type, in an interned signature */
  edgert_abi_type_t item;     /* its pointee, and that pointee's size: */
  size_t size;                /* worked out when t is set (see cb_arg) */
} PointerObject;

static PyTypeObject PointerType;

/* The pointee as a type, for the table rows. */
static edgert_abi_type_t pointee_of(const edgert_abi_type_t *t) {
  if (t->depth >= 2) {
    edgert_abi_type_t p = {.code = EDGERT_CT_POINTER, .pointee = t->pointee, .depth = (unsigned char)(t->depth - 1)};
    return p;
  }
  edgert_abi_type_t p = {.code = t->pointee, .pointee = EDGERT_CT_VOID, .depth = 0};
  return p;
}

/* 1 when item i of a CallbackPointer whose address is `addr` can be
 * accessed, else 0 with an exception. */
static int ptr_live(const void *addr, Py_ssize_t i) {
  if (addr == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "this callback's POINTER argument is no longer valid: the callback "
                    "returned (copy p[0] during the callback instead)");
    return 0;
  }
  if (i != 0) {
    PyErr_Format(PyExc_IndexError,
                 "a callback's POINTER argument gives access to one item, p[0]; got "
                 "index %zd",
                 i);
    return 0;
  }
  return 1;
}

/* p->addr under the object's critical section (on free-threaded builds the
 * callback's thread may clear it at any moment). */
static void *ptr_addr(PointerObject *p) {
  void *a;
  Py_BEGIN_CRITICAL_SECTION(p);
  a = p->addr;
  Py_END_CRITICAL_SECTION();
  return a;
}

static PyObject *ptr_item(PointerObject *p, Py_ssize_t i) {
  const edgert_abi_type_t e = p->item;
  const size_t size = p->size;
  edgert_value_t x;
  PyObject *r = NULL;
  int live;
  /* The item is copied while the address is known to be live; it is boxed
   * after, outside the section (boxing allocates). */
  Py_BEGIN_CRITICAL_SECTION(p);
  live = ptr_live(p->addr, i);
  if (live) {
    if (size <= sizeof x)
      memcpy(&x, p->addr, size);
    else
      r = conv_table[e.code].get(p->addr, "callback");
  }
  Py_END_CRITICAL_SECTION();
  if (!live || size > sizeof x)
    return r;
  return conv_table[e.code].get(&x, "callback");
}

static int ptr_ass_item(PointerObject *p, Py_ssize_t i, PyObject *v) {
  if (!ptr_live(ptr_addr(p), i)) /* an early refusal; checked again where it stores */
    return -1;
  if (v == NULL) {
    PyErr_SetString(PyExc_TypeError, "cannot delete a callback POINTER's item");
    return -1;
  }
  const edgert_abi_type_t e = p->item;
  if (conv_table[e.code].held) {
    PyErr_SetString(PyExc_TypeError,
                    "a callback cannot store a pointer or string through its POINTER "
                    "argument (the memory would not outlive the callback)");
    return -1;
  }
  edgert_value_t x;
  conv_err_t err;
  int rc = conv_table[e.code].set(&e, v, 0, &x, NULL, &err);
  if (rc == CV_PYERR)
    return -1;
  if (rc != CV_OK) {
    char tname[EDGERT_ABI_TYPE_NAME_MAX];
    if (edgert_abi_type_name(&e, tname, sizeof tname) != 0)
      snprintf(tname, sizeof tname, "?");
    PyErr_Format(rc == CV_OVERFLOW ? PyExc_OverflowError : PyExc_TypeError,
                 "p[0] = %.100s: expected %s (%s)", Py_TYPE(v)->tp_name,
                 conv_table[e.code].expected, tname);
    return -1;
  }
  /* converted first (that may run Python code: __index__, __float__), then
   * stored while the address is known to be live */
  int live;
  Py_BEGIN_CRITICAL_SECTION(p);
  live = ptr_live(p->addr, i);
  if (live)
    memcpy(p->addr, &x, p->size); /* little-endian: the low bytes */
  Py_END_CRITICAL_SECTION();
  return live ? 0 : -1;
}

/* p[i] with an exact int index, without the sequence protocol's detour. */
static PyObject *ptr_subscript(PointerObject *p, PyObject *key) {
  Py_ssize_t i;
  if (PyLong_CheckExact(key) && PyUnstable_Long_IsCompact((PyLongObject *)key))
    i = PyUnstable_Long_CompactValue((PyLongObject *)key);
  else if ((i = PyNumber_AsSsize_t(key, PyExc_IndexError)) == -1 && PyErr_Occurred())
    return NULL;
  return ptr_item(p, i);
}

static int ptr_ass_subscript(PointerObject *p, PyObject *key, PyObject *v) {
  Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
  if (i == -1 && PyErr_Occurred())
    return -1;
  return ptr_ass_item(p, i, v);
}

static Py_ssize_t ptr_len(PointerObject *p) {
  (void)p;
  return 1;
}

static PyObject *ptr_address(PointerObject *p, void *closure) {
  (void)closure;
  void *a = ptr_addr(p);
  if (!ptr_live(a, 0))
    return NULL;
  return PyLong_FromVoidPtr(a);
}

static PyObject *ptr_repr(PointerObject *p) {
  char tname[EDGERT_ABI_TYPE_NAME_MAX];
  if (edgert_abi_type_name(p->t, tname, sizeof tname) != 0)
    snprintf(tname, sizeof tname, "POINTER");
  void *a = ptr_addr(p);
  if (a == NULL)
    return PyUnicode_FromFormat("<edgert.CallbackPointer %s, no longer valid>", tname);
  return PyUnicode_FromFormat("<edgert.CallbackPointer %s at %p>", tname, a);
}

static PySequenceMethods ptr_as_sequence = {
    .sq_length = (lenfunc)ptr_len,
    .sq_item = (ssizeargfunc)ptr_item,
    .sq_ass_item = (ssizeobjargproc)ptr_ass_item,
};

static PyMappingMethods ptr_as_mapping = {
    .mp_length = (lenfunc)ptr_len,
    .mp_subscript = (binaryfunc)ptr_subscript,
    .mp_ass_subscript = (objobjargproc)ptr_ass_subscript,
};

static PyGetSetDef ptr_getset[] = {
    {"address", (getter)ptr_address, NULL, "The address it points to (int).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject PointerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.CallbackPointer",
    .tp_basicsize = sizeof(PointerObject),
    .tp_repr = (reprfunc)ptr_repr,
    .tp_as_sequence = &ptr_as_sequence,
    .tp_as_mapping = &ptr_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getset = ptr_getset,
    .tp_doc = "A POINTER(t) argument of a Python callback: p[0] is the t it points to "
              "(read and write). Valid only while the callback runs.",
};

#ifdef Py_GIL_DISABLED
#define SPARE_OK 0
#else
#define SPARE_OK 1
#endif

/* Argument k of type `t` at `p` as a Python object (new reference or NULL). */
static PyObject *cb_arg(cb_ctx_t *c, unsigned k, const edgert_abi_type_t *t, const void *p) {
  if (t->code != EDGERT_CT_POINTER)
    return conv_table[t->code].get(p, "callback");
  void *addr = *(void *const *)p;
  if (addr == NULL)
    Py_RETURN_NONE;
  PointerObject *o = (PointerObject *)c->spare[k];
  if (o != NULL) {
    c->spare[k] = NULL;
  } else if ((o = PyObject_New(PointerObject, &PointerType)) == NULL) {
    return NULL;
  } else {
    o->t = NULL;
  }
  o->addr = addr;
  if (o->t != t) { /* a spare is argument k's again: its type is known */
    o->t = t;
    o->item = pointee_of(t);
    o->size = edgert_abi_type_size(&o->item);
  }
  return (PyObject *)o;
}

/* Drops the arguments. A POINTER argument someone kept a reference to (the
 * callable stored it, or a traceback's frame holds it) stops being valid;
 * one nobody kept is kept for the next invocation. */
static void drop_args(cb_ctx_t *c, const edgert_fnsig_t *sig, PyObject **av, unsigned n) {
  for (unsigned k = 0; k < n; k++) {
    if (sig->args[k].code == EDGERT_CT_POINTER && av[k] != Py_None) {
      Py_BEGIN_CRITICAL_SECTION(av[k]);
      ((PointerObject *)av[k])->addr = NULL;
      Py_END_CRITICAL_SECTION();
      if (SPARE_OK && Py_REFCNT(av[k]) == 1 && c->spare[k] == NULL) {
        c->spare[k] = av[k];
        continue;
      }
    }
    Py_DECREF(av[k]);
  }
}

static int ret_type_error(const edgert_fnsig_t *sig, PyObject *r, const char *want) {
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t t = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0, .sig = sig};
  if (edgert_abi_type_name(&t, name, sizeof name) != 0)
    snprintf(name, sizeof name, "CFUNCTYPE");
  PyErr_Format(PyExc_TypeError, "a Python callback for %s returned %.100s, expected %s",
               name, Py_TYPE(r)->tp_name, want);
  return -1;
}

/* The exception for a result the return type's setter refused (rc). */
static EDGERT__NOINLINE int result_refused(const edgert_fnsig_t *sig, PyObject *r, int rc) {
  const edgert_abi_type_t *t = &sig->ret;
  char tname[EDGERT_ABI_TYPE_NAME_MAX];
  char want[EDGERT_ABI_TYPE_NAME_MAX + 64];
  if (rc == CV_PYERR)
    return -1;
  if (edgert_abi_type_name(t, tname, sizeof tname) != 0)
    snprintf(tname, sizeof tname, "?");
  if (rc == CV_OVERFLOW) {
    PyErr_Format(PyExc_OverflowError, "a Python callback returned %R, which does not fit %s (%s)",
                 r, tname, conv_table[t->code].range);
    return -1;
  }
  snprintf(want, sizeof want, "%s (%s)", conv_table[t->code].expected, tname);
  return ret_type_error(sig, r, want);
}

/* Stores result r as sig's return type (`size` bytes) at `ret`, strictly. */
static inline int cb_result(const edgert_fnsig_t *sig, size_t size, PyObject *r, void *ret) {
  const edgert_abi_type_t *t = &sig->ret;
  if (t->code == EDGERT_CT_VOID)
    return r == Py_None ? 0 : ret_type_error(sig, r, "None (the return type is None)");
  if (t->code == EDGERT_CT_VOID_P) {
    if (r == Py_None) {
      *(void **)ret = NULL;
      return 0;
    }
    if (!PyLong_Check(r) || PyBool_Check(r))
      return ret_type_error(sig, r, "an int address or None (c_void_p)");
    void *a = PyLong_AsVoidPtr(r);
    if (a == NULL && PyErr_Occurred())
      return -1;
    *(void **)ret = a;
    return 0;
  }
  edgert_value_t v;
  conv_err_t e;
  int rc = conv_table[t->code].set(t, r, 0, &v, NULL, &e);
  if (EDGERT__UNLIKELY(rc != CV_OK))
    return result_refused(sig, r, rc);
  memcpy(ret, &v, size); /* little-endian: the low bytes */
  return 0;
}

static void record(cb_ctx_t *c) {
  if (c->keep) {
    PyErr_WriteUnraisable(c->callable);
    return;
  }
  PyObject *exc = PyErr_GetRaisedException();
  PyObject *expected = NULL;
  if (exc == NULL || !atomic_compare_exchange_strong(&c->exc, &expected, exc)) {
    Py_XDECREF(exc);
    atomic_fetch_add(&c->after, 1);
  }
}

static void cb_handler(const edgert_fnsig_t *sig, void *ret, void *const *args, void *user) {
  cb_ctx_t *c = user;
  if (!c->keep && atomic_load_explicit(&c->exc, memory_order_acquire) != NULL) {
    atomic_fetch_add(&c->after, 1);
    return; /* ret is zero */
  }
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *argv[EDGERT_MAX_CALLBACK_ARGS + 1];
  PyObject **av = argv + 1;
  unsigned n = 0;
  for (; n < sig->nargs; n++) {
    if ((av[n] = cb_arg(c, n, &sig->args[n], args[n])) == NULL) {
      drop_args(c, sig, av, n);
      goto failed;
    }
  }
  PyObject *r = PyObject_Vectorcall(c->callable, av, n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
  drop_args(c, sig, av, n);
  if (r == NULL)
    goto failed;
  int rc = cb_result(sig, c->ret_size, r, ret);
  Py_DECREF(r);
  if (rc < 0)
    goto failed;
  PyGILState_Release(g);
  return;
failed:
  memset(ret, 0, c->ret_size);
  record(c);
  PyGILState_Release(g);
}

/* A context and closure for callable `o` (keep: owns it). NULL with an
 * exception. */
static cb_ctx_t *ctx_new(const edgert_abi_type_t *t, PyObject *o, int keep) {
  const edgert_fnsig_t *sig = t->sig;
  switch (sig->ret.code) {
  case EDGERT_CT_CHAR_P:
  case EDGERT_CT_WCHAR_P:
  case EDGERT_CT_POINTER:
  case EDGERT_CT_FUNCPTR: {
    char name[EDGERT_ABI_TYPE_NAME_MAX];
    if (edgert_abi_type_name(t, name, sizeof name) != 0)
      snprintf(name, sizeof name, "CFUNCTYPE");
    PyErr_Format(PyExc_TypeError,
                 "a Python callable cannot implement %s: the memory a string or "
                 "pointer result points to would not outlive the callback; declare "
                 "the return type c_void_p and return an address",
                 name);
    return NULL;
  }
  default:
    break;
  }
  cb_ctx_t *c = PyMem_Malloc(sizeof *c);
  if (c == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  c->callable = o;
  c->sig = sig;
  atomic_init(&c->exc, NULL);
  atomic_init(&c->after, 0);
  c->keep = keep;
  memset(c->spare, 0, sizeof c->spare);
  c->ret_size = edgert_abi_type_size(&sig->ret);
  int rc = edgert_closure_new(&c->closure, t, cb_handler, c);
  if (rc != 0) {
    PyMem_Free(c);
    edgert_py_raise(rc);
    return NULL;
  }
  if (keep)
    Py_INCREF(o);
  return c;
}

static void ctx_free(cb_ctx_t *c) {
  edgert_closure_free(c->closure);
  for (unsigned k = 0; k < EDGERT_MAX_CALLBACK_ARGS; k++)
    Py_XDECREF(c->spare[k]);
  PyObject *exc = atomic_load(&c->exc);
  Py_XDECREF(exc);
  if (c->keep)
    Py_DECREF(c->callable);
  PyMem_Free(c);
}

void conv_cb_free(void *ctx) {
  ctx_free(ctx);
}

/* ---- keep handles: edgert.callback ----------------------------------------- */

typedef struct {
  PyObject_HEAD
  cb_ctx_t *ctx; /* NULL once released */
  PyObject *ctype;
  const edgert_fnsig_t *sig;
  PyObject *weakrefs;
} CallbackObject;

/* Takes the context out of the handle (NULL when released): in a critical
 * section, so two threads releasing one handle free its closure once. */
static cb_ctx_t *cbo_take_ctx(CallbackObject *self) {
  cb_ctx_t *c;
  Py_BEGIN_CRITICAL_SECTION(self);
  c = self->ctx;
  self->ctx = NULL;
  Py_END_CRITICAL_SECTION();
  return c;
}

static void cbo_release_ctx(CallbackObject *self) {
  cb_ctx_t *c = cbo_take_ctx(self);
  if (c != NULL)
    ctx_free(c);
}

/* The closure's code, and a new reference to the callable when `callable`
 * is not NULL; NULL (and *callable NULL) once released. Read in the
 * handle's critical section, so a release() in another thread cannot free
 * the context in between. */
static void *cbo_code(CallbackObject *self, PyObject **callable) {
  void *code = NULL;
  if (callable != NULL)
    *callable = NULL;
  Py_BEGIN_CRITICAL_SECTION(self);
  if (self->ctx != NULL) {
    code = edgert_closure_code(self->ctx->closure);
    if (callable != NULL)
      *callable = Py_NewRef(self->ctx->callable);
  }
  Py_END_CRITICAL_SECTION();
  return code;
}

static int cbo_traverse(CallbackObject *self, visitproc visit, void *arg) {
  if (self->ctx != NULL)
    Py_VISIT(self->ctx->callable);
  Py_VISIT(self->ctype);
  return 0;
}

/* tp_clear and dealloc: no other thread can reach the handle any more. */
static int cbo_clear(CallbackObject *self) {
  cb_ctx_t *c = self->ctx;
  self->ctx = NULL;
  if (c != NULL)
    ctx_free(c);
  Py_CLEAR(self->ctype);
  return 0;
}

static void cbo_dealloc(CallbackObject *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs != NULL)
    PyObject_ClearWeakRefs((PyObject *)self);
  cbo_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *cbo_release(CallbackObject *self, PyObject *unused) {
  (void)unused;
  cbo_release_ctx(self);
  Py_RETURN_NONE;
}

static PyObject *cbo_enter(CallbackObject *self, PyObject *unused) {
  (void)unused;
  return Py_NewRef(self);
}

static PyObject *cbo_exit(CallbackObject *self, PyObject *args) {
  (void)args;
  cbo_release_ctx(self);
  Py_RETURN_FALSE;
}

static PyObject *cbo_address(CallbackObject *self, void *closure) {
  (void)closure;
  void *code = cbo_code(self, NULL);
  if (code == NULL) {
    PyErr_SetString(PyExc_ValueError, "this edgert.callback handle was released");
    return NULL;
  }
  return PyLong_FromVoidPtr(code);
}

static PyObject *cbo_released(CallbackObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(cbo_code(self, NULL) == NULL);
}

static PyObject *cbo_type(CallbackObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->ctype != NULL ? self->ctype : Py_None);
}

static PyObject *cbo_callable(CallbackObject *self, void *closure) {
  (void)closure;
  PyObject *callable;
  if (cbo_code(self, &callable) == NULL)
    Py_RETURN_NONE;
  return callable;
}

static PyObject *cbo_repr(CallbackObject *self) {
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  edgert_abi_type_t t = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0, .sig = self->sig};
  if (edgert_abi_type_name(&t, name, sizeof name) != 0)
    snprintf(name, sizeof name, "CFUNCTYPE");
  PyObject *callable;
  void *code = cbo_code(self, &callable);
  if (code == NULL)
    return PyUnicode_FromFormat("<edgert.callback %s, released>", name);
  PyObject *r = PyUnicode_FromFormat("<edgert.callback %s at %p calling %R>", name, code,
                                     callable);
  Py_DECREF(callable);
  return r;
}

static PyMethodDef cbo_methods[] = {
    {"release", (PyCFunction)cbo_release, METH_NOARGS,
     "Frees the closure now: C code must not call its address afterwards."},
    {"__enter__", (PyCFunction)cbo_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)cbo_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef cbo_getset[] = {
    {"address", (getter)cbo_address, NULL, "The closure's C function pointer (int).", NULL},
    {"released", (getter)cbo_released, NULL, "Whether release() was called.", NULL},
    {"type", (getter)cbo_type, NULL, "The CFUNCTYPE type.", NULL},
    {"callable", (getter)cbo_callable, NULL, "The Python callable (None once released).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject CallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.Callback",
    .tp_basicsize = sizeof(CallbackObject),
    .tp_dealloc = (destructor)cbo_dealloc,
    .tp_repr = (reprfunc)cbo_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)cbo_traverse,
    .tp_clear = (inquiry)cbo_clear,
    .tp_weaklistoffset = offsetof(CallbackObject, weakrefs),
    .tp_methods = cbo_methods,
    .tp_getset = cbo_getset,
    .tp_doc = "A Python callable as a C function pointer that outlives the call "
              "(edgert.callback): the closure lives until release() or until the "
              "handle is garbage collected.",
};

/* _make_callback(type_name, fn, ctype) -> Callback */
static PyObject *make_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 3 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_make_callback(type_name, fn, ctype)");
    return NULL;
  }
  const char *name = PyUnicode_AsUTF8(args[0]);
  if (name == NULL)
    return NULL;
  edgert_abi_type_t t;
  int rc = edgert_abi_type_parse(name, 0, &t);
  if (rc != 0)
    return edgert_py_raise(rc);
  if (t.code != EDGERT_CT_FUNCPTR) {
    PyErr_Format(PyExc_TypeError, "edgert.callback: %s is not a CFUNCTYPE type", name);
    return NULL;
  }
  if (!PyCallable_Check(args[1])) {
    PyErr_Format(PyExc_TypeError, "edgert.callback: fn must be callable, not %.100s",
                 Py_TYPE(args[1])->tp_name);
    return NULL;
  }
  CallbackObject *o = PyObject_GC_New(CallbackObject, &CallbackType);
  if (o == NULL)
    return NULL;
  o->ctx = NULL;
  o->ctype = Py_NewRef(args[2]);
  o->sig = t.sig;
  o->weakrefs = NULL;
  if ((o->ctx = ctx_new(&t, args[1], 1)) == NULL) {
    Py_DECREF(o);
    return NULL;
  }
  PyObject_GC_Track(o);
  return (PyObject *)o;
}

/* ---- the FUNCPTR setter ---------------------------------------------------- */

int conv_cb_set(const edgert_abi_type_t *t, PyObject *o, unsigned i, edgert_value_t *v,
                conv_hold_t *h, conv_err_t *e) {
  (void)e;
  if (o == Py_None) {
    v->p = NULL;
    return CV_OK;
  }
  if (edgert_py_is_bound(o)) {
    void *a = edgert_py_bound_fnptr(o, t->sig);
    if (a == NULL)
      return CV_PYERR;
    v->p = a;
    return CV_OK;
  }
  if (Py_TYPE(o) == &CallbackType) {
    CallbackObject *k = (CallbackObject *)o;
    if (k->sig != t->sig) {
      char want[EDGERT_ABI_TYPE_NAME_MAX], got[EDGERT_ABI_TYPE_NAME_MAX];
      edgert_abi_type_t g = {.code = EDGERT_CT_FUNCPTR, .pointee = EDGERT_CT_VOID, .depth = 0, .sig = k->sig};
      if (edgert_abi_type_name(t, want, sizeof want) != 0 ||
          edgert_abi_type_name(&g, got, sizeof got) != 0)
        return CV_TYPE;
      PyErr_Format(PyExc_TypeError, "argument %u: this edgert.callback is %s, the contract "
                   "wants %s", i + 1, got, want);
      return CV_PYERR;
    }
    void *code = cbo_code(k, NULL);
    if (code == NULL) {
      PyErr_Format(PyExc_ValueError, "argument %u: this edgert.callback was released", i + 1);
      return CV_PYERR;
    }
    v->p = code;
    return CV_OK;
  }
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    int ovf = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &ovf);
    if (ovf == 0 && x == -1 && PyErr_Occurred())
      return CV_PYERR;
    if (ovf < 0 || (ovf == 0 && x < 0))
      return CV_OVERFLOW;
    if (ovf > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(o);
      if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return CV_OVERFLOW;
      }
      v->u = u;
    } else {
      v->i = x;
    }
    return CV_OK;
  }
  if (!PyCallable_Check(o))
    return CV_TYPE;
  cb_ctx_t *c = ctx_new(t, o, 0);
  if (c == NULL)
    return CV_PYERR;
  h->heap[i] = c;
  h->held[i] = 3;
  v->p = edgert_closure_code(c->closure);
  return CV_OK;
}

/* ---- after the call ---------------------------------------------------------- */

PyObject *conv_cb_take(conv_hold_t *h, unsigned *index, size_t *after) {
  PyObject *first = NULL;
  for (unsigned i = 0; i < h->used; i++) {
    if (h->held[i] != 3)
      continue;
    cb_ctx_t *c = h->heap[i];
    PyObject *exc = atomic_exchange(&c->exc, NULL);
    if (exc == NULL)
      continue;
    if (first == NULL) {
      first = exc;
      *index = i;
      *after = atomic_load(&c->after);
    } else {
      Py_DECREF(exc);
    }
  }
  return first;
}

PyObject *conv_cb_raise(edgert_func_t *fn, unsigned index, size_t after, PyObject *exc,
                        int rc) {
  if (rc != 0) {
    /* The call failed on its own (a crash, a quarantine): that error, with
     * the callback's exception as its context. */
    edgert_py_raise(rc);
    PyObject *err = PyErr_GetRaisedException();
    if (err != NULL) {
      PyException_SetContext(err, exc);
      PyErr_SetRaisedException(err);
    } else {
      Py_DECREF(exc);
    }
    return NULL;
  }
  PyObject *msg = PyUnicode_FromFormat(
      "%s() argument %u: the Python callback raised %s: %S; it returned 0 to C, and "
      "%zu later invocation%s in this call returned 0 without running it",
      edgert_func_name(fn), index + 1, Py_TYPE(exc)->tp_name, exc, after,
      after == 1 ? "" : "s");
  if (msg == NULL) {
    Py_DECREF(exc);
    return NULL;
  }
  PyObject *err = PyObject_CallOneArg(EdgertPy_CallbackError, msg);
  Py_DECREF(msg);
  if (err == NULL) {
    Py_DECREF(exc);
    return NULL;
  }
  PyException_SetContext(err, Py_NewRef(exc));
  PyException_SetCause(err, exc); /* steals exc */
  PyErr_SetObject(EdgertPy_CallbackError, err);
  Py_DECREF(err);
  return NULL;
}

static PyMethodDef cb_methods[] = {
    {"_make_callback", (PyCFunction)(void (*)(void))make_callback, METH_FASTCALL,
     "_make_callback(type_name, fn, ctype) -> Callback (edgert.callback's C side)."},
    {NULL, NULL, 0, NULL}};

int edgert_py_callback_init(PyObject *m) {
  if (PyType_Ready(&CallbackType) < 0 || PyType_Ready(&PointerType) < 0)
    return -1;
  Py_INCREF(&PointerType);
  if (PyModule_AddObject(m, "CallbackPointer", (PyObject *)&PointerType) < 0) {
    Py_DECREF(&PointerType);
    return -1;
  }
  Py_INCREF(&CallbackType);
  if (PyModule_AddObject(m, "Callback", (PyObject *)&CallbackType) < 0) {
    Py_DECREF(&CallbackType);
    return -1;
  }
  PyObject *bases = PyTuple_Pack(2, EdgertPy_Error, PyExc_RuntimeError);
  if (bases == NULL)
    return -1;
  EdgertPy_CallbackError = PyErr_NewExceptionWithDoc(
      "edgert.CallbackError",
      "A Python callback raised during a call; __cause__ is its exception.", bases, NULL);
  Py_DECREF(bases);
  if (EdgertPy_CallbackError == NULL)
    return -1;
  Py_INCREF(EdgertPy_CallbackError);
  if (PyModule_AddObject(m, "CallbackError", EdgertPy_CallbackError) < 0) {
    Py_DECREF(EdgertPy_CallbackError);
    return -1;
  }
  return PyModule_AddFunctions(m, cb_methods);
}
