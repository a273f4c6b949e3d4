/*
 * edgert/loader.h: verified module loading and contract-bound calls.
 *
 * edgert_module_load copies a shared object ONCE into memory that nobody can
 * change afterwards (a sealed memfd), checks that it is a 64-bit ELF shared
 * object for this machine, hashes the SEALED bytes with SHA-256 (so a
 * writer that got at the memfd before the seal changes the digest, not just
 * the code), compares the digest with the expected one, and only then maps
 * it with dlopen: no code of a file whose hash does not match ever runs, and
 * no rewrite or swap of the file before or after the load changes what runs.
 * The object dlopen returns must be that memfd and nothing else (a library
 * loaded earlier whose name or DT_SONAME is the memfd's /proc/self/fd/N name
 * would otherwise be returned in its place): EDGERT_EINTEGRITY otherwise.
 *
 * Dependencies (DT_NEEDED) are resolved before the module is mapped, as
 * ld.so would resolve them (DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, the
 * ld.so cache, the default folders; $ORIGIN, $LIB and $PLATFORM expanded
 * against the module's real folder), through the whole closure. One the
 * process already has, or one in a trusted system folder (a folder of the
 * linker's cache or default path whose every component, and the file, is
 * owned by root and not writable by group or others), is left to ld.so.
 * Every other one must be listed in edgert_load_options_t.dependencies: it
 * is read into its own sealed memfd, hashed and compared like the module,
 * and mapped first under its DT_SONAME (which must be its DT_NEEDED name),
 * so the module's lookup finds the verified object; it stays mapped as
 * long as the module. An unlisted one is EDGERT_EINTEGRITY (the message
 * names the file, its folder, its SHA-256 and how to list it), a missing
 * one EDGERT_EIO with errno ENOENT; either way nothing was mapped and no
 * code ran. A module's own constructors run inside edgert_module_load,
 * after the hash check.
 *
 * Requirements: Linux with memfd_create and sealing (3.17+), /proc mounted
 * (the module is opened as /proc/self/fd/N). Where vm.memfd_noexec=2 forbids
 * executable memfds, loading fails with EDGERT_EUNSUPPORTED unless the
 * caller opts into EDGERT_LOAD_ALLOW_TMPFILE (see below).
 *
 * Ownership: edgert_module_t handles belong to the caller
 * (edgert_module_free). Functions bound from a module (edgert_func_t) belong
 * to the module: they stay valid, as memory, until edgert_module_free; after
 * edgert_module_unload calling them returns EDGERT_EUNLOADED.
 *
 * Threads: every function here is thread-safe. Loading and unloading take a
 * process-wide registry lock (briefly; never while module code runs) and
 * mapping new bytes a process-wide load lock; binding takes the module's
 * lock; calls take no lock (one atomic in-flight count per call, so an
 * unload from another thread never unmaps code a call is running: the last
 * call out closes it). edgert_module_free must not race with calls or other
 * uses of the same handle.
 *
 * fork(): libedgert's pthread_atfork handlers leave every lock of the core
 * usable in the child, whatever other threads were doing (docs/loader.md).
 * A call in flight on another thread at the fork never returns in the
 * child, so that mapping is never released there.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_LOADER_H
#define EDGERT_LOADER_H

#include "abi.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A verified, loaded module (one per successful load: two loads of the same
 * bytes give two handles sharing one mapping). */
typedef struct edgert_module_s edgert_module_t;
/* A module function bound by a contract; owned by its module. */
typedef struct edgert_func_s edgert_func_t;

/* The default module size limit (edgert_load_options_t.max_size overrides it). */
#define EDGERT_MODULE_MAX_SIZE_DEFAULT ((size_t)1 << 30) /* 1 GiB */

/* Load flags. */
/* Where vm.memfd_noexec=2 forbids executable memfds, fall back to an
 * unnamed O_TMPFILE file (mode 0700) in $TMPDIR or /tmp. Weaker: that file
 * cannot be sealed, so another process of the same user could rewrite it
 * between the hash check and the mapping. Off by default. */
#define EDGERT_LOAD_ALLOW_TMPFILE 0x1u
/* Isolated symbols: map with RTLD_DEEPBIND, so the module's references to
 * symbols it defines itself bind to its own definitions, before any
 * LD_PRELOAD or RTLD_GLOBAL library that defines the same names (ELF's
 * default lets those interpose on the module's exported functions, even on
 * its internal calls to them; see edgert_interposable_calls). The module's
 * dependencies are searched before the global scope too. Refused
 * (EDGERT_EUNSUPPORTED) in a process with the AddressSanitizer,
 * ThreadSanitizer, MemorySanitizer or HWASan runtime, whose dlopen ends the
 * process on RTLD_DEEPBIND. The same bytes loaded with and without this flag
 * are two mappings. */
#define EDGERT_LOAD_ISOLATE_SYMBOLS 0x2u

/* A dependency the caller vouches for: `name` is its DT_NEEDED name, its
 * file name, or a path (matched against the resolved file's real path);
 * `sha256_hex` the SHA-256 its bytes must have (64 hex digits). */
typedef struct edgert_dependency_s {
  const char *name;
  const char *sha256_hex;
} edgert_dependency_t;

/* Initialise with designated initializers or zero ({0}): fields may be
 * added at the end. */
typedef struct edgert_load_options_s {
  size_t max_size; /* files larger than this are refused (EDGERT_ELIMIT); 0 = default */
  unsigned flags;  /* EDGERT_LOAD_* */
  /* Dependencies that may be loaded verified (borrowed for the call; the
   * load copies what it keeps). NULL/0: none, so only dependencies the
   * process has or trusted system ones are accepted. Each applies to the
   * whole closure; one the closure does not need is ignored. */
  const edgert_dependency_t *dependencies;
  size_t ndependencies;
  /* Process isolation (edgert/isolate.h): NULL = in-process. Copied by the load. */
  const struct edgert_isolate_options_s *isolation;
} edgert_load_options_t;

/*
 * Loads the shared object at `path` after verifying it.
 *
 * `expected_sha256_hex`: 64 hex digits (either case) or NULL to skip the
 * comparison (the digest is still computed: edgert_module_sha256). The
 * comparison is constant-time.
 *
 * Returns 0 and a new handle in *out, or (nothing loaded, *out untouched):
 *   EDGERT_EINVAL      NULL path/out, or a malformed expected hash (not
 *                      exactly 64 hex digits), or a malformed dependency
 *                      (NULL or empty name, hash not 64 hex digits)
 *   EDGERT_EIO         the file cannot be opened or read, or is not a regular
 *                      file (directory, FIFO, device); errno is left set.
 *                      Also a dependency not found anywhere the dynamic
 *                      linker would look (errno ENOENT; the message names
 *                      it and the folders searched)
 *   EDGERT_ELIMIT      the file is larger than the size limit
 *   EDGERT_EFORMAT     empty, not ELF, not 64-bit, wrong byte order, not
 *                      ET_DYN, not for this CPU, or refused by the dynamic
 *                      linker (message says which and why)
 *   EDGERT_EINTEGRITY  the SHA-256 differs from the expected one, or the
 *                      in-memory copy was tampered with before its seal
 *                      (another process changed its size or maps it
 *                      writable), or the dynamic linker would return (or
 *                      returned) another object than the verified copy: the
 *                      message names it. None of the file's code ran.
 *                      Also a dependency that must be verified and is not
 *                      listed, is listed with another SHA-256, or does not
 *                      answer to its DT_NEEDED name (DT_SONAME): no code of
 *                      the module or its dependencies ran.
 *   EDGERT_EUNSUPPORTED executable memfds are forbidden (vm.memfd_noexec=2),
 *                      or EDGERT_LOAD_ISOLATE_SYMBOLS under a sanitizer
 *                      runtime that refuses RTLD_DEEPBIND
 *   EDGERT_ENOMEM
 *
 * The same bytes (same SHA-256, same EDGERT_LOAD_ISOLATE_SYMBOLS) already
 * loaded by this process are not mapped again: the new handle shares that
 * mapping, unless a call on it crashed (edgert_module_quarantined): a
 * crashed copy is never shared, the new handle gets a fresh copy, and the
 * crashed one stays quarantined for the handles that use it until they
 * reload (edgert_module_reload). Different bytes always get their own
 * mapping, whatever the path.
 * May run foreign code: the module's constructors (and its dependencies'),
 * on a first load of these bytes.
 */
EDGERT_EXTERN int edgert_module_load(const char *path,
                                     const char *expected_sha256_hex,
                                     edgert_module_t **out);
/* edgert_module_load with options (NULL = defaults). */
EDGERT_EXTERN int edgert_module_load_ex(const char *path,
                                        const char *expected_sha256_hex,
                                        const edgert_load_options_t *opts,
                                        edgert_module_t **out);
/*
 * A new handle on the module with SHA-256 `sha256_hex` that this process
 * has already loaded (by any handle still alive, in the binding mode
 * opts->flags selects: EDGERT_LOAD_ISOLATE_SYMBOLS or not; NULL = not),
 * without opening, reading or hashing any file: the process-wide lookup by
 * content. `name` becomes the handle's path (edgert_module_path), for
 * messages only. The handle shares the loaded mapping and its quarantine;
 * unlike edgert_module_load it does NOT clear a quarantine (nothing was
 * verified again). Runs no foreign code.
 *
 * Returns 0 and a new handle in *out, or (*out untouched):
 *   EDGERT_EINVAL      NULL argument, empty name, unknown flags, or a hash
 *                      that is not exactly 64 hex digits
 *   EDGERT_ENOTFOUND   no module with these bytes is loaded in that mode
 *                      (the message names the hash)
 *   EDGERT_ENOMEM
 */
EDGERT_EXTERN int edgert_module_open_loaded(const char *sha256_hex,
                                            const char *name,
                                            const edgert_load_options_t *opts,
                                            edgert_module_t **out);

/*
 * Unloads: from now on every call through this handle's functions returns
 * EDGERT_EUNLOADED without entering module code. The mapping is released
 * once no other handle of the same bytes uses it and the last call in flight
 * has returned (dlclose then runs the module's destructors: foreign code,
 * possibly on the thread of that last call). Idempotent; NULL is ignored.
 * The handle and its functions stay valid as memory until edgert_module_free.
 */
EDGERT_EXTERN void edgert_module_unload(edgert_module_t *m);
/* 1 if edgert_module_unload was called on this handle, else 0. */
EDGERT_EXTERN int edgert_module_unloaded(const edgert_module_t *m);
/* Unloads (if needed) and frees the handle and its bound functions. NULL ok.
 * No call through its functions may be in progress. */
EDGERT_EXTERN void edgert_module_free(edgert_module_t *m);

/*
 * The dependencies edgert verified and mapped for m (the listed ones, see
 * edgert_load_options_t.dependencies; not those found in the process or a
 * trusted system folder): how many, and item i as its DT_NEEDED name, real
 * path and SHA-256 (borrowed strings, valid until m is reloaded, unloaded
 * or freed). edgert_module_dependency returns 0, EDGERT_EINVAL,
 * EDGERT_EUNLOADED or EDGERT_ENOTFOUND (i out of range). For pickling by
 * content (docs/distributed.md): the dependencies travel with the module.
 */
EDGERT_EXTERN size_t edgert_module_dependency_count(const edgert_module_t *m);
EDGERT_EXTERN int edgert_module_dependency(const edgert_module_t *m, size_t i, const char **name,
                                           const char **path, const char **sha256_hex);

/*
 * What a load of `path` would do with each dependency, without loading or
 * running anything: the dependency closure resolved exactly as
 * edgert_module_load_ex resolves it (the same search, the same trusted
 * folder rule, the same listed dependencies from opts), but reported
 * instead of refused. `visit` is called once per object of the closure, a
 * needing object before its own dependencies; dependencies in the process
 * or in a trusted system folder are not descended into (a load leaves them
 * to ld.so), listed and unlisted ones are. A non-zero return from `visit`
 * stops the walk and is returned. With opts->isolation set the closure is
 * the worker's, as an isolated load plans it: nothing this process has
 * loaded counts as in the process. Returns 0, or an EDGERT code for what a
 * report cannot go around (path unreadable or not an ELF object of this
 * process's machine, out of memory, limits). The strings of `dep` are
 * borrowed for the call only. `visit` runs under the loader's lock: it must
 * not load, reload or unload a module.
 */
typedef enum {
  EDGERT_DEP_IN_PROCESS = 1, /* the process has an object of that name: ld.so uses it */
  EDGERT_DEP_TRUSTED = 2,    /* in a trusted system folder: left to ld.so */
  EDGERT_DEP_LISTED = 3,     /* listed in opts, the file's hash matches */
  EDGERT_DEP_MISMATCH = 4,   /* listed in opts, the file's hash differs: a load refuses */
  EDGERT_DEP_UNLISTED = 5,   /* neither: a load refuses it until it is listed */
  EDGERT_DEP_NOT_FOUND = 6,  /* not found: a load fails */
  EDGERT_DEP_BAD_SONAME = 7  /* listed and its hash matches, but its DT_SONAME is not the
                                DT_NEEDED name: a load refuses it (ld.so would pass over
                                the verified copy) */
} edgert_dep_kind_t;

typedef struct {
  const char *name;       /* the DT_NEEDED entry */
  const char *needed_by;  /* the object whose DT_NEEDED it is (path as given) */
  const char *path;       /* real path found; for IN_PROCESS the process's object; NULL if
                             NOT_FOUND */
  const char *via;        /* "DT_RPATH", "LD_LIBRARY_PATH", "DT_RUNPATH", "ld.so.cache",
                             "default folder", "path" (a name with a '/'), "process", or NULL */
  edgert_dep_kind_t kind;
  const char *sha256_hex; /* the file's SHA-256 (LISTED, MISMATCH, UNLISTED), else NULL */
  const char *reason;     /* UNLISTED: why it is not trusted; MISMATCH: the listed hash;
                             NOT_FOUND: the folders searched; BAD_SONAME: its DT_SONAME
                             ("" for none); else NULL */
  int depth;              /* 0 for the module's own DT_NEEDED entries */
} edgert_dependency_report_t;

typedef int (*edgert_dependency_visit_fn)(const edgert_dependency_report_t *dep, void *userdata);

EDGERT_EXTERN int edgert_module_plan_dependencies(const char *path,
                                                  const edgert_load_options_t *opts,
                                                  edgert_dependency_visit_fn visit,
                                                  void *userdata);

/* The path loaded (owned by the handle): the one given to
 * edgert_module_load, or the one a library name resolved to. */
EDGERT_EXTERN const char *edgert_module_path(const edgert_module_t *m);
/*
 * 1 if the module is the process's own instance of its file rather than a
 * private verified copy: the process mapped that file (same device and
 * inode) before the load, or it is a library of the C library's family
 * (libc, ld.so, libm, libpthread, libdl, librt, ...), which is never
 * copied. The on-disk file's SHA-256 was checked; the mapping itself was
 * made by the dynamic linker, not from the verified bytes (docs/loader.md).
 * 0 otherwise, and for NULL. Stays valid after unload.
 */
EDGERT_EXTERN int edgert_module_shared_with_process(const edgert_module_t *m);
/*
 * Resolves a library name as edgert_module_load does for an argument
 * without '/': LD_LIBRARY_PATH (not in set-user-ID processes), the dynamic
 * linker's cache (/etc/ld.so.cache), then the folders ld.so searches for
 * the main program. "libz.so.1" is looked up as is; a name without ".so"
 * is a short name as ctypes.util.find_library takes it ("z": libz.so.<N>,
 * the highest version, else libz.so). A name with '/' is copied unchanged.
 * Writes the path (NUL-terminated) into `out` (`size` bytes).
 * Returns 0, EDGERT_EINVAL (NULL or empty name, NULL out), EDGERT_EIO
 * with errno ENOENT (not found: the message lists the folders searched),
 * EDGERT_EFORMAT (the name resolves to a linker script: the message names
 * the library it stands for), EDGERT_ELIMIT (`size` too small),
 * EDGERT_ENOMEM. Reads headers of candidate files; maps and runs nothing.
 */
EDGERT_EXTERN int edgert_find_library(const char *name, char *out, size_t size);
/* 64 lowercase hex digits: the SHA-256 of the loaded bytes (owned by the handle). */
EDGERT_EXTERN const char *edgert_module_sha256(const edgert_module_t *m);
/* The size in bytes of the loaded file. */
EDGERT_EXTERN size_t edgert_module_size(const edgert_module_t *m);
/* 1 if the module was loaded with EDGERT_LOAD_ISOLATE_SYMBOLS, else 0 (not
 * process isolation: that is edgert_isolate_options, edgert/isolate.h). */
EDGERT_EXTERN int edgert_module_symbols_isolated(const edgert_module_t *m);
/*
 * Compares the loaded bytes' SHA-256 with `hex` in constant time.
 * Returns 1 if equal, 0 if not, EDGERT_EINVAL if `hex` is not 64 hex digits.
 * Works after unload too (it compares the recorded digest).
 */
EDGERT_EXTERN int edgert_module_verify(const edgert_module_t *m,
                                       const char *hex);
/*
 * 1 if a call into this handle's current mapping crashed (EDGERT_ECRASH),
 * through this handle or another one sharing the mapping; 0 otherwise
 * (and after edgert_module_reload, which gives the handle a fresh mapping).
 * While quarantined, every call returns EDGERT_EQUARANTINED without
 * entering module code. Quarantine belongs to the crashed copy: another
 * load of the same bytes neither lifts it nor is refused by it.
 */
EDGERT_EXTERN int edgert_module_quarantined(const edgert_module_t *m);

/*
 * Recovery: maps a fresh verified copy of the module under the same handle.
 * `path` (NULL = the path it was loaded from) is read once into sealed
 * memory and hashed as by edgert_module_load, and its SHA-256 must be the
 * module's (edgert_module_sha256): the identity of a handle never changes.
 * The copy is always a new mapping (never one shared with other handles),
 * with its own state, its constructors run, and it is not quarantined.
 *
 * Every edgert_func_t bound before stays valid and calls the fresh copy
 * from the next call on (a function keeps its offset in the object, and
 * each call computes its address in the mapping it holds). Calls in flight
 * finish on the old mapping, which is released (dlclose: its destructors
 * run, possibly on the thread of the last such call) when the last of them
 * returns. Other handles sharing the old mapping keep it.
 * The handle's generation (edgert_module_generation) goes up by one; it is
 * written to *generation when that is not NULL.
 *
 * Returns 0, or (the handle keeps its mapping): EDGERT_EINVAL (NULL m or
 * empty path), EDGERT_EUNLOADED, EDGERT_EINTEGRITY (another SHA-256, or a
 * bound function resolves elsewhere in the fresh copy; none of the file's
 * code ran in the first case), and edgert_module_load's other errors.
 * Not to be called from inside a call of the same module through
 * edgert_func_call_serialized (that call is not counted). Thread-safe
 * against calls, lookups, binds, unloads and other reloads.
 * May run foreign code: the fresh copy's constructors, and the old one's
 * destructors when no call is in flight on it.
 */
EDGERT_EXTERN int edgert_module_reload(edgert_module_t *m, const char *path,
                                       unsigned long *generation);
/* The generation of the handle's current mapping: 1 after the load, +1 per
 * edgert_module_reload. 0 for NULL. */
EDGERT_EXTERN unsigned long edgert_module_generation(const edgert_module_t *m);

typedef struct edgert_module_stats_s {
  unsigned long generation;         /* of the current mapping */
  unsigned long crashed_generation; /* the mapping a call last crashed on; 0: none */
  size_t live_mappings;             /* this handle's mappings not yet released:
                                       the current one plus older ones that
                                       still have calls in flight */
  size_t calls_in_flight;           /* counted calls running, on every mapping */
  size_t old_calls_in_flight;       /* of those, on mappings a reload retired */
  int quarantined;                  /* edgert_module_quarantined */
  int unloaded;                     /* edgert_module_unloaded */
} edgert_module_stats_t;
/* Fills *out. 0 or EDGERT_EINVAL. Runs no foreign code. */
EDGERT_EXTERN int edgert_module_stats(const edgert_module_t *m, edgert_module_stats_t *out);

/*
 * The address of a symbol DEFINED IN THIS MODULE (function or data object;
 * not one found in its dependencies, not thread-local). Returns 0,
 * EDGERT_ENOTFOUND (the message names the symbol and the module),
 * EDGERT_EUNLOADED, or EDGERT_EINVAL. Runs no foreign code.
 */
EDGERT_EXTERN int edgert_module_address_of(edgert_module_t *m,
                                           const char *name, void **out);

/*
 * Binds the function `c->function_name` defined in the module itself
 * (STT_FUNC, inside this module's mapping: libc's `system`, reachable
 * through dependencies, is refused) with contract `c` (copied).
 * Prepares the call once: a precompiled trampoline for common scalar
 * signatures (up to 4 arguments of integer, pointer, float or double type,
 * up to 6 of one kind), a register-file trampoline when every argument
 * travels in a register (x86-64: up to 6 integer/pointer and 8 float/double
 * arguments), a libffi call interface for the rest.
 * Binding the same name again replaces what edgert_module_function returns;
 * earlier edgert_func_t stay valid and keep their contract.
 * Returns 0 and the function (owned by the module) in *out (out may be NULL),
 * or EDGERT_ENOTFOUND (names the symbol), EDGERT_EUNLOADED, EDGERT_EINVAL,
 * EDGERT_EUNSUPPORTED, EDGERT_ENOMEM. Runs no foreign code.
 */
EDGERT_EXTERN int edgert_module_bind(edgert_module_t *m,
                                     const edgert_contract_t *c,
                                     edgert_func_t **out);
/* The function last bound under `name`, or NULL. Borrowed from the module. */
EDGERT_EXTERN edgert_func_t *edgert_module_function(edgert_module_t *m,
                                                    const char *name);

/* The bound function's name, contract, module and address (all borrowed;
 * the address is the one in the module's current mapping). */
EDGERT_EXTERN const char *edgert_func_name(const edgert_func_t *fn);
EDGERT_EXTERN const edgert_contract_t *edgert_func_contract(const edgert_func_t *fn);
EDGERT_EXTERN edgert_module_t *edgert_func_module(const edgert_func_t *fn);
EDGERT_EXTERN void *edgert_func_address(const edgert_func_t *fn);
/* 1 if calls go through a precompiled trampoline (an exact prototype, or
 * the register-file one for signatures whose arguments all travel in
 * registers), 0 if through libffi (stack arguments, long double). */
EDGERT_EXTERN int edgert_func_is_fast(const edgert_func_t *fn);

/*
 * Calls the function. `args[i]` points to the value of argument i, of
 * exactly its contract type (libffi "avalues" style; a pointer argument's
 * slot holds the pointer; a struct argument's entry points to its bytes).
 * `ret` points to at least 16 bytes (and at least the struct's size for a
 * struct return), suitably aligned for long double; it receives the return
 * value as its contract type (nothing for void; may then be NULL, as may a
 * struct return the caller does not want).
 * Returns 0, or without entering module code EDGERT_EUNLOADED /
 * EDGERT_EQUARANTINED (messages name the function and the module), or
 * EDGERT_ECRASH when the crash guard contained a fault inside the call
 * (edgert_last_crash() describes it; the mapping the call ran on is then
 * quarantined, and edgert_module_stats names its generation).
 * Runs foreign code: the kernel. Takes no lock.
 */
EDGERT_EXTERN int edgert_func_call(edgert_func_t *fn, void **args, void *ret);

/*
 * Argument slots for edgert_func_call_values: one per argument, integers
 * widened to 64 bits (signed types sign-extended into .i, unsigned types and
 * bool zero-extended into .u), float in .f, double in .d, long double in
 * .ld, pointers (c_char_p, c_void_p, POINTER) in .p, and a struct passed
 * by value as the address of its bytes in .p (read during the call only).
 */
typedef union edgert_value_u {
  int64_t i;
  uint64_t u;
  float f;
  double d;
  long double ld;
  void *p;
} edgert_value_t;

/* edgert_func_call with arguments in widened slots: the fastest entry,
 * no per-argument conversion. `values` may be NULL for no arguments. */
EDGERT_EXTERN int edgert_func_call_values(edgert_func_t *fn,
                                          edgert_value_t *values, void *ret);
/*
 * edgert_func_call_values without the in-flight count, for callers that
 * guarantee by their own lock that edgert_module_unload of this module
 * cannot run during the call and that the kernel cannot reach code that
 * unloads it (e.g. CPython holding the GIL for the whole call, with its own
 * re-entrancy check). Still refuses unloaded and quarantined modules.
 */
EDGERT_EXTERN int edgert_func_call_serialized(edgert_func_t *fn,
                                              edgert_value_t *values,
                                              void *ret);

/*
 * Calls a variadic function (a contract made with
 * edgert_contract_set_variadic): `values` holds `nvalues` widened slots, the
 * contract's nargs fixed arguments then the extra ones, whose types are
 * `extra` (nvalues - nargs of them; NULL when there are none). Each extra
 * type gets C's default argument promotion (edgert_abi_type_promote): a
 * c_float slot's `f` is passed as a double, narrow integers as int, so a
 * caller fills slots as for any call. One libffi cif is prepared per
 * distinct promoted extra-type list and kept (the first 16 lists per
 * function; later ones are prepared on each call and not kept). Counted like
 * edgert_func_call_values; may run foreign code. Returns 0, or
 * EDGERT_EINVAL (not a variadic contract, fewer values than fixed arguments,
 * NULL or void extra type: the message names the extra argument),
 * EDGERT_ELIMIT (more than EDGERT_MAX_ARGS values), EDGERT_EUNSUPPORTED
 * (libffi cannot prepare the list), EDGERT_ENOMEM, and the call's own codes.
 */
EDGERT_EXTERN int edgert_func_call_variadic(edgert_func_t *fn,
                                            edgert_value_t *values,
                                            size_t nvalues,
                                            const edgert_abi_type_t *extra,
                                            void *ret);

/*
 * errno of contracts with use_errno set, as ctypes' use_errno: this
 * thread's saved copy is stored into errno right before each such call and
 * errno is saved into it right after (on the calling thread; other
 * contracts neither read nor write it). edgert_get_errno returns the saved
 * copy; edgert_set_errno sets it and returns the previous value. Thread-safe
 * (one copy per thread, 0 in a new thread); never fails.
 */
EDGERT_EXTERN int edgert_get_errno(void);
EDGERT_EXTERN int edgert_set_errno(int value);

/*
 * Interposable references: the module at `path` refers, through its PLT or
 * GOT, to symbols it defines itself with default visibility. ELF resolves
 * those references through the process's global scope first, so an
 * LD_PRELOAD library, the main program or an RTLD_GLOBAL library defining
 * the same name takes them over, even the module's internal calls (a
 * verified module then runs unverified code). Building with
 * -fvisibility=hidden (exporting only the entry points) or linking with
 * -Wl,-Bsymbolic binds them inside the module; EDGERT_LOAD_ISOLATE_SYMBOLS
 * does it at load time.
 *
 * Reads the file's dynamic section (no code runs, nothing is mapped) and
 * calls `fn(ud, name, how)` once per such symbol, in symbol-table order;
 * `how` is EDGERT_INTERPOSE_CALL and/or EDGERT_INTERPOSE_REF. A nonzero
 * return from `fn` stops the walk and is returned. `name` is valid during
 * the call only.
 * Returns 0, fn's nonzero value, or EDGERT_EINVAL (NULL path or fn),
 * EDGERT_EIO (cannot open or read; not a regular file), EDGERT_ELIMIT
 * (larger than EDGERT_MODULE_MAX_SIZE_DEFAULT), EDGERT_EFORMAT (not a 64-bit
 * ELF shared object for this machine, or a malformed dynamic section: the
 * message says what), EDGERT_ENOMEM. Runs no foreign code except `fn`.
 */
#define EDGERT_INTERPOSE_CALL 0x1u /* called through the PLT (a JUMP_SLOT relocation) */
#define EDGERT_INTERPOSE_REF 0x2u  /* address loaded from the GOT or data (GLOB_DAT, ...) */
typedef int (*edgert_interposable_fn)(void *ud, const char *name, unsigned how);
EDGERT_EXTERN int edgert_interposable_calls(const char *path, edgert_interposable_fn fn,
                                            void *ud);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_LOADER_H */
