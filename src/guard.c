/*
 * guard.c: crash containment for calls into foreign code, and guarded calls
 * with a reference fallback (edgert_guard_call).
 *
 * Invariants:
 * - A fault is contained only on the thread that raised it, and only while
 *   that thread is inside edgert__guarded_invoke: the thread's innermost
 *   armed frame (self.armed, thread-local, initial-exec TLS so that reading
 *   it in the handler never allocates) is set after sigsetjmp and cleared
 *   before returning. Frames nest (a kernel calling back into code that
 *   makes another guarded call); each one restores its parent.
 * - The handler allocates nothing, takes no lock and does no stdio. It
 *   copies the fault (signal, si_code, address, the interrupted signal
 *   mask) into the armed frame, which lives on the guarded call's stack,
 *   and siglongjmps there. Everything else (the crash record, the error
 *   message, the counters, restoring the mask) happens after the jump,
 *   outside the handler. sigsetjmp(env, 0) keeps the armed path at a few
 *   nanoseconds; the mask is restored by hand on the fault path.
 * - Contained are faults (si_code > 0) and the signal raised on the armed
 *   thread by the process itself (SI_TKILL from this pid: a kernel calling
 *   raise(SIGSEGV), or a handler installed in front of ours, such as
 *   faulthandler, re-raising a fault it saw first). A signal sent by another
 *   process or with kill() to the whole process, or anything with no armed
 *   frame on its thread, is
 *   handed to the handler that was in place before ours, exactly once per
 *   signal for the life of the process: the disposition is set to SIG_DFL
 *   first, so whatever the previous handler does (faulthandler restores its
 *   own previous handler, which may be ours, and re-raises), the next
 *   delivery either kills the process with the original signal or comes
 *   back to us and finds the "chained" flag set, and then it is SIG_DFL and
 *   a re-raise. No path can loop between handlers.
 * - Every thread that makes a guarded call has an alternate signal stack
 *   (so a stack overflow can be handled): its own one if it had one, else
 *   one allocated here on its first guarded call and given back by a
 *   pthread key destructor when the thread exits.
 * - EDGERT_CRASH_GUARD=0 (read once) turns all of this off: nothing is
 *   installed and guarded calls are plain calls.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__GNUC__)
#define TLS_IE __attribute__((tls_model("initial-exec")))
#define NOINLINE __attribute__((noinline))
#else
#define TLS_IE
#define NOINLINE
#endif

/* The smallest alternate stack we trust for our handler and the handlers we
 * chain to (faulthandler formats a traceback on it). */
#define ALT_STACK_MIN (64 * 1024)

enum { NSIGS = 4 };
static const int guarded_signals[NSIGS] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};

/* One guarded call in progress. Lives on that call's stack. */
typedef struct frame_s {
  sigjmp_buf env;
  struct frame_s *prev;
  /* Filled in by the handler before it jumps back. */
  int signo;
  int code;
  void *address;
  sigset_t mask;
#if defined(__x86_64__)
  unsigned mxcsr;
  unsigned short fpu_cw;
  int have_fpu;
#endif
} frame_t;

/* Per-thread guard state. ready: 0 not set up, 1 guarding, -1 plain calls. */
typedef struct thread_state_s {
  frame_t *armed;
  int ready;
} thread_state_t;

static _Thread_local thread_state_t self TLS_IE;
static _Thread_local edgert_crash_t last_crash = {0, 0, NULL, "", ""};

/* Process-wide state. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int guard_on;            /* set once by global_init */
static int key_ok;              /* the thread-exit key exists */
static pthread_key_t alt_key;   /* value: this thread's alt_stack_t, if ours */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
/* fork.c's handlers: install_lock is held around sigaction calls only. */
void edgert__guard_fork_prepare(void) { pthread_mutex_lock(&install_lock); }
void edgert__guard_fork_parent(void) { pthread_mutex_unlock(&install_lock); }
void edgert__guard_fork_child(void) { pthread_mutex_unlock(&install_lock); }
static atomic_int installed;    /* our handlers were installed at least once */
static struct sigaction previous[NSIGS]; /* where unguarded faults go */
static atomic_int chained[NSIGS];        /* 1 once a signal was handed on */

static _Atomic uint64_t stat_calls, stat_compiled, stat_failures,
    stat_fallbacks, stat_mismatches, stat_crashes;

/* An alternate signal stack we allocated, and the one it replaced. */
typedef struct alt_stack_s {
  stack_t old;
  size_t size;
  /* the stack follows */
} alt_stack_t;

const edgert_crash_t *edgert_last_crash(void) { return &last_crash; }

const char *edgert_signal_name(int signo) {
  switch (signo) {
  case SIGSEGV:
    return "SIGSEGV";
  case SIGBUS:
    return "SIGBUS";
  case SIGFPE:
    return "SIGFPE";
  case SIGILL:
    return "SIGILL";
  default:
    return "signal";
  }
}

/* What si_code says about a fault, for the message. */
static const char *fault_kind(int signo, int code) {
  if (code == SI_KERNEL)
    return "general protection fault";
  if (code == SI_TKILL)
    return "raised by the thread itself, not a fault";
  switch (signo) {
  case SIGSEGV:
    switch (code) {
    case SEGV_MAPERR:
      return "address not mapped";
    case SEGV_ACCERR:
      return "access not permitted";
    default:
      return "invalid memory access";
    }
  case SIGBUS:
    switch (code) {
    case BUS_ADRALN:
      return "misaligned address";
    case BUS_ADRERR:
      return "no memory behind the address";
    case BUS_OBJERR:
      return "hardware error";
    default:
      return "bus error";
    }
  case SIGFPE:
    switch (code) {
    case FPE_INTDIV:
      return "integer division by zero";
    case FPE_INTOVF:
      return "integer overflow";
    case FPE_FLTDIV:
      return "floating-point division by zero";
    case FPE_FLTOVF:
      return "floating-point overflow";
    case FPE_FLTINV:
      return "invalid floating-point operation";
    default:
      return "arithmetic exception";
    }
  case SIGILL:
    switch (code) {
    case ILL_ILLOPC:
      return "illegal opcode";
    case ILL_ILLOPN:
      return "illegal operand";
    case ILL_PRVOPC:
      return "privileged opcode";
    default:
      return "illegal instruction";
    }
  default:
    return "fault";
  }
}

static int signal_index(int signo) {
  for (int i = 0; i < NSIGS; i++)
    if (guarded_signals[i] == signo)
      return i;
  return -1;
}

/* ---- the handler --------------------------------------------------------- */

static void on_fault(int signo, siginfo_t *si, void *ucv);

/* Our handler, installed the way we install it. */
static int is_ours(const struct sigaction *sa) {
  return (sa->sa_flags & SA_SIGINFO) && (sa->sa_flags & SA_ONSTACK) &&
         sa->sa_sigaction == on_fault;
}

/* Our handler function in either field: signal(sig, old) after an
 * `old = signal(sig, other)` puts it back without SA_SIGINFO. Never a
 * handler to chain to. */
static int is_our_function(const struct sigaction *sa) {
  /* sa_handler and sa_sigaction share storage (a union in glibc). */
  return sa->sa_sigaction == on_fault;
}

/*
 * Hands a signal we do not contain to the previous handler, exactly once per
 * signal; any later arrival dies with SIG_DFL. Async-signal-safe: sigaction,
 * raise and lock-free atomics only.
 */
static void hand_on(int signo, siginfo_t *si, void *ucv) {
  int i = signal_index(signo);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  int sent = si == NULL || si->si_code <= 0;
  if (i >= 0 && atomic_exchange(&chained[i], 1) == 0) {
    const struct sigaction *p = &previous[i];
    if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_IGN && sent) {
      /* It was ignored before us: a sent signal still is. */
      atomic_store(&chained[i], 0);
      return;
    }
    /* SIG_DFL first: if the previous handler just returns, the fault
     * re-executes and the process dies with the original signal. */
    sigaction(signo, &dfl, NULL);
    if (is_our_function(p)) {
      /* nothing else to hand on to */
    } else if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction != NULL) {
      p->sa_sigaction(signo, si, ucv);
      return;
    } else if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL &&
               p->sa_handler != SIG_IGN) {
      p->sa_handler(signo);
      return;
    }
  }
  /* Second arrival, or nothing to chain to: die with this signal. The
   * signal is blocked while we run, so raise() leaves it pending until we
   * return; a hardware fault would re-fault anyway. */
  sigaction(signo, &dfl, NULL);
  raise(signo);
}

/* A fault of this thread's code, or a signal this thread raised itself. */
static int containable(const siginfo_t *si) {
  if (si == NULL)
    return 0;
  if (si->si_code > 0)
    return 1;
  return si->si_code == SI_TKILL && si->si_pid == getpid();
}

static void on_fault(int signo, siginfo_t *si, void *ucv) {
  int saved_errno = errno;
  frame_t *f = self.armed;
  if (f != NULL && containable(si)) {
    ucontext_t *uc = (ucontext_t *)ucv;
    f->signo = signo;
    f->code = si->si_code;
    f->address = si->si_code > 0 ? si->si_addr : NULL;
    f->mask = uc->uc_sigmask;
#if defined(__x86_64__)
    f->have_fpu = uc->uc_mcontext.fpregs != NULL;
    if (f->have_fpu) {
      f->mxcsr = uc->uc_mcontext.fpregs->mxcsr;
      f->fpu_cw = uc->uc_mcontext.fpregs->cwd;
    }
#endif
    self.armed = f->prev;
    siglongjmp(f->env, 1);
  }
  hand_on(signo, si, ucv);
  errno = saved_errno;
}

/* ---- installation -------------------------------------------------------- */

static void thread_exit(void *p) {
  alt_stack_t *a = p;
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == (void *)(a + 1)) {
    stack_t back = a->old;
    if (back.ss_flags & SS_DISABLE) {
      memset(&back, 0, sizeof back);
      back.ss_flags = SS_DISABLE;
    }
    sigaltstack(&back, NULL);
  }
  edgert__free(a);
}

static int env_says_off(const char *v) {
  return v != NULL && (strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
                       strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0);
}

static void global_init(void) {
  guard_on = !env_says_off(getenv("EDGERT_CRASH_GUARD"));
  if (guard_on)
    key_ok = pthread_key_create(&alt_key, thread_exit) == 0;
}

int edgert_guard_enabled(void) {
  pthread_once(&init_once, global_init);
  return guard_on;
}

/* Puts our handler in front of each signal whose handler is not ours; the
 * one found there becomes where unguarded faults go. Needs install_lock. */
static int install_locked(void) {
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = on_fault;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&ours.sa_mask);
  for (int i = 0; i < NSIGS; i++)
    sigaddset(&ours.sa_mask, guarded_signals[i]);
  for (int i = 0; i < NSIGS; i++) {
    struct sigaction cur;
    if (sigaction(guarded_signals[i], NULL, &cur) != 0)
      return edgert__error(EDGERT_EIO, "crash guard: cannot read the handler of %s: %s",
                           edgert_signal_name(guarded_signals[i]), strerror(errno));
    if (is_ours(&cur))
      continue;
    if (!is_our_function(&cur)) /* else ours, put back without its flags */
      previous[i] = cur;
    if (sigaction(guarded_signals[i], &ours, NULL) != 0)
      return edgert__error(EDGERT_EIO, "crash guard: cannot install the handler of %s: %s",
                           edgert_signal_name(guarded_signals[i]), strerror(errno));
  }
  atomic_store(&installed, 1);
  return 0;
}

int edgert_guard_install(void) {
  if (!edgert_guard_enabled())
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "crash guard is switched off (EDGERT_CRASH_GUARD=0)");
  pthread_mutex_lock(&install_lock);
  int rc = install_locked();
  pthread_mutex_unlock(&install_lock);
  return rc;
}

/* First guarded call on this thread: handlers, alternate stack. */
static NOINLINE int thread_setup(void) {
  if (!edgert_guard_enabled()) {
    self.ready = -1;
    return 0;
  }
  if (!atomic_load(&installed)) {
    int rc = edgert_guard_install();
    if (rc < 0)
      return rc;
  }
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0)
    return edgert__error(EDGERT_EIO, "crash guard: cannot read this thread's alternate signal stack: %s",
                         strerror(errno));
  if (!(cur.ss_flags & SS_DISABLE) && cur.ss_size >= ALT_STACK_MIN) {
    self.ready = 1; /* the thread's own stack is big enough: keep it */
    return 0;
  }
  if (cur.ss_flags & SS_ONSTACK)
    return edgert__error(EDGERT_EINVAL,
                         "crash guard: a guarded call cannot start on a signal handler's stack");
  if (!key_ok)
    return edgert__error(EDGERT_ENOMEM, "crash guard: no thread-exit key for alternate signal stacks");
  long want = sysconf(_SC_SIGSTKSZ);
  size_t size = ALT_STACK_MIN;
  if (want > 0 && (size_t)want * 4 > size)
    size = (size_t)want * 4;
  alt_stack_t *a = edgert__malloc(sizeof *a + size);
  if (a == NULL)
    return edgert__error(EDGERT_ENOMEM,
                         "crash guard: cannot allocate this thread's %zu-byte alternate signal stack", size);
  a->old = cur;
  a->size = size;
  stack_t ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_sp = a + 1;
  ss.ss_size = size;
  if (sigaltstack(&ss, NULL) != 0) {
    int e = errno;
    edgert__free(a);
    return edgert__error(EDGERT_EIO, "crash guard: cannot set this thread's alternate signal stack: %s",
                         strerror(e));
  }
  if (pthread_setspecific(alt_key, a) != 0) {
    sigaltstack(&cur, NULL);
    edgert__free(a);
    return edgert__error(EDGERT_ENOMEM, "crash guard: cannot register this thread's alternate signal stack");
  }
  self.ready = 1;
  return 0;
}

/* ---- guarded calls ------------------------------------------------------- */

/* After the jump back from the handler: restore what the jump skipped and
 * describe the crash. */
static NOINLINE int contained(frame_t *f, const char *function, const char *module) {
  self.armed = f->prev;
  pthread_sigmask(SIG_SETMASK, &f->mask, NULL);
#if defined(__x86_64__)
  if (f->have_fpu) {
    unsigned mxcsr = f->mxcsr;
    unsigned short cw = f->fpu_cw;
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("fldcw %0" : : "m"(cw));
  }
#endif
  atomic_fetch_add_explicit(&stat_crashes, 1, memory_order_relaxed);
  last_crash.signo = f->signo;
  last_crash.code = f->code;
  last_crash.address = f->address;
  last_crash.function = function != NULL ? function : "";
  last_crash.module = module != NULL ? module : "";
  return edgert__error(EDGERT_ECRASH,
                       "kernel crashed: %s (%s) at address 0x%" PRIxPTR
                       " in %s%s%s%s%s; the fault was contained",
                       edgert_signal_name(f->signo), fault_kind(f->signo, f->code),
                       (uintptr_t)f->address,
                       last_crash.function[0] ? "function '" : "an unnamed function",
                       last_crash.function, last_crash.function[0] ? "'" : "",
                       last_crash.module[0] ? " of module " : "", last_crash.module);
}

int edgert__guarded_invoke(edgert__tramp_t tramp, void *fn, void **args,
                           void *ret, const char *function,
                           const char *module) {
  if (EDGERT__UNLIKELY(self.ready <= 0)) {
    if (self.ready == 0) {
      int rc = thread_setup();
      if (rc < 0)
        return rc;
    }
    if (self.ready < 0) {
      tramp(fn, args, ret);
      return 0;
    }
  }
  frame_t f;
  f.prev = self.armed;
  if (EDGERT__UNLIKELY(sigsetjmp(f.env, 0) != 0))
    return contained(&f, function, module);
  self.armed = &f;
  atomic_signal_fence(memory_order_seq_cst);
  tramp(fn, args, ret);
  atomic_signal_fence(memory_order_seq_cst);
  self.armed = f.prev;
  return 0;
}

/* edgert_guard_run: a plain C function under the guard. */
typedef struct run_ctx_s {
  void (*fn)(void *ud);
  void *ud;
} run_ctx_t;

static void run_tramp(void *ctx, void **args, void *ret) {
  (void)args;
  (void)ret;
  run_ctx_t *c = ctx;
  c->fn(c->ud);
}

int edgert_guard_run(void (*fn)(void *ud), void *ud, const char *name) {
  if (fn == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_guard_run: fn is NULL");
  run_ctx_t c = {fn, ud};
  return edgert__guarded_invoke(run_tramp, &c, NULL, NULL, name != NULL ? name : "", "");
}

/* ---- counters ------------------------------------------------------------ */

void edgert_guard_stats(edgert_guard_stats_t *out) {
  if (out == NULL)
    return;
  out->calls = atomic_load(&stat_calls);
  out->compiled = atomic_load(&stat_compiled);
  out->failures = atomic_load(&stat_failures);
  out->fallbacks = atomic_load(&stat_fallbacks);
  out->mismatches = atomic_load(&stat_mismatches);
  out->crashes = atomic_load(&stat_crashes);
}

void edgert_guard_stats_reset(void) {
  atomic_store(&stat_calls, 0);
  atomic_store(&stat_compiled, 0);
  atomic_store(&stat_failures, 0);
  atomic_store(&stat_fallbacks, 0);
  atomic_store(&stat_mismatches, 0);
  atomic_store(&stat_crashes, 0);
}

/* ---- edgert_guard_call --------------------------------------------------- */

static int close_enough(long double a, long double b, double tolerance) {
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b);
  if (a == b)
    return 1;
  long double d = fabsl(a - b);
  long double scale = fabsl(a) > fabsl(b) ? fabsl(a) : fabsl(b);
  return d <= tolerance || d <= tolerance * scale;
}

static int is_float_type(edgert_ctype_t t) {
  return t == EDGERT_CT_FLOAT || t == EDGERT_CT_DOUBLE || t == EDGERT_CT_LONGDOUBLE;
}

static long double float_value(edgert_ctype_t t, const void *p) {
  switch (t) {
  case EDGERT_CT_FLOAT: {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  case EDGERT_CT_DOUBLE: {
    double v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  default: {
    long double v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  }
}

/* The result types' own comparison: floats within tolerance, the rest by
 * their bytes (a long double has padding bytes, so it is compared as a value). */
static int default_compare(const edgert_abi_type_t *t, const void *a, const void *b,
                           double tolerance) {
  if (t->code == EDGERT_CT_VOID)
    return 1;
  if (is_float_type(t->code))
    return close_enough(float_value(t->code, a), float_value(t->code, b), tolerance);
  if (t->code == EDGERT_CT_BOOL)
    return (*(const unsigned char *)a != 0) == (*(const unsigned char *)b != 0);
  return memcmp(a, b, edgert_abi_type_size(t)) == 0;
}

static int is_signed_type(edgert_ctype_t t) {
  return t == EDGERT_CT_BYTE || t == EDGERT_CT_SHORT || t == EDGERT_CT_INT ||
         t == EDGERT_CT_LONG || t == EDGERT_CT_LONGLONG;
}

/* A result as text, for the mismatch message. */
static void format_value(const edgert_abi_type_t *t, const void *p, char *buf, size_t size) {
  size_t n = edgert_abi_type_size(t);
  if (t->code == EDGERT_CT_VOID) {
    snprintf(buf, size, "None");
  } else if (is_float_type(t->code)) {
    snprintf(buf, size, "%.17Lg", float_value(t->code, p));
  } else if (t->code == EDGERT_CT_CHAR_P || t->code == EDGERT_CT_WCHAR_P ||
             t->code == EDGERT_CT_VOID_P || t->code == EDGERT_CT_POINTER) {
    void *v;
    memcpy(&v, p, sizeof v);
    snprintf(buf, size, "%p", v);
  } else if (is_signed_type(t->code) && n <= 8) {
    int64_t v = 0;
    if (n == 1) v = *(const int8_t *)p;
    else if (n == 2) { int16_t x; memcpy(&x, p, 2); v = x; }
    else if (n == 4) { int32_t x; memcpy(&x, p, 4); v = x; }
    else memcpy(&v, p, 8);
    snprintf(buf, size, "%lld", (long long)v);
  } else if (n >= 1 && n <= 8) {
    uint64_t v = 0;
    if (n == 1) v = *(const uint8_t *)p;
    else if (n == 2) { uint16_t x; memcpy(&x, p, 2); v = x; }
    else if (n == 4) { uint32_t x; memcpy(&x, p, 4); v = x; }
    else memcpy(&v, p, 8);
    snprintf(buf, size, "%llu", (unsigned long long)v);
  } else {
    snprintf(buf, size, "<%zu bytes>", n);
  }
}

static const char *func_module_path(edgert_func_t *fn) {
  edgert_module_t *m = edgert_func_module(fn);
  const char *p = m != NULL ? edgert_module_path(m) : NULL;
  return p != NULL ? p : "";
}

/* Runs the reference; a positive result is not a valid code: EDGERT_EFAILED. */
static int run_reference(edgert_guard_ref_fn ref, const edgert_guard_policy_t *policy,
                         const char *name, void **args, void *ret) {
  edgert_clear_error();
  int r = ref(policy->ud, args, ret);
  if (r > 0)
    return edgert__error(EDGERT_EFAILED, "reference of %s failed (returned %d)", name, r);
  if (r < 0 && edgert_last_error()[0] == '\0')
    return edgert__error(r, "reference of %s failed: %s", name, edgert_strerror(r));
  return r;
}

int edgert_guard_call(edgert_func_t *fn, void **args, void *ret, edgert_guard_ref_fn ref,
                      const edgert_guard_policy_t *policy) {
  static const edgert_guard_policy_t defaults = EDGERT_GUARD_POLICY_INIT;
  if (policy == NULL)
    policy = &defaults;
  if (fn == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_guard_call: fn is NULL");
  const char *name = edgert_func_name(fn);
  if (ref == NULL && (policy->fallback_enabled || policy->strict))
    return edgert__error(EDGERT_EINVAL,
                         "edgert_guard_call(%s): the policy (%s) needs a reference function and ref is NULL",
                         name, policy->strict ? "strict" : "fallback enabled");
  if (!(policy->tolerance >= 0.0))
    return edgert__error(EDGERT_EINVAL,
                         "edgert_guard_call(%s): tolerance must be >= 0, got %g", name,
                         policy->tolerance);
  atomic_fetch_add_explicit(&stat_calls, 1, memory_order_relaxed);
  int rc = edgert_func_call(fn, args, ret);
  if (rc < 0) {
    atomic_fetch_add_explicit(&stat_failures, 1, memory_order_relaxed);
    if (policy->fallback_enabled) {
      atomic_fetch_add_explicit(&stat_fallbacks, 1, memory_order_relaxed);
      return run_reference(ref, policy, name, args, ret);
    }
    char original[512];
    snprintf(original, sizeof original, "%s", edgert_last_error());
    return edgert__error(EDGERT_EFAILED,
                         "compiled call of %s (module %s) failed and fallback is disabled: %s [%s]",
                         name, func_module_path(fn), original[0] ? original : edgert_strerror(rc),
                         edgert_err_name(rc));
  }
  atomic_fetch_add_explicit(&stat_compiled, 1, memory_order_relaxed);
  if (!policy->strict)
    return 0;
  union {
    long double ld;
    unsigned char bytes[16];
  } scratch;
  memset(&scratch, 0, sizeof scratch);
  int r = run_reference(ref, policy, name, args, &scratch);
  if (r < 0)
    return r;
  const edgert_abi_type_t *rt = &edgert_func_contract(fn)->ret;
  int same = policy->compare != NULL
                 ? policy->compare(policy->ud, ret, &scratch, policy->tolerance)
                 : default_compare(rt, ret, &scratch, policy->tolerance);
  if (same)
    return 0;
  atomic_fetch_add_explicit(&stat_mismatches, 1, memory_order_relaxed);
  char a[64], b[64];
  format_value(rt, ret, a, sizeof a);
  format_value(rt, &scratch, b, sizeof b);
  return edgert__error(EDGERT_EMISMATCH,
                       "%s: compiled result %s differs from reference result %s (tolerance %g)",
                       name, a, b, policy->tolerance);
}
