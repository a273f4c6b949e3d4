/* edgert/loader.h: see the part's source file, src/loader.c. */
#ifndef EDGERT_LOADER_H
#define EDGERT_LOADER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_LOADER_H */
