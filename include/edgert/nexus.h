/* edgert/nexus.h: see the part's source file, src/nexus.c. */
#ifndef EDGERT_NEXUS_H
#define EDGERT_NEXUS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_NEXUS_H */
