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
#include "func.h"

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
  if (nargs != 5 && nargs != 7) {
    PyErr_SetString(PyExc_TypeError,
                    "check_contract(function_name, arg_types, return_type, "
                    "calling_convention, release_gil[, use_errno, variadic])");
    return NULL;
  }
  const char *fname = c_string(args[0], "function_name");
  if (fname == NULL)
    return NULL;
  PyObject *seq = edgert_py_sequence_fast(args[1], "arg_types: expected a sequence");
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
  if (rc == 0 && nargs == 7 && args[6] != Py_None) {
    unsigned long nfixed = PyLong_AsUnsignedLong(args[6]);
    if (nfixed == (unsigned long)-1 && PyErr_Occurred())
      return NULL;
    if (nfixed > EDGERT_MAX_ARGS) {
      PyErr_Format(PyExc_ValueError, "variadic: %lu fixed arguments is more than the limit "
                   "of %d", nfixed, EDGERT_MAX_ARGS);
      return NULL;
    }
    rc = edgert_contract_set_variadic(&c, (unsigned)nfixed);
  }
  if (rc < 0)
    return edgert_py_raise(rc);
  Py_RETURN_NONE;
fail:
  Py_DECREF(seq);
  return NULL;
}


/* ---- manifests ---------------------------------------------------------- */

/* A contract as ABIContract.to_dict() writes it, with canonical names. */
PyObject *edgert_py_contract_to_dict(const edgert_contract_t *c) {
  char name[EDGERT_ABI_TYPE_NAME_MAX];
  PyObject *args = PyList_New((Py_ssize_t)c->nargs);
  if (args == NULL)
    return NULL;
  for (unsigned i = 0; i < c->nargs; i++) {
    int rc = edgert_abi_type_name(&c->args[i], name, sizeof name);
    if (rc < 0) {
      Py_DECREF(args);
      return edgert_py_raise(rc);
    }
    PyObject *s = PyUnicode_FromString(name);
    if (s == NULL) {
      Py_DECREF(args);
      return NULL;
    }
    PyList_SET_ITEM(args, i, s);
  }
  PyObject *ret;
  if (c->ret.code == EDGERT_CT_VOID) {
    ret = Py_NewRef(Py_None);
  } else {
    int rc = edgert_abi_type_name(&c->ret, name, sizeof name);
    if (rc < 0) {
      Py_DECREF(args);
      return edgert_py_raise(rc);
    }
    ret = PyUnicode_FromString(name);
  }
  if (ret == NULL) {
    Py_DECREF(args);
    return NULL;
  }
  PyObject *d = Py_BuildValue("{s:s,s:N,s:N,s:s}", "function_name",
                              c->function_name, "arg_types", args,
                              "return_type", ret, "calling_convention",
                              "cdecl");
  if (d != NULL && !c->release_gil &&
      PyDict_SetItemString(d, "release_gil", Py_False) < 0)
    Py_CLEAR(d);
  if (d != NULL && c->use_errno && PyDict_SetItemString(d, "use_errno", Py_True) < 0)
    Py_CLEAR(d);
  if (d != NULL && c->variadic) {
    PyObject *n = PyLong_FromUnsignedLong(c->nargs);
    if (n == NULL || PyDict_SetItemString(d, "variadic", n) < 0)
      Py_CLEAR(d);
    Py_XDECREF(n);
  }
  return d;
}

/* Module i's "isolation" object as ModuleLoader.load()'s keyword options
 * (edgert_py_isolation_options_dict), a new reference; NULL with no
 * exception when the module has none, NULL with an exception on failure. */
static PyObject *isolation_kwargs(const edgert_manifest_t *m, size_t i) {
  edgert_isolate_options_t o;
  if (edgert_manifest_module_isolation(m, i, &o) != 1)
    return NULL;
  return edgert_py_isolation_options_dict(&o);
}

/* [{"path", "file", "sha256", "contracts": [...], "dependencies": [...],
 *   "isolation": {...} only for an isolated module}, ...] */
PyObject *edgert_py_manifest_to_list(const edgert_manifest_t *m) {
  size_t n = edgert_manifest_module_count(m);
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (list == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t nc = edgert_manifest_contract_count(m, i);
    PyObject *contracts = PyList_New((Py_ssize_t)nc);
    if (contracts == NULL)
      goto fail;
    for (size_t j = 0; j < nc; j++) {
      PyObject *d = edgert_py_contract_to_dict(edgert_manifest_contract(m, i, j));
      if (d == NULL) {
        Py_DECREF(contracts);
        goto fail;
      }
      PyList_SET_ITEM(contracts, j, d);
    }
    PyObject *path = PyUnicode_DecodeFSDefault(edgert_manifest_module_path(m, i));
    PyObject *file = path ? PyUnicode_DecodeFSDefault(edgert_manifest_module_file(m, i)) : NULL;
    if (file == NULL) {
      Py_XDECREF(path);
      Py_DECREF(contracts);
      goto fail;
    }
    size_t nd = edgert_manifest_dependency_count(m, i);
    PyObject *deps = PyList_New((Py_ssize_t)nd);
    for (size_t j = 0; deps != NULL && j < nd; j++) {
      const char *df = NULL, *dsha = NULL;
      const char *dp = edgert_manifest_dependency(m, i, j, &df, &dsha);
      PyObject *d = Py_BuildValue("{s:N,s:N,s:s}", "path", PyUnicode_DecodeFSDefault(dp),
                                  "file", PyUnicode_DecodeFSDefault(df), "sha256", dsha);
      if (d == NULL)
        Py_CLEAR(deps);
      else
        PyList_SET_ITEM(deps, j, d);
    }
    if (deps == NULL) {
      Py_DECREF(path);
      Py_DECREF(file);
      Py_DECREF(contracts);
      goto fail;
    }
    PyObject *entry = Py_BuildValue("{s:N,s:N,s:s,s:N,s:N}", "path", path, "file",
                                    file, "sha256",
                                    edgert_manifest_module_sha256(m, i),
                                    "contracts", contracts, "dependencies", deps);
    if (entry == NULL)
      goto fail;
    PyList_SET_ITEM(list, i, entry);
    PyObject *iso = isolation_kwargs(m, i);
    if (iso == NULL && PyErr_Occurred())
      goto fail;
    if (iso != NULL) {
      int bad = PyDict_SetItemString(entry, "isolation", iso);
      Py_DECREF(iso);
      if (bad < 0)
        goto fail;
    }
  }
  return list;
fail:
  Py_DECREF(list);
  return NULL;
}

/* parse_manifest(path) -> list of module dicts. */
static PyObject *parse_manifest(PyObject *self, PyObject *arg) {
  (void)self;
  PyObject *bytes = NULL;
  if (!PyUnicode_FSConverter(arg, &bytes))
    return NULL;
  edgert_manifest_t *m = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_manifest_read(PyBytes_AS_STRING(bytes), &m);
  Py_END_ALLOW_THREADS
  Py_DECREF(bytes);
  if (rc < 0)
    return edgert_py_raise(rc);
  PyObject *list = edgert_py_manifest_to_list(m);
  edgert_manifest_free(m);
  return list;
}

/* parse_manifest_text(text, base_dir=None) -> list of module dicts. */
static PyObject *parse_manifest_text(PyObject *self, PyObject *args,
                                     PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"text", "base_dir", NULL};
  PyObject *text, *base = Py_None, *base_bytes = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:parse_manifest_text",
                                   kwlist, &text, &base))
    return NULL;
  const char *buf;
  Py_ssize_t len;
  if (PyUnicode_Check(text)) {
    if ((buf = PyUnicode_AsUTF8AndSize(text, &len)) == NULL)
      return NULL;
  } else if (PyBytes_Check(text)) {
    buf = PyBytes_AS_STRING(text);
    len = PyBytes_GET_SIZE(text);
  } else {
    PyErr_Format(PyExc_TypeError, "text: expected str or bytes, got %.100s",
                 Py_TYPE(text)->tp_name);
    return NULL;
  }
  if (base != Py_None && !PyUnicode_FSConverter(base, &base_bytes))
    return NULL;
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(buf, (size_t)len,
                                 base_bytes ? PyBytes_AS_STRING(base_bytes) : NULL,
                                 &m);
  Py_XDECREF(base_bytes);
  if (rc < 0)
    return edgert_py_raise(rc);
  PyObject *list = edgert_py_manifest_to_list(m);
  edgert_manifest_free(m);
  return list;
}

/* parse_contract_json(text) -> dict in to_dict() form, canonical names. */
static PyObject *parse_contract_json(PyObject *self, PyObject *text) {
  (void)self;
  Py_ssize_t len;
  const char *buf = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &len) : NULL;
  if (buf == NULL) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "text: expected str, got %.100s",
                   Py_TYPE(text)->tp_name);
    return NULL;
  }
  edgert_contract_t c;
  int rc = edgert_contract_parse_json(buf, (size_t)len, &c);
  if (rc < 0)
    return edgert_py_raise(rc);
  return edgert_py_contract_to_dict(&c);
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
    {"parse_manifest", parse_manifest, METH_O,
     "parse_manifest(path) -> list: the manifest's modules, each a dict with "
     "'path' (as written), 'file' (resolved absolute path), 'sha256' and "
     "'contracts' (dicts in ABIContract.to_dict() form). Loads nothing. "
     "Raises ManifestError naming the field, OSError if unreadable."},
    {"parse_manifest_text", (PyCFunction)(void (*)(void))parse_manifest_text,
     METH_VARARGS | METH_KEYWORDS,
     "parse_manifest_text(text, base_dir=None) -> list: as parse_manifest, "
     "from text; with base_dir None paths are not resolved or checked."},
    {"parse_contract_json", parse_contract_json, METH_O,
     "parse_contract_json(text) -> dict: one contract object, read as "
     "strictly as the manifest reader reads it."},
    {NULL, NULL, 0, NULL}};

int edgert_py_manifest_init(PyObject *m) {
  return PyModule_AddFunctions(m, manifest_methods);
}
