/*
 * edgert/common.h: what every part of libedgert shares.
 *
 * The export macro, the error codes and the per-thread error message, the
 * allocator hook and the library version. Every fallible call in libedgert
 * returns 0 on success or one of the negative EDGERT_E* codes below, and
 * leaves a message for the calling thread that edgert_last_error() reads.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_COMMON_H
#define EDGERT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(EDGERT_BUILDING) && defined(__GNUC__)
#define EDGERT_EXTERN __attribute__((visibility("default")))
#else
#define EDGERT_EXTERN
#endif

/* Branch hints for hot paths, the one spelling the core and the binding
 * use (internal to edgert: the double underscore says not API). */
#if defined(__GNUC__)
#define EDGERT__LIKELY(x) __builtin_expect(!!(x), 1)
#define EDGERT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define EDGERT__LIKELY(x) (x)
#define EDGERT__UNLIKELY(x) (x)
#endif

#define EDGERT_VERSION_MAJOR 0
#define EDGERT_VERSION_MINOR 1
#define EDGERT_VERSION_PATCH 0
#define EDGERT_VERSION_STRING "0.1.0"

/*
 * The one list of error codes. XX(name, value, description). The enum,
 * edgert_err_name() and edgert_strerror() are all generated from it.
 */
#define EDGERT_ERRNO_MAP(XX)                                                  \
  XX(EINVAL, -1, "invalid argument")                                          \
  XX(ENOMEM, -2, "out of memory")                                             \
  XX(EIO, -3, "I/O error")                                                    \
  XX(EINTEGRITY, -4, "integrity check failed")                                \
  XX(EFORMAT, -5, "not a loadable shared object for this machine")            \
  XX(ENOTFOUND, -6, "not found")                                              \
  XX(ETYPE, -7, "wrong type")                                                 \
  XX(EOVERFLOW, -8, "value out of range for its C type")                      \
  XX(EUNLOADED, -9, "module is unloaded")                                     \
  XX(ECRASH, -10, "kernel crashed")                                           \
  XX(EQUARANTINED, -11, "module is quarantined")                              \
  XX(EMANIFEST, -12, "malformed manifest")                                    \
  XX(ERANGE, -13, "index out of range")                                       \
  XX(EKEY, -14, "key not found")                                              \
  XX(EBUSY, -15, "resource is busy")                                          \
  XX(ECHANGED, -16, "container changed during iteration")                     \
  XX(EMISMATCH, -17, "results differ")                                        \
  XX(EFAILED, -18, "call failed")                                             \
  XX(EEXIST, -19, "already exists")                                           \
  XX(EUNSUPPORTED, -20, "not supported")                                      \
  XX(ELIMIT, -21, "limit exceeded")                                           \
  XX(ESIGNATURE, -22, "manifest signature missing or invalid")               \
  XX(EUNKNOWNKEY, -23, "manifest signed by a key that is not trusted")       \
  XX(EEXPIRED, -24, "signed manifest has expired")                           \
  XX(EROLLBACK, -25, "manifest version older than one already accepted")     \
  XX(ESTATE, -26, "version state file cannot be read or written")          \
  XX(ETIMEOUT, -27, "call exceeded its time limit")                          \
  XX(EINTERRUPTED, -28, "call interrupted")

typedef enum {
  EDGERT_OK = 0,
#define EDGERT__ERR_ENUM(name, value, desc) EDGERT_##name = (value),
  EDGERT_ERRNO_MAP(EDGERT__ERR_ENUM)
#undef EDGERT__ERR_ENUM
  EDGERT__ERR_MIN = -29
} edgert_errno_t;

/* "EINVAL" for EDGERT_EINVAL; "UNKNOWN" for a code not in the list. Static strings. */
EDGERT_EXTERN const char *edgert_err_name(int err);
/* "invalid argument" for EDGERT_EINVAL. Static strings. */
EDGERT_EXTERN const char *edgert_strerror(int err);
/*
 * The message the last failing call on this thread left, "" if none.
 * The string belongs to the thread and is overwritten by its next failing call.
 */
EDGERT_EXTERN const char *edgert_last_error(void);
/* Forget this thread's message. */
EDGERT_EXTERN void edgert_clear_error(void);

/*
 * The allocator libedgert uses for everything it allocates. All three
 * functions must be given; `ud` is passed back unchanged. Set it before any
 * other call (objects allocated with one allocator must be freed with it).
 * edgert_set_allocator(NULL) restores malloc/realloc/free.
 * Returns 0, or EDGERT_EINVAL if a function is missing.
 */
typedef struct edgert_allocator_s {
  void *(*malloc_fn)(void *ud, size_t size);
  void *(*realloc_fn)(void *ud, void *ptr, size_t size);
  void (*free_fn)(void *ud, void *ptr);
  void *ud;
} edgert_allocator_t;
EDGERT_EXTERN int edgert_set_allocator(const edgert_allocator_t *alloc);

/* "0.1.0": the version of the library that is running, not the header's. */
EDGERT_EXTERN const char *edgert_version(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_COMMON_H */
