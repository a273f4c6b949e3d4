/*
 * edgert/isolate.h: running a module's functions in sandboxed worker
 * processes, with per-call budgets (docs/isolation.md).
 *
 * In-process containment (edgert/guard.h) catches a fault and carries on;
 * what it cannot contain (heap corruption that kills the process later, a
 * kernel that spins, exit(), abort(), fork, sockets, runaway allocation, a
 * fault inside libc's or ld.so's locks) is contained by running the kernel
 * in another process. A module loaded with edgert_load_options_t.isolation
 * set is verified exactly as any module (copied once into a sealed memfd,
 * hashed, compared; its dependencies too) but is NEVER mapped into this
 * process: none of its code, constructors included, runs here. Its code runs
 * only in worker processes (the edgert-worker program), each of which is
 * handed the same sealed memfd over a Unix socket (no second read of the
 * file) and maps it, so verification covers exactly what runs. Listed
 * dependencies (edgert_load_options_t.dependencies) are verified the same
 * way, planned as for a fresh process (what this process has loaded counts
 * for nothing), and their sealed copies handed to every worker, which maps
 * them before the module; none of them is mapped here either.
 *
 * Binding is as usual (edgert_module_bind: the symbol must be a function
 * the verified bytes define, found in their dynamic symbol table without
 * mapping them). Contracts with a function-pointer argument (a callback) or
 * a struct that holds a pointer field are refused (EDGERT_EUNSUPPORTED,
 * naming the argument or field): a pointer into this process means nothing
 * in the worker. Calls are as usual: edgert_func_call, _call_values and
 * _call_variadic post the call to a worker and wait for it; a pointer
 * argument must then lie in shared memory edgert made (edgert_isolate_shm_alloc, a
 * shared list), which the worker sees at once (zero copy); any other
 * non-NULL pointer needs its size, given through edgert_isolate_call,
 * and is copied in (and back for EDGERT_BUF_OUT).
 *
 * Workers are started on the first call (lazily), reused for every call,
 * and ended (SIGKILL, reaped) by edgert_module_unload / _free. A worker
 * runs one call at a time; with workers > 1 concurrent calls (threads) run
 * in parallel. A worker that dies (a fault, abort(), exit(), a kill, a
 * denied system call) or overruns the timeout (it is then killed with
 * SIGKILL) is reaped and a new one is started for the next call; this
 * process's memory, threads, locks and descriptors are never touched.
 * Isolated modules are never quarantined by a crash (the crash cannot have
 * harmed this process); the nexus counts such calls as failures.
 *
 * fork(): a child does not use its parent's workers; it starts its own on
 * its first call and never signals the parent's.
 *
 * What an isolated module refuses (EDGERT_EUNSUPPORTED, naming why):
 * edgert_module_address_of (its code has no address in this process),
 * edgert_module_reload (there is no mapping to refresh: a crashed worker is
 * replaced by a fresh one anyway), and edgert_module_open_loaded with
 * opts->isolation (lookups by content find in-process mappings only; an
 * isolated copy is never shared with an in-process load of the same bytes).
 * Workers are started by one long-lived thread of libedgert (their
 * PR_SET_PDEATHSIG follows the thread that started them).
 *
 * Threads: every function here is thread-safe.
 */
#ifndef EDGERT_ISOLATE_H
#define EDGERT_ISOLATE_H

#include "loader.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  EDGERT_SANDBOX_NONE = 0,
  /*
   * A seccomp filter (libseccomp), installed in the worker after the module
   * is mapped and before its first call, allows what a computing kernel
   * needs (memory, futexes, clocks, threads, reading files already open or
   * opened read-only, writing to stderr) and denies exec, creating
   * processes, sockets, opening files for writing, ptrace and everything
   * else not allowed: a denied system call ends the call with EDGERT_ECRASH
   * (edgert_crash_t.signo SIGSYS, .syscall names it). Workers always set
   * PR_SET_NO_NEW_PRIVS and PR_SET_PDEATHSIG and keep no descriptor but
   * the channel and stderr.
   */
  EDGERT_SANDBOX_STRICT = 1
} edgert_sandbox_t;

/* Initialise with designated initializers or zero ({0}): fields may be
 * added at the end. */
typedef struct edgert_isolate_options_s {
  double timeout;          /* seconds one call may take; <= 0 (or 0): no limit */
  size_t memory_limit;     /* bytes of address space per worker (RLIMIT_AS, with the
                              allocator's arenas bounded so it means what it says);
                              0: no limit */
  edgert_sandbox_t sandbox;
  unsigned workers;        /* worker processes, 1 to EDGERT_ISOLATE_MAX_WORKERS; 0 = 1 */
  const char *worker_path; /* the edgert-worker program; NULL: $EDGERT_WORKER if set,
                              else the one installed beside libedgert */
} edgert_isolate_options_t;

#define EDGERT_ISOLATE_MAX_WORKERS 64u

/*
 * An isolated load: edgert_module_load_ex with opts->isolation pointing to
 * these options (copied by the load). Errors beyond the load's own:
 * EDGERT_EINVAL (a negative or NaN timeout, workers above the maximum, an
 * unknown sandbox), EDGERT_EUNSUPPORTED (EDGERT_LOAD_ISOLATE_SYMBOLS with
 * isolation: symbols are always the worker's own). The worker program is
 * not started by the load: a missing one is reported by the first call
 * (EDGERT_EIO naming the path).
 *
 * 1 if m was loaded isolated (and then *out, when not NULL, receives its
 * options; worker_path is borrowed from the module), else 0.
 */
EDGERT_EXTERN int edgert_isolate_options(const edgert_module_t *m,
                                          edgert_isolate_options_t *out);

/* A pointer argument's memory, for edgert_isolate_call. */
#define EDGERT_BUF_IN 0x1u  /* copied to the worker before the call */
#define EDGERT_BUF_OUT 0x2u /* copied back after a call that returned */
typedef struct edgert_arg_buffer_s {
  size_t nbytes;  /* bytes the kernel may read or write from the pointer (0 with
                     flags set: an empty buffer, passed as a valid pointer) */
  unsigned flags; /* EDGERT_BUF_*; 0 for arguments that are not pointers */
} edgert_arg_buffer_t;

/*
 * edgert_func_call_values with the size of each pointer argument's memory:
 * bufs[i] for argument i (NULL: none known). For a function of an isolated
 * module, a NULL pointer is passed as NULL; one whose [p, p + nbytes) lies
 * in one shared region (edgert_isolate_shm_alloc, a shared list's storage) is
 * passed by reference, zero copy; any other one is copied into the
 * worker's channel (EDGERT_BUF_IN) and back (EDGERT_BUF_OUT) after the call
 * returns; one without a size is EDGERT_EINVAL naming the argument. A
 * c_char_p (c_wchar_p) without a size is copied as a NUL-terminated string.
 * For an in-process function it is edgert_func_call_values (bufs unused).
 *
 * Returns what edgert_func_call_values returns, and for isolated calls:
 *   EDGERT_ETIMEOUT     the call overran the timeout: the worker was killed
 *                       (SIGKILL) and reaped; the next call starts a new one
 *   EDGERT_ECRASH       the worker died during the call; edgert_last_crash()
 *                       says how (signo, or exit_status for exit(); syscall
 *                       for a denied system call; isolated = 1)
 *   EDGERT_EINTERRUPTED the thread's interrupt check asked to stop
 *                       (edgert_isolate_set_interrupt): the worker was killed
 *   EDGERT_EIO          the worker could not be started (the message names the
 *                       program and why) or its channel failed
 *   EDGERT_ENOMEM
 * Out-buffers are written only when the call returned 0.
 */
EDGERT_EXTERN int edgert_isolate_call(edgert_func_t *fn, edgert_value_t *values,
                                           const edgert_arg_buffer_t *bufs, void *ret);

/*
 * This thread's interrupt check for isolated calls (NULL: none). While a
 * call waits for its worker, `fn(ud)` is called when a signal interrupts
 * the wait and at least every 50 ms; a nonzero return kills the worker and
 * the call returns EDGERT_EINTERRUPTED (for a host whose Ctrl-C handler only
 * sets a flag: CPython's PyErr_CheckSignals). Thread-local; never fails.
 */
typedef int (*edgert_interrupt_fn)(void *ud);
EDGERT_EXTERN void edgert_isolate_set_interrupt(edgert_interrupt_fn fn, void *ud);

typedef struct edgert_isolate_stats_s {
  unsigned long long calls;    /* isolated calls made (every outcome) */
  unsigned long long crashes;  /* worker deaths during a call */
  unsigned long long timeouts; /* calls that overran the timeout */
  unsigned long long respawns; /* workers started after the first of each slot */
  unsigned workers_running;    /* live workers now */
  /* wall time of the last (up to) 1024 calls that returned, in microseconds */
  double latency_p50_us, latency_p90_us, latency_p99_us, latency_max_us;
} edgert_isolate_stats_t;
/* Fills *out for an isolated module. 0, EDGERT_EINVAL (NULL, or not isolated). */
EDGERT_EXTERN int edgert_isolate_stats(const edgert_module_t *m,
                                                edgert_isolate_stats_t *out);

/*
 * Shared memory: `nbytes` (> 0) zeroed bytes, page-aligned, in a mapping of
 * its own (a memfd mapped MAP_SHARED) that isolated workers map when a call
 * passes a pointer into it, so such arguments cost no copy. Returns 0 and
 * the address in *out, or EDGERT_EINVAL, EDGERT_ELIMIT (above 2^40 bytes),
 * EDGERT_ENOMEM, EDGERT_EIO (memfd_create or mmap failed: errno left set).
 * edgert_isolate_shm_free(NULL) does nothing; freeing an address edgert_isolate_shm_alloc
 * did not return is ignored. Freed regions are unmapped in workers too
 * (before their next call).
 */
EDGERT_EXTERN int edgert_isolate_shm_alloc(size_t nbytes, void **out);
EDGERT_EXTERN void edgert_isolate_shm_free(void *p);
/* 1 if [p, p + nbytes) lies inside one live shared region, else 0. */
EDGERT_EXTERN int edgert_isolate_shm_contains(const void *p, size_t nbytes);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_ISOLATE_H */
