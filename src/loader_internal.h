/*
 * loader_internal.h: what src/loader.c (loading, registry, symbols) and
 * src/ffi.c (binding and calls) share. Never installed.
 *
 * Lifetimes: an image is one dlopen'ed copy of one SHA-256, owned by the
 * registry and counted by the handles using it (`refs`, registry lock). A
 * handle (edgert_module_t) counts itself plus the calls in flight in
 * `active`: 1 while loaded, +1 per call; edgert_module_unload flips `state`
 * and drops the 1, and whoever brings `active` to 0 releases the image
 * (exactly once, through `closed`). So an image is never dlclose'd while a
 * call through any handle of it is running.
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
  void *handle;            /* dlopen handle */
  void *linkmap;           /* struct link_map * of the object */
  int nexec;               /* executable PT_LOAD ranges of the mapping */
  uintptr_t exec_lo[8], exec_hi[8];
  size_t refs;             /* handles using it (registry_lock) */
  atomic_int quarantined;  /* a call crashed; cleared by a new load */
  struct edgert__deps_s *deps; /* verified dependencies mapped for it (deps.c), or NULL */
  edgert__image_t *next;   /* registry list */
};

struct edgert_module_s {
  atomic_int state;   /* 0 loaded, 1 unloaded */
  atomic_long active; /* 1 while loaded + calls in flight */
  atomic_int closed;  /* the image was released */
  edgert__image_t *image;
  char *path;
  size_t size;
  unsigned char sha[32];
  char sha_hex[65];
  pthread_mutex_t lock; /* binding and the function list */
  edgert_func_t *funcs; /* every function bound, newest first */
  edgert_module_t *hnext, *hprev; /* every handle not yet freed (registry_lock),
                                     so a fork can take and reset each lock */
};

struct edgert_func_s {
  edgert_module_t *module;
  void *addr;
  edgert__tramp_t tramp; /* the precompiled trampoline, or NULL: libffi */
  unsigned nargs;
  int replaced;          /* a later bind took over the name */
  int regcall;           /* tramp is a register-file trampoline: `fn` is this struct */
  unsigned char slot[EDGERT_MAX_ARGS]; /* regcall: GPR index, or 0x80 | FPR index */
  edgert_func_t *next;
  edgert_contract_t contract;
  ffi_cif cif;
  ffi_type *atypes[EDGERT_MAX_ARGS];
};

/* ffi.c: fills fn->cif, fn->atypes and fn->tramp from fn->contract.
 * 0, or EDGERT_EUNSUPPORTED / EDGERT_EINVAL with a message. */
int edgert__func_prepare(edgert_func_t *fn);

/* loader.c: called by whoever brought m->active to 0: releases the image
 * once. */
void edgert__module_last_out(edgert_module_t *m);

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
int edgert__deps_map(edgert__deps_t *d, int deep);
int edgert__deps_check(edgert__deps_t *d);
void edgert__deps_release(edgert__deps_t *d);

#endif /* EDGERT_LOADER_INTERNAL_H */
