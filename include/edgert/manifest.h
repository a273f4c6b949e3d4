/* edgert/manifest.h: see the part's source file, src/manifest.c. */
#ifndef EDGERT_MANIFEST_H
#define EDGERT_MANIFEST_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_MANIFEST_H */
