/* test_fork.c: fork() while other threads load, unload, bind, swap, call
 * nexus kernels and parse manifests leaves a child in which every lock of
 * the core works: it loads, calls, contains a crash. A child that hangs is
 * killed after a generous bound and fails the test (it never blocks CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

/* A bound on how long a child may take before it counts as hung (not a
 * speed expectation: a healthy child needs milliseconds). */
#define HANG_SECONDS 30

static int slow_machine(void) {
  return getenv("EDGERT_VALGRIND") != NULL || getenv("EDGERT_SANITIZED") != NULL;
}

/* The step a child is at, in a page it shares with the parent: when a
 * child hangs, the parent says where (1: back from fork, 10-18: child_work's steps,
 * 19: exiting). */
static volatile int *child_step;

static void at(int step) {
  if (child_step != NULL)
    *child_step = step;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/*
 * Under qemu-user (ctest sets EDGERT_TEST_EMULATOR for the AArch64 run),
 * a forked child now and then deadlocks inside the emulator itself: seen
 * with Debian 12's qemu-user 7.2 about once in 300 forks while other
 * threads load and unload, every thread of the child waiting on a futex in
 * qemu's own data (its binary's mapping or the .bss after it), never on
 * guest memory, and a signal to the guest never delivered. Such a hang says
 * nothing about libedgert (whose locks and glibc's all live in guest
 * memory), so it is told apart from a hang on a guest lock, which still
 * fails. /proc/<pid> is the host's view here (qemu only rewrites
 * /proc/self).
 */
static int under_emulator(void) { return getenv("EDGERT_TEST_EMULATOR") != NULL; }

/* The host addresses of the emulator's image in `pid`: from its executable's
 * first mapping to the end of the anonymous mapping right after its last
 * one (the .bss). 0 if not found. */
static int emulator_image(pid_t pid, unsigned long *lo, unsigned long *hi) {
  char path[64], exe[512], line[1024];
  snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
  ssize_t n = readlink(path, exe, sizeof exe - 1);
  if (n <= 0)
    return 0;
  exe[n] = '\0';
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int found = 0, after_exe = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long a, b;
    char name[512] = "";
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %511s", &a, &b, name) < 2)
      continue;
    if (strcmp(name, exe) == 0) {
      if (!found)
        *lo = a;
      *hi = b;
      found = 1;
      after_exe = 1;
    } else {
      if (after_exe && name[0] == '\0' && a == *hi)
        *hi = b; /* the .bss */
      after_exe = 0;
    }
  }
  fclose(f);
  return found;
}

/*
 * Under AddressSanitizer (EDGERT_SANITIZED, the CI's ASan stage), a forked
 * child now and then deadlocks inside the sanitizer's own allocator: GCC
 * 12's libasan (Debian 12) registers no fork handlers, so when another
 * thread of the parent is inside malloc, refilling a size class of ASan's
 * allocator under that class's mutex, the child's first malloc of the same
 * class waits on it for ever. Seen about once in 50 forks while threads load
 * on a loaded machine (read_verified's malloc, at child_work's step 12);
 * LLVM's runtime locks its allocator around fork since version 17. Such a
 * hang is told apart as the emulator's is: every thread of the child is in
 * a futex wait that the sanitizer runtime's own code made (its mutexes call
 * the futex system call directly; every lock of libedgert and glibc is a
 * pthread mutex, whose wait glibc makes), and the fork is tried again.
 */
static int sanitized(void) { return getenv("EDGERT_SANITIZED") != NULL; }

/* The executable mapping of the sanitizer runtime in `pid`. 0 if none. */
static int sanitizer_text(pid_t pid, unsigned long *lo, unsigned long *hi) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    unsigned long a, b;
    char perms[8] = "", name[512] = "";
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511s", &a, &b, perms, name) == 4 &&
        perms[2] == 'x' && (strstr(name, "/libasan.so") != NULL || strstr(name, "/libtsan.so") != NULL)) {
      *lo = a;
      *hi = b;
      found = 1;
    }
  }
  fclose(f);
  return found;
}

/* 1 when every thread of `pid` sleeps in a futex wait whose futex address
 * (by_pc 0) or whose calling instruction (by_pc 1) lies in [lo, hi). */
static int every_thread_waits_in(pid_t pid, unsigned long lo, unsigned long hi, int by_pc) {
  char path[96], line[256];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL)
    return 0;
  int threads = 0, inside = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    threads++;
    snprintf(path, sizeof path, "/proc/%d/task/%.20s/wchan", (int)pid, e->d_name);
    FILE *f = fopen(path, "r");
    int futex = f != NULL && fgets(line, sizeof line, f) != NULL && strstr(line, "futex") != NULL;
    if (f != NULL)
      fclose(f);
    snprintf(path, sizeof path, "/proc/%d/task/%.20s/syscall", (int)pid, e->d_name);
    f = fopen(path, "r");
    /* "nr arg1 ... arg6 sp pc" */
    unsigned long nr, arg[6], sp, pc;
    if (futex && f != NULL && fgets(line, sizeof line, f) != NULL &&
        sscanf(line, "%lu %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &arg[0], &arg[1], &arg[2],
               &arg[3], &arg[4], &arg[5], &sp, &pc) == 9) {
      unsigned long where = by_pc ? pc : arg[0];
      inside += where >= lo && where < hi;
    }
    if (f != NULL)
      fclose(f);
  }
  closedir(d);
  return threads > 0 && inside == threads;
}

/* 1 when every thread of `pid` sleeps in a futex whose address lies in the
 * emulator's own image. */
static int waits_inside_emulator(pid_t pid) {
  unsigned long lo = 0, hi = 0;
  return emulator_image(pid, &lo, &hi) && every_thread_waits_in(pid, lo, hi, 0);
}

/* 1 when every thread of `pid` waits on a lock of the sanitizer runtime. */
static int waits_inside_sanitizer(pid_t pid) {
  unsigned long lo = 0, hi = 0;
  return sanitizer_text(pid, &lo, &hi) && every_thread_waits_in(pid, lo, hi, 1);
}

/* Waits for `pid`; kills it when it outlives HANG_SECONDS. Returns its exit
 * status (or the code it wrote to `result`, see child_exit), -1 if it
 * hung, or -2 if it hung inside the emulator or the sanitizer runtime (see
 * under_emulator and sanitized). */
static int wait_or_kill(pid_t pid, int result) {
  double deadline = now() + HANG_SECONDS;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      unsigned char code;
      if (read(result, &code, 1) == 1) /* it wrote its code (child_exit) */
        return code;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (now() > deadline) {
      const char *whose = under_emulator() && waits_inside_emulator(pid) ? "the emulator"
                          : sanitized() && waits_inside_sanitizer(pid) ? "the sanitizer runtime"
                                                                       : NULL;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      print_message("a child hung at step %d (see child_work)%s%s\n",
                    child_step != NULL ? *child_step : -1,
                    whose != NULL ? ", every thread of it waiting on a lock inside " : "",
                    whose != NULL ? whose : "");
      return whose != NULL ? -2 : -1;
    }
    usleep(2000);
  }
}

/* Ends a child with `code`. A forked child inherits what the parent's other
 * threads were doing at the fork: under valgrind its heap holds what they
 * were building (a manifest half parsed, a load in progress, their
 * alternate signal stacks), unreachable in the child by construction, which
 * valgrind's leak check at exit would count against the child; under
 * ThreadSanitizer their threads, which it would report as leaked. There the
 * child writes its code to `result` and replaces itself with /bin/true,
 * which ends it without those exit-time checks. (ASan and TSan stop a child
 * at its first error, before it gets here, and it fails; valgrind prints a
 * child's errors in the log, but only the parent's decide its exit code.) */
static void child_exit(int code, int result) {
  if (getenv("EDGERT_VALGRIND") != NULL || getenv("EDGERT_SANITIZED") != NULL) {
    unsigned char c = (unsigned char)code;
    if (write(result, &c, 1) == 1)
      execl("/bin/true", "true", (char *)NULL);
  }
  _exit(code);
}

/* Forks a child that runs `work` and returns its status as wait_or_kill. */
static int run_child(int (*work)(void)) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    at(1);
    close(p[0]);
    int code = work();
    at(19);
    child_exit(code, p[1]);
  }
  close(p[1]);
  int status = wait_or_kill(pid, p[0]);
  close(p[0]);
  return status;
}

/* ---- what the threads share ------------------------------------------------ */

static edgert_nexus_t *nx;
static edgert_kernel_t *kern;
static edgert_module_t *shared;
static atomic_int stop;

static int twice(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = 2.0 * *(double *)args[0];
  return 0;
}

static edgert_nexus_impl_t twice_impl(void) {
  edgert_nexus_impl_t c = {NULL, twice, NULL, NULL, NULL};
  return c;
}

static size_t pt_size(void) { return 8; }
static int pt_check(void *o) { return o != NULL; }
static void pt_copy(void *dst, void *src) { memcpy(dst, src, 8); }

static const char manifest[] =
    "{\"schema_version\": 1, \"modules\": [{\"path\": \"k.so\", \"sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000000\", \"contracts\": "
    "[{\"function_name\": \"add\", \"arg_types\": [\"c_double\", \"c_double\"], "
    "\"return_type\": \"c_double\", \"calling_convention\": \"cdecl\"}]}]}";

static edgert_func_t *bind_d2(edgert_module_t *m, const char *name) {
  edgert_contract_t c;
  const char *a[] = {"c_double", "c_double"};
  edgert_func_t *fn = NULL;
  if (edgert_contract_init(&c, name, a, 2, "c_double", NULL, 1) != 0 ||
      edgert_module_bind(m, &c, &fn) != 0)
    return NULL;
  return fn;
}

/* The struct layout the threads look up and define again (the same layout:
 * a lookup, then the list walk of a definition that finds it). */
static int define_forkpt(void) {
  const edgert_struct_field_desc_t f[] = {{"x", "c_double", 0, 0}, {"y", "c_double", 8, 0}};
  return edgert_struct_define("ForkPt", f, 2, 16, 8, NULL);
}

/* Everything a child must still be able to do. 0, or the step that failed. */
static int child_work(void) {
  edgert_module_t *m = NULL;
  at(10);
  if (edgert_module_load(FX("loader_kernels"), NULL, &m) != 0)
    return 10;
  edgert_func_t *add = bind_d2(m, "add");
  double x = 1.5, y = 2.0, r[2] = {0};
  void *args[2] = {&x, &y};
  at(11);
  if (add == NULL || edgert_func_call(add, args, r) != 0 || r[0] != 3.5)
    return 11;
  /* A contained crash. */
  edgert_module_t *risky = NULL;
  edgert_contract_t c;
  const char *d[] = {"c_double"};
  edgert_func_t *fn = NULL;
  double neg = -1.0;
  void *nargs[1] = {&neg};
  at(12);
  if (edgert_module_load(FX("loader_risky"), NULL, &risky) != 0 ||
      edgert_contract_init(&c, "risky_kernel", d, 1, "c_double", NULL, 1) != 0 ||
      edgert_module_bind(risky, &c, &fn) != 0)
    return 12;
  at(13);
  if (edgert_func_call(fn, nargs, r) != EDGERT_ECRASH)
    return 13;
  /* The shared handle the binding thread uses; the nexus kernel the swap
   * and call threads use; the type registry; the manifest reader. */
  at(14);
  if (edgert_module_function(shared, "add") == NULL || bind_d2(shared, "add") == NULL)
    return 14;
  double kin = 4.0, kout = 0.0;
  void *kargs[1] = {&kin};
  at(15);
  if (edgert_nexus_call(nx, "k", kargs, &kout) != 0 || kout != 8.0)
    return 15;
  edgert_nexus_impl_t impl = twice_impl();
  at(16);
  if (edgert_kernel_swap(kern, &impl, NULL) != 0)
    return 16;
  const edgert_type_t *t = NULL;
  const edgert_struct_t *sl = NULL;
  at(17);
  if (edgert_type_find("forkpoint", &t) != 0 || edgert_struct_find("ForkPt", &sl) != 0 ||
      define_forkpt() != 0)
    return 17;
  edgert_manifest_t *mf = NULL;
  at(18);
  if (edgert_manifest_parse(manifest, strlen(manifest), NULL, &mf) != 0)
    return 18;
  edgert_manifest_free(mf);
  edgert_module_free(risky);
  edgert_module_free(m);
  return 0;
}

static void *load_unload(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    edgert_module_t *m = NULL;
    if (edgert_module_load(FX("loader_v1"), NULL, &m) == 0)
      edgert_module_free(m);
    if (edgert_module_load(FX("loader_v2"), NULL, &m) == 0)
      edgert_module_free(m);
  }
  return NULL;
}

static void *swapper(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    edgert_nexus_impl_t impl = twice_impl();
    edgert_kernel_swap(kern, &impl, NULL);
    edgert_kernel_rollback(kern, 1, NULL);
  }
  return NULL;
}

static void *caller(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    double in = 1.0, out;
    void *a[1] = {&in};
    edgert_nexus_call(nx, "k", a, &out);
    edgert_nexus_stats_t st;
    edgert_kernel_stats(kern, &st);
  }
  return NULL;
}

static void *binder(void *arg) {
  (void)arg;
  while (!atomic_load(&stop))
    edgert_module_function(shared, "add");
  return NULL;
}

static void *registries(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    const edgert_type_t *t;
    edgert_type_find("forkpoint", &t);
    edgert_manifest_t *mf = NULL;
    if (edgert_manifest_parse(manifest, strlen(manifest), NULL, &mf) == 0)
      edgert_manifest_free(mf);
  }
  return NULL;
}

static void *layouts(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    const edgert_struct_t *sl;
    edgert_struct_find("ForkPt", &sl);
    define_forkpt();
  }
  return NULL;
}

static int setup(void **state) {
  (void)state;
  void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    return -1;
  child_step = page;
  if (edgert_nexus_new(&nx) != 0)
    return -1;
  edgert_nexus_impl_t impl = twice_impl();
  if (edgert_nexus_register(nx, "k", &impl, twice, NULL, NULL, &kern) != 0)
    return -1;
  if (edgert_module_load(FX("loader_kernels"), NULL, &shared) != 0 ||
      bind_d2(shared, "add") == NULL)
    return -1;
  if (define_forkpt() != 0)
    return -1;
  const edgert_type_t *t;
  if (edgert_type_find("forkpoint", &t) != 0 &&
      edgert_type_register("forkpoint", pt_size, pt_check, pt_copy, NULL, NULL) != 0)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  edgert_module_free(shared);
  edgert_nexus_free(nx);
  return 0;
}

/* ---- the tests -------------------------------------------------------------- */

static int ctor_pipe[2];

static void *load_slow(void *arg) {
  edgert_module_t *m = NULL;
  *(int *)arg = edgert_module_load(FX("loader_slow_ctor"), NULL, &m);
  edgert_module_free(m);
  return NULL;
}

/* Another thread is inside the load (dlopen, the constructor running, the
 * loader's locks as they are then) when this one forks. */
/* CMocka puts its own SIGSEGV handler in place for each test, in front of
 * the guard's: put the guard back in front (the child inherits that). */
static void guard_in_front(void) { assert_int_equal(edgert_guard_install(), 0); }

static void a_fork_during_a_slow_constructor_leaves_a_working_child(void **state) {
  (void)state;
  guard_in_front();
  assert_int_equal(pipe(ctor_pipe), 0);
  char fdtext[16];
  snprintf(fdtext, sizeof fdtext, "%d", ctor_pipe[1]);
  setenv("EDGERT_TEST_CTOR_FD", fdtext, 1);
  setenv("EDGERT_TEST_CTOR_MS", "500", 1);
  pthread_t th;
  int rc = -1;
  assert_int_equal(pthread_create(&th, NULL, load_slow, &rc), 0);
  char b;
  assert_int_equal(read(ctor_pipe[0], &b, 1), 1); /* the constructor is running */
  int status = run_child(child_work);
  pthread_join(th, NULL);
  unsetenv("EDGERT_TEST_CTOR_FD");
  close(ctor_pipe[0]);
  close(ctor_pipe[1]);
  assert_int_equal(rc, 0);
  if (status == -2)
    skip(); /* the emulator or ASan deadlocked (see under_emulator, sanitized): nothing learnt of ours */
  if (status != 0)
    fail_msg("the child %s", status < 0 ? "hung (a lock held at the fork)"
                                        : "failed a step (see child_work)");
}

/* Forks again and again while `n` threads run `fns`; every child must do
 * all of child_work. */
static void fork_while(void *(**fns)(void *), int n) {
  guard_in_front();
  atomic_store(&stop, 0);
  pthread_t th[4];
  for (int i = 0; i < n; i++)
    assert_int_equal(pthread_create(&th[i], NULL, fns[i], NULL), 0);
  int forks = slow_machine() ? 10 : 60, hung = 0, failed = 0, last = 0, done = 0, foreign = 0;
  /* `forks` children that ran child_work to an end; a foreign hang does not
   * count (bounded, so a runtime that always deadlocks cannot loop) */
  while (done - foreign < forks && done < 3 * forks) {
    usleep(500 + (unsigned)(rand() % 2000)); /* land anywhere in the threads' loops */
    done++;
    int status = run_child(child_work);
    if (status == -2) { /* the emulator's or ASan's own deadlock: not ours, fork again */
      foreign++;
      continue;
    }
    hung += status < 0;
    if (status > 0) {
      failed++;
      last = status;
    }
    if (status != 0)
      break; /* one is enough; do not wait out more hangs */
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  print_message("%d forks: %d children hung, %d failed (last step %d), %d hung inside the "
                "emulator or the sanitizer runtime\n",
                done, hung, failed, last, foreign);
  assert_int_equal(hung, 0);
  assert_int_equal(failed, 0);
  assert_true(done - foreign > 0); /* some child was checked, not only foreign hangs */
}

/* The loader's registry and load locks (dlopen and dlclose in progress). */
static void forks_while_threads_load_and_unload(void **state) {
  (void)state;
  void *(*fns[])(void *) = {load_unload, load_unload};
  fork_while(fns, 2);
}

/* A module handle's lock. */
static void forks_while_threads_look_up_bound_functions(void **state) {
  (void)state;
  void *(*fns[])(void *) = {binder, binder};
  fork_while(fns, 2);
}

/* The nexus's and its kernels' locks. */
static void forks_while_threads_swap_and_call_nexus_kernels(void **state) {
  (void)state;
  void *(*fns[])(void *) = {swapper, caller};
  fork_while(fns, 2);
}

/* The type registry's and the manifest reader's locks. */
static void forks_while_threads_parse_manifests_and_find_types(void **state) {
  (void)state;
  void *(*fns[])(void *) = {registries, registries};
  fork_while(fns, 2);
}

/* The struct layout list's lock. */
static void forks_while_threads_find_and_define_struct_layouts(void **state) {
  (void)state;
  void *(*fns[])(void *) = {layouts, layouts};
  fork_while(fns, 2);
}

/* All of it at once. */
static void forks_while_threads_do_everything(void **state) {
  (void)state;
  void *(*fns[])(void *) = {load_unload, swapper, caller, registries};
  fork_while(fns, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_fork_during_a_slow_constructor_leaves_a_working_child),
      cmocka_unit_test(forks_while_threads_load_and_unload),
      cmocka_unit_test(forks_while_threads_look_up_bound_functions),
      cmocka_unit_test(forks_while_threads_swap_and_call_nexus_kernels),
      cmocka_unit_test(forks_while_threads_parse_manifests_and_find_types),
      cmocka_unit_test(forks_while_threads_find_and_define_struct_layouts),
      cmocka_unit_test(forks_while_threads_do_everything),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
