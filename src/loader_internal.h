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
  int deep;             /* loaded with EDGERT_LOAD_ISOLATE_SYMBOLS */
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

#endif /* EDGERT_LOADER_INTERNAL_H */
