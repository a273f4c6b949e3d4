/* edgert/dict.h: see the part's source file, src/dict.c. */
#ifndef EDGERT_DICT_H
#define EDGERT_DICT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_DICT_H */
