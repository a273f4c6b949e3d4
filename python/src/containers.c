/* containers.c: (not yet written) */
#include "ext.h"

int edgert_py_containers_init(PyObject *m) {
  (void)m;
  return 0;
}
