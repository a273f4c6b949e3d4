/*
 * test_guard.c: crash containment (edgert_guard_run, bound calls) and
 * edgert_guard_call's policy. Whatever could kill the test runner when the
 * guard is broken runs in a forked child, and the parent checks how it ended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/fixture_path.h"
#include "helpers/failalloc.h"

#ifndef EDGERT_FIXTURE_DIR
#error "EDGERT_FIXTURE_DIR must be defined by the build"
#endif
#define CRASHY crashy_path()

/*
 * CMocka puts its own SIGSEGV/SIGILL/SIGFPE/SIGBUS handlers in front of ours
 * around every test (and puts ours back as a plain handler afterwards):
 * every test starts by putting the guard back in front, which is what
 * edgert_guard_install is for.
 */
static void ready(void) { assert_int_equal(edgert_guard_install(), 0); }

/* ---- kernels run with edgert_guard_run ---------------------------------- */

/*
 * The faults below are the point of these kernels: in the sanitizer build
 * (make test-sanitize) ASan and UBSan must not instrument them, or UBSan
 * stops at the NULL store or the division by zero (it cannot recover) and
 * ASan reports the load before the hardware fault the guard is there to
 * contain, and ASan's fake stack frames keep the recursion off the real
 * stack. Without a sanitizer the attribute does nothing.
 */
#if defined(__GNUC__)
#define FAULTS_ON_PURPOSE __attribute__((no_sanitize("address", "undefined"), noinline))
#else
#define FAULTS_ON_PURPOSE
#endif

static void ok_kernel(void *ud) { *(int *)ud += 1; }

FAULTS_ON_PURPOSE
static void null_kernel(void *ud) {
  (void)ud;
  volatile int *volatile p = NULL;
  *p = 42;
}

FAULTS_ON_PURPOSE
static void wild_kernel(void *ud) {
  (void)ud;
  volatile int *volatile p = (int *)(uintptr_t)0x10;
  *p = 42;
}

FAULTS_ON_PURPOSE
static void div_kernel(void *ud) {
  volatile int a = 7, b = 0;
  *(int *)ud = a / b;
}

static void trap_kernel(void *ud) {
  (void)ud;
  __builtin_trap();
}

/*
 * Integer division by zero traps (SIGFPE, FPE_INTDIV) on x86-64; AArch64's
 * sdiv returns 0 without a signal. Where it does not trap, the SIGFPE that
 * the tests contain is one the kernel raises on its own thread.
 */
#if defined(__x86_64__) || defined(__i386__)
#define INTDIV_TRAPS 1
#else
#define INTDIV_TRAPS 0
#endif

static void raise_fpe_kernel(void *ud) {
  (void)ud;
  raise(SIGFPE);
}

/* A kernel that ends in SIGFPE on this machine. */
#define FPE_KERNEL (INTDIV_TRAPS ? div_kernel : raise_fpe_kernel)

static volatile int endless = -1; /* never reached: the stack ends first */
FAULTS_ON_PURPOSE
static int recurse(volatile int depth) {
  volatile char pad[512];
  pad[0] = (char)depth;
  pad[511] = (char)(depth >> 8);
  if (depth == endless)
    return pad[0];
  return recurse(depth + 1) + pad[0] + pad[511];
}

static void overflow_kernel(void *ud) { *(int *)ud = recurse(0); }

static void bus_kernel(void *ud) {
  char path[] = "/tmp/edgert_guard_busXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  long page = sysconf(_SC_PAGESIZE);
  assert_int_equal(ftruncate(fd, page), 0);
  volatile char *p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(ftruncate(fd, 0), 0);
  close(fd);
  unlink(path);
  *(int *)ud = p[0];
}

static void abort_kernel(void *ud) {
  (void)ud;
  abort();
}

/* ---- contained faults ---------------------------------------------------- */

static void ok_call_runs_and_returns_zero(void **state) {
  (void)state;
  ready();
  int n = 0;
  assert_int_equal(edgert_guard_run(ok_kernel, &n, "ok_kernel"), 0);
  assert_int_equal(n, 1);
  assert_int_equal(edgert_guard_enabled(), 1);
}

static void null_dereference_is_contained_and_described(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_guard_run(null_kernel, NULL, "null_kernel"), EDGERT_ECRASH);
  const edgert_crash_t *c = edgert_last_crash();
  assert_int_equal(c->signo, SIGSEGV);
  assert_int_equal(c->code, SEGV_MAPERR);
  assert_ptr_equal(c->address, NULL);
  assert_string_equal(c->function, "null_kernel");
  assert_string_equal(c->module, "");
  const char *msg = edgert_last_error();
  assert_non_null(strstr(msg, "SIGSEGV"));
  assert_non_null(strstr(msg, "address not mapped"));
  assert_non_null(strstr(msg, "'null_kernel'"));
  assert_non_null(strstr(msg, "at address 0x0 in"));
}

static void fault_address_is_recorded(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_guard_run(wild_kernel, NULL, "wild"), EDGERT_ECRASH);
  assert_ptr_equal(edgert_last_crash()->address, (void *)(uintptr_t)0x10);
  assert_non_null(strstr(edgert_last_error(), "0x10"));
}

static void division_by_zero_is_sigfpe(void **state) {
  (void)state;
  ready();
  int out = -1;
  if (!INTDIV_TRAPS) {
    assert_int_equal(edgert_guard_run(div_kernel, &out, "div"), 0);
    assert_int_equal(out, 0);
    assert_int_equal(edgert_guard_run(raise_fpe_kernel, NULL, "fpe"), EDGERT_ECRASH);
    assert_int_equal(edgert_last_crash()->signo, SIGFPE);
    assert_non_null(strstr(edgert_last_error(), "SIGFPE"));
    return;
  }
  assert_int_equal(edgert_guard_run(div_kernel, &out, "div"), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->signo, SIGFPE);
  assert_int_equal(edgert_last_crash()->code, FPE_INTDIV);
  assert_non_null(strstr(edgert_last_error(), "SIGFPE (integer division by zero)"));
}

/* __builtin_trap() is ud2 (SIGILL) on x86-64 and brk (SIGTRAP) on AArch64;
 * either way the guard contains it. */
static void trap_is_contained(void **state) {
  (void)state;
#if defined(__aarch64__)
  const int want = SIGTRAP;
#else
  const int want = SIGILL;
#endif
  ready();
  assert_int_equal(edgert_guard_run(trap_kernel, NULL, "trap"), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->signo, want);
  assert_non_null(strstr(edgert_last_error(), edgert_signal_name(want)));
}

static void truncated_mapping_is_sigbus(void **state) {
  (void)state;
  ready();
  int out = 0;
  assert_int_equal(edgert_guard_run(bus_kernel, &out, "bus"), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->signo, SIGBUS);
  assert_non_null(strstr(edgert_last_error(), "SIGBUS"));
}

static void stack_overflow_is_contained(void **state) {
  (void)state;
  ready();
  int out = 0;
  assert_int_equal(edgert_guard_run(overflow_kernel, &out, "overflow"), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->signo, SIGSEGV);
  /* and the stack is usable again, and so is the guard */
  int n = 0;
  assert_int_equal(edgert_guard_run(ok_kernel, &n, "ok"), 0);
  assert_int_equal(n, 1);
  assert_int_equal(edgert_guard_run(overflow_kernel, &out, "overflow"), EDGERT_ECRASH);
}

static void many_faults_in_a_row_leave_everything_working(void **state) {
  (void)state;
  ready();
  edgert_guard_stats_t before, after;
  edgert_guard_stats(&before);
  for (int i = 0; i < 2000; i++) {
    assert_int_equal(edgert_guard_run(i % 2 ? null_kernel : FPE_KERNEL, &(int){0}, "k"),
                     EDGERT_ECRASH);
  }
  edgert_guard_stats(&after);
  assert_true(after.crashes - before.crashes == 2000);
  int n = 0;
  for (int i = 0; i < 100; i++)
    assert_int_equal(edgert_guard_run(ok_kernel, &n, "ok"), 0);
  assert_int_equal(n, 100);
}

static void signal_mask_is_restored_after_a_fault(void **state) {
  (void)state;
  ready();
  sigset_t before, after;
  pthread_sigmask(SIG_SETMASK, NULL, &before);
  assert_int_equal(edgert_guard_run(null_kernel, NULL, "null"), EDGERT_ECRASH);
  pthread_sigmask(SIG_SETMASK, NULL, &after);
  assert_int_equal(sigismember(&after, SIGSEGV), 0);
  assert_int_equal(sigismember(&after, SIGFPE), 0);
  for (int s = 1; s < 32; s++)
    assert_int_equal(sigismember(&before, s), sigismember(&after, s));
}

/* A guarded call inside a guarded call: each fault goes to its own frame. */
static void inner_crash(void *ud) {
  int *rc = ud;
  rc[0] = edgert_guard_run(null_kernel, NULL, "inner");
  rc[1] = 1; /* the outer kernel goes on after the inner crash */
}

static void outer_crash_after_inner(void *ud) {
  int *rc = ud;
  rc[0] = edgert_guard_run(ok_kernel, &rc[1], "inner_ok");
  null_kernel(NULL);
}

static void nested_guarded_calls_unwind_to_their_own_frame(void **state) {
  (void)state;
  ready();
  int rc[2] = {0, 0};
  assert_int_equal(edgert_guard_run(inner_crash, rc, "outer"), 0);
  assert_int_equal(rc[0], EDGERT_ECRASH);
  assert_int_equal(rc[1], 1);
  int rc2[2] = {-1, 0};
  assert_int_equal(edgert_guard_run(outer_crash_after_inner, rc2, "outer"), EDGERT_ECRASH);
  assert_int_equal(rc2[0], 0);
  assert_int_equal(rc2[1], 1);
  assert_string_equal(edgert_last_crash()->function, "outer");
}

/* SIGTRAP from the architecture's breakpoint instruction: contained where
 * a trap instruction raises it (int3 on x86-64, brk on AArch64). */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
#define HAVE_BREAKPOINT 1
static void breakpoint_kernel(void *ud) {
  (void)ud;
#if defined(__aarch64__)
  __asm__ volatile("brk #0");
#else
  __asm__ volatile("int3");
#endif
}

static void breakpoint_is_sigtrap(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_guard_run(breakpoint_kernel, NULL, "bp"), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->signo, SIGTRAP);
  assert_int_equal(edgert_last_crash()->sent, 0);
  assert_non_null(strstr(edgert_last_error(), "SIGTRAP (breakpoint instruction)"));
  assert_string_equal(edgert_signal_name(SIGTRAP), "SIGTRAP");
  int n = 0;
  assert_int_equal(edgert_guard_run(ok_kernel, &n, "ok"), 0);
}
#endif

/* A kernel that spins until told to stop; another thread signals it there. */
typedef struct spin_s {
  atomic_int spinning;
  atomic_int stop;
  int rc;
  edgert_crash_t crash;
  char message[512];
} spin_t;

static void spin_kernel(void *ud) {
  spin_t *s = ud;
  atomic_store(&s->spinning, 1);
  while (!atomic_load(&s->stop))
    ;
}

static void *spin_thread(void *arg) {
  spin_t *s = arg;
  s->rc = edgert_guard_run(spin_kernel, s, "spinner");
  s->crash = *edgert_last_crash();
  snprintf(s->message, sizeof s->message, "%s", edgert_last_error());
  return NULL;
}

/* pthread_kill(SIGSEGV) from another thread of the process: SI_TKILL from
 * this pid, like a raise() in the kernel, but sent: the call is abandoned,
 * and the record and the message say it was sent, not raised. */
static void signal_sent_by_another_thread_is_not_blamed(void **state) {
  (void)state;
  ready();
  spin_t s;
  memset(&s, 0, sizeof s);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, spin_thread, &s), 0);
  while (!atomic_load(&s.spinning))
    sched_yield();
  assert_int_equal(pthread_kill(t, SIGSEGV), 0);
  pthread_join(t, NULL);
  assert_int_equal(s.rc, EDGERT_ECRASH);
  assert_int_equal(s.crash.signo, SIGSEGV);
  assert_int_equal(s.crash.code, SI_TKILL);
  assert_int_equal(s.crash.sent, 1);
  assert_int_equal(s.crash.self_raised, 0);
  assert_int_equal(s.crash.sender_pid, (int)getpid());
  assert_int_equal(s.crash.unhealthy, 0);
  assert_null(s.crash.address);
  assert_non_null(strstr(s.message, "kernel interrupted: SIGSEGV (sent to this thread by this process"));
  assert_non_null(strstr(s.message, "not blamed"));
  assert_null(strstr(s.message, "raised by the thread itself"));
}

static void null_function_is_einval(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_guard_run(NULL, NULL, "x"), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "fn is NULL"));
  assert_string_equal(edgert_signal_name(SIGBUS), "SIGBUS");
  assert_string_equal(edgert_signal_name(SIGABRT), "SIGABRT"); /* an isolated worker's end */
  assert_string_equal(edgert_signal_name(SIGSYS), "SIGSYS");
  assert_string_equal(edgert_signal_name(SIGRTMIN + 2), "signal");
  assert_string_equal(edgert_signal_name(0), "signal");
}

static void install_is_idempotent(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_guard_install(), 0);
  assert_int_equal(edgert_guard_install(), 0);
  struct sigaction cur;
  sigaction(SIGSEGV, NULL, &cur);
  assert_true(cur.sa_flags & SA_SIGINFO);
  assert_true(cur.sa_flags & SA_ONSTACK);
  sigaction(SIGABRT, NULL, &cur);
  assert_true(cur.sa_handler == SIG_DFL); /* SIGABRT is never taken */
}

/* ---- threads --------------------------------------------------------------- */

typedef struct worker_s {
  int index;
  int crashes;
  int oks;
  int wrong_record;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  char name[32];
  snprintf(name, sizeof name, "w%d", w->index);
  for (int i = 0; i < 500; i++) {
    int n = 0;
    if ((i + w->index) % 3 == 0) {
      if (edgert_guard_run(w->index % 2 ? null_kernel : overflow_kernel, &n, name) ==
          EDGERT_ECRASH)
        w->crashes++;
      if (strcmp(edgert_last_crash()->function, name) != 0 ||
          edgert_last_crash()->signo != SIGSEGV)
        w->wrong_record++;
    } else if (edgert_guard_run(ok_kernel, &n, name) == 0 && n == 1) {
      w->oks++;
    }
  }
  return NULL;
}

static void threads_crash_and_run_concurrently(void **state) {
  (void)state;
  ready();
  enum { N = 4 };
  pthread_t t[N];
  worker_t w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker_t){i, 0, 0, 0};
    assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
  }
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++) {
    int expect_crash = 0;
    for (int k = 0; k < 500; k++)
      expect_crash += (k + i) % 3 == 0;
    assert_int_equal(w[i].crashes, expect_crash);
    assert_int_equal(w[i].oks, 500 - expect_crash);
    assert_int_equal(w[i].wrong_record, 0);
  }
}

static void *one_guarded_call(void *arg) {
  int *rc = arg;
  int n = 0;
  *rc = edgert_guard_run(overflow_kernel, &n, "overflow");
  return NULL;
}

static void alternate_stacks_are_freed_at_thread_exit(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long before = edgert_test_failalloc_live();
  for (int i = 0; i < 8; i++) {
    pthread_t t;
    int rc = 0;
    assert_int_equal(pthread_create(&t, NULL, one_guarded_call, &rc), 0);
    pthread_join(t, NULL);
    assert_int_equal(rc, EDGERT_ECRASH);
  }
  assert_int_equal(edgert_test_failalloc_live(), before);
  edgert_test_failalloc_uninstall();
}

static void *guarded_call_under_oom(void *arg) {
  int *rc = arg;
  int n = 0;
  edgert_test_failalloc_fail_at(1);
  rc[0] = edgert_guard_run(ok_kernel, &n, "ok");
  rc[2] = strstr(edgert_last_error(), "alternate signal stack") != NULL;
  edgert_test_failalloc_disarm();
  rc[1] = edgert_guard_run(overflow_kernel, &n, "overflow");
  return NULL;
}

static void out_of_memory_for_the_alternate_stack_fails_the_call(void **state) {
  (void)state;
  ready();
  assert_int_equal(edgert_test_failalloc_install(), 0);
  int rc[3] = {0, 0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, guarded_call_under_oom, rc), 0);
  pthread_join(t, NULL);
  assert_int_equal(rc[0], EDGERT_ENOMEM);
  assert_int_equal(rc[2], 1);
  assert_int_equal(rc[1], EDGERT_ECRASH); /* set up on the next call */
  edgert_test_failalloc_uninstall();
}

/* ---- what is not contained: fresh child processes ------------------------ */

/*
 * Each body runs in a fresh process (this executable again, with
 * "--child NAME"), so the guard starts uninstalled there and CMocka's
 * handlers are not around. Bodies report progress on stdout, which the
 * parent reads through a pipe; the parent checks how the child ended.
 * Cross-built suites run under an emulator (qemu-aarch64) that the kernel
 * does not start by itself without binfmt_misc: EDGERT_TEST_EMULATOR (the
 * emulator and its arguments, separated by spaces; ctest sets it in a
 * cross build) is put in front of the re-exec.
 */
static const char *self_path;

static void exec_self(const char *name) {
  enum { MAX_EMU_WORDS = 16 };
  static char emu[1024];
  char *argv[MAX_EMU_WORDS + 4];
  size_t n = 0;
  const char *e = getenv("EDGERT_TEST_EMULATOR");
  if (e != NULL && strlen(e) < sizeof emu) {
    strcpy(emu, e);
    for (char *w = strtok(emu, " "); w != NULL && n < MAX_EMU_WORDS; w = strtok(NULL, " "))
      argv[n++] = w;
  }
  int emulated = n > 0;
  argv[n++] = (char *)self_path;
  argv[n++] = "--child";
  argv[n++] = (char *)name;
  argv[n] = NULL;
  if (emulated)
    execvp(argv[0], argv);
  else
    execv(self_path, argv);
}

static void say(const char *s) {
  ssize_t r = write(1, s, strlen(s));
  (void)r;
}

static int run_child(const char *name, int guard_off, char *out, size_t outsize) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 1);
    if (guard_off)
      setenv("EDGERT_CRASH_GUARD", "0", 1);
    else
      unsetenv("EDGERT_CRASH_GUARD");
    exec_self(name);
    _exit(99);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < outsize && (r = read(p[0], out + n, outsize - 1 - n)) > 0)
    n += (size_t)r;
  out[n] = '\0';
  close(p[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

static void child_unguarded_fault(void) {
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  null_kernel(NULL); /* no guard: must kill the process with SIGSEGV */
  say("survived;");
}

static struct sigaction fh_previous;

/* Like Python's faulthandler: report, put back the previous handler, re-raise. */
static void faulthandler_like(int signo) {
  say("previous-handler;");
  sigaction(signo, &fh_previous, NULL);
  raise(signo);
}

static void install_faulthandler_like(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = faulthandler_like;
  sa.sa_flags = SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &fh_previous);
}

static void child_handler_before_guard(void) {
  install_faulthandler_like(); /* before the guard: its previous is SIG_DFL */
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  null_kernel(NULL);
  say("survived;");
}

static void child_handler_after_guard(void) {
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  install_faulthandler_like(); /* displaces the guard; its previous is ours */
  if (edgert_guard_install() == 0) /* back in front */
    say("reinstalled;");
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  null_kernel(NULL);
  say("survived;");
}

static void child_abort(void) {
  say("before;");
  edgert_guard_run(abort_kernel, NULL, "abort");
  say("survived;");
}

static void raise_kernel(void *ud) {
  (void)ud;
  raise(SIGSEGV);
}

static void child_raise_inside_guard(void) {
  say("before;");
  if (edgert_guard_run(raise_kernel, NULL, "raiser") == EDGERT_ECRASH &&
      edgert_last_crash()->code == SI_TKILL && edgert_last_crash()->address == NULL &&
      edgert_last_crash()->sent == 1 && edgert_last_crash()->self_raised == 1 &&
      edgert_last_crash()->sender_pid == (int)getpid() &&
      strstr(edgert_last_error(), "SIGSEGV (raised by the thread itself, not a fault)") &&
      strstr(edgert_last_error(), "not blamed"))
    say("contained;");
  raise(SIGSEGV); /* outside the guard: the process dies */
  say("survived;");
}

static void kill_kernel(void *ud) {
  (void)ud;
  kill(getpid(), SIGSEGV); /* process-directed, SI_USER */
}

static void child_other_process_signal(void) {
  /* The whole process gets SIGSEGV with kill() while a guarded call runs:
   * not the kernel's doing, not contained. */
  say("before;");
  edgert_guard_run(kill_kernel, NULL, "killer");
  say("survived;");
}

/* faulthandler-like handler installed in front without edgert_guard_install:
 * it sees the fault first and re-raises; the guard still contains it. */
static void child_displaced_without_reinstall(void) {
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  install_faulthandler_like();
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH &&
      edgert_last_crash()->code == SI_TKILL)
    say("contained-after-report;");
  /* the displacing handler put ours back in front when it re-raised */
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH &&
      edgert_last_crash()->code == SEGV_MAPERR)
    say("contained;");
  null_kernel(NULL);
  say("survived;");
}

/* ---- the host probe: faults after the thread re-entered its host ---------- */

/* A pretend interpreter: its state changes while "host code" runs. */
static volatile uintptr_t host_depth;

static void pretend_probe(edgert_guard_host_state_t *out) {
  out->word[0] = host_depth;
  out->word[1] = 0x5eed;
}

/* A kernel that calls back into the host, which runs `ud` (a void (*)(void)). */
static void kernel_calling_host(void *ud) {
  void (*body)(void);
  memcpy(&body, &ud, sizeof body);
  host_depth++;
  body();
  host_depth--;
}

static void host_makes_a_guarded_call(void) {
  if (edgert_guard_run(null_kernel, NULL, "nested") == EDGERT_ECRASH)
    say("nested-contained;");
}

static void host_code_faults(void) { null_kernel(NULL); }

static void *as_ud(void (*body)(void)) {
  void *ud;
  memcpy(&ud, &body, sizeof ud);
  return ud;
}

static void child_fault_in_host_callback(void) {
  install_faulthandler_like(); /* what an unguarded fault is handed to */
  edgert_guard_set_host_probe(pretend_probe);
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;"); /* the kernel's own fault: the host state did not change */
  if (edgert_guard_run(kernel_calling_host, as_ud(host_makes_a_guarded_call), "outer") == 0)
    say("outer-returned;"); /* a guarded call made by the host keeps its containment */
  /* host code faults inside the kernel's call: not contained */
  edgert_guard_run(kernel_calling_host, as_ud(host_code_faults), "outer");
  say("survived;");
}

/* ---- a C host's own handler, installed after the guard ---------------------- */

/* Like CPython's handler for signal.signal(): notes the signal and returns. */
static void trip_handler(int signo) {
  (void)signo;
  say("tripped;");
}

static void child_host_handler_after_guard(void) {
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  signal(SIGSEGV, trip_handler); /* in front of the guard now */
  edgert_guard_install();        /* ... and the guard back in front of it */
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;");
  kill(getpid(), SIGSEGV); /* sent to the process: the host's handler gets it */
  if (edgert_guard_run(null_kernel, NULL, "k") == EDGERT_ECRASH)
    say("contained;"); /* and the guard is still in front afterwards */
  kill(getpid(), SIGSEGV);
  null_kernel(NULL); /* unguarded: the handler once, then death, no loop */
  say("survived;");
}

/* ---- the C library's locks: a crash inside it makes the process unhealthy ---- */

/* Faults on its 200th call: inside the C library's sort, even where a
 * sanitizer's qsort interceptor calls the comparator over the array first
 * (63 calls, with no C library frame). */
static int compare_calls;
FAULTS_ON_PURPOSE
static int faulting_compare(const void *a, const void *b) {
  if (++compare_calls == 200) {
    volatile int *volatile p = NULL;
    return *p;
  }
  return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static void qsort_kernel(void *ud) {
  (void)ud;
  int v[64];
  for (int i = 0; i < 64; i++)
    v[i] = (i * 37) % 64;
  compare_calls = 0;
  qsort(v, 64, sizeof v[0], faulting_compare);
}

FAULTS_ON_PURPOSE
static int faulting_phdr(struct dl_phdr_info *info, size_t size, void *ud) {
  (void)info;
  (void)size;
  volatile int *volatile p = ud;
  return *p;
}

static void phdr_kernel(void *ud) {
  (void)ud;
  dl_iterate_phdr(faulting_phdr, NULL);
}

FAULTS_ON_PURPOSE
static void libc_fault_kernel(void *ud) {
  const char *volatile text = NULL;
  *(volatile int *)ud = strverscmp(text, "1");
}

static int compiled_one(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  *(double *)ret = 1.0;
  return 0;
}

static int reference_two(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  *(double *)ret = 2.0;
  return 0;
}

static int unhealthy_events;
static void count_unhealthy(void *ud, edgert_kernel_t *k, edgert_nexus_event_t ev,
                            uint64_t version, int err) {
  (void)ud;
  (void)k;
  (void)version;
  (void)err;
  if (ev == EDGERT_NEXUS_UNHEALTHY)
    unhealthy_events++;
}

/* Reports how the process looks after `kernel` crashed: the record, the
 * health and the nexus's routing. */
static void crash_and_report(void (*kernel)(void *), const char *how) {
  edgert_nexus_t *nx = NULL;
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.observer = count_unhealthy;
  edgert_nexus_impl_t impl = {NULL, compiled_one, NULL, NULL, NULL};
  edgert_kernel_t *k = NULL;
  if (edgert_nexus_new(&nx) != 0 || edgert_nexus_register(nx, "k", &impl, reference_two, NULL, &o, &k) != 0)
    return;
  double r = 0;
  if (edgert_process_healthy(NULL) && edgert_kernel_call(k, NULL, &r) == 0 && r == 1.0)
    say("compiled;");
  int out = 0;
  if (edgert_guard_run(kernel, &out, "k") == EDGERT_ECRASH)
    say("contained;");
  const edgert_crash_t *c = edgert_last_crash();
  const char *reason = NULL;
  if (c->unhealthy && !edgert_process_healthy(&reason) && reason != NULL &&
      strstr(reason, "libc.so") && strstr(edgert_last_error(), "the process is now unhealthy") &&
      strstr(edgert_last_error(), how))
    say("unhealthy;");
  edgert_nexus_stats_t st;
  if (edgert_kernel_call(k, NULL, &r) == 0 && r == 2.0) {
    edgert_kernel_stats(k, &st);
    if (st.compiled == 1 && st.fallbacks == 1 && unhealthy_events == 1)
      say("nexus-reference;");
  }
  edgert_nexus_free(nx);
  fflush(NULL);
  _exit(0); /* exit() may wait for a lock the crash left held */
}

static void child_callback_from_qsort(void) { crash_and_report(qsort_kernel, "it had called the kernel back"); }
static void child_callback_from_dl_iterate_phdr(void) {
  crash_and_report(phdr_kernel, "it had called the kernel back");
}
static void child_fault_inside_libc(void) {
  crash_and_report(libc_fault_kernel, "the faulting instruction is at");
}

/* Stale return addresses of the C library in uninitialised slots below a
 * fault (qsort called its comparator from where the faulting frame now
 * is) must not be taken for a live frame: only live frames count. */
static int compare_ints(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}
__attribute__((noinline)) static int sort_deep(int n) {
  int v[64];
  for (int i = 0; i < 64; i++)
    v[i] = (i * 37 + n) % 64;
  qsort(v, 64, sizeof v[0], compare_ints);
  return v[n & 63];
}
FAULTS_ON_PURPOSE static int big_frame(int n) {
  volatile char buf[8192]; /* not initialised: the stale slots stay */
  buf[n & 8191] = 1;
  volatile int *volatile p = NULL;
  return *p + buf[0];
}
static void stale_frames_kernel(void *ud) { *(int *)ud = sort_deep(*(int *)ud) + big_frame(*(int *)ud); }

static void child_ordinary_faults_leave_the_process_healthy(void) {
  int bad = 0;
  for (int i = 0; i < 200; i++) {
    int n = i * 131;
    void (*k)(void *) = i % 4 == 0 ? stale_frames_kernel : i % 4 == 1 ? null_kernel
                        : i % 4 == 2 ? (INTDIV_TRAPS ? div_kernel : null_kernel) : overflow_kernel;
    if (edgert_guard_run(k, &n, "k") != EDGERT_ECRASH || edgert_last_crash()->unhealthy)
      bad++;
  }
  if (bad == 0 && edgert_process_healthy(NULL))
    say("healthy;");
  _exit(0);
}

/* ---- what cannot be contained ------------------------------------------------- */

FAULTS_ON_PURPOSE
static void blocking_kernel(void *ud) {
  (void)ud;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGSEGV);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  null_kernel(NULL); /* a blocked synchronous fault kills the process */
}

static void child_kernel_blocks_the_signal(void) {
  say("before;");
  edgert_guard_run(blocking_kernel, NULL, "blocker");
  say("survived;");
}

static void no_alt_stack_kernel(void *ud) {
  stack_t off;
  memset(&off, 0, sizeof off);
  off.ss_flags = SS_DISABLE;
  sigaltstack(&off, NULL);
  overflow_kernel(ud); /* no stack left to run any handler on */
}

static void child_kernel_disables_the_alternate_stack(void) {
  say("before;");
  int n = 0;
  edgert_guard_run(no_alt_stack_kernel, &n, "no_alt_stack");
  say("survived;");
}

static void child_guard_off(void) {
  char buf[128];
  int n = 0;
  int ok = edgert_guard_run(ok_kernel, &n, "ok");
  snprintf(buf, sizeof buf, "enabled=%d;ok=%d;install=%s;", edgert_guard_enabled(), ok,
           edgert_err_name(edgert_guard_install()));
  say(buf);
  edgert_guard_run(null_kernel, NULL, "null"); /* not contained: dies */
  say("survived;");
}

static const struct {
  const char *name;
  void (*body)(void);
} children[] = {
    {"unguarded_fault", child_unguarded_fault},
    {"handler_before_guard", child_handler_before_guard},
    {"handler_after_guard", child_handler_after_guard},
    {"abort", child_abort},
    {"raise_inside_guard", child_raise_inside_guard},
    {"other_process_signal", child_other_process_signal},
    {"displaced_without_reinstall", child_displaced_without_reinstall},
    {"guard_off", child_guard_off},
    {"fault_in_host_callback", child_fault_in_host_callback},
    {"host_handler_after_guard", child_host_handler_after_guard},
    {"callback_from_qsort", child_callback_from_qsort},
    {"callback_from_dl_iterate_phdr", child_callback_from_dl_iterate_phdr},
    {"fault_inside_libc", child_fault_inside_libc},
    {"ordinary_faults_leave_the_process_healthy", child_ordinary_faults_leave_the_process_healthy},
    {"kernel_blocks_the_signal", child_kernel_blocks_the_signal},
    {"kernel_disables_the_alternate_stack", child_kernel_disables_the_alternate_stack},
};

static void expect_child(const char *name, int guard_off, int signo, const char *output) {
  char out[256];
  int st = run_child(name, guard_off, out, sizeof out);
  assert_string_equal(out, output);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), signo);
}

static void fault_outside_a_guarded_call_kills_with_the_signal(void **state) {
  (void)state;
  expect_child("unguarded_fault", 0, SIGSEGV, "contained;");
}

static void previous_handler_runs_exactly_once_then_death(void **state) {
  (void)state;
  expect_child("handler_before_guard", 0, SIGSEGV, "contained;previous-handler;");
}

static void displacing_handler_chains_once_without_a_loop(void **state) {
  (void)state;
  expect_child("handler_after_guard", 0, SIGSEGV,
               "contained;reinstalled;contained;previous-handler;");
}

static void abort_is_never_contained(void **state) {
  (void)state;
  expect_child("abort", 0, SIGABRT, "before;");
}

static void signal_raised_by_the_kernel_is_contained(void **state) {
  (void)state;
  expect_child("raise_inside_guard", 0, SIGSEGV, "before;contained;");
}

static void signal_sent_to_the_process_is_not_contained(void **state) {
  (void)state;
  expect_child("other_process_signal", 0, SIGSEGV, "before;");
}

static void handler_in_front_without_reinstall_still_leaves_faults_contained(void **state) {
  (void)state;
  expect_child("displaced_without_reinstall", 0, SIGSEGV,
               "contained;previous-handler;contained-after-report;contained;");
}

static void fault_after_re_entering_the_host_is_not_contained(void **state) {
  (void)state;
  expect_child("fault_in_host_callback", 0, SIGSEGV,
               "contained;nested-contained;outer-returned;previous-handler;");
}

static void host_handler_installed_after_the_guard_is_chained(void **state) {
  (void)state;
  expect_child("host_handler_after_guard", 0, SIGSEGV,
               "contained;contained;tripped;contained;tripped;tripped;");
}

/* A child that ends with _exit(0). */
static void expect_clean_child(const char *name, const char *output) {
  char out[256];
  int st = run_child(name, 0, out, sizeof out);
  assert_string_equal(out, output);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void callback_from_qsort_makes_the_process_unhealthy(void **state) {
  (void)state;
  expect_clean_child("callback_from_qsort", "compiled;contained;unhealthy;nexus-reference;");
}

static void callback_from_dl_iterate_phdr_makes_the_process_unhealthy(void **state) {
  (void)state;
  expect_clean_child("callback_from_dl_iterate_phdr",
                     "compiled;contained;unhealthy;nexus-reference;");
}

static void fault_inside_libc_makes_the_process_unhealthy(void **state) {
  (void)state;
  expect_clean_child("fault_inside_libc", "compiled;contained;unhealthy;nexus-reference;");
}

static void ordinary_faults_leave_the_process_healthy(void **state) {
  (void)state;
  expect_clean_child("ordinary_faults_leave_the_process_healthy", "healthy;");
}

static void kernel_that_blocks_the_signal_kills_the_process(void **state) {
  (void)state;
  expect_child("kernel_blocks_the_signal", 0, SIGSEGV, "before;");
}

static void kernel_that_disables_the_alternate_stack_kills_the_process(void **state) {
  (void)state;
  expect_child("kernel_disables_the_alternate_stack", 0, SIGSEGV, "before;");
}

static void environment_switch_turns_containment_off(void **state) {
  (void)state;
  expect_child("guard_off", 1, SIGSEGV, "enabled=0;ok=0;install=EUNSUPPORTED;");
}

/* ---- edgert_guard_call: through the loader ------------------------------- */

static edgert_module_t *crashy;

/* edgert_func_call writes results into 16 bytes aligned for long double. */
typedef union result_u {
  long double ld;
  double d;
  int i;
} result_t;

static edgert_func_t *bind(const char *name, const char *ret, size_t nargs, ...) {
  const char *types[8];
  va_list ap;
  va_start(ap, nargs);
  for (size_t i = 0; i < nargs; i++)
    types[i] = va_arg(ap, const char *);
  va_end(ap);
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, name, types, nargs, ret, NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(crashy, &c, &fn), 0);
  return fn;
}

static int load_crashy(void **state) {
  (void)state;
  ready();
  edgert_module_free(crashy);
  crashy = NULL;
  return edgert_module_load(CRASHY, NULL, &crashy) == 0 ? 0 : -1;
}

static int free_crashy(void **state) {
  (void)state;
  ready();
  edgert_module_free(crashy);
  crashy = NULL;
  return 0;
}

static int reference_double(void *ud, void **args, void *ret) {
  if (ud != NULL)
    ++*(int *)ud;
  *(double *)ret = *(double *)args[0] * 2.0 + 1.0;
  return 0;
}

static int failing_reference(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  (void)ret;
  return 7; /* not a code: becomes EDGERT_EFAILED */
}

static void guard_call_returns_the_compiled_result(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_ok", "c_double", 1, "c_double");
  double x = 3.0;
  result_t r = {0};
  void *args[] = {&x};
  int refs = 0;
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.ud = &refs;
  edgert_guard_stats_reset();
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
  assert_true(r.d == 7.0);
  assert_int_equal(refs, 0);
  edgert_guard_stats_t s;
  edgert_guard_stats(&s);
  assert_true(s.calls == 1 && s.compiled == 1 && s.failures == 0 && s.fallbacks == 0);
}

static void guard_call_crash_without_fallback_is_efailed(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_null_deref", "c_double", 1, "c_double");
  double x = 3.0;
  result_t r = {0};
  void *args[] = {&x};
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, NULL), EDGERT_EFAILED);
  const char *msg = edgert_last_error();
  assert_non_null(strstr(msg, "guard_null_deref"));
  assert_non_null(strstr(msg, "fallback is disabled"));
  assert_non_null(strstr(msg, "SIGSEGV"));
  assert_non_null(strstr(msg, "[ECRASH]"));
  assert_int_equal(edgert_last_crash()->signo, SIGSEGV);
  assert_string_equal(edgert_last_crash()->function, "guard_null_deref");
  /* the module is quarantined now: no code of it runs */
  assert_int_equal(edgert_module_quarantined(crashy), 1);
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, NULL), EDGERT_EFAILED);
  assert_non_null(strstr(edgert_last_error(), "[EQUARANTINED]"));
}

static void guard_call_crash_with_fallback_uses_the_reference(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_crash_if_negative", "c_double", 1, "c_double");
  double x = -2.0;
  result_t r = {0};
  void *args[] = {&x};
  int refs = 0;
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.fallback_enabled = 1;
  p.ud = &refs;
  edgert_guard_stats_reset();
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
  assert_true(r.d == -3.0);
  assert_int_equal(refs, 1);
  /* quarantined: the reference answers, even for inputs the kernel handles */
  x = 5.0;
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
  assert_true(r.d == 11.0);
  assert_int_equal(refs, 2);
  edgert_guard_stats_t s;
  edgert_guard_stats(&s);
  assert_true(s.calls == 2 && s.compiled == 0 && s.failures == 2 && s.fallbacks == 2);
  assert_true(s.crashes == 1);
}

static void guard_call_reference_failure_is_reported(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_null_deref", "c_double", 1, "c_double");
  double x = 1.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.fallback_enabled = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, failing_reference, &p), EDGERT_EFAILED);
  assert_non_null(strstr(edgert_last_error(), "reference of guard_null_deref failed (returned 7)"));
}

static void guard_call_strict_accepts_small_differences(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_slightly_off", "c_double", 1, "c_double");
  double x = 3.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.strict = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
  assert_true(fabs(r.d - 7.0) < 1e-9 && r.d != 7.0); /* the compiled result */
}

static void guard_call_strict_reports_a_mismatch(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_badly_off", "c_double", 1, "c_double");
  double x = 3.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.strict = 1;
  edgert_guard_stats_reset();
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), EDGERT_EMISMATCH);
  assert_non_null(strstr(edgert_last_error(),
                         "guard_badly_off: compiled result 7.5 differs from reference result 7"));
  edgert_guard_stats_t s;
  edgert_guard_stats(&s);
  assert_true(s.mismatches == 1);
  p.tolerance = 0.1; /* relative: 0.5 / 7.5 < 0.1 */
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
}

static int int_reference(void *ud, void **args, void *ret) {
  (void)ud;
  *(int *)ret = *(int *)args[0] + *(int *)args[1] + 1;
  return 0;
}

static int loose_int_compare(void *ud, const void *a, const void *b, double tol) {
  (void)ud;
  return abs(*(const int *)a - *(const int *)b) <= (int)tol;
}

static void guard_call_strict_compares_integers_exactly_or_with_a_callback(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_add", "c_int", 2, "c_int", "c_int");
  int a = 2, b = 3;
  result_t r = {0};
  void *args[] = {&a, &b};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.strict = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, int_reference, &p), EDGERT_EMISMATCH);
  assert_non_null(strstr(edgert_last_error(), "compiled result 5 differs from reference result 6"));
  p.compare = loose_int_compare;
  p.tolerance = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, int_reference, &p), 0);
  assert_int_equal(r.i, 5);
}

static void guard_call_strict_nan_differs_from_a_number(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_nan", "c_double", 1, "c_double");
  double x = 1.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.strict = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), EDGERT_EMISMATCH);
  assert_non_null(strstr(edgert_last_error(), "compiled result nan differs"));
}

static int nan_reference(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  *(double *)ret = NAN;
  return 0;
}

static void guard_call_strict_nan_matches_nan(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_nan", "c_double", 1, "c_double");
  double x = 1.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.strict = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, nan_reference, &p), 0);
  assert_true(isnan(r.d));
}

static void guard_call_rejects_bad_policies(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_ok", "c_double", 1, "c_double");
  double x = 1.0;
  result_t r = {0};
  void *args[] = {&x};
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.fallback_enabled = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, NULL, &p), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "guard_ok"));
  assert_non_null(strstr(edgert_last_error(), "ref is NULL"));
  p.fallback_enabled = 0;
  p.tolerance = -1;
  assert_int_equal(edgert_guard_call(fn, args, &r, NULL, &p), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "tolerance must be >= 0"));
  p.tolerance = NAN;
  assert_int_equal(edgert_guard_call(fn, args, &r, NULL, &p), EDGERT_EINVAL);
  assert_int_equal(edgert_guard_call(NULL, args, &r, NULL, NULL), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "fn is NULL"));
  /* without a policy that needs it, no reference is fine */
  assert_int_equal(edgert_guard_call(fn, args, &r, NULL, NULL), 0);
  assert_true(r.d == 3.0);
}

static void guard_call_on_an_unloaded_module_falls_back(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_ok", "c_double", 1, "c_double");
  edgert_module_unload(crashy);
  double x = 1.0;
  result_t r = {0};
  void *args[] = {&x};
  assert_int_equal(edgert_guard_call(fn, args, &r, NULL, NULL), EDGERT_EFAILED);
  assert_non_null(strstr(edgert_last_error(), "[EUNLOADED]"));
  edgert_guard_policy_t p = EDGERT_GUARD_POLICY_INIT;
  p.fallback_enabled = 1;
  assert_int_equal(edgert_guard_call(fn, args, &r, reference_double, &p), 0);
  assert_true(r.d == 3.0);
}

/* A signal sent to a bound function's thread: the call fails, but neither
 * the loader nor the nexus holds it against the kernel. */
typedef struct bound_spin_s {
  edgert_func_t *fn;
  edgert_kernel_t *k;
  long limit;
  int rc;
  int sent;
  long result;
} bound_spin_t;

static void *bound_spin_thread(void *arg) {
  bound_spin_t *b = arg;
  long double ret[2];
  void *args[] = {&b->limit};
  b->rc = b->k != NULL ? edgert_kernel_call(b->k, args, ret) : edgert_func_call(b->fn, args, ret);
  b->sent = edgert_last_crash()->sent;
  memcpy(&b->result, ret, sizeof b->result);
  return NULL;
}

static int reference_minus_one(void *ud, void **args, void *ret) {
  (void)ud;
  (void)args;
  long r = -1;
  memcpy(ret, &r, sizeof r);
  return 0;
}

static void interrupt_spinning(bound_spin_t *b, edgert_func_t *spinning) {
  int clear = 1, on = 0;
  void *args[] = {&clear};
  long double ret[2];
  assert_int_equal(edgert_func_call(spinning, args, ret), 0);
  clear = 0;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, bound_spin_thread, b), 0);
  while (on == 0) {
    assert_int_equal(edgert_func_call(spinning, args, ret), 0);
    memcpy(&on, ret, sizeof on);
    sched_yield();
  }
  assert_int_equal(pthread_kill(t, SIGSEGV), 0);
  pthread_join(t, NULL);
}

static void sent_signal_quarantines_nothing(void **state) {
  (void)state;
  ready();
  edgert_func_t *spin = bind("guard_spin", "c_long", 1, "c_long");
  edgert_func_t *spinning = bind("guard_spinning", "c_int", 1, "c_int");
  bound_spin_t b = {spin, NULL, 1L << 50, 0, 0, 0};
  interrupt_spinning(&b, spinning);
  assert_int_equal(b.rc, EDGERT_ECRASH);
  assert_int_equal(b.sent, 1);
  assert_int_equal(edgert_module_quarantined(crashy), 0);
  /* the nexus: the reference serves the interrupted call, no failure counts */
  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_options_t o;
  edgert_nexus_options_init(&o);
  o.max_failures = 1;
  edgert_nexus_impl_t impl = {spin, NULL, NULL, NULL, NULL};
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_register(nx, "spin", &impl, reference_minus_one, NULL, &o, &k), 0);
  bound_spin_t nb = {spin, k, 1L << 50, 0, 0, 0};
  interrupt_spinning(&nb, spinning);
  assert_int_equal(nb.rc, 0);
  assert_int_equal(nb.result, -1);
  edgert_nexus_stats_t st;
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.state, EDGERT_NEXUS_ACTIVE);
  assert_int_equal(st.consecutive_failures, 0);
  assert_true(st.failures == 1 && st.fallbacks == 1);
  long limit = 10;
  void *args[] = {&limit};
  long double ret[2];
  assert_int_equal(edgert_kernel_call(k, args, ret), 0); /* still compiled */
  long got;
  memcpy(&got, ret, sizeof got);
  assert_int_equal(got, 10);
  edgert_kernel_stats(k, &st);
  assert_int_equal(st.compiled, 1);
  assert_int_equal(edgert_module_quarantined(crashy), 0);
  edgert_nexus_free(nx);
}

static void reloading_lifts_the_quarantine(void **state) {
  (void)state;
  ready();
  edgert_func_t *fn = bind("guard_crash_if_negative", "c_double", 1, "c_double");
  double x = -1.0;
  result_t r = {0};
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(fn, args, &r), EDGERT_ECRASH);
  assert_int_equal(edgert_func_call(fn, args, &r), EDGERT_EQUARANTINED);
  assert_int_equal(edgert_module_reload(edgert_func_module(fn), NULL, NULL), 0);
  x = 2.0;
  assert_int_equal(edgert_func_call(fn, args, &r), 0);
  assert_true(r.d == 5.0);
}

int main(int argc, char **argv) {
  self_path = argv[0];
  if (argc > 2 && strcmp(argv[1], "--child") == 0) {
    for (size_t i = 0; i < sizeof children / sizeof children[0]; i++)
      if (strcmp(argv[2], children[i].name) == 0) {
        children[i].body();
        return 0;
      }
    return 98;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ok_call_runs_and_returns_zero),
      cmocka_unit_test(null_dereference_is_contained_and_described),
      cmocka_unit_test(fault_address_is_recorded),
      cmocka_unit_test(division_by_zero_is_sigfpe),
      cmocka_unit_test(trap_is_contained),
      cmocka_unit_test(truncated_mapping_is_sigbus),
      cmocka_unit_test(stack_overflow_is_contained),
      cmocka_unit_test(many_faults_in_a_row_leave_everything_working),
      cmocka_unit_test(signal_mask_is_restored_after_a_fault),
      cmocka_unit_test(nested_guarded_calls_unwind_to_their_own_frame),
#if defined(HAVE_BREAKPOINT)
      cmocka_unit_test(breakpoint_is_sigtrap),
#endif
      cmocka_unit_test(signal_sent_by_another_thread_is_not_blamed),
      cmocka_unit_test(null_function_is_einval),
      cmocka_unit_test(install_is_idempotent),
      cmocka_unit_test(threads_crash_and_run_concurrently),
      cmocka_unit_test(alternate_stacks_are_freed_at_thread_exit),
      cmocka_unit_test(out_of_memory_for_the_alternate_stack_fails_the_call),
      cmocka_unit_test(fault_outside_a_guarded_call_kills_with_the_signal),
      cmocka_unit_test(previous_handler_runs_exactly_once_then_death),
      cmocka_unit_test(displacing_handler_chains_once_without_a_loop),
      cmocka_unit_test(abort_is_never_contained),
      cmocka_unit_test(signal_raised_by_the_kernel_is_contained),
      cmocka_unit_test(signal_sent_to_the_process_is_not_contained),
      cmocka_unit_test(handler_in_front_without_reinstall_still_leaves_faults_contained),
      cmocka_unit_test(environment_switch_turns_containment_off),
      cmocka_unit_test(fault_after_re_entering_the_host_is_not_contained),
      cmocka_unit_test(host_handler_installed_after_the_guard_is_chained),
      cmocka_unit_test(callback_from_qsort_makes_the_process_unhealthy),
      cmocka_unit_test(callback_from_dl_iterate_phdr_makes_the_process_unhealthy),
      cmocka_unit_test(fault_inside_libc_makes_the_process_unhealthy),
      cmocka_unit_test(ordinary_faults_leave_the_process_healthy),
      cmocka_unit_test(kernel_that_blocks_the_signal_kills_the_process),
      cmocka_unit_test(kernel_that_disables_the_alternate_stack_kills_the_process),
      cmocka_unit_test_setup_teardown(guard_call_returns_the_compiled_result, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_crash_without_fallback_is_efailed, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_crash_with_fallback_uses_the_reference, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_reference_failure_is_reported, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_strict_accepts_small_differences, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_strict_reports_a_mismatch, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_strict_compares_integers_exactly_or_with_a_callback, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_strict_nan_differs_from_a_number, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_strict_nan_matches_nan, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_rejects_bad_policies, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(guard_call_on_an_unloaded_module_falls_back, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(reloading_lifts_the_quarantine, load_crashy, free_crashy),
      cmocka_unit_test_setup_teardown(sent_signal_quarantines_nothing, load_crashy, free_crashy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
