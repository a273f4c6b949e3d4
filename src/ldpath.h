/*
 * ldpath.h: what glibc's dynamic linker searches that is the same for every
 * name (src/ldpath.c), shared by the dependency closure (deps.c) and the
 * search by name (resolve.c). Never installed.
 *
 * - Subfolders: in every folder of a search path (DT_RPATH, LD_LIBRARY_PATH,
 *   DT_RUNPATH, the default folders), ld.so tries a list of subfolders
 *   before the folder itself: glibc-hwcaps/<level> for each level the CPU
 *   supports, best first (glibc 2.33+), then the legacy hwcap subfolders
 *   (glibc before 2.37). edgert__ld_subdirs() is that list, ending with ""
 *   (the folder itself).
 * - The cache: /etc/ld.so.cache's entries for this machine's ABI, each
 *   with its glibc-hwcaps rank when it is a glibc-hwcaps variant.
 */
#ifndef EDGERT_LDPATH_H
#define EDGERT_LDPATH_H

#include "internal.h"

#include <stddef.h>

/* The subfolders ld.so tries in each search folder, in its order, each
 * without a trailing '/'; the last is "" (the folder itself). `*n` gets the
 * count. Computed once per process (thread-safe); static strings. */
const char *const *edgert__ld_subdirs(size_t *n);

/* 1 if `sub` (a path relative to a search folder, no trailing '/') is one
 * of edgert__ld_subdirs() other than "", else 0. */
int edgert__ld_is_subdir(const char *sub, size_t len);

/* One entry of the cache: its key (the DT_SONAME or file name), value (the
 * path) and rank: -1 for a plain entry, else the position of its
 * glibc-hwcaps level among the supported ones (0 best). Variants of an
 * unsupported level are not reported. A nonzero return stops the walk. */
typedef int (*edgert__ldcache_fn)(const char *key, const char *value, int rank, void *ud);

/* Walks the cache `buf` (`len` bytes, as read from /etc/ld.so.cache: the
 * new format alone or after the old one). Every offset and string is
 * checked against the buffer; a malformed or foreign cache reports
 * nothing. Returns fn's nonzero value, or 0. */
int edgert__ldcache_each(const char *buf, size_t len, edgert__ldcache_fn fn, void *ud);

#endif /* EDGERT_LDPATH_H */
