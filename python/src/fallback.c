/* fallback.c: (not yet written) */
#include "ext.h"

int edgert_py_fallback_init(PyObject *m) {
  (void)m;
  return 0;
}
