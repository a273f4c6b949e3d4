/* edgert/types.h: see the part's source file, src/types.c. */
#ifndef EDGERT_TYPES_H
#define EDGERT_TYPES_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_TYPES_H */
