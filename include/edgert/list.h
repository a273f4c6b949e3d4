/* edgert/list.h: see the part's source file, src/list.c. */
#ifndef EDGERT_LIST_H
#define EDGERT_LIST_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_LIST_H */
