/*
 * errors.c: the one place where core error codes become Python exceptions.
 *
 * Each EDGERT_E* code maps to one exception type; the message is the calling
 * thread's edgert_last_error(), so whatever the core said about the failure
 * (the field, the symbol, the value) reaches the user unchanged.
 */
#include "ext.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

PyObject *EdgertPy_Error;
PyObject *EdgertPy_IntegrityError;
PyObject *EdgertPy_ModuleFormatError;
PyObject *EdgertPy_SymbolNotFoundError;
PyObject *EdgertPy_ManifestError;
PyObject *EdgertPy_ModuleUnloadedError;
PyObject *EdgertPy_KernelCrash;
PyObject *EdgertPy_QuarantinedError;
PyObject *EdgertPy_CompiledModeFailure;
PyObject *EdgertPy_FallbackMismatchError;
PyObject *EdgertPy_SignatureError;
PyObject *EdgertPy_UnknownKeyError;
PyObject *EdgertPy_ManifestExpiredError;
PyObject *EdgertPy_RollbackError;
PyObject *EdgertPy_StateFileError;
PyObject *EdgertPy_KernelTimeout;

static int set_attr(PyObject *obj, const char *name, PyObject *value) {
  if (value == NULL)
    return -1;
  int rc = PyObject_SetAttrString(obj, name, value);
  Py_DECREF(value);
  return rc;
}

/* The worker this process is, for crash reports that leave it:
 * edgert.workers._crash_site() gives its name (the one
 * edgert.worker_initializer set in this process, else "host:pid") and
 * whether the message names it (a named worker, or a process multiprocessing
 * started). Should that fail (the package half imported, the interpreter
 * finalizing), "host:pid" from here, not in the message. Returns a new
 * reference, never NULL unless out of memory; never leaves an error set
 * except then. */
static PyObject *crash_worker(int *in_message) {
  *in_message = 0;
  PyObject *m = PyImport_ImportModule("edgert.workers");
  PyObject *site = m ? PyObject_CallMethod(m, "_crash_site", NULL) : NULL;
  Py_XDECREF(m);
  if (site != NULL && PyTuple_Check(site) && PyTuple_GET_SIZE(site) == 2 &&
      PyUnicode_Check(PyTuple_GET_ITEM(site, 0))) {
    int named = PyObject_IsTrue(PyTuple_GET_ITEM(site, 1));
    if (named >= 0) {
      PyObject *name = Py_NewRef(PyTuple_GET_ITEM(site, 0));
      Py_DECREF(site);
      *in_message = named;
      return name;
    }
  }
  Py_XDECREF(site);
  PyErr_Clear();
  char host[256];
  if (gethostname(host, sizeof host) != 0)
    strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  return PyUnicode_FromFormat("%s:%ld", host, (long)getpid());
}

static PyObject *raise_crash(void) {
  const edgert_crash_t *c = edgert_last_crash();
  const char *msg = edgert_last_error();
  PyObject *text = PyUnicode_FromString(msg[0] ? msg : "kernel crashed");
  PyObject *exc = text ? PyObject_CallOneArg(EdgertPy_KernelCrash, text) : NULL;
  Py_XDECREF(text);
  if (exc == NULL)
    return NULL;
  /* The crash record and the message are the thread's: read them all
   * before crash_worker() runs Python code (which may run a finalizer
   * that calls into edgert). */
  if (set_attr(exc, "address", PyLong_FromVoidPtr(c->address)) < 0 ||
      set_attr(exc, "signal", PyLong_FromLong(c->signo)) < 0 ||
      set_attr(exc, "signal_name", PyUnicode_FromString(edgert_signal_name(c->signo))) < 0 ||
      set_attr(exc, "function",
               PyUnicode_DecodeFSDefault(c->function ? c->function : "")) < 0 ||
      set_attr(exc, "module",
               PyUnicode_DecodeFSDefault(c->module ? c->module : "")) < 0 ||
      set_attr(exc, "sent", PyBool_FromLong(c->sent)) < 0 ||
      set_attr(exc, "sender_pid",
               c->sent ? PyLong_FromLong(c->sender_pid) : Py_NewRef(Py_None)) < 0 ||
      set_attr(exc, "unhealthy", PyBool_FromLong(c->unhealthy)) < 0 ||
      /* an isolated call: the worker process died, not this one */
      set_attr(exc, "isolated", PyBool_FromLong(c->isolated)) < 0 ||
      set_attr(exc, "worker_pid",
               c->isolated ? PyLong_FromLong(c->worker_pid) : Py_NewRef(Py_None)) < 0 ||
      set_attr(exc, "exit_status", c->isolated && c->exit_status >= 0
                                       ? PyLong_FromLong(c->exit_status)
                                       : Py_NewRef(Py_None)) < 0 ||
      set_attr(exc, "syscall", c->isolated && c->syscall != NULL && c->syscall[0] != '\0'
                                   ? PyUnicode_FromString(c->syscall)
                                   : Py_NewRef(Py_None)) < 0) {
    Py_DECREF(exc);
    return NULL;
  }
  /* `worker` names the process it happened in; a crash on a worker names
   * it in the message too, so the exception still says where it happened
   * after it is pickled to a client. */
  int in_message;
  PyObject *worker = crash_worker(&in_message);
  if (worker == NULL) {
    Py_DECREF(exc);
    return NULL;
  }
  if (in_message) { /* args is the 1-tuple of the message built above */
    PyObject *args = PyObject_GetAttrString(exc, "args");
    int rc = -1;
    if (args != NULL && PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 1) {
      PyObject *named = Py_BuildValue("(N)", PyUnicode_FromFormat(
                                                 "%S (on worker %U)",
                                                 PyTuple_GET_ITEM(args, 0), worker));
      rc = named != NULL ? PyObject_SetAttrString(exc, "args", named) : -1;
      Py_XDECREF(named);
    } else if (args != NULL) {
      rc = 0; /* a subclass changed args: the message stays, `worker` names it */
    }
    Py_XDECREF(args);
    if (rc < 0) {
      Py_DECREF(worker);
      Py_DECREF(exc);
      return NULL;
    }
  }
  if (set_attr(exc, "worker", worker) < 0) {
    Py_DECREF(exc);
    return NULL;
  }
  PyErr_SetObject(EdgertPy_KernelCrash, exc);
  Py_DECREF(exc);
  return NULL;
}

/* obj.name = value, or None when value is NULL (borrowed). */
static int set_or_none(PyObject *obj, const char *name, PyObject *value) {
  return PyObject_SetAttrString(obj, name, value != NULL ? value : Py_None);
}

/* Raises the instance `exc` (owned) of `type`; NULL. */
static PyObject *raise_instance(PyObject *type, PyObject *exc) {
  PyErr_SetObject(type, exc);
  Py_DECREF(exc);
  return NULL;
}

PyObject *edgert_py_compiled_failure(PyObject *msg, PyObject *cause,
                                     PyObject *kernel, PyObject *version) {
  PyObject *exc = PyObject_CallOneArg(EdgertPy_CompiledModeFailure,
                                      msg != NULL ? msg : Py_None);
  if (exc == NULL)
    return NULL;
  if (set_or_none(exc, "kernel", kernel) < 0 ||
      set_or_none(exc, "version", version) < 0) {
    Py_DECREF(exc);
    return NULL;
  }
  if (cause != NULL) {
    PyException_SetContext(exc, Py_NewRef(cause));
    PyException_SetCause(exc, Py_NewRef(cause)); /* also suppresses the context */
  }
  return raise_instance(EdgertPy_CompiledModeFailure, exc);
}

PyObject *edgert_py_mismatch(PyObject *msg, PyObject *kernel, PyObject *version,
                             PyObject *compiled, PyObject *reference,
                             PyObject *difference) {
  PyObject *exc = PyObject_CallOneArg(EdgertPy_FallbackMismatchError,
                                      msg != NULL ? msg : Py_None);
  if (exc == NULL)
    return NULL;
  if (set_or_none(exc, "kernel", kernel) < 0 ||
      set_or_none(exc, "version", version) < 0 ||
      set_or_none(exc, "compiled_result", compiled) < 0 ||
      set_or_none(exc, "reference_result", reference) < 0 ||
      set_or_none(exc, "difference", difference) < 0) {
    Py_DECREF(exc);
    return NULL;
  }
  return raise_instance(EdgertPy_FallbackMismatchError, exc);
}

PyObject *edgert_py_raise(int err) {
  const char *msg = edgert_last_error();
  if (msg[0] == '\0')
    msg = edgert_strerror(err);
  PyObject *type;
  switch (err) {
  case EDGERT_ECRASH:
    return raise_crash();
  case EDGERT_ENOMEM:
    return PyErr_NoMemory();
  case EDGERT_EINVAL:
    type = PyExc_ValueError;
    break;
  case EDGERT_EIO:
    type = PyExc_OSError;
    break;
  case EDGERT_EINTEGRITY:
    type = EdgertPy_IntegrityError;
    break;
  case EDGERT_EFORMAT:
    type = EdgertPy_ModuleFormatError;
    break;
  case EDGERT_ENOTFOUND:
    type = EdgertPy_SymbolNotFoundError;
    break;
  case EDGERT_ETYPE:
    type = PyExc_TypeError;
    break;
  case EDGERT_EOVERFLOW:
    type = PyExc_OverflowError;
    break;
  case EDGERT_EUNLOADED:
    type = EdgertPy_ModuleUnloadedError;
    break;
  case EDGERT_EQUARANTINED:
    type = EdgertPy_QuarantinedError;
    break;
  case EDGERT_EMANIFEST:
    type = EdgertPy_ManifestError;
    break;
  case EDGERT_ERANGE:
    type = PyExc_IndexError;
    break;
  case EDGERT_EKEY:
    type = PyExc_KeyError;
    break;
  case EDGERT_EBUSY:
    type = PyExc_BufferError;
    break;
  case EDGERT_ECHANGED:
    type = PyExc_RuntimeError;
    break;
  case EDGERT_EMISMATCH:
    type = EdgertPy_FallbackMismatchError;
    break;
  case EDGERT_EFAILED:
    type = EdgertPy_CompiledModeFailure;
    break;
  case EDGERT_EEXIST:
    type = PyExc_ValueError;
    break;
  case EDGERT_EUNSUPPORTED:
    type = PyExc_NotImplementedError;
    break;
  case EDGERT_ELIMIT:
    type = PyExc_ValueError;
    break;
  case EDGERT_ESIGNATURE:
    type = EdgertPy_SignatureError;
    break;
  case EDGERT_EUNKNOWNKEY:
    type = EdgertPy_UnknownKeyError;
    break;
  case EDGERT_EEXPIRED:
    type = EdgertPy_ManifestExpiredError;
    break;
  case EDGERT_EROLLBACK:
    type = EdgertPy_RollbackError;
    break;
  case EDGERT_ESTATE:
    type = EdgertPy_StateFileError;
    break;
  case EDGERT_ETIMEOUT:
    type = EdgertPy_KernelTimeout;
    break;
  case EDGERT_EINTERRUPTED:
    /* An isolated call stopped by the thread's interrupt check (func.c's
     * PyErr_CheckSignals): the exception the signal handler raised
     * (KeyboardInterrupt for Ctrl-C) is already set and is the one to see. */
    if (PyErr_Occurred())
      return NULL;
    type = PyExc_KeyboardInterrupt;
    break;
  default:
    type = EdgertPy_Error;
    break;
  }
  /* Messages quote user input (paths, names from a manifest), which need
   * not be UTF-8: never let decoding the message replace the error. */
  PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
  if (text == NULL)
    return NULL;
  PyErr_SetObject(type, text);
  Py_DECREF(text);
  return NULL;
}

static int add_exc(PyObject *m, PyObject **slot, const char *name,
                   PyObject *bases, const char *doc) {
  char qual[96];
  snprintf(qual, sizeof qual, "edgert.%s", name);
  *slot = PyErr_NewExceptionWithDoc(qual, doc, bases, NULL);
  Py_XDECREF(bases);
  if (*slot == NULL)
    return -1;
  Py_INCREF(*slot);
  if (PyModule_AddObject(m, name, *slot) < 0) {
    Py_DECREF(*slot);
    return -1;
  }
  return 0;
}

#define BASES2(b) PyTuple_Pack(2, EdgertPy_Error, (b))

int edgert_py_errors_init(PyObject *m) {
  if (PyModule_AddObjectRef(m, "_crash_worker", Py_None) < 0) /* see crash_worker() */
    return -1;
  EdgertPy_Error = PyErr_NewExceptionWithDoc(
      "edgert.EdgertError", "Base class of the errors edgert raises.", NULL, NULL);
  if (EdgertPy_Error == NULL)
    return -1;
  Py_INCREF(EdgertPy_Error);
  if (PyModule_AddObject(m, "EdgertError", EdgertPy_Error) < 0)
    return -1;
  PyObject *single = PyTuple_Pack(1, EdgertPy_Error);
  if (add_exc(m, &EdgertPy_IntegrityError, "IntegrityError", single,
              "A module's SHA-256 did not match: none of its code ran.") < 0)
    return -1;
  if (add_exc(m, &EdgertPy_ModuleFormatError, "ModuleFormatError",
              BASES2(PyExc_ValueError),
              "The file is not a 64-bit ELF shared object for this machine.") < 0 ||
      add_exc(m, &EdgertPy_SymbolNotFoundError, "SymbolNotFoundError",
              BASES2(PyExc_LookupError),
              "A contract names a function the module does not define.") < 0 ||
      add_exc(m, &EdgertPy_ManifestError, "ManifestError",
              BASES2(PyExc_ValueError),
              "A manifest or contract is malformed; the message names the field.") < 0 ||
      add_exc(m, &EdgertPy_ModuleUnloadedError, "ModuleUnloadedError",
              BASES2(PyExc_RuntimeError),
              "The module was unloaded; load it again to call it.") < 0 ||
      add_exc(m, &EdgertPy_KernelCrash, "KernelCrash", PyTuple_Pack(1, EdgertPy_Error),
              "A compiled kernel raised SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGTRAP "
              "and the runtime contained it, or a signal sent to its thread "
              "interrupted it. Attributes: signal, signal_name, address, "
              "function, module, sent (the signal was sent, not raised by the "
              "kernel: nothing is quarantined for it), sender_pid, unhealthy "
              "(it happened inside the C library: edgert.process_healthy() is "
              "now False), worker (the Dask worker's address when it happened on "
              "one, else None). Pickles with its attributes.") < 0 ||
      add_exc(m, &EdgertPy_QuarantinedError, "QuarantinedError",
              BASES2(PyExc_RuntimeError),
              "The module crashed earlier and is quarantined until reload().") < 0 ||
      add_exc(m, &EdgertPy_CompiledModeFailure, "CompiledModeFailure",
              BASES2(PyExc_RuntimeError),
              "The compiled path failed; __cause__ is the original error.") < 0 ||
      add_exc(m, &EdgertPy_FallbackMismatchError, "FallbackMismatchError",
              BASES2(PyExc_ValueError),
              "The compiled and reference results differ beyond the tolerance.") < 0)
    return -1;
  /* Signed manifests (docs/signing.md). */
  if (add_exc(m, &EdgertPy_SignatureError, "SignatureError",
              PyTuple_Pack(1, EdgertPy_IntegrityError),
              "A signed manifest was refused before any module was read: "
              "no or a malformed signature file, or a signature that does "
              "not match the manifest's bytes.") < 0 ||
      add_exc(m, &EdgertPy_UnknownKeyError, "UnknownKeyError",
              PyTuple_Pack(1, EdgertPy_SignatureError),
              "The manifest is signed by a key that is not trusted.") < 0 ||
      add_exc(m, &EdgertPy_ManifestExpiredError, "ManifestExpiredError",
              PyTuple_Pack(1, EdgertPy_SignatureError),
              "The signed manifest's \"expires\" time has passed.") < 0 ||
      add_exc(m, &EdgertPy_RollbackError, "RollbackError",
              PyTuple_Pack(1, EdgertPy_SignatureError),
              "The signed manifest's \"version\" is lower than one this "
              "device already accepted (a replay or a rollback).") < 0 ||
      add_exc(m, &EdgertPy_StateFileError, "StateFileError",
              BASES2(PyExc_OSError),
              "The version state file could not be read, was malformed, or "
              "a new version could not be recorded in it: nothing was "
              "loaded.") < 0)
    return -1;
  /* Process isolation (docs/isolation.md). */
  if (add_exc(m, &EdgertPy_KernelTimeout, "KernelTimeout", BASES2(PyExc_TimeoutError),
              "An isolated call overran its loader's timeout: its worker process was "
              "killed (SIGKILL) and reaped, and the next call starts a new one. A "
              "TimeoutError; a nexus counts it as a failure of the compiled side.") < 0)
    return -1;
  return 0;
}
