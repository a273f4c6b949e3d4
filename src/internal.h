/*
 * internal.h: what the parts of libedgert share and users never see.
 * Never installed. Internal externs are named edgert__*.
 */
#ifndef EDGERT_INTERNAL_H
#define EDGERT_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "edgert.h"

#include <stdarg.h>
#include <stddef.h>

/* The branch hints, EDGERT__LIKELY and EDGERT__UNLIKELY, are defined once,
 * in edgert/common.h, for the core and the binding alike. */
#if defined(__GNUC__)
#define EDGERT__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EDGERT__PRINTF(a, b)
#endif

/* callback.c: parses "CFUNCTYPE(restype, argtypes...)" (`name` starts with
 * "CFUNCTYPE(") into a FUNCPTR type with an interned signature, and writes a
 * signature's canonical name. Messages as edgert_abi_type_parse's. */
int edgert__fnsig_parse(const char *name, edgert_abi_type_t *out);
int edgert__fnsig_name(const edgert_fnsig_t *sig, char *buf, size_t size);

/* error.c: set this thread's message and return `err`, so callers can
 * `return edgert__error(EDGERT_EINVAL, "...", ...);`. */
int edgert__error(int err, const char *fmt, ...) EDGERT__PRINTF(2, 3);
int edgert__verror(int err, const char *fmt, va_list ap);

/* error.c: EDGERT_EINVAL with the message "<fn>: <arg> is NULL". Out of
 * line and cold, so the NULL checks below keep the report out of the hot
 * paths' code. */
#if defined(__GNUC__)
__attribute__((cold))
#endif
int edgert__null_arg(const char *fn, const char *arg);

/* Public entry points check handles and required pointers with these: if
 * `p` is NULL, this thread's message names the calling function and the
 * argument, and the function returns `value` (nothing, in a void one). The
 * _ERR form also stores EDGERT_EINVAL in an optional `int *err` and returns
 * NULL. */
#define EDGERT__RETURN_IF_NULL(p, value)                                                \
  do {                                                                                  \
    if (EDGERT__UNLIKELY((p) == NULL)) {                                                \
      edgert__null_arg(__func__, #p);                                                   \
      return value;                                                                     \
    }                                                                                   \
  } while (0)
#define EDGERT__RETURN_NULL_IF_NULL_ERR(p, err)                                         \
  do {                                                                                  \
    if (EDGERT__UNLIKELY((p) == NULL)) {                                                \
      int rc_ = edgert__null_arg(__func__, #p);                                         \
      if (err)                                                                          \
        *(err) = rc_;                                                                   \
      return NULL;                                                                      \
    }                                                                                   \
  } while (0)

/* error.c: the allocator (see edgert_set_allocator). Sizes that overflow
 * fail like an exhausted heap: they return NULL. None of these sets a
 * message; callers report EDGERT_ENOMEM with what they were doing. */
void *edgert__malloc(size_t size);
void *edgert__calloc(size_t count, size_t size);
void *edgert__realloc(void *ptr, size_t size);
void edgert__free(void *ptr);
char *edgert__strdup(const char *s);
char *edgert__strndup(const char *s, size_t n);

/*
 * fork.c: registers (once) libedgert's pthread_atfork handlers, which keep
 * every lock of the core usable in the child of a fork(). Each part with a
 * lock calls it before first using one (the shared library also registers
 * from a constructor), and gives fork.c three handlers: prepare takes the
 * part's locks (only ones never held while foreign code runs, so a fork
 * never waits for a kernel or a callback; the loader's load lock, held
 * around dlopen and dlclose, is waited for a bounded time), parent and
 * child release them (the child re-initialises the load lock). fork.c calls
 * them in one fixed order.
 */
void edgert__fork_init(void);
void edgert__loader_fork_prepare(void);
void edgert__loader_fork_parent(void);
void edgert__loader_fork_child(void);
void edgert__nexus_fork_prepare(void);
void edgert__nexus_fork_parent(void);
void edgert__nexus_fork_child(void);
void edgert__types_fork_prepare(void);
void edgert__types_fork_parent(void);
void edgert__types_fork_child(void);
void edgert__manifest_fork_prepare(void);
void edgert__manifest_fork_parent(void);
void edgert__manifest_fork_child(void);
void edgert__struct_fork_prepare(void);
void edgert__struct_fork_parent(void);
void edgert__struct_fork_child(void);
void edgert__guard_fork_prepare(void);
void edgert__guard_fork_parent(void);
void edgert__guard_fork_child(void);

/*
 * guard.c: run `tramp(fn, args, ret)` under the crash guard of the calling
 * thread. Returns 0, or EDGERT_ECRASH after a contained fault (the crash
 * record, with `function` and `module` as given, is then readable with
 * edgert_last_crash()). `function` and `module` must outlive the call.
 * Every call of foreign code in libedgert goes through here.
 */
typedef void (*edgert__tramp_t)(void *fn, void **args, void *ret);
int edgert__guarded_invoke(edgert__tramp_t tramp, void *fn, void **args,
                           void *ret, const char *function,
                           const char *module);

/* guard.c: records on this thread that an isolated call's worker died
 * (edgert_crash_t.isolated = 1): `signo` the signal that ended it (0 for an
 * exit), `exit_status` its exit() status or -1, `syscall` a denied system
 * call's name or "" (static or long-lived strings: kept by reference). */
void edgert__crash_isolated(int signo, int exit_status, int pid, const char *syscall,
                            const char *function, const char *module);

/* types.c: a container of type `t` is being made (`who` names the call for
 * the message): 0, or EDGERT_ENOTFOUND when the type was unregistered.
 * Built-in types: always 0. edgert__type_release gives it back (at free). */
int edgert__type_acquire(const edgert_type_t *t, const char *who);
void edgert__type_release(const edgert_type_t *t);

/*
 * loader.c: pins of the registry's mappings for custom types (types.c).
 * edgert__image_pin: when `addr` lies in the code of a module mapped by the
 * loader, takes one more reference on that mapping (it then stays mapped,
 * whatever its handles do, until edgert__image_unpin) and returns 1 with
 * the pin in *pin; else 0 with *pin NULL. Runs no foreign code.
 * edgert__image_unpin releases it (NULL: nothing); may dlclose the mapping.
 */
int edgert__image_pin(const void *addr, void **pin);
void edgert__image_unpin(void *pin);

/* file.c: `s` in single quotes for a message (at most 200 bytes of it), in
 * `buf`; returns buf. */
const char *edgert__quote_path(const char *s, char *buf, size_t size);
/* file.c: reads the whole regular file at `path` into a new buffer
 * (NUL-terminated, not counted in *len); `what` names it in messages ("manifest",
 * "key"); a file larger than `max` bytes is `too_big_err`. On failure
 * *errno_out holds the errno of a failed open or read (EISDIR for a file
 * that is not regular), else 0. */
int edgert__read_file(const char *path, const char *what, size_t max, int too_big_err,
                      char **out, size_t *len, int *errno_out);
/* file.c: the folder of `path` (a new string): everything before the last
 * '/', "." or "/". NULL when out of memory. */
char *edgert__dir_of(const char *path);

/* sign.c: parses an RFC 3339 UTC time in the one form
 * "YYYY-MM-DDTHH:MM:SSZ" (a real calendar date, hour < 24, minute and second
 * < 60) into seconds since the epoch. Returns 0, or -1 (no message set). */
int edgert__rfc3339_parse(const char *text, int64_t *seconds);

/* types.c: the one bool rule. A bool item is the byte 0 or 1. Checks n
 * items `stride` bytes apart; 0, or EDGERT_EINVAL with a message
 * "<who>: a bool is 0 or 1, not 7 (item 3)" naming the first bad one. */
int edgert__bool_items(const void *items, size_t n, size_t stride, const char *who);

#endif /* EDGERT_INTERNAL_H */
