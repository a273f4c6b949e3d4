/*
 * sign.c: the extension's side of signed manifests (src/sign.c does the work).
 *
 * KeySet owns an edgert_keyset_t whose keys are all added when it is made
 * and never change afterwards, so verifications on any number of threads
 * share it with the GIL released and without a lock. Everything else here
 * converts paths and results: every rule (the .sig format, key ids, expiry,
 * the version state file) is libedgert's, so edgert.signing and a C host
 * accept and refuse exactly the same files, with the same messages.
 */
#include "ext.h"

#include <string.h>

typedef struct {
  PyObject_HEAD
  edgert_keyset_t *ks;
} KeySetObject;

static PyTypeObject KeySetType;

/* A path argument (str, bytes or os.PathLike) as a new bytes object. */
static PyObject *fs_path(PyObject *o) {
  PyObject *b = NULL;
  if (!PyUnicode_FSConverter(o, &b))
    return NULL;
  return b;
}

static int keyset_add(edgert_keyset_t *ks, PyObject *item, Py_ssize_t i) {
  int rc;
  if (PyBytes_Check(item)) {
    rc = edgert_keyset_add_pem(ks, PyBytes_AS_STRING(item),
                               (size_t)PyBytes_GET_SIZE(item), NULL);
  } else if (PyUnicode_Check(item) || PyObject_HasAttrString(item, "__fspath__")) {
    PyObject *b = fs_path(item);
    if (b == NULL)
      return -1;
    Py_BEGIN_ALLOW_THREADS
    rc = edgert_keyset_add_file(ks, PyBytes_AS_STRING(b), NULL);
    Py_END_ALLOW_THREADS
    Py_DECREF(b);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "trusted_keys[%zd]: expected a path to a PEM public key or "
                 "the PEM bytes, got %.100s",
                 i, Py_TYPE(item)->tp_name);
    return -1;
  }
  if (rc < 0) {
    edgert_py_raise(rc);
    return -1;
  }
  return 0;
}

/* KeySet(keys): each key a path (str or os.PathLike) or PEM bytes. */
static PyObject *keyset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"keys", NULL};
  PyObject *keys;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:KeySet", kwlist, &keys))
    return NULL;
  if (PyBytes_Check(keys) || PyUnicode_Check(keys)) {
    PyErr_SetString(PyExc_TypeError,
                    "trusted_keys: expected a list of PEM public key paths or "
                    "PEM bytes, got a single str or bytes (wrap it in a list)");
    return NULL;
  }
  PyObject *seq = edgert_py_sequence_fast(keys, "trusted_keys: expected a list "
                                                "of PEM public key paths or PEM "
                                                "bytes");
  if (seq == NULL)
    return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError,
                    "trusted_keys: empty; give at least one public key (no "
                    "trusted keys at all: pass None to load unsigned)");
    return NULL;
  }
  KeySetObject *self = (KeySetObject *)type->tp_alloc(type, 0);
  if (self == NULL) {
    Py_DECREF(seq);
    return NULL;
  }
  int rc = edgert_keyset_new(&self->ks);
  if (rc < 0) {
    Py_DECREF(seq);
    Py_DECREF(self);
    return edgert_py_raise(rc);
  }
  PyObject **items = PySequence_Fast_ITEMS(seq);
  for (Py_ssize_t i = 0; i < n; i++)
    if (keyset_add(self->ks, items[i], i) < 0) {
      Py_DECREF(seq);
      Py_DECREF(self);
      return NULL;
    }
  Py_DECREF(seq);
  return (PyObject *)self;
}

static void keyset_dealloc(KeySetObject *self) {
  edgert_keyset_free(self->ks);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t keyset_len(KeySetObject *self) {
  return (Py_ssize_t)edgert_keyset_count(self->ks);
}

static PyObject *keyset_key_ids(KeySetObject *self, void *unused) {
  (void)unused;
  size_t n = edgert_keyset_count(self->ks);
  PyObject *t = PyTuple_New((Py_ssize_t)n);
  if (t == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject *s = PyUnicode_FromString(edgert_keyset_key_id(self->ks, i));
    if (s == NULL) {
      Py_DECREF(t);
      return NULL;
    }
    PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
  }
  return t;
}

static PyObject *keyset_repr(KeySetObject *self) {
  PyObject *ids = keyset_key_ids(self, NULL);
  if (ids == NULL)
    return NULL;
  PyObject *r = PyUnicode_FromFormat("<edgert.signing.KeySet %R>", ids);
  Py_DECREF(ids);
  return r;
}

static PySequenceMethods keyset_as_sequence = {
    .sq_length = (lenfunc)keyset_len,
};

static PyGetSetDef keyset_getset[] = {
    {"key_ids", (getter)keyset_key_ids, NULL,
     "The ids of the trusted keys, in the order added (duplicates once).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KeySetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgert.signing.KeySet",
    .tp_basicsize = sizeof(KeySetObject),
    .tp_dealloc = (destructor)keyset_dealloc,
    .tp_repr = (reprfunc)keyset_repr,
    .tp_as_sequence = &keyset_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "KeySet(keys): trusted Ed25519 public keys (paths to PEM files "
              "or PEM bytes), each parsed once, here. Immutable.",
    .tp_getset = keyset_getset,
    .tp_new = keyset_new,
};

/* generate_key(private_path, public_path) -> key id */
static PyObject *generate_key(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *priv, *pub;
  if (!PyArg_ParseTuple(args, "O&O&:generate_key", PyUnicode_FSConverter, &priv,
                        PyUnicode_FSConverter, &pub))
    return NULL;
  char id[EDGERT_KEY_ID_SIZE];
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_key_generate(PyBytes_AS_STRING(priv), PyBytes_AS_STRING(pub), id);
  Py_END_ALLOW_THREADS
  Py_DECREF(priv);
  Py_DECREF(pub);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyUnicode_FromString(id);
}

/* key_id(path) -> key id */
static PyObject *key_id(PyObject *self, PyObject *arg) {
  (void)self;
  PyObject *path = fs_path(arg);
  if (path == NULL)
    return NULL;
  char id[EDGERT_KEY_ID_SIZE];
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_key_id_file(PyBytes_AS_STRING(path), id);
  Py_END_ALLOW_THREADS
  Py_DECREF(path);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyUnicode_FromString(id);
}

/* sign_manifest(manifest_path, private_key_path, sig_path) -> key id */
static PyObject *sign_manifest(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *man, *key, *sig = Py_None, *sigb = NULL;
  if (!PyArg_ParseTuple(args, "O&O&O:sign_manifest", PyUnicode_FSConverter, &man,
                        PyUnicode_FSConverter, &key, &sig))
    return NULL;
  if (sig != Py_None && (sigb = fs_path(sig)) == NULL) {
    Py_DECREF(man);
    Py_DECREF(key);
    return NULL;
  }
  char id[EDGERT_KEY_ID_SIZE];
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_manifest_sign(PyBytes_AS_STRING(man), PyBytes_AS_STRING(key),
                            sigb ? PyBytes_AS_STRING(sigb) : NULL, id);
  Py_END_ALLOW_THREADS
  Py_DECREF(man);
  Py_DECREF(key);
  Py_XDECREF(sigb);
  if (rc < 0)
    return edgert_py_raise(rc);
  return PyUnicode_FromString(id);
}

/*
 * read_signed_manifest(path, keyset, state_file, sig_path, now) ->
 * (info, modules): verifies (and with state_file records) and parses;
 * `modules` as parse_manifest returns them. Loads nothing.
 */
static PyObject *read_signed_manifest(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *man, *ks, *state = Py_None, *sig = Py_None, *now = Py_None;
  PyObject *stateb = NULL, *sigb = NULL;
  if (!PyArg_ParseTuple(args, "O&O!OOO:read_signed_manifest",
                        PyUnicode_FSConverter, &man, &KeySetType, &ks, &state,
                        &sig, &now))
    return NULL;
  edgert_verify_options_t opt;
  memset(&opt, 0, sizeof opt);
  if (now != Py_None) {
    opt.now = PyLong_AsLongLong(now);
    if (opt.now == -1 && PyErr_Occurred())
      goto fail;
  }
  if (state != Py_None && (stateb = fs_path(state)) == NULL)
    goto fail;
  if (sig != Py_None && (sigb = fs_path(sig)) == NULL)
    goto fail;
  opt.keys = ((KeySetObject *)ks)->ks;
  opt.state_file = stateb ? PyBytes_AS_STRING(stateb) : NULL;
  opt.sig_path = sigb ? PyBytes_AS_STRING(sigb) : NULL;
  edgert_manifest_t *m = NULL;
  edgert_verify_result_t r;
  int rc;
  Py_INCREF(ks); /* the key set outlives the call even if args are dropped */
  Py_BEGIN_ALLOW_THREADS
  rc = edgert_manifest_read_signed(PyBytes_AS_STRING(man), &opt, &m, &r);
  Py_END_ALLOW_THREADS
  Py_DECREF(ks);
  Py_DECREF(man);
  Py_XDECREF(stateb);
  Py_XDECREF(sigb);
  if (rc < 0)
    return edgert_py_raise(rc);
  PyObject *modules = edgert_py_manifest_to_list(m);
  edgert_manifest_free(m);
  if (modules == NULL)
    return NULL;
  PyObject *info = Py_BuildValue("{s:s,s:L,s:s,s:L,s:L}", "key_id", r.key_id,
                                 "version", (long long)r.version, "expires",
                                 r.expires, "expires_at",
                                 (long long)r.expires_at, "previous_version",
                                 (long long)r.previous_version);
  if (info == NULL) {
    Py_DECREF(modules);
    return NULL;
  }
  return Py_BuildValue("(NN)", info, modules);
fail:
  Py_DECREF(man);
  Py_XDECREF(stateb);
  Py_XDECREF(sigb);
  return NULL;
}

/* parse_signature(data: bytes) -> (key_id, signature bytes): the .sig reader. */
static PyObject *parse_signature(PyObject *self, PyObject *arg) {
  (void)self;
  Py_buffer view;
  if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
    return NULL;
  edgert_signature_t s;
  int rc = edgert_signature_parse(view.buf, (size_t)view.len, &s);
  PyBuffer_Release(&view);
  if (rc < 0)
    return edgert_py_raise(rc);
  return Py_BuildValue("(sy#)", s.key_id, (const char *)s.sig,
                       (Py_ssize_t)sizeof s.sig);
}

static PyMethodDef sign_methods[] = {
    {"signing_generate_key", generate_key, METH_VARARGS,
     "signing_generate_key(private_path, public_path) -> str: a new Ed25519 "
     "key pair written as PEM (private mode 0600); returns the key id."},
    {"signing_key_id", key_id, METH_O,
     "signing_key_id(path) -> str: the key id of a PEM Ed25519 key."},
    {"signing_sign_manifest", sign_manifest, METH_VARARGS,
     "signing_sign_manifest(manifest, private_key, sig_path) -> str: writes "
     "the detached signature; returns the key id."},
    {"signing_read_signed_manifest", read_signed_manifest, METH_VARARGS,
     "signing_read_signed_manifest(path, keyset, state_file, sig_path, now) "
     "-> (info, modules): verified and parsed; loads nothing."},
    {"signing_parse_signature", parse_signature, METH_O,
     "signing_parse_signature(data) -> (key_id, signature): the .sig reader."},
    {NULL, NULL, 0, NULL},
};

int edgert_py_sign_init(PyObject *m) {
  if (PyType_Ready(&KeySetType) < 0)
    return -1;
  Py_INCREF(&KeySetType);
  if (PyModule_AddObject(m, "KeySet", (PyObject *)&KeySetType) < 0) {
    Py_DECREF(&KeySetType);
    return -1;
  }
  return PyModule_AddFunctions(m, sign_methods);
}
