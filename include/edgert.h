/*
 * edgert.h: the umbrella header of libedgert.
 *
 * libedgert is a plain C runtime (no Python dependency) for calling compiled
 * kernels safely: typed containers, a verified module loader with libffi
 * binding, crash-containing guarded calls and a dispatch layer. Each part has
 * its own header under edgert/; including this one gives all of them.
 */
#ifndef EDGERT_H
#define EDGERT_H

#include "edgert/common.h"
#include "edgert/types.h"
#include "edgert/dict.h"
#include "edgert/list.h"
#include "edgert/abi.h"
#include "edgert/struct.h"
#include "edgert/callback.h"
#include "edgert/loader.h"
#include "edgert/isolate.h"
#include "edgert/manifest.h"
#include "edgert/sign.h"
#include "edgert/agree.h"
#include "edgert/guard.h"
#include "edgert/nexus_policy.h"
#include "edgert/nexus.h"

#endif /* EDGERT_H */
