/*
 * module.c: the _edgert extension module. Each part of the core has its own
 * file here and adds its types and functions through its init function.
 *
 * On free-threaded builds the module declares that it does not need the GIL
 * (Py_MOD_GIL_NOT_USED; single-phase init says so with
 * PyUnstable_Module_SetGIL), so importing it leaves the GIL off. Every piece
 * of state the GIL used to protect, and what protects it now, is listed in
 * docs/free-threading.md; ext.h has the tools (critical sections, atomics).
 */
#include "ext.h"

static struct PyModuleDef edgert_module = {
    PyModuleDef_HEAD_INIT, "_edgert",
    "The C side of the edgert package: see edgert for the public API.", -1,
    NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__edgert(void) {
  PyObject *m = PyModule_Create(&edgert_module);
  if (m == NULL)
    return NULL;
  if (PyModule_AddStringConstant(m, "__version__", EDGERT_VERSION_STRING) < 0 ||
      PyModule_AddStringConstant(m, "core_version", edgert_version()) < 0 ||
      edgert_py_errors_init(m) < 0 || edgert_py_loader_init(m) < 0 ||
      edgert_py_manifest_init(m) < 0 ||
      edgert_py_fallback_init(m) < 0 || edgert_py_containers_init(m) < 0 ||
      edgert_py_nexus_init(m) < 0 || edgert_py_sign_init(m) < 0 ||
      edgert_py_struct_init(m) < 0 || edgert_py_callback_init(m) < 0 ||
      edgert_py_isolate_init(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
#ifdef Py_GIL_DISABLED
  if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
    Py_DECREF(m);
    return NULL;
  }
#endif
  return m;
}
