/*
 * manifest.c: the extension's side of ABI contracts and manifests.
 *
 * Thin on purpose: every rule about type names, contracts and manifests is
 * libedgert's (src/abi.c, src/manifest.c); these functions only convert
 * Python strings to C strings and back, so edgert.ABIContract and
 * edgert.load_manifest read exactly what a C host reads. Strings with an
 * embedded NUL are refused here, before C could see a shorter string.
 */
#include "ext.h"

#include <string.h>

/* UTF-8 of a str that holds no NUL, or NULL with ValueError naming `field`. */
static const char *c_string(PyObject *s, const char *field) {
  if (!PyUnicode_Check(s)) {
    PyErr_Format(PyExc_TypeError, "%s: expected str, got %.100s", field,
                 Py_TYPE(s)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(s, &n);
  if (u == NULL)
    return NULL;
  if ((size_t)n != strlen(u)) {
    PyErr_Format(PyExc_ValueError, "%s: contains a NUL character", field);
    return NULL;
  }
  return u;
}

/* abi_type_names() -> dict: every accepted type name (no "LP_") -> its canonical name. */
static PyObject *abi_type_names(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
  const char *alias;
  for (size_t i = 0; (alias = edgert_abi_type_alias(i)) != NULL; i++) {
    edgert_abi_type_t t;
    char name[EDGERT_ABI_TYPE_NAME_MAX];
    int rc = edgert_abi_type_parse(alias, 1, &t);
    if (rc == 0)
      rc = edgert_abi_type_name(&t, name, sizeof name);
    if (rc < 0) {
      Py_DECREF(d);
      return edgert_py_raise(rc);
    }
    PyObject *v = PyUnicode_FromString(name);
    if (v == NULL || PyDict_SetItemString(d, alias, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(d);
      return NULL;
    }
    Py_DECREF(v);
  }
  return d;
}

/* canonical_type_name(name, allow_void=False) -> str */
static PyObject *canonical_type_name(PyObject *self, PyObject *const *args,
                                     Py_ssize_t nargs) {
  (void)self;
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError,
                    "canonical_type_name(name, allow_void=False)");
    return NULL;
  }
  const char *name = c_string(args[0], "type name");
  if (name == NULL)
    return NULL;
  int allow_void = 0;
  if (nargs == 2 && (allow_void = PyObject_IsTrue(args[1])) < 0)
    return NULL;
  edgert_abi_type_t t;
  char buf[EDGERT_ABI_TYPE_NAME_MAX];
  int rc = edgert_abi_type_parse(name, allow_void, &t);
  if (rc == 0)
    rc = edgert_abi_type_name(&t, buf, sizeof buf);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyUnicode_FromString(buf);
}

/*
 * check_contract(function_name, arg_types, return_type, calling_convention,
 *                release_gil) -> None. Runs edgert_contract_init, the
 * validation the loader runs, and raises what it reports (ValueError,
 * NotImplementedError), the message naming the field.
 */
static PyObject *check_contract(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  (void)self;
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError,
                    "check_contract(function_name, arg_types, return_type, "
                    "calling_convention, release_gil)");
    return NULL;
  }
  const char *fname = c_string(args[0], "function_name");
  if (fname == NULL)
    return NULL;
  PyObject *seq = PySequence_Fast(args[1], "arg_types: expected a sequence");
  if (seq == NULL)
    return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  const char *names[EDGERT_MAX_ARGS];
  PyObject **items = PySequence_Fast_ITEMS(seq);
  for (Py_ssize_t i = 0; i < n && i < EDGERT_MAX_ARGS; i++) {
    char field[32];
    snprintf(field, sizeof field, "arg_types[%zd]", i);
    if ((names[i] = c_string(items[i], field)) == NULL) {
      Py_DECREF(seq);
      return NULL;
    }
  }
  const char *ret = NULL, *cc = NULL;
  if (args[2] != Py_None && (ret = c_string(args[2], "return_type")) == NULL)
    goto fail;
  if ((cc = c_string(args[3], "calling_convention")) == NULL)
    goto fail;
  int release = PyObject_IsTrue(args[4]);
  if (release < 0)
    goto fail;
  edgert_contract_t c;
  /* More than EDGERT_MAX_ARGS: C refuses on the count alone, before it
   * reads any name, so `names` never needs more room. */
  int rc = edgert_contract_init(&c, fname, n > EDGERT_MAX_ARGS ? NULL : names,
                                (size_t)n, ret, cc, release);
  Py_DECREF(seq);
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
fail:
  Py_DECREF(seq);
  return NULL;
}

static PyMethodDef manifest_methods[] = {
    {"abi_type_names", abi_type_names, METH_NOARGS,
     "abi_type_names() -> dict: every type name libedgert accepts (without "
     "'LP_') mapped to its canonical name."},
    {"canonical_type_name", (PyCFunction)(void (*)(void))canonical_type_name,
     METH_FASTCALL,
     "canonical_type_name(name, allow_void=False) -> str: the canonical "
     "name of a ctypes type name ('c_ulong' -> 'c_size_t')."},
    {"check_contract", (PyCFunction)(void (*)(void))check_contract,
     METH_FASTCALL,
     "check_contract(function_name, arg_types, return_type, "
     "calling_convention, release_gil): validate a contract as libedgert "
     "does."},
    {NULL, NULL, 0, NULL}};

int edgert_py_manifest_init(PyObject *m) {
  return PyModule_AddFunctions(m, manifest_methods);
}
