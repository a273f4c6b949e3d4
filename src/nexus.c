/*
 * nexus.c: named kernels that route each call to a compiled side or to a
 * reference, count every route, quarantine a compiled side that keeps
 * failing, and swap compiled versions while other threads call.
 *
 * Invariants. Each kernel has one mutex; it guards the history, the state
 * and the counters, and is never held while foreign code runs (guard,
 * compiled side, reference, comparison, observer, release). A version is
 * reference counted under that mutex: one reference while it is in the
 * history, one per call in flight on it; whoever drops the last one frees
 * it, after unlocking, and only then runs its `release`. So no call ever
 * runs on a freed version, and a swap never waits for calls in flight. The
 * current version is always the newest entry of the history, which is never
 * empty. Consecutive failures and quarantine only follow calls on the
 * current version: a failure of a version that was swapped out meanwhile is
 * counted but cannot quarantine its successor; neither does a call that a
 * signal sent to its thread interrupted (the kernel is not to blame). A
 * compiled side from an isolated module (edgert/isolate.h) is called the
 * same way: its timeouts (EDGERT_ETIMEOUT) and worker deaths (EDGERT_ECRASH,
 * isolated) are failures that count toward the quarantine like any other
 * (its module is never quarantined: the crash happened in another
 * process); a call the host's interrupt check stopped (EDGERT_EINTERRUPTED)
 * is abandoned, neither a failure nor a fallback, and returns that code. While
 * the process is unhealthy (edgert_process_healthy) no call enters compiled
 * code: the reference serves it, observed as EDGERT_NEXUS_UNHEALTHY. The
 * nexus itself has one
 * mutex for its list of kernels; kernels are never removed before the nexus
 * is freed, so a kernel pointer stays valid for the nexus's lifetime.
 *
 * The policy (routing, counters, failures and quarantine, version numbers,
 * validation sampling, option rules) is edgert/nexus_policy.h, shared with
 * the Python Kernel: every edgert_nexus_policy_* transition here runs under
 * the kernel's mutex; this file adds the versions' memory, the observer and
 * the comparison of results (edgert_agree for floats).
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define HISTORY_DEFAULT EDGERT_NEXUS_HISTORY_DEFAULT
#define HISTORY_MAX EDGERT_NEXUS_HISTORY_MAX
/* The validation buffer: large enough for every scalar result, and for a
 * libffi return slot widened to ffi_arg. */
#define SHADOW_MIN 32u

typedef struct version_s {
  edgert_nexus_impl_t impl;
  uint64_t number;
  unsigned refs;          /* under the kernel's lock */
  struct version_s *next; /* free list while being released */
} version_t;

struct edgert_kernel_s {
  char *name;
  pthread_mutex_t lock;
  version_t **history; /* [0] oldest ... [nversions - 1] current */
  unsigned nversions;
  edgert_nexus_fn_t ref;
  void *ref_ud;
  edgert_nexus_options_t opts;
  edgert_nexus_policy_t pol; /* routing, state, counters: under lock */
};

struct edgert_nexus_s {
  pthread_mutex_t lock;
  edgert_kernel_t **kernels;
  size_t n, cap;
  edgert_nexus_t *next, *prev; /* every nexus, under nexus_list_lock */
};

static pthread_mutex_t nexus_list_lock = PTHREAD_MUTEX_INITIALIZER;
static edgert_nexus_t *nexus_list;

/* fork.c's handlers: the list, then each nexus and each of its kernels;
 * the child releases them as the parent does (plain mutexes taken by the
 * forking thread, which owns them in the child too). */
void edgert__nexus_fork_prepare(void) {
  pthread_mutex_lock(&nexus_list_lock);
  for (edgert_nexus_t *nx = nexus_list; nx != NULL; nx = nx->next) {
    pthread_mutex_lock(&nx->lock);
    for (size_t i = 0; i < nx->n; i++)
      pthread_mutex_lock(&nx->kernels[i]->lock);
  }
}

void edgert__nexus_fork_parent(void) {
  for (edgert_nexus_t *nx = nexus_list; nx != NULL; nx = nx->next) {
    for (size_t i = 0; i < nx->n; i++)
      pthread_mutex_unlock(&nx->kernels[i]->lock);
    pthread_mutex_unlock(&nx->lock);
  }
  pthread_mutex_unlock(&nexus_list_lock);
}

void edgert__nexus_fork_child(void) { edgert__nexus_fork_parent(); }

void edgert_nexus_options_init(edgert_nexus_options_t *o) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof *o);
  o->fallback_enabled = 1;
  o->max_failures = 3;
  o->validate_every = 0;
  o->tolerance = 1e-9;
  o->strict = 0;
  o->history = HISTORY_DEFAULT;
  o->ret_type = EDGERT_CT_VOID;
}

/* ---- versions ---------------------------------------------------------- */

static int check_impl(const edgert_nexus_impl_t *impl, const char *what) {
  if (impl == NULL)
    return edgert__error(EDGERT_EINVAL, "%s: the compiled side is NULL", what);
  if ((impl->func == NULL) == (impl->fn == NULL))
    return edgert__error(EDGERT_EINVAL,
                         "%s: the compiled side must set exactly one of "
                         "func and fn",
                         what);
  return 0;
}

static version_t *version_new(const edgert_nexus_impl_t *impl) {
  version_t *v = edgert__calloc(1, sizeof *v);
  if (v != NULL) {
    v->impl = *impl;
    v->refs = 1; /* the history's */
  }
  return v;
}

/* Drops one reference under the kernel's lock; returns `v` when it was the
 * last, for version_free_list() after unlocking. */
static version_t *version_unref_locked(version_t *v) {
  return --v->refs == 0 ? v : NULL;
}

/* Frees a chain of versions linked by `next`. Runs their `release`. */
static void version_free_list(version_t *v) {
  while (v != NULL) {
    version_t *next = v->next;
    if (v->impl.release != NULL)
      v->impl.release(v->impl.ud);
    edgert__free(v);
    v = next;
  }
}

/* ---- kernels ----------------------------------------------------------- */

static int check_options(const edgert_nexus_options_t *o, const char *name) {
  int value_bad;
  long long value;
  const char *problem = edgert_nexus_policy_option_problem(
      o->max_failures, o->validate_every, o->tolerance, o->history,
      &value_bad, &value);
  if (problem != NULL && value_bad)
    return edgert__error(EDGERT_EINVAL, "kernel '%s': %s, not %lld", name,
                         problem, value);
  if (problem != NULL)
    return edgert__error(EDGERT_EINVAL, "kernel '%s': %s, got %g", name, problem,
                         o->tolerance);
  if ((int)o->ret_type < 0 || o->ret_type >= EDGERT_CT__COUNT)
    return edgert__error(EDGERT_EINVAL, "kernel '%s': ret_type %d is not a type",
                         name, (int)o->ret_type);
  return 0;
}

static size_t scalar_size(edgert_ctype_t code) {
  edgert_abi_type_t t = {.code = code, .pointee = EDGERT_CT_VOID, .depth = 0};
  if (code == EDGERT_CT_FUNCPTR)
    return sizeof(void *);
  if (code == EDGERT_CT_POINTER) {
    t.pointee = EDGERT_CT_CHAR;
    t.depth = 1;
  }
  return edgert_abi_type_size(&t);
}

static void kernel_free(edgert_kernel_t *k) {
  version_t *dead = NULL;
  for (unsigned i = 0; i < k->nversions; i++) {
    version_t *v = version_unref_locked(k->history[i]);
    if (v != NULL) {
      v->next = dead;
      dead = v;
    }
  }
  version_free_list(dead);
  pthread_mutex_destroy(&k->lock);
  edgert__free(k->history);
  edgert__free(k->name);
  edgert__free(k);
}

static int kernel_new(const char *name, const edgert_nexus_impl_t *compiled,
                      edgert_nexus_fn_t reference, void *reference_ud,
                      const edgert_nexus_options_t *opts,
                      edgert_kernel_t **out) {
  edgert_kernel_t *k = edgert__calloc(1, sizeof *k);
  if (k == NULL)
    return edgert__error(EDGERT_ENOMEM, "kernel '%s': out of memory", name);
  k->opts = *opts;
  k->ref = reference;
  k->ref_ud = reference_ud;
  k->name = edgert__strdup(name);
  k->history = edgert__calloc(opts->history, sizeof *k->history);
  version_t *v = k->name && k->history ? version_new(compiled) : NULL;
  if (v == NULL || pthread_mutex_init(&k->lock, NULL) != 0) {
    edgert__free(v);
    edgert__free(k->history);
    edgert__free(k->name);
    edgert__free(k);
    return edgert__error(EDGERT_ENOMEM, "kernel '%s': out of memory", name);
  }
  k->pol.fallback_enabled = opts->fallback_enabled != 0;
  k->pol.strict = opts->strict != 0;
  k->pol.max_failures = opts->max_failures;
  k->pol.validate_every = opts->validate_every;
  k->pol.history = opts->history;
  k->pol.tolerance = opts->tolerance;
  edgert_nexus_policy_start(&k->pol);
  v->number = 1;
  k->history[0] = v;
  k->nversions = 1;
  /* The result's type for shadow validation: the contract's unless given. */
  if (k->opts.ret_type == EDGERT_CT_VOID && k->opts.ret_size == 0 &&
      compiled->func != NULL) {
    const edgert_contract_t *c = edgert_func_contract(compiled->func);
    if (c != NULL) {
      k->opts.ret_type = c->ret.code;
      k->opts.ret_size = edgert_abi_type_size(&c->ret);
    }
  }
  if (k->opts.ret_size == 0 && k->opts.ret_type != EDGERT_CT_VOID)
    k->opts.ret_size = scalar_size(k->opts.ret_type);
  *out = k;
  return 0;
}

const char *edgert_kernel_name(const edgert_kernel_t *k) {
  return k != NULL ? k->name : NULL;
}

void edgert_kernel_stats(edgert_kernel_t *k, edgert_nexus_stats_t *out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof *out);
  if (k == NULL)
    return;
  pthread_mutex_lock(&k->lock);
  const edgert_nexus_policy_t *p = &k->pol;
  out->calls = p->calls;
  out->compiled = p->compiled;
  out->guard_misses = p->guard_misses;
  out->fallbacks = p->fallbacks;
  out->failures = p->failures;
  out->mismatches = p->mismatches;
  out->validations = p->validations;
  out->version = p->version;
  out->consecutive_failures = p->consecutive_failures;
  out->state = p->state;
  out->versions = p->versions;
  out->running = edgert_nexus_policy_running(p);
  pthread_mutex_unlock(&k->lock);
}

static void observe(edgert_kernel_t *k, edgert_nexus_event_t ev,
                    uint64_t version, int err) {
  if (k->opts.observer != NULL)
    k->opts.observer(k->opts.observer_ud, k, ev, version, err);
}

static void version_drop(edgert_kernel_t *k, version_t *v);

void edgert_kernel_reset(edgert_kernel_t *k) {
  if (k == NULL)
    return;
  /* A compiled side whose module mapping crashed would only be quarantined
   * again at its next call: reload it first (a fresh verified copy, outside
   * the lock: its constructors run), so the kernel is active on it. */
  pthread_mutex_lock(&k->lock);
  version_t *v = k->history[k->nversions - 1];
  v->refs++;
  pthread_mutex_unlock(&k->lock);
  int err = 0;
  edgert_module_t *m = v->impl.func != NULL ? edgert_func_module(v->impl.func) : NULL;
  if (m != NULL && edgert_module_quarantined(m))
    err = edgert_module_reload(m, NULL, NULL);
  version_drop(k, v);
  pthread_mutex_lock(&k->lock);
  edgert_nexus_policy_activate(&k->pol);
  uint64_t number = k->pol.version;
  pthread_mutex_unlock(&k->lock);
  observe(k, EDGERT_NEXUS_RESET, number, err);
}

int edgert_kernel_swap(edgert_kernel_t *k, const edgert_nexus_impl_t *compiled,
                       uint64_t *version) {
  if (k == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_kernel_swap: kernel is NULL");
  int rc = check_impl(compiled, k->name);
  if (rc < 0)
    return rc;
  version_t *v = version_new(compiled);
  if (v == NULL)
    return edgert__error(EDGERT_ENOMEM, "kernel '%s': out of memory for a "
                                        "new version",
                         k->name);
  version_t *dead = NULL;
  int evict;
  pthread_mutex_lock(&k->lock);
  uint64_t number = edgert_nexus_policy_swap(&k->pol, &evict);
  if (evict) {
    dead = version_unref_locked(k->history[0]);
    if (dead != NULL)
      dead->next = NULL;
    memmove(k->history, k->history + 1,
            (k->nversions - 1) * sizeof *k->history);
    k->nversions--;
  }
  v->number = number;
  k->history[k->nversions++] = v;
  pthread_mutex_unlock(&k->lock);
  version_free_list(dead);
  if (version != NULL)
    *version = number;
  observe(k, EDGERT_NEXUS_SWAP, number, 0);
  return 0;
}

int edgert_kernel_rollback(edgert_kernel_t *k, unsigned steps,
                           uint64_t *version) {
  if (k == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_kernel_rollback: kernel is NULL");
  version_t *dead = NULL;
  pthread_mutex_lock(&k->lock);
  if (!edgert_nexus_policy_can_roll_back(&k->pol, (long)steps)) {
    unsigned have = k->pol.versions;
    pthread_mutex_unlock(&k->lock);
    return edgert__error(EDGERT_EINVAL, "kernel '%s': " EDGERT_NEXUS_ROLLBACK_MSG,
                         k->name, (long)steps, have);
  }
  for (unsigned i = 0; i < steps; i++) {
    version_t *v = version_unref_locked(k->history[--k->nversions]);
    k->history[k->nversions] = NULL;
    if (v != NULL) {
      v->next = dead;
      dead = v;
    }
  }
  uint64_t number = k->history[k->nversions - 1]->number;
  edgert_nexus_policy_rollback(&k->pol, (long)steps, number);
  pthread_mutex_unlock(&k->lock);
  version_free_list(dead);
  if (version != NULL)
    *version = number;
  observe(k, EDGERT_NEXUS_ROLLBACK, number, 0);
  return 0;
}

/* ---- calls ------------------------------------------------------------- */

typedef struct frame_s {
  void *ret;
  int rc;
} frame_t;

/* The trampoline the crash guard runs for a plain C compiled side. */
static void plain_tramp(void *fn, void **args, void *ret) {
  version_t *v = fn;
  frame_t *f = ret;
  f->rc = v->impl.fn(v->impl.ud, args, f->ret);
}

static int invoke_compiled(edgert_kernel_t *k, version_t *v, void **args,
                           void *ret) {
  int rc;
  if (v->impl.func != NULL) {
    rc = edgert_func_call(v->impl.func, args, ret);
  } else {
    frame_t f = {ret, 0};
    rc = edgert__guarded_invoke(plain_tramp, v, args, &f, k->name, "");
    if (rc == 0)
      rc = f.rc;
  }
  if (rc > 0 || (rc < 0 && rc <= EDGERT__ERR_MIN))
    rc = EDGERT_EFAILED;
  return rc;
}

/* 1 if the two results agree, by the kernel's comparison. */
static int results_agree(edgert_kernel_t *k, void **args, const void *a,
                         const void *b) {
  const edgert_nexus_options_t *o = &k->opts;
  if (o->compare != NULL)
    return o->compare(o->compare_ud, args, a, b, o->tolerance) == 1;
  switch (o->ret_type) {
  case EDGERT_CT_VOID:
    return 1;
  case EDGERT_CT_FLOAT: {
    float x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return edgert_agree(x, y, o->tolerance);
  }
  case EDGERT_CT_DOUBLE: {
    double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return edgert_agree(x, y, o->tolerance);
  }
  case EDGERT_CT_LONGDOUBLE: {
    long double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return edgert_agree(x, y, o->tolerance);
  }
  default:
    return memcmp(a, b, o->ret_size) == 0;
  }
}

/* Runs the reference beside a compiled result in `ret` and compares. A
 * disagreement is counted and observed; it fails the call with
 * EDGERT_EMISMATCH (the message says why) only in strict mode, where `ret`
 * then receives the reference's result. */
static int shadow_validate(edgert_kernel_t *k, uint64_t number, void **args,
                           void *ret) {
  union {
    long double ld;
    void *p;
    unsigned char bytes[SHADOW_MIN];
  } small;
  size_t size = k->opts.ret_size > SHADOW_MIN ? k->opts.ret_size : SHADOW_MIN;
  unsigned char *shadow = size == SHADOW_MIN ? small.bytes
                                             : edgert__calloc(1, size);
  if (shadow == NULL)
    return edgert__error(EDGERT_ENOMEM,
                         "kernel '%s': out of memory for shadow validation",
                         k->name);
  memset(shadow, 0, size);
  int rc = k->ref(k->ref_ud, args, ret != NULL ? shadow : NULL);
  int agree = rc == 0 && (ret == NULL || results_agree(k, args, ret, shadow));
  if (!agree && k->opts.strict && rc == 0 && ret != NULL)
    memcpy(ret, shadow, k->opts.ret_size);
  if (shadow != small.bytes)
    edgert__free(shadow);
  if (agree)
    return 0;
  pthread_mutex_lock(&k->lock);
  edgert_nexus_policy_mismatch(&k->pol);
  pthread_mutex_unlock(&k->lock);
  observe(k, EDGERT_NEXUS_MISMATCH, number, rc);
  if (!k->opts.strict)
    return 0; /* counted and told; the compiled result stands */
  if (rc != 0)
    return edgert__error(EDGERT_EMISMATCH,
                         "kernel '%s' version %llu: the reference failed "
                         "during shadow validation (%s)",
                         k->name, (unsigned long long)number,
                         edgert_err_name(rc));
  return edgert__error(EDGERT_EMISMATCH,
                       "kernel '%s' version %llu: compiled and reference "
                       "results differ beyond tolerance %g",
                       k->name, (unsigned long long)number, k->opts.tolerance);
}

static void version_drop(edgert_kernel_t *k, version_t *v) {
  pthread_mutex_lock(&k->lock);
  version_t *dead = version_unref_locked(v);
  pthread_mutex_unlock(&k->lock);
  if (dead != NULL) {
    dead->next = NULL;
    version_free_list(dead);
  }
}

int edgert_kernel_call(edgert_kernel_t *k, void **args, void *ret) {
  if (k == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_kernel_call: kernel is NULL");
  int healthy = edgert_process_healthy(NULL);
  pthread_mutex_lock(&k->lock);
  edgert_nexus_route_t route = edgert_nexus_policy_enter(&k->pol, healthy);
  if (route >= EDGERT_NEXUS_ROUTE_REFERENCE) {
    uint64_t number = k->pol.version;
    pthread_mutex_unlock(&k->lock);
    if (route == EDGERT_NEXUS_ROUTE_REFERENCE)
      observe(k, EDGERT_NEXUS_FALLBACK, number, EDGERT_EQUARANTINED);
    else
      observe(k, EDGERT_NEXUS_UNHEALTHY, number, 0);
    return k->ref(k->ref_ud, args, ret);
  }
  int claimed = route == EDGERT_NEXUS_ROUTE_VALIDATE;
  version_t *v = k->history[k->nversions - 1];
  v->refs++; /* this call's: the version outlives a concurrent swap */
  uint64_t number = v->number;
  pthread_mutex_unlock(&k->lock);

  if (v->impl.guard != NULL && v->impl.guard(v->impl.ud, args) != 1) {
    pthread_mutex_lock(&k->lock);
    edgert_nexus_policy_guard_miss(&k->pol, claimed);
    pthread_mutex_unlock(&k->lock);
    version_drop(k, v);
    observe(k, EDGERT_NEXUS_GUARD_MISS, number, 0);
    return k->ref(k->ref_ud, args, ret);
  }

  int rc = invoke_compiled(k, v, args, ret);
  if (rc == EDGERT_EINTERRUPTED) {
    /* An isolated call stopped by the host's interrupt check (Ctrl-C): not
     * the kernel's failure, and nothing to fall back to; the call ends. */
    pthread_mutex_lock(&k->lock);
    edgert_nexus_policy_abandoned(&k->pol, claimed);
    pthread_mutex_unlock(&k->lock);
    version_drop(k, v);
    return rc;
  }
  char cause[256] = "";
  /* a signal sent to this thread interrupted it: not the kernel's failure */
  int blamed = !(rc == EDGERT_ECRASH && edgert_last_crash()->sent);
  if (rc != 0)
    snprintf(cause, sizeof cause, "%s", edgert_last_error());

  int quarantined = 0;
  pthread_mutex_lock(&k->lock);
  if (rc == 0)
    edgert_nexus_policy_served(&k->pol, number, claimed);
  else
    quarantined = edgert_nexus_policy_failed(&k->pol, number, blamed, claimed);
  version_t *dead = version_unref_locked(v);
  pthread_mutex_unlock(&k->lock);
  if (dead != NULL) {
    dead->next = NULL;
    version_free_list(dead);
  }

  if (rc == 0)
    return claimed ? shadow_validate(k, number, args, ret) : 0;
  observe(k, EDGERT_NEXUS_FAILURE, number, rc);
  if (quarantined)
    observe(k, EDGERT_NEXUS_QUARANTINE, number, rc);
  if (!k->pol.fallback_enabled)
    return edgert__error(EDGERT_EFAILED,
                         "kernel '%s' version %llu failed (%s): %s", k->name,
                         (unsigned long long)number, edgert_err_name(rc),
                         cause[0] ? cause : edgert_strerror(rc));
  observe(k, EDGERT_NEXUS_FALLBACK, number, rc);
  return k->ref(k->ref_ud, args, ret);
}

/* ---- the nexus --------------------------------------------------------- */

int edgert_nexus_new(edgert_nexus_t **out) {
  if (out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_nexus_new: out is NULL");
  edgert_nexus_t *nx = edgert__calloc(1, sizeof *nx);
  if (nx == NULL || pthread_mutex_init(&nx->lock, NULL) != 0) {
    edgert__free(nx);
    return edgert__error(EDGERT_ENOMEM, "out of memory for a nexus");
  }
  edgert__fork_init();
  pthread_mutex_lock(&nexus_list_lock);
  nx->next = nexus_list;
  if (nexus_list != NULL)
    nexus_list->prev = nx;
  nexus_list = nx;
  pthread_mutex_unlock(&nexus_list_lock);
  *out = nx;
  return 0;
}

void edgert_nexus_free(edgert_nexus_t *nx) {
  if (nx == NULL)
    return;
  pthread_mutex_lock(&nexus_list_lock);
  if (nx->prev != NULL)
    nx->prev->next = nx->next;
  else
    nexus_list = nx->next;
  if (nx->next != NULL)
    nx->next->prev = nx->prev;
  pthread_mutex_unlock(&nexus_list_lock);
  for (size_t i = 0; i < nx->n; i++)
    kernel_free(nx->kernels[i]);
  edgert__free(nx->kernels);
  pthread_mutex_destroy(&nx->lock);
  edgert__free(nx);
}

static edgert_kernel_t *find_locked(edgert_nexus_t *nx, const char *name) {
  for (size_t i = 0; i < nx->n; i++)
    if (strcmp(nx->kernels[i]->name, name) == 0)
      return nx->kernels[i];
  return NULL;
}

int edgert_nexus_register(edgert_nexus_t *nx, const char *name,
                          const edgert_nexus_impl_t *compiled,
                          edgert_nexus_fn_t reference, void *reference_ud,
                          const edgert_nexus_options_t *opts,
                          edgert_kernel_t **out) {
  if (nx == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_nexus_register: nexus is NULL");
  if (name == NULL || name[0] == '\0')
    return edgert__error(EDGERT_EINVAL,
                         "edgert_nexus_register: the kernel name is empty");
  if (reference == NULL)
    return edgert__error(EDGERT_EINVAL, "kernel '%s': the reference is NULL",
                         name);
  int rc = check_impl(compiled, name);
  if (rc < 0)
    return rc;
  edgert_nexus_options_t defaults;
  if (opts == NULL) {
    edgert_nexus_options_init(&defaults);
    opts = &defaults;
  }
  if ((rc = check_options(opts, name)) < 0)
    return rc;

  pthread_mutex_lock(&nx->lock);
  if (find_locked(nx, name) != NULL) {
    pthread_mutex_unlock(&nx->lock);
    return edgert__error(EDGERT_EEXIST, "kernel '%s' is already registered",
                         name);
  }
  if (nx->n == nx->cap) {
    size_t cap = nx->cap ? nx->cap * 2 : 8;
    edgert_kernel_t **grown =
        edgert__realloc(nx->kernels, cap * sizeof *grown);
    if (grown == NULL) {
      pthread_mutex_unlock(&nx->lock);
      return edgert__error(EDGERT_ENOMEM,
                           "kernel '%s': out of memory for the registry", name);
    }
    nx->kernels = grown;
    nx->cap = cap;
  }
  edgert_kernel_t *k = NULL;
  rc = kernel_new(name, compiled, reference, reference_ud, opts, &k);
  if (rc == 0)
    nx->kernels[nx->n++] = k;
  pthread_mutex_unlock(&nx->lock);
  if (rc == 0 && out != NULL)
    *out = k;
  return rc;
}

int edgert_nexus_find(edgert_nexus_t *nx, const char *name,
                      edgert_kernel_t **out) {
  if (nx == NULL || name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_nexus_find: NULL argument");
  pthread_mutex_lock(&nx->lock);
  edgert_kernel_t *k = find_locked(nx, name);
  pthread_mutex_unlock(&nx->lock);
  if (k == NULL)
    return edgert__error(EDGERT_ENOTFOUND, "no kernel named '%s'", name);
  *out = k;
  return 0;
}

size_t edgert_nexus_count(edgert_nexus_t *nx) {
  if (nx == NULL)
    return 0;
  pthread_mutex_lock(&nx->lock);
  size_t n = nx->n;
  pthread_mutex_unlock(&nx->lock);
  return n;
}

edgert_kernel_t *edgert_nexus_kernel_at(edgert_nexus_t *nx, size_t i) {
  if (nx == NULL)
    return NULL;
  pthread_mutex_lock(&nx->lock);
  edgert_kernel_t *k = i < nx->n ? nx->kernels[i] : NULL;
  pthread_mutex_unlock(&nx->lock);
  return k;
}

int edgert_nexus_call(edgert_nexus_t *nx, const char *name, void **args,
                      void *ret) {
  edgert_kernel_t *k;
  int rc = edgert_nexus_find(nx, name, &k);
  return rc < 0 ? rc : edgert_kernel_call(k, args, ret);
}
