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
 * - A frame records the host probe's answer when it is armed (the Python
 *   extension's: the thread's current interpreter frame and its
 *   PyGILState_Ensure depth). A fault whose answer differs arrived after the
 *   thread re-entered the host from inside the kernel (a Python callback):
 *   it is handed on like a fault outside any guarded call, because jumping
 *   back would skip live interpreter frames (and, with the GIL released
 *   around the kernel, leave the GIL held by a thread that then waits for it).
 * - The handler allocates nothing, takes no lock and does no stdio. It
 *   copies the fault (signal, si_code, address, the interrupted signal
 *   mask, whether the C library or the dynamic linker was involved) into
 *   the armed frame, which lives on the guarded call's stack, and
 *   siglongjmps there. Everything else (the crash record, the error
 *   message, the counters, the process's health, restoring the mask)
 *   happens after the jump, outside the handler. sigsetjmp(env, 0) keeps
 *   the armed path at a few nanoseconds; the mask is restored by hand on
 *   the fault path.
 * - Contained are faults (si_code > 0; for SIGTRAP only the trap
 *   instructions, int3 and brk, not the tracing codes) and the signal sent to
 *   the armed thread by the process itself (SI_TKILL from this pid). Of
 *   those, faults and signals a handler in front of ours re-raised from its
 *   own signal frame (faulthandler reporting a fault it saw first) are the
 *   kernel's doing; a signal sent to the thread (raise() in the kernel, or
 *   pthread_kill() from another thread: siginfo cannot tell which; the
 *   interrupted instruction can, see sent_by_itself) is not, and the crash
 *   record says so (sent = 1) so that nothing quarantines the kernel for it.
 *   A signal sent by another process or with kill() to the whole process,
 *   or anything with no armed frame on its thread, is handed to the handler
 *   that was in place before ours, exactly once per signal for the life of
 *   the process: the disposition is set to SIG_DFL first, so whatever the
 *   previous handler does (faulthandler restores its own previous handler,
 *   which may be ours, and re-raises), the next delivery either kills the
 *   process with the original signal or comes back to us and finds the
 *   "chained" flag set, and then it is SIG_DFL and a re-raise. No path can
 *   loop between handlers. The one exception: a sent signal (nothing
 *   re-executes after it) that the previous handler returned from without
 *   re-raising it puts the guard back in front and clears the flag, so that
 *   a Python handler installed with signal.signal() can see kill -SEGV and
 *   kernels stay guarded afterwards.
 * - A contained fault whose instruction is in the C library or the dynamic
 *   linker, or whose stack between the faulting frame and the armed frame
 *   holds a return address into them after an indirect call (they called
 *   the kernel back), marks the process unhealthy for good: their locks may
 *   be held. The text ranges are recorded once, before any handler is
 *   installed; the scan reads only this thread's own stack, within bounds
 *   recorded when the thread set up its guard, so it cannot fault.
 * - Every thread that makes a guarded call has an alternate signal stack
 *   (so a stack overflow can be handled): its own one if it had one, else
 *   one allocated here on its first guarded call and given back by a
 *   pthread key destructor when the thread exits.
 * - EDGERT_CRASH_GUARD=0 (read once) turns all of this off: nothing is
 *   installed and guarded calls are plain calls.
 * - edgert_guard_call follows the guarded-call policy of
 *   edgert/guard_policy.h, the same transitions ExplicitFallback drives
 *   (python/src/guard.c), and counts in the same process-wide counters
 *   (policy_counts: the shared block here, the GIL-serialized host block
 *   there). A strict call that agrees returns the compiled result.
 */
#include "internal.h"
#include "unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
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
/* The stack scan reads other frames' slots, redzones included, on purpose. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ASAN __attribute__((no_sanitize("address"), noinline))
#else
#define NO_ASAN NOINLINE
#endif

/* The smallest alternate stack we trust for our handler and the handlers we
 * chain to (faulthandler formats a traceback on it). */
#define ALT_STACK_MIN (64 * 1024)

/* The longest stretch of stack the handler scans for return addresses into
 * the C library (a kernel that overflowed an 8 MiB stack: about 5 ms). */
#define SCAN_MAX ((uintptr_t)64 * 1024 * 1024)

enum { NSIGS = 5 };
static const int guarded_signals[NSIGS] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};

/* How a signal reached an armed frame (frame_t.how). */
enum {
  NOT_OURS = 0, /* hand it on */
  FAULT,        /* an instruction of the kernel faulted (si_code > 0) */
  RERAISED,     /* a handler in front of ours saw it first and re-raised it */
  SENT_SELF,    /* sent to the thread by itself: raise() through the C library */
  SENT          /* sent to the thread by this process: another thread, or a raw syscall */
};

/* One guarded call in progress. Lives on that call's stack. */
typedef struct frame_s {
  sigjmp_buf env;
  struct frame_s *prev;
  edgert_guard_host_probe_t probe; /* the host probe when armed, or NULL */
  edgert_guard_host_state_t host;  /* its answer then */
  uintptr_t stack_top; /* the stack pointer when armed: the kernel's frames are below */
  /* Filled in by the handler before it jumps back. */
  int signo;
  int code;
  void *address;
  int how;
  int sender_pid;
  int syslib;         /* 0, or 1 + the index in syslibs[] of the library involved */
  int syslib_pc;      /* 1: the faulting instruction is in it; 0: a return address */
  uintptr_t syslib_at; /* that instruction or return address */
  sigset_t mask;
#if defined(__x86_64__)
  unsigned mxcsr;
  unsigned short fpu_cw;
  int have_fpu;
#endif
} frame_t;

/* Per-thread guard state. ready: 0 not set up, 1 guarding, -1 plain calls.
 * [stack_lo, stack_hi): this thread's stack, where the handler may read
 * (0, 0 when unknown: no scan). */
typedef struct thread_state_s {
  frame_t *armed;
  int ready;
  uintptr_t stack_lo, stack_hi;
} thread_state_t;

static _Thread_local thread_state_t self TLS_IE;
static _Thread_local edgert_crash_t last_crash = {0, 0, NULL, "", "", 0, 0, 0, 0, 0, 0, 0, ""};

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
static struct sigaction ours_action;     /* how we install ours; set before `installed` */
static _Atomic(edgert_guard_host_probe_t) host_probe;

/*
 * The executable ranges of the C library and the dynamic linker, recorded
 * once (global_init) before any handler can run, read by the handler.
 */
enum { MAX_RANGES = 16, MAX_SYSLIBS = 6 };
typedef struct range_s {
  uintptr_t lo, hi;
  int lib; /* index in syslibs[] */
} range_t;
static range_t ranges[MAX_RANGES];
static int nranges;
static char syslibs[MAX_SYSLIBS][64]; /* their base names */
static int nsyslibs;

/* The process's health: 0 healthy, 1 being described, 2 unhealthy. */
static atomic_int health;
static char health_reason[512];

static _Atomic uint64_t stat_crashes;
/* The guarded-call policy's counters (edgert/guard_policy.h): the shared
 * block and the host block, read as one sum. */
static edgert_guard_counts_t policy_counts[2];

/* An alternate signal stack we allocated, and the one it replaced. */
typedef struct alt_stack_s {
  stack_t old;
  size_t size;
  /* the stack follows */
} alt_stack_t;

const edgert_crash_t *edgert_last_crash(void) { return &last_crash; }

void edgert__crash_isolated(int signo, int exit_status, int pid, const char *syscall,
                            const char *function, const char *module) {
  last_crash.signo = signo;
  last_crash.code = 0;
  last_crash.address = NULL;
  last_crash.function = function != NULL ? function : "";
  last_crash.module = module != NULL ? module : "";
  last_crash.sent = 0;
  last_crash.sender_pid = 0;
  last_crash.self_raised = 0;
  last_crash.unhealthy = 0;
  last_crash.isolated = 1;
  last_crash.worker_pid = pid;
  last_crash.exit_status = exit_status;
  last_crash.syscall = syscall != NULL ? syscall : "";
}

const char *edgert_signal_name(int signo) {
  /* Every signal a kernel's thread or an isolated worker may end with; one
   * table for the guard's messages, the worker reports and the binding. */
  switch (signo) {
  case SIGSEGV: return "SIGSEGV";
  case SIGBUS: return "SIGBUS";
  case SIGFPE: return "SIGFPE";
  case SIGILL: return "SIGILL";
  case SIGTRAP: return "SIGTRAP";
  case SIGABRT: return "SIGABRT";
  case SIGKILL: return "SIGKILL";
  case SIGSYS: return "SIGSYS";
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  case SIGHUP: return "SIGHUP";
  case SIGQUIT: return "SIGQUIT";
  case SIGPIPE: return "SIGPIPE";
  case SIGALRM: return "SIGALRM";
  case SIGUSR1: return "SIGUSR1";
  case SIGUSR2: return "SIGUSR2";
  case SIGXCPU: return "SIGXCPU";
  case SIGXFSZ: return "SIGXFSZ";
  case SIGVTALRM: return "SIGVTALRM";
  case SIGPROF: return "SIGPROF";
  case SIGSTKFLT: return "SIGSTKFLT";
  default: return "signal";
  }
}

/* What si_code says about a fault, for the message. */
static const char *fault_kind(int signo, int code) {
  if (signo == SIGTRAP && (code == SI_KERNEL || code == TRAP_BRKPT))
    return "breakpoint instruction";
  if (code == SI_KERNEL)
    return "general protection fault";
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
 * A sent signal (si_code <= 0) that the previous handler returned from:
 * nothing re-executes after it, so the process goes on, and unless the
 * handler re-raised it (it is pending: faulthandler does that, to die) the
 * guard goes back in front for the next one.
 */
static void back_in_front(int i, int signo) {
  sigset_t pending;
  if (sigpending(&pending) != 0 || sigismember(&pending, signo))
    return;
  if (sigaction(signo, &ours_action, NULL) == 0)
    atomic_store(&chained[i], 0);
}

/*
 * Hands a signal we do not contain to the previous handler, exactly once per
 * signal; any later arrival dies with SIG_DFL (but see back_in_front).
 * Async-signal-safe: sigaction, sigpending, raise and lock-free atomics only.
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
      if (sent)
        back_in_front(i, signo);
      return;
    } else if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL &&
               p->sa_handler != SIG_IGN) {
      p->sa_handler(signo);
      if (sent)
        back_in_front(i, signo);
      return;
    }
  }
  /* Second arrival, or nothing to chain to: die with this signal. The
   * signal is blocked while we run, so raise() leaves it pending until we
   * return; a hardware fault would re-fault anyway. */
  sigaction(signo, &dfl, NULL);
  raise(signo);
}

/* The interrupted context's program counter and stack pointer, and the
 * first argument / return value register; 0 where this file does not know
 * the machine (the checks that need them are then skipped). */
#if defined(__x86_64__)
#define UC_PC(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RIP])
#define UC_SP(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RSP])
#define UC_RET(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RAX])
#elif defined(__aarch64__)
#define UC_PC(uc) ((uintptr_t)(uc)->uc_mcontext.pc)
#define UC_SP(uc) ((uintptr_t)(uc)->uc_mcontext.sp)
#define UC_RET(uc) ((uintptr_t)(uc)->uc_mcontext.regs[0])
#else
#define UC_PC(uc) ((uintptr_t)0)
#define UC_SP(uc) ((uintptr_t)0)
#define UC_RET(uc) ((uintptr_t)1)
#endif

/* The range of the C library or the dynamic linker holding `addr`, or NULL. */
static const range_t *syslib_range(uintptr_t addr) {
  for (int i = 0; i < nranges; i++)
    if (addr >= ranges[i].lo && addr < ranges[i].hi)
      return &ranges[i];
  return NULL;
}

/* 1 if the instruction that ends just before `ret` (inside `r`) is a system
 * call: the interrupted thread was returning from one. */
static int after_syscall(uintptr_t ret, const range_t *r) {
#if defined(__x86_64__)
  if (ret - r->lo < 2)
    return 0;
  const unsigned char *p = (const unsigned char *)ret;
  return p[-2] == 0x0f && p[-1] == 0x05; /* syscall */
#elif defined(__aarch64__)
  if (ret - r->lo < 4 || (ret & 3) != 0)
    return 0;
  uint32_t insn;
  memcpy(&insn, (const void *)(ret - 4), 4);
  return insn == 0xd4000001u; /* svc #0 */
#else
  (void)ret;
  (void)r;
  return 0;
#endif
}

/*
 * 1 if the instruction that ends just before `ret` (inside `r`) is an
 * indirect call (through a register or memory: how the C library calls a
 * callback); direct calls, which are how it calls itself, do not count, so
 * that stale return addresses of its own calls, left in uninitialised stack
 * slots, are not taken for a callback in progress.
 */
static int after_indirect_call(uintptr_t ret, const range_t *r) {
#if defined(__x86_64__)
  /* ff /2 with every ModRM/SIB/displacement form: 2 to 7 bytes. */
  for (uintptr_t len = 2; len <= 7; len++) {
    if (ret - r->lo < len)
      break;
    const unsigned char *p = (const unsigned char *)(ret - len);
    if (p[0] != 0xff || ((p[1] >> 3) & 7) != 2)
      continue;
    unsigned mod = p[1] >> 6, rm = p[1] & 7;
    uintptr_t n = 2;
    if (mod != 3 && rm == 4) {
      n++; /* SIB */
      if (mod == 0 && (p[2] & 7) == 5)
        n += 4; /* no base: disp32 */
    }
    if (mod == 1)
      n += 1;
    else if (mod == 2 || (mod == 0 && rm == 5))
      n += 4;
    if (n == len)
      return 1;
  }
  return 0;
#elif defined(__aarch64__)
  if (ret - r->lo < 4 || (ret & 3) != 0)
    return 0;
  uint32_t insn;
  memcpy(&insn, (const void *)(ret - 4), 4);
  return (insn & 0xfffffc1fu) == 0xd63f0000u || /* blr xN */
         (insn & 0xfffff800u) == 0xd63f0800u;   /* blraa, blrab (pointer auth) */
#else
  (void)ret;
  (void)r;
  return 0;
#endif
}

/* What find_syslib's walk looks for. */
typedef struct walk_s {
  frame_t *f;
  int skip_leading; /* frames of the C library at the bottom are raise()'s own */
} walk_t;

static int visit_frame(void *ud, uintptr_t pc, uintptr_t sp) {
  (void)sp;
  walk_t *w = ud;
  const range_t *r = syslib_range(pc);
  if (r == NULL) {
    w->skip_leading = 0;
    return 0;
  }
  if (w->skip_leading)
    return 0;
  w->f->syslib = r->lib + 1;
  w->f->syslib_at = pc;
  return 1;
}

/*
 * The fallback when the stack cannot be unwound (no _dl_find_object in the
 * C library, a frame without unwind information: hand-written assembly, JIT
 * code): any word between `sp` and the armed frame that is a return
 * address into the C library after an indirect call (how it calls a
 * callback) counts. Conservative: a stale return address left in an
 * uninitialised slot counts too, which can only make a healthy process
 * unhealthy, never the reverse.
 */
static NO_ASAN void scan_syslib(frame_t *f, uintptr_t sp, uintptr_t top) {
  if (sp < self.stack_lo)
    sp = self.stack_lo; /* a stack overflow: the pages below are not mapped */
  if (self.stack_hi == 0 || top > self.stack_hi || sp >= top || top - sp > SCAN_MAX)
    return; /* another stack (a coroutine's), or no bounds: nothing safe to read */
  for (uintptr_t a = (sp + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
       a + sizeof(uintptr_t) <= top; a += sizeof(uintptr_t)) {
    uintptr_t w = *(const volatile uintptr_t *)a;
    const range_t *r = syslib_range(w);
    if (r != NULL && after_indirect_call(w, r)) {
      f->syslib = r->lib + 1;
      f->syslib_at = w;
      return;
    }
  }
}

/*
 * Records in `f` whether the C library or the dynamic linker took part in
 * the fault: the faulting instruction is theirs (unless `skip_leading`:
 * raise() runs there), or one of the frames between it and the armed frame
 * is (they called the kernel back). The frames come from the unwind tables
 * (src/unwind.c); where those run out, scan_syslib takes over.
 */
static void find_syslib(frame_t *f, const ucontext_t *uc, int skip_leading) {
  if (nranges == 0)
    return;
  walk_t w = {f, skip_leading};
  uintptr_t lost = 0, top = f->stack_top;
  int rc = edgert__unwind(uc, self.stack_lo, self.stack_hi, top, visit_frame, &w, &lost);
  if (f->syslib != 0)
    f->syslib_pc = f->syslib_at == UC_PC(uc);
  else if (rc == EDGERT__UNWIND_LOST)
    scan_syslib(f, lost, top);
}

/* 1 if the interrupted code was running on this thread's alternate signal
 * stack: inside a signal handler (one in front of ours, re-raising). */
static int from_a_handler(const ucontext_t *uc) {
  uintptr_t sp = UC_SP(uc);
  stack_t cur;
  if (sp == 0 || sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_DISABLE))
    return 0;
  uintptr_t lo = (uintptr_t)cur.ss_sp;
  return sp > lo && sp <= lo + cur.ss_size;
}

/*
 * A signal sent to this thread by this process: by the thread itself when
 * the interrupted instruction follows a system call in the C library that
 * returned 0 (raise() blocks signals, sends with tgkill and unblocks them:
 * the signal arrives as one of those calls returns 0); otherwise another
 * thread sent it at an arbitrary point (or the kernel made a raw system
 * call). siginfo carries the sender's process, never its thread, so this is
 * the only way to tell; a signal from another thread that lands exactly as
 * this thread returns 0 from a C library system call is taken for the
 * thread's own. Neither is blamed on the kernel.
 */
static int sent_by_itself(const ucontext_t *uc) {
  uintptr_t pc = UC_PC(uc);
  const range_t *r = pc != 0 ? syslib_range(pc) : NULL;
  return r != NULL && UC_RET(uc) == 0 && after_syscall(pc, r);
}

/* How a signal reached the armed frame, or NOT_OURS. */
static int classify(int signo, const siginfo_t *si, const ucontext_t *uc) {
  if (si == NULL)
    return NOT_OURS;
  if (si->si_code > 0) {
    /* SIGTRAP: the trap instructions (int3 on x86-64: SI_KERNEL; brk on
     * AArch64: TRAP_BRKPT), not single-steps, hardware watchpoints or perf
     * events, which belong to whoever set them up in this process. */
    if (signo == SIGTRAP && si->si_code != SI_KERNEL && si->si_code != TRAP_BRKPT)
      return NOT_OURS;
    return FAULT;
  }
  if (si->si_code != SI_TKILL || si->si_pid != getpid())
    return NOT_OURS;
  if (from_a_handler(uc))
    return RERAISED;
  return sent_by_itself(uc) ? SENT_SELF : SENT;
}

/* 1 if the host probe gives the answer it gave when `f` was armed: the
 * thread has not re-entered the host since. */
static int host_unchanged(const frame_t *f) {
  if (f->probe == NULL)
    return 1;
  edgert_guard_host_state_t now;
  f->probe(&now);
  return now.word[0] == f->host.word[0] && now.word[1] == f->host.word[1];
}

static void on_fault(int signo, siginfo_t *si, void *ucv) {
  int saved_errno = errno;
  frame_t *f = self.armed;
  ucontext_t *uc = (ucontext_t *)ucv;
  int how = f != NULL ? classify(signo, si, uc) : NOT_OURS;
  if (how != NOT_OURS && host_unchanged(f)) {
    f->signo = signo;
    f->code = si->si_code;
    f->address = how == FAULT ? si->si_addr : NULL;
    f->how = how;
    f->sender_pid = how == SENT || how == SENT_SELF ? (int)si->si_pid : 0;
    f->mask = uc->uc_sigmask;
#if defined(__x86_64__)
    f->have_fpu = uc->uc_mcontext.fpregs != NULL;
    if (f->have_fpu) {
      f->mxcsr = uc->uc_mcontext.fpregs->mxcsr;
      f->fpu_cw = uc->uc_mcontext.fpregs->cwd;
    }
#endif
    f->syslib = 0;
    /* A re-raise's context is the reporting handler's, not the kernel's;
     * raise() itself runs in the C library and holds no lock there. */
    if (how != RERAISED)
      find_syslib(f, uc, how == SENT_SELF);
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

/* The C library and the dynamic linker, by the base name of their file:
 * glibc's libc.so.6 and ld-linux*.so.2 (ld64.so.* and ld.so.1 on some
 * machines, libpthread.so.0 before glibc 2.34), musl's ld-musl-*.so.1. */
static int is_syslib(const char *base) {
  static const char *const prefixes[] = {"libc.so.", "ld-linux", "ld64.so.", "ld.so.",
                                         "libpthread.so.", "ld-musl-", "libc.musl-"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
      return 1;
  return 0;
}

static int record_syslib(struct dl_phdr_info *info, size_t size, void *ud) {
  (void)size;
  (void)ud;
  const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
  const char *slash = strrchr(name, '/');
  const char *base = slash != NULL ? slash + 1 : name;
  if (!is_syslib(base) || nsyslibs == MAX_SYSLIBS)
    return 0;
  int lib = nsyslibs;
  int any = 0;
  for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    ranges[nranges].lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
    ranges[nranges].hi = ranges[nranges].lo + ph->p_memsz;
    ranges[nranges].lib = lib;
    nranges++;
    any = 1;
  }
  if (any) {
    snprintf(syslibs[lib], sizeof syslibs[lib], "%s", base);
    nsyslibs++;
  }
  return 0;
}

static void global_init(void) {
  guard_on = !env_says_off(getenv("EDGERT_CRASH_GUARD"));
  if (guard_on) {
    key_ok = pthread_key_create(&alt_key, thread_exit) == 0;
    /* Before any handler of ours can run: the handler reads these tables
     * without synchronisation (the handlers are installed, and `installed`
     * published, after this once-routine returns). */
    dl_iterate_phdr(record_syslib, NULL);
    edgert__unwind_init();
  }
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
  ours_action = ours; /* the same every time: back_in_front reads it */
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
  /* Where the handler may read this thread's stack (find_syslib); a
   * thread whose bounds cannot be read is guarded without that scan. */
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void *addr = NULL;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != NULL) {
      self.stack_lo = (uintptr_t)addr;
      self.stack_hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&attr);
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

/* The stack pointer: where the frames of the call about to be made start.
 * `f` lives on the stack too, except under AddressSanitizer's fake stacks,
 * which move locals to the heap. */
static inline uintptr_t stack_pointer(const frame_t *f) {
#if defined(__x86_64__)
  uintptr_t sp;
  __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
  (void)f;
  return sp;
#elif defined(__aarch64__)
  uintptr_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  (void)f;
  return sp;
#else
  return (uintptr_t)f;
#endif
}

/* The process became unhealthy: the first such crash describes why. */
static void mark_unhealthy(const frame_t *f, const char *function) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&health, &expected, 1))
    return;
  snprintf(health_reason, sizeof health_reason,
           "a %s in %s%s%s was contained inside %s (%s 0x%" PRIxPTR
           "): a lock it held may stay held",
           edgert_signal_name(f->signo), function[0] ? "kernel '" : "an unnamed kernel",
           function, function[0] ? "'" : "", syslibs[f->syslib - 1],
           f->syslib_pc ? "faulting instruction at" : "it had called the kernel back, from",
           f->syslib_at);
  atomic_store(&health, 2);
}

int edgert_process_healthy(const char **reason) {
  int h = atomic_load(&health);
  if (reason != NULL)
    *reason = h == 0   ? NULL
              : h == 2 ? health_reason
                       : "a crash inside the C library or the dynamic linker (being recorded)";
  return h == 0;
}

const atomic_int *edgert_process_health_word(void) {
  return &health;
}

void edgert_guard_set_host_probe(edgert_guard_host_probe_t probe) {
  atomic_store(&host_probe, probe);
}

/* The "(...)" part of the message: what the signal was; for a fault, where. */
static void describe(const frame_t *f, char *buf, size_t size) {
  switch (f->how) {
  case SENT_SELF:
    snprintf(buf, size, "raised by the thread itself, not a fault");
    break;
  case SENT:
    snprintf(buf, size,
             "sent to this thread by this process, pid %d: pthread_kill() from another "
             "thread, not a fault",
             f->sender_pid);
    break;
  case RERAISED:
    snprintf(buf, size,
             "re-raised by a signal handler in front of the guard's, which saw the fault "
             "first; address unknown");
    break;
  default:
    snprintf(buf, size, "%s) at address 0x%" PRIxPTR, fault_kind(f->signo, f->code),
             (uintptr_t)f->address);
    return;
  }
  size_t n = strlen(buf);
  if (n + 1 < size) {
    buf[n] = ')';
    buf[n + 1] = '\0';
  }
}

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
  int sent = f->how == SENT || f->how == SENT_SELF;
  last_crash.signo = f->signo;
  last_crash.code = f->code;
  last_crash.address = f->address;
  last_crash.function = function != NULL ? function : "";
  last_crash.module = module != NULL ? module : "";
  last_crash.sent = sent;
  last_crash.sender_pid = f->sender_pid;
  last_crash.self_raised = f->how == SENT_SELF;
  last_crash.unhealthy = f->syslib != 0;
  last_crash.isolated = 0;
  last_crash.worker_pid = 0;
  last_crash.exit_status = 0;
  last_crash.syscall = "";
  if (f->syslib != 0)
    mark_unhealthy(f, last_crash.function);
  char kind[192], tail[320] = "";
  describe(f, kind, sizeof kind);
  if (f->syslib != 0)
    snprintf(tail, sizeof tail,
             "the fault was contained, but inside %s (%s 0x%" PRIxPTR "): a lock it held may "
             "stay held, so the process is now unhealthy (process_healthy() is false): "
             "restart it",
             syslibs[f->syslib - 1],
             f->syslib_pc ? "the faulting instruction is at"
                          : "it had called the kernel back, from",
             f->syslib_at);
  else if (f->how == SENT_SELF)
    snprintf(tail, sizeof tail,
             "it sent the signal to itself (raise() or the like, from this process, pid %d); "
             "the call was abandoned; the kernel is not blamed for it (no quarantine)",
             f->sender_pid);
  else if (sent)
    snprintf(tail, sizeof tail,
             "the call was abandoned; the kernel is not blamed for it (no quarantine)");
  else
    snprintf(tail, sizeof tail, "the fault was contained");
  return edgert__error(EDGERT_ECRASH, "kernel %s: %s (%s in %s%s%s%s%s; %s",
                       sent ? "interrupted" : "crashed", edgert_signal_name(f->signo), kind,
                       last_crash.function[0] ? "function '" : "an unnamed function",
                       last_crash.function, last_crash.function[0] ? "'" : "",
                       last_crash.module[0] ? " of module " : "", last_crash.module, tail);
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
  f.probe = atomic_load_explicit(&host_probe, memory_order_relaxed);
  if (f.probe != NULL)
    f.probe(&f.host);
  f.stack_top = stack_pointer(&f);
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

edgert_guard_counts_t *edgert_guard_counts_block(int serialized) {
  return &policy_counts[serialized ? 1 : 0];
}

void edgert_guard_counts(edgert_guard_counts_t *out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof *out);
  for (int i = 0; i < 2; i++) {
    const edgert_guard_counts_t *c = &policy_counts[i];
    out->calls += __atomic_load_n(&c->calls, __ATOMIC_RELAXED);
    out->compiled += __atomic_load_n(&c->compiled, __ATOMIC_RELAXED);
    out->failures += __atomic_load_n(&c->failures, __ATOMIC_RELAXED);
    out->crashes += __atomic_load_n(&c->crashes, __ATOMIC_RELAXED);
    out->fallbacks += __atomic_load_n(&c->fallbacks, __ATOMIC_RELAXED);
    out->reference_failures += __atomic_load_n(&c->reference_failures, __ATOMIC_RELAXED);
    out->validations += __atomic_load_n(&c->validations, __ATOMIC_RELAXED);
    out->matches += __atomic_load_n(&c->matches, __ATOMIC_RELAXED);
    out->mismatches += __atomic_load_n(&c->mismatches, __ATOMIC_RELAXED);
  }
}

void edgert_guard_counts_reset(void) {
  for (int i = 0; i < 2; i++) {
    edgert_guard_counts_t *c = &policy_counts[i];
    __atomic_store_n(&c->calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->compiled, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->failures, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->crashes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->fallbacks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->reference_failures, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->validations, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->matches, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->mismatches, 0, __ATOMIC_RELAXED);
  }
  atomic_store(&stat_crashes, 0);
}

void edgert_guard_stats(edgert_guard_stats_t *out) {
  if (out == NULL)
    return;
  edgert_guard_counts_t c;
  edgert_guard_counts(&c);
  out->calls = c.calls;
  out->compiled = c.compiled;
  out->failures = c.failures;
  out->fallbacks = c.fallbacks;
  out->mismatches = c.mismatches;
  out->crashes = atomic_load(&stat_crashes);
}

void edgert_guard_stats_reset(void) {
  edgert_guard_counts_reset();
}

/* ---- edgert_guard_call --------------------------------------------------- */

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
    return edgert_agree(float_value(t->code, a), float_value(t->code, b), tolerance);
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
  edgert_guard_counts_t *counts = &policy_counts[0];
  if (policy == NULL)
    policy = &defaults;
  if (fn == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_guard_call: fn is NULL");
  if (args == NULL && edgert_func_contract(fn)->nargs > 0)
    return edgert__error(EDGERT_EINVAL, "edgert_guard_call: args is NULL");
  const char *name = edgert_func_name(fn);
  const char *problem = edgert_guard_option_problem(policy->strict, policy->fallback_enabled,
                                                    ref != NULL, policy->tolerance);
  if (problem != NULL) {
    if (problem == edgert_tolerance_problem(policy->tolerance))
      return edgert__error(EDGERT_EINVAL, "edgert_guard_call(%s): %s, got %g", name, problem,
                           policy->tolerance);
    return edgert__error(EDGERT_EINVAL, "edgert_guard_call(%s): %s", name, problem);
  }
  int strict = policy->strict != 0;
  edgert_guard_enter(counts, strict, 0);
  int rc = edgert_func_call(fn, args, ret);
  if (rc < 0) {
    if (edgert_guard_compiled_failed(counts, policy->fallback_enabled, rc == EDGERT_ECRASH, 0) ==
        EDGERT_GUARD_RUN_FALLBACK) {
      int r = run_reference(ref, policy, name, args, ret);
      if (r < 0)
        edgert_guard_reference_failed(counts, 0);
      return r;
    }
    char original[512];
    snprintf(original, sizeof original, "%s", edgert_last_error());
    return edgert__error(EDGERT_EFAILED,
                         "compiled call of %s (module %s) failed and fallback is disabled: %s [%s]",
                         name, func_module_path(fn), original[0] ? original : edgert_strerror(rc),
                         edgert_err_name(rc));
  }
  if (edgert_guard_compiled_returned(counts, strict, 0) == EDGERT_GUARD_RETURN_COMPILED)
    return 0;
  /* Strict: the reference writes into scratch; on a match `ret` keeps the
   * compiled result, which is the call's result (edgert/guard_policy.h). */
  union {
    long double ld;
    unsigned char bytes[16];
  } scratch;
  memset(&scratch, 0, sizeof scratch);
  int r = run_reference(ref, policy, name, args, &scratch);
  if (r < 0) {
    edgert_guard_reference_failed(counts, 0);
    return r;
  }
  const edgert_abi_type_t *rt = &edgert_func_contract(fn)->ret;
  int same = policy->compare != NULL
                 ? policy->compare(policy->ud, ret, &scratch, policy->tolerance)
                 : default_compare(rt, ret, &scratch, policy->tolerance);
  if (edgert_guard_compared(counts, same, 0) == EDGERT_GUARD_RETURN_COMPILED)
    return 0;
  char a[64], b[64];
  format_value(rt, ret, a, sizeof a);
  format_value(rt, &scratch, b, sizeof b);
  return edgert__error(EDGERT_EMISMATCH,
                       "%s: compiled result %s differs from reference result %s (tolerance %g)",
                       name, a, b, policy->tolerance);
}
