/*
 * module.c: the _edgert extension module. Each part of the core has its own
 * file here and adds its types and functions through its init function.
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
      edgert_py_nexus_init(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
