/* manifest.c: (not yet written) */
#include "ext.h"

int edgert_py_manifest_init(PyObject *m) {
  (void)m;
  return 0;
}
