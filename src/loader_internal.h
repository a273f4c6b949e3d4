/*
 * loader_internal.h: what src/loader.c (loading, registry, symbols) and
 * src/ffi.c (binding and calls) share. Never installed.
 *
 * Lifetimes: an image is one dlopen'ed copy of one SHA-256, owned by the
 * registry and counted by the users of it (`refs`, registry lock): the
 * handles' mappings and the custom types whose callbacks live in it
 * (edgert__image_pin). A handle (edgert_module_t) reaches its image through
 * its current mapping (edgert__map_t, `cur`), which counts itself plus the
 * calls in flight on it in `active`: 1 while current, +1 per call. Unload
 * and reload retire the current mapping (`retired`, then drop the 1);
 * whoever brings `active` to 0 releases the image reference (exactly once,
 * through `closed`). A call counts itself on the mapping it read from `cur`
 * BEFORE checking `retired`, and backs off and rereads `cur` when it was
 * retired: so an image is never dlclose'd while a call on it is running,
 * and a call that starts after a reload runs on the fresh mapping. Mapping
 * records stay allocated until edgert_module_free (a call may still be
 * looking at an old one); a bound function keeps its offset from the
 * object's base, and each call computes its address in the mapping it
 * holds, so functions bound before a reload call the fresh copy.
 */
#ifndef EDGERT_LOADER_INTERNAL_H
#define EDGERT_LOADER_INTERNAL_H

#include "internal.h"

#include <ffi.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct edgert__image_s edgert__image_t;
struct edgert__image_s {
  unsigned char sha[32];
  int fd;                  /* the sealed memfd (or tmpfile), open for life */
  int deepbind;            /* mapped with RTLD_DEEPBIND (isolated symbols) */
  int shared;              /* the process's own instance of the file (fd -1), not a copy */
  void *handle;            /* dlopen handle */
  void *linkmap;           /* struct link_map * of the object */
  int nexec;               /* executable PT_LOAD ranges of the mapping */
  uintptr_t exec_lo[8], exec_hi[8];
  uintptr_t bias;          /* the object's load address (link map l_addr) */
  size_t refs;             /* mappings and type pins using it (registry_lock) */
  atomic_int quarantined;  /* a call on this copy crashed: never shared again, never cleared */
  struct edgert__deps_s *deps; /* verified dependencies mapped for it (deps.c), or NULL */
  struct edgert__iso_s *iso;   /* isolated (never mapped here, never in the registry): its
                                  workers (isolate.c), else NULL */
  edgert__image_t *next;   /* registry list */
};

/* One mapping of a handle: its image while current, plus calls in flight. */
typedef struct edgert__map_s edgert__map_t;
struct edgert__map_s {
  edgert__image_t *image;
  uintptr_t bias;       /* image->bias, read by every call */
  atomic_long active;   /* 1 while current + calls in flight on it */
  atomic_int retired;   /* unload or reload replaced it */
  atomic_int closed;    /* the image reference was released */
  unsigned long generation; /* 1 for the first load, +1 per reload */
  edgert__map_t *older; /* the handle's earlier mappings (freed with the handle) */
};

struct edgert_module_s {
  atomic_int state;   /* 0 loaded, 1 unloaded */
  _Atomic(edgert__map_t *) cur; /* the current mapping (never NULL) */
  atomic_ulong crashed_generation; /* the mapping a call last crashed on, 0 = none */
  unsigned flags;     /* the load's EDGERT_LOAD_* flags, for reload */
  size_t max_size;    /* the load's size limit, for reload */
  char *path;
  size_t size;
  int shared;         /* image->shared, kept past the image's release */
  unsigned char sha[32];
  char sha_hex[65];
  pthread_mutex_t lock; /* binding, the function list, reload and unload */
  edgert_func_t *funcs; /* every function bound, newest first */
  /* isolated load (edgert/isolate.h): its options (worker_path owned), else NULL */
  edgert_isolate_options_t *iso_opts;
  edgert_module_t *hnext, *hprev; /* every handle not yet freed (registry_lock),
                                     so a fork can take and reset each lock */
};

/* ffi.c: a prepared call of a variadic function with one list of (promoted)
 * extra argument types. Kept in its function's cache until the module
 * handle is freed. */
#define EDGERT__VAR_CACHE 16
typedef struct edgert__varcif_s {
  unsigned nextra;
  edgert_ctype_t extra[EDGERT_MAX_ARGS];
  ffi_cif cif;
  ffi_type *atypes[EDGERT_MAX_ARGS];
} edgert__varcif_t;

struct edgert_func_s {
  edgert_module_t *module;
  void *addr;            /* in the mapping current when it was bound */
  uintptr_t off;         /* addr - that mapping's bias: the same in every copy */
  edgert__tramp_t tramp; /* the precompiled trampoline, or NULL: libffi */
  unsigned nargs;
  int replaced;          /* a later bind took over the name */
  int regcall;           /* tramp is a register-file trampoline: `fn` is this struct */
  int byval;             /* some argument is a struct by value: its slot holds its address */
  unsigned char slot[EDGERT_MAX_ARGS]; /* regcall: GPR index, or 0x80 | FPR index */
  unsigned char words[EDGERT_MAX_ARGS]; /* regcall: a struct argument's registers, from slot */
  edgert_func_t *next;
  int iso;               /* the module is isolated: every call goes to a worker */
  unsigned iso_index;    /* its index in the module's workers (isolate.c) */
  edgert_contract_t contract;
  ffi_cif cif;
  ffi_type *atypes[EDGERT_MAX_ARGS];
  /* use_errno: `tramp` is the errno wrapper, which calls `inner` (with this
   * struct when inner_regcall, else with `addr`) */
  edgert__tramp_t inner;
  int inner_regcall;
  /* variadic: cifs by extra-type list; entries [0, nvar) are published
   * (release store of nvar, appended under module->lock), never changed */
  atomic_uint nvar;
  edgert__varcif_t *var[EDGERT__VAR_CACHE];
};

/* ffi.c: the libffi type of a C type code (FUNCPTR and every pointer:
 * ffi_type_pointer), NULL for none. Shared with callback.c's cifs. */
ffi_type *edgert__ffi_type_of(edgert_ctype_t code);

/* ffi.c: 1 if fn's calls reach it through a precompiled trampoline (the
 * errno wrapper of one included), 0 if through libffi. */
int edgert__func_trampolined(const edgert_func_t *fn);

/* ffi.c: frees what edgert__func_prepare and variadic calls allocated for fn
 * (not fn itself). */
void edgert__func_release(edgert_func_t *fn);

/* ffi.c: fills fn->cif, fn->atypes and fn->tramp from fn->contract.
 * 0, or EDGERT_EUNSUPPORTED / EDGERT_EINVAL with a message. */
int edgert__func_prepare(edgert_func_t *fn);

/* ffi.c: the libffi type of a scalar code (NULL for VOID-less codes it
 * does not know, and for EDGERT_CT_STRUCT). */
ffi_type *edgert__ffi_type_of(edgert_ctype_t code);
/* struct.c: a layout's libffi type (initialized at definition). */
ffi_type *edgert__struct_ffi_type(const edgert_struct_t *s);

/* What the register-file and libffi trampolines receive: the function and
 * its address in the mapping the call holds. */
typedef struct edgert__call_s {
  const edgert_func_t *fn;
  void *addr;
} edgert__call_t;

/* loader.c: called by whoever brought mp->active to 0: releases the
 * mapping's image reference once. */
void edgert__map_last_out(edgert__map_t *mp);

/* Counts a call (or a lookup) on m's current mapping and returns it, or
 * NULL when m is unloaded. The count is taken before `retired` is read, so
 * a mapping seen not retired cannot be released until edgert__map_drop. */
static inline edgert__map_t *edgert__map_hold(edgert_module_t *m) {
  for (;;) {
    edgert__map_t *mp = atomic_load(&m->cur);
    atomic_fetch_add(&mp->active, 1);
    if (EDGERT__LIKELY(!atomic_load(&mp->retired)))
      return mp;
    /* Retired by a reload (cur is already the fresh one) or an unload. */
    if (atomic_fetch_sub(&mp->active, 1) == 1)
      edgert__map_last_out(mp);
    if (atomic_load(&m->state) != 0)
      return NULL;
  }
}

/* Ends what edgert__map_hold began; the last call out of a retired mapping
 * releases its image (dlclose may run the module's destructors). */
static inline void edgert__map_drop(edgert__map_t *mp) {
  if (EDGERT__UNLIKELY(atomic_fetch_sub_explicit(&mp->active, 1, memory_order_acq_rel) == 1))
    edgert__map_last_out(mp);
}

/* loader.c: the ELF header checks of a load, for other readers of modules
 * (inspect.c): `avail` bytes of a `size`-byte file at `b`. 0 or
 * EDGERT_EFORMAT naming `path` and the problem. */
int edgert__check_elf(const unsigned char *b, size_t avail, size_t size, const char *path);

/* ---- verified dependencies (deps.c) ------------------------------------- */

/* loader.c, for deps.c: the load path's own steps, shared so a dependency
 * is read, sealed, hashed and mapped exactly as a module is. */
/* Copies `path` into a sealed memfd and hashes the sealed bytes (see
 * read_verified in loader.c); ELF header checked. 0, or an EDGERT code with
 * the message set and errno preserved. */
int edgert__read_verified(const char *path, size_t limit, unsigned flags, int *fd_out,
                          size_t *size_out, unsigned char sha[32]);
/* dlopen's the sealed memfd `fd` (RTLD_NOW | RTLD_LOCAL, RTLD_DEEPBIND when
 * `deep`) into img->handle/linkmap after checking that its /proc/self/fd
 * name answers for nothing else, and checks that the object returned maps
 * that memfd and no other file. Runs the object's constructors. Called with
 * the load lock held. */
int edgert__map_sealed(edgert__image_t *img, int fd, const char *path, const char *sha_hex,
                       int deep);
/* 64 hex digits into 32 bytes; EDGERT_EINVAL naming `what` otherwise. */
int edgert__parse_sha256(const char *hex, unsigned char out[32], const char *what);
/* 32 bytes as 64 lowercase hex digits and a NUL. */
void edgert__sha256_hex(const unsigned char d[32], char out[65]);
/* 1 and the path of the object glibc already has under `name` (its own
 * name or its DT_SONAME) in `who`, else 0. Maps nothing (RTLD_NOLOAD). */
int edgert__name_taken(const char *name, char *who, size_t n);

/* inspect.c: the names in a module's dynamic section, read from `fd` (the
 * sealed copy) with every offset checked. Strings are edgert__malloc'ed. */
typedef struct {
  char **needed; /* DT_NEEDED, in order */
  size_t nneeded;
  char *soname, *runpath, *rpath; /* NULL when absent */
} edgert__dyn_names_t;
int edgert__dyn_names(int fd, const char *path, edgert__dyn_names_t *out);
void edgert__dyn_names_free(edgert__dyn_names_t *d);

/* deps.c: a module's verified dependency closure.
 * plan: resolves the module's DT_NEEDED closure as ld.so would, from its
 *   sealed copy `fd`, and reads, seals and verifies every dependency that
 *   is neither already in the process nor in a trusted system folder
 *   against opts->dependencies. Maps nothing, runs no code. *out is NULL
 *   when there is nothing to map. Called without locks.
 * map: (load lock held, before the module's dlopen) maps the planned
 *   dependencies, leaves first, each checked to be its sealed memfd and to
 *   answer to its DT_NEEDED name. On failure nothing stays mapped.
 * check: (load lock held, after the module's dlopen) each dependency's
 *   name still answers with the verified object.
 * release: (load lock held; after the module's dlclose) drops the
 *   references and frees the plan. NULL ok. */
typedef struct edgert__deps_s edgert__deps_t;
int edgert__deps_plan(const char *path, int fd, const edgert_load_options_t *opts,
                      size_t limit, unsigned flags, edgert__deps_t **out);
/* deps.c, load lock held: the closure edgert__deps_plan would plan,
 * reported to `visit` (edgert_module_plan_dependencies) instead of refused
 * or planned; nothing is kept. */
int edgert__deps_report(const char *path, int fd, const edgert_load_options_t *opts,
                        size_t limit, unsigned flags, edgert_dependency_visit_fn visit,
                        void *ud);
int edgert__deps_map(edgert__deps_t *d, int deep);
int edgert__deps_check(edgert__deps_t *d);
void edgert__deps_release(edgert__deps_t *d);
/* deps.c, load lock held: another reference on the dependencies `d` holds
 * (for a reload's fresh copy, which needs the same ones), or NULL: when d
 * is NULL (*rc 0) or out of memory (*rc EDGERT_ENOMEM). */
edgert__deps_t *edgert__deps_share(const edgert__deps_t *d, int *rc);
/* deps.c: how many verified dependencies of `d` are not mapped in this
 * process (an isolated module's, which its workers map); with `soname`
 * non-NULL, item i of them: its DT_SONAME and sealed memfd (both borrowed;
 * in the order they must be mapped, leaves first). */
/* deps.c: how many dependencies of `d` were verified and mapped by edgert
 * (listed ones), or kept for an isolated module's workers; with `name`
 * non-NULL, item i of them (borrowed strings; `path` and `sha256_hex` must
 * then be non-NULL too) and, with `fd` non-NULL, its sealed memfd (borrowed;
 * -1 once mapped here). An isolated module's are all kept, leaves first. */
size_t edgert__deps_listed(const edgert__deps_t *d, size_t i, const char **name,
                           const char **path, const char **sha256_hex, int *fd);

/* ---- process isolation (isolate.c) ----------------------------------------- */

typedef struct edgert__iso_s edgert__iso_t;
/* The options of an isolated load of `path`: EDGERT_EINVAL /
 * EDGERT_EUNSUPPORTED naming the field. */
int edgert__iso_check_options(const edgert_isolate_options_t *o, unsigned flags,
                              const char *path);
/* The workers of an isolated image whose sealed memfd is `fd`, with the
 * verified dependencies `deps` (edgert__deps_listed; NULL for none) that
 * every worker maps first (both borrowed: they must outlive them). Starts
 * nothing. */
int edgert__iso_new(const edgert_isolate_options_t *o, int fd, const edgert__deps_t *deps,
                    edgert__iso_t **out);
/* Ends every worker (SIGKILL, reaped) and frees. NULL ok. */
void edgert__iso_free(edgert__iso_t *iso);
/* A new function index for a bind. */
unsigned edgert__iso_func_index(edgert__iso_t *iso);
/* 0, or EDGERT_EUNSUPPORTED naming a callback argument or a struct with a
 * pointer field: what cannot travel to a worker. */
int edgert__iso_check_contract(const edgert_contract_t *c);
/* An isolated call: `nvalues` slots (fixed then variadic extras, whose
 * types are `extra`), pointer sizes in `bufs` (NULL: none). */
int edgert__iso_call(edgert_func_t *fn, edgert_value_t *values, size_t nvalues,
                     const edgert_abi_type_t *extra, const edgert_arg_buffer_t *bufs,
                     void *ret);
/* inspect.c: 1 and the symbol's value when `name` is a function (STT_FUNC or
 * STT_GNU_IFUNC) the module in `fd` defines, in an executable segment; 0 if
 * not; a negative EDGERT code for a malformed file. */
int edgert__dyn_find_func(int fd, const char *path, const char *name, uint64_t *value);

/* loader.c: EDGERT_ENOTFOUND for binding `name` of module `path`, a data
 * object (`data`) or another non-function symbol: the one message of the
 * in-process bind and the isolated one (inspect.c). */
int edgert__not_a_function(const char *name, const char *path, int data);

#endif /* EDGERT_LOADER_INTERNAL_H */
