/* test_isolate.c: process isolation (edgert/isolate.h): isolated calls give
 * the same results as in-process ones; every misbehaviour of a kernel
 * (faults, abort, exit, heap corruption, spinning, unbounded allocation)
 * ends its worker only, is reported, and the next call runs on a new
 * worker; no zombie, no leaked descriptor; options and contracts that
 * cannot work are refused naming the problem.
 *
 * Under qemu-user (EDGERT_TEST_EMULATOR non-empty: the AArch64 CI stage)
 * the worker program cannot be started (an AArch64 executable without
 * binfmt_misc): the suite prints why and skips every test that needs one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgert.h"

#define KERNELS EDGERT_FIXTURE_DIR "/libisolate_kernels.so"
#define MARKER EDGERT_FIXTURE_DIR "/libloader_marker.so"

static int no_workers_here(void) {
  const char *e = getenv("EDGERT_TEST_EMULATOR");
  if (e != NULL && e[0] != '\0') {
    print_message("skipped: under an emulator (%s) the edgert-worker program cannot be "
                  "started (no binfmt_misc)\n", e);
    return 1;
  }
  return 0;
}
#define NEED_WORKERS()                                                                  \
  do {                                                                                  \
    if (no_workers_here()) {                                                            \
      skip();                                                                           \
      return;                                                                           \
    }                                                                                   \
  } while (0)

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own */
}

static void list_fds(const char *when) {
  if (getenv("ISO_DEBUG_FDS") == NULL)
    return;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char p[300], t[300] = "";
    snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(p, t, sizeof t - 1);
    if (k > 0)
      t[k] = 0;
    print_message("%s: %s -> %s\n", when, e->d_name, t);
  }
  closedir(d);
}

static void assert_no_zombie(void) {
  int st;
  pid_t r = waitpid(-1, &st, WNOHANG);
  assert_true(r == 0 || (r < 0 && errno == ECHILD));
}

static edgert_module_t *load_iso(const edgert_isolate_options_t *o) {
  edgert_load_options_t lo = {.isolation = o};
  edgert_module_t *m = NULL;
  int rc = edgert_module_load_ex(KERNELS, NULL, &lo, &m);
  if (rc != 0)
    print_message("load: %s\n", edgert_last_error());
  assert_int_equal(rc, 0);
  return m;
}

static edgert_func_t *bind(edgert_module_t *m, const char *name, const char *ret,
                           const char *const *args, size_t n) {
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, name, args, n, ret, NULL, 1), 0);
  edgert_func_t *fn = NULL;
  int rc = edgert_module_bind(m, &c, &fn);
  if (rc != 0)
    print_message("bind %s: %s\n", name, edgert_last_error());
  assert_int_equal(rc, 0);
  return fn;
}

static const char *const DD[] = {"c_double", "c_double"};
static const char *const II[] = {"c_int", "c_int"};
static const char *const I1[] = {"c_int"};
static const char *const L1[] = {"c_long"};
static const char *const S1[] = {"c_char_p"};
static const char *const SCALE[] = {"LP_c_double", "c_size_t", "c_double"};
static const char *const BUF[] = {"LP_c_ubyte", "c_size_t"};

static double call_add(edgert_func_t *fn, double a, double b, int *rc) {
  edgert_value_t v[2];
  v[0].d = a;
  v[1].d = b;
  double r[2] = {0, 0};
  *rc = edgert_func_call_values(fn, v, r);
  if (*rc != 0 && *rc != EDGERT_EIO)
    print_message("add: %s\n", edgert_last_error());
  else if (*rc == EDGERT_EIO && strstr(edgert_last_error(), "/nonexistent/") == NULL &&
           strstr(edgert_last_error(), "libisolate_kernels.so is not") == NULL)
    print_message("add: %s\n", edgert_last_error());
  return r[0];
}

static int call_void_int(edgert_func_t *fn, int x) {
  edgert_value_t v[1];
  v[0].i = x;
  long double r[2];
  return edgert_func_call_values(fn, v, r);
}

/* ---- same results ----------------------------------------------------------- */

static void define_pt(const edgert_struct_t **s) {
  edgert_struct_field_desc_t f[] = {{"x", "c_double", 0, 0}, {"y", "c_double", 8, 0},
                                    {"tag", "c_int", 16, 0}};
  assert_int_equal(edgert_struct_define("iso_pt", f, 3, 24, 8, s), 0);
}

typedef struct {
  double x, y;
  int tag;
} iso_pt;

static void run_same(edgert_module_t *m, double out[16], int isolated) {
  int rc;
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  out[0] = call_add(add, 1.25, 2.5, &rc);
  assert_int_equal(rc, 0);
  out[1] = call_add(add, -1e300, 1e-300, &rc);
  assert_int_equal(rc, 0);
  edgert_func_t *addi = bind(m, "add_i", "c_int", II, 2);
  edgert_value_t v[4];
  int64_t ri[2] = {0, 0};
  v[0].i = 2147483600;
  v[1].i = -2147483600 - 47;
  assert_int_equal(edgert_func_call_values(addi, v, ri), 0);
  out[2] = (int)ri[0];
  static const char *const B1[] = {"c_byte"};
  edgert_func_t *neg8 = bind(m, "neg8", "c_byte", B1, 1);
  v[0].i = -128;
  assert_int_equal(edgert_func_call_values(neg8, v, ri), 0);
  out[3] = (int8_t)ri[0];
  static const char *const F1[] = {"c_float"};
  edgert_func_t *halve = bind(m, "halve", "c_float", F1, 1);
  float rf[8];
  v[0].f = 3.0f;
  assert_int_equal(edgert_func_call_values(halve, v, rf), 0);
  out[4] = rf[0];
  /* a buffer, copied in and back */
  edgert_func_t *scale = bind(m, "scale", NULL, SCALE, 3);
  double buf[5] = {1, 2, 3, 4, 5};
  v[0].p = buf;
  v[1].u = 5;
  v[2].d = 3;
  edgert_arg_buffer_t bufs[3] = {{sizeof buf, EDGERT_BUF_IN | EDGERT_BUF_OUT}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, bufs, NULL), 0);
  out[5] = buf[0] + buf[4];
  /* a string without a size: NUL-terminated */
  edgert_func_t *len = bind(m, "str_len", "c_size_t", S1, 1);
  v[0].p = (void *)"hello, worker";
  uint64_t rl[2];
  assert_int_equal(edgert_func_call_values(len, v, rl), 0);
  out[6] = (double)rl[0];
  /* a struct by value, both ways */
  const edgert_struct_t *pt;
  define_pt(&pt);
  static const char *const PP[] = {"struct iso_pt", "struct iso_pt"};
  edgert_func_t *mid = bind(m, "pt_mid", "struct iso_pt", PP, 2);
  iso_pt a = {1, 2, 3}, b = {3, 6, 4}, r;
  v[0].p = &a;
  v[1].p = &b;
  assert_int_equal(edgert_func_call_values(mid, v, &r), 0);
  out[7] = r.x + 10 * r.y + 100 * r.tag;
  /* variadic */
  edgert_contract_t c;
  static const char *const N1[] = {"c_int"};
  assert_int_equal(edgert_contract_init(&c, "vsum", N1, 1, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_contract_set_variadic(&c, 1), 0);
  edgert_func_t *vs = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &vs), 0);
  edgert_abi_type_t ex[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(edgert_abi_type_parse("c_int", 0, &ex[i]), 0);
  v[0].i = 3;
  v[1].i = 10;
  v[2].i = 20;
  v[3].i = 30;
  assert_int_equal(edgert_func_call_variadic(vs, v, 4, ex, ri), 0);
  out[8] = (int)ri[0];
  /* errno contract */
  assert_int_equal(edgert_contract_init(&c, "set_errno_to", I1, 1, "c_int", NULL, 1), 0);
  c.use_errno = 1;
  edgert_func_t *se = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &se), 0);
  edgert_set_errno(0);
  v[0].i = ERANGE;
  assert_int_equal(edgert_func_call_values(se, v, ri), 0);
  out[9] = edgert_get_errno();
  /* edgert_func_call (exact-typed arguments) */
  double a1 = 0.5, a2 = 0.25;
  void *args[2] = {&a1, &a2};
  double rd[2];
  assert_int_equal(edgert_func_call(add, args, rd), 0);
  out[10] = rd[0];
  edgert_func_t *pid = bind(m, "my_pid", "c_int", NULL, 0);
  assert_int_equal(edgert_func_call_values(pid, NULL, ri), 0);
  if (isolated)
    assert_int_not_equal((int)ri[0], (int)getpid());
  else
    assert_int_equal((int)ri[0], (int)getpid());
}

static void isolated_calls_give_the_in_process_results(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_module_t *plain = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &plain), 0);
  double want[16] = {0}, got[16] = {0};
  run_same(plain, want, 0);
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  run_same(m, got, 1);
  for (int i = 0; i < 11; i++)
    assert_memory_equal(&want[i], &got[i], sizeof want[i]);
  assert_true(want[5] == 18.0 && want[8] == 60 && want[9] == ERANGE);
  assert_int_equal(edgert_isolate_options(m, NULL), 1);
  assert_int_equal(edgert_isolate_options(plain, NULL), 0);
  assert_int_equal(edgert_func_is_fast(edgert_module_function(m, "add")), 0);
  edgert_module_free(m);
  edgert_module_free(plain);
}

static int count_objects_cb(struct dl_phdr_info *i, size_t n, void *ud) {
  (void)i;
  (void)n;
  ++*(int *)ud;
  return 0;
}

static void an_isolated_module_never_runs_in_this_process(void **state) {
  (void)state;
  NEED_WORKERS();
  char marker[] = "/tmp/edgert-iso-markerXXXXXX";
  int fd = mkstemp(marker);
  assert_true(fd >= 0);
  close(fd);
  unlink(marker);
  setenv("EDGERT_LOADER_MARKER", marker, 1);
  int before = 0, after = 0;
  dl_iterate_phdr(count_objects_cb, &before);
  edgert_isolate_options_t o = {0};
  edgert_load_options_t lo = {.isolation = &o};
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(MARKER, NULL, &lo, &m), 0);
  edgert_func_t *fn = bind(m, "marker_answer", "c_int", NULL, 0);
  assert_int_not_equal(access(marker, F_OK), 0); /* no constructor ran: nothing started */
  void *addr = NULL;
  assert_int_equal(edgert_module_address_of(m, "marker_answer", &addr), EDGERT_EUNSUPPORTED);
  int64_t r[2] = {0, 0};
  assert_int_equal(edgert_func_call_values(fn, NULL, r), 0);
  assert_int_equal((int)r[0], 42);
  assert_int_equal(access(marker, F_OK), 0); /* its constructor ran in the worker */
  dl_iterate_phdr(count_objects_cb, &after);
  assert_int_equal(before, after); /* and nothing was mapped here */
  /* an in-process lookup by content does not find the isolated copy */
  edgert_module_t *h = NULL;
  assert_int_equal(edgert_module_open_loaded(edgert_module_sha256(m), "x", NULL, &h),
                   EDGERT_ENOTFOUND);
  assert_int_equal(edgert_module_open_loaded(edgert_module_sha256(m), "x", &lo, &h),
                   EDGERT_EUNSUPPORTED);
  assert_int_equal(edgert_module_reload(m, NULL, NULL), EDGERT_EUNSUPPORTED);
  edgert_module_free(m);
  unlink(marker);
  unsetenv("EDGERT_LOADER_MARKER");
}

/* ---- refusals ----------------------------------------------------------------- */

static void expect_load_refused(edgert_isolate_options_t o, unsigned flags, int code,
                                const char *words) {
  edgert_load_options_t lo = {.flags = flags, .isolation = &o};
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(KERNELS, NULL, &lo, &m), code);
  assert_null(m);
  if (strstr(edgert_last_error(), words) == NULL)
    fail_msg("message '%s' does not name '%s'", edgert_last_error(), words);
}

static void bad_options_are_refused_naming_the_field(void **state) {
  (void)state;
  expect_load_refused((edgert_isolate_options_t){.timeout = -1}, 0, EDGERT_EINVAL, "timeout");
  expect_load_refused((edgert_isolate_options_t){.timeout = NAN}, 0, EDGERT_EINVAL, "timeout");
  expect_load_refused((edgert_isolate_options_t){.workers = EDGERT_ISOLATE_MAX_WORKERS + 1}, 0,
                      EDGERT_EINVAL, "workers");
  expect_load_refused((edgert_isolate_options_t){.sandbox = (edgert_sandbox_t)7}, 0,
                      EDGERT_EINVAL, "sandbox");
  expect_load_refused((edgert_isolate_options_t){.worker_path = ""}, 0, EDGERT_EINVAL,
                      "worker_path");
  expect_load_refused((edgert_isolate_options_t){0}, EDGERT_LOAD_ISOLATE_SYMBOLS,
                      EDGERT_EUNSUPPORTED, "ISOLATE_SYMBOLS");
}

static void contracts_that_cannot_travel_are_refused(void **state) {
  (void)state;
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_contract_t c;
  static const char *const CB[] = {"CFUNCTYPE(c_int, c_int)"};
  assert_int_equal(edgert_contract_init(&c, "add_i", CB, 1, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_EUNSUPPORTED);
  assert_non_null(strstr(edgert_last_error(), "callback"));
  edgert_struct_field_desc_t f[] = {{"p", "c_void_p", 0, 0}, {"n", "c_size_t", 8, 0}};
  assert_int_equal(edgert_struct_define("iso_withptr", f, 2, 16, 8, NULL), 0);
  static const char *const SP[] = {"struct iso_withptr"};
  assert_int_equal(edgert_contract_init(&c, "add_i", SP, 1, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_EUNSUPPORTED);
  assert_non_null(strstr(edgert_last_error(), "field 'p'"));
  assert_int_equal(edgert_contract_init(&c, "no_such_kernel", NULL, 0, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), "no_such_kernel"));
  /* malloc is a dependency's, not the module's */
  assert_int_equal(edgert_contract_init(&c, "malloc", L1, 1, "c_void_p", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND);
  edgert_module_free(m);
}

static void a_missing_worker_program_is_reported_at_the_first_call(void **state) {
  (void)state;
  edgert_isolate_options_t o = {.worker_path = "/nonexistent/edgert-worker"};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  int rc;
  call_add(add, 1, 2, &rc);
  assert_int_equal(rc, EDGERT_EIO);
  assert_non_null(strstr(edgert_last_error(), "/nonexistent/edgert-worker"));
  edgert_isolate_options_t got;
  assert_int_equal(edgert_isolate_options(m, &got), 1);
  assert_string_equal(got.worker_path, "/nonexistent/edgert-worker");
  edgert_module_free(m);
  /* not executable */
  o.worker_path = KERNELS;
  m = load_iso(&o);
  add = bind(m, "add", "c_double", DD, 2);
  call_add(add, 1, 2, &rc);
  assert_int_equal(rc, EDGERT_EIO);
  assert_non_null(strstr(edgert_last_error(), "libisolate_kernels.so"));
  edgert_module_free(m);
}

/* ---- crashes --------------------------------------------------------------------- */

static void expect_crash(edgert_module_t *m, edgert_func_t *fn, int arg, int signo,
                         int status) {
  int rc = call_void_int(fn, arg);
  assert_int_equal(rc, EDGERT_ECRASH);
  const edgert_crash_t *cr = edgert_last_crash();
  assert_int_equal(cr->isolated, 1);
  assert_true(cr->worker_pid > 0 && cr->worker_pid != getpid());
  assert_int_equal(cr->signo, signo);
  assert_int_equal(cr->exit_status, status);
  assert_string_equal(cr->syscall, "");
  assert_string_equal(cr->function, edgert_func_name(fn));
  assert_no_zombie();
  /* the next call runs on a new worker */
  edgert_func_t *add = edgert_module_function(m, "add");
  double r = call_add(add, 2, 3, &rc);
  assert_int_equal(rc, 0);
  assert_true(r == 5.0);
}

static void every_worker_death_is_contained_and_reported(void **state) {
  (void)state;
  NEED_WORKERS();
  int fds = count_fds();
  list_fds("before");
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  bind(m, "add", "c_double", DD, 2);
  edgert_func_t *ex = bind(m, "do_exit", NULL, I1, 1);
  edgert_func_t *ab = bind(m, "do_abort", NULL, NULL, 0);
  edgert_func_t *ra = bind(m, "do_raise", NULL, I1, 1);
  edgert_func_t *sg = bind(m, "do_segv", "c_int", NULL, 0);
  edgert_func_t *ov = bind(m, "overrun", NULL, BUF, 2);
  expect_crash(m, ex, 3, 0, 3);
  assert_non_null(strstr(edgert_last_error(), "exit(3)"));
  expect_crash(m, ab, 0, SIGABRT, -1);
  assert_non_null(strstr(edgert_last_error(), "SIGABRT"));
  int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGKILL};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    expect_crash(m, ra, sigs[i], sigs[i], -1);
  expect_crash(m, sg, 0, SIGSEGV, -1);
  /* heap corruption: glibc notices and aborts, in the worker */
  unsigned char small[8] = {0};
  edgert_value_t v[2];
  v[0].p = small;
  v[1].u = sizeof small;
  edgert_arg_buffer_t bufs[2] = {{sizeof small, EDGERT_BUF_IN | EDGERT_BUF_OUT}, {0, 0}};
  assert_int_equal(edgert_isolate_call(ov, v, bufs, NULL), EDGERT_ECRASH);
  assert_int_equal(edgert_last_crash()->isolated, 1);
  for (size_t i = 0; i < sizeof small; i++) /* nothing written back after a failed call */
    assert_int_equal(small[i], 0);
  assert_int_equal(edgert_module_quarantined(m), 0);
  edgert_isolate_stats_t st;
  assert_int_equal(edgert_isolate_stats(m, &st), 0);
  assert_int_equal(st.crashes, 10); /* exit, abort, 6 signals, a fault, the overrun */
  assert_int_equal(st.respawns, 9); /* none yet after the last crash */
  assert_int_equal(st.workers_running, 0); /* the last one died; none started since */
  assert_int_equal(st.calls, 19); /* 10 crashes, 9 adds after them */
  assert_true(st.latency_max_us >= st.latency_p50_us && st.latency_p50_us > 0);
  edgert_module_free(m);
  assert_no_zombie();
  list_fds("after");
  assert_int_equal(count_fds(), fds);
}

static void a_spinning_kernel_times_out_and_the_next_call_works(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {.timeout = 0.2};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  edgert_func_t *spin = bind(m, "spin", NULL, NULL, 0);
  assert_int_equal(edgert_func_call_values(spin, NULL, NULL), EDGERT_ETIMEOUT);
  assert_non_null(strstr(edgert_last_error(), "timeout"));
  assert_no_zombie();
  int rc;
  assert_true(call_add(add, 1, 1, &rc) == 2.0);
  assert_int_equal(rc, 0);
  edgert_isolate_stats_t st;
  assert_int_equal(edgert_isolate_stats(m, &st), 0);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(st.crashes, 0);
  assert_int_equal(st.respawns, 1);
  edgert_module_free(m);
}

/* The timeout covers the worker's start: a module constructor that spins in
 * the worker (where it runs, never here) ends the call with ETIMEOUT, counted
 * as a timeout, and the worker is killed and reaped. Before, the first call
 * waited for the handshake for ever. */
static void a_constructor_that_spins_in_the_worker_times_out(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {.timeout = 0.2};
  edgert_load_options_t lo = {.isolation = &o};
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(EDGERT_FIXTURE_DIR "/libisolate_ctor_spin.so", NULL,
                                         &lo, &m),
                   0);
  edgert_func_t *f = bind(m, "ctor_spin_answer", "c_int", NULL, 0);
  int ret[4] = {0};
  assert_int_equal(edgert_func_call_values(f, NULL, ret), EDGERT_ETIMEOUT);
  assert_non_null(strstr(edgert_last_error(), "still starting"));
  assert_no_zombie();
  edgert_isolate_stats_t st;
  assert_int_equal(edgert_isolate_stats(m, &st), 0);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(st.workers_running, 0);
  edgert_module_free(m);
}

static int interrupt_after(void *ud) { return --*(int *)ud <= 0; }

static void an_interrupt_check_ends_a_spinning_call(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {0}; /* no timeout: only the interrupt ends it */
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *spin = bind(m, "spin", NULL, NULL, 0);
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  int rc;
  call_add(add, 1, 1, &rc); /* the worker is up: the checks below all come from the wait */
  int left = 3;
  edgert_isolate_set_interrupt(interrupt_after, &left);
  assert_int_equal(edgert_func_call_values(spin, NULL, NULL), EDGERT_EINTERRUPTED);
  edgert_isolate_set_interrupt(NULL, NULL);
  assert_int_equal(left, 0);
  assert_no_zombie();
  assert_true(call_add(add, 1, 1, &rc) == 2.0);
  edgert_module_free(m);
}

static void a_memory_limit_bounds_the_worker(void **state) {
  (void)state;
  NEED_WORKERS();
  if (getenv("EDGERT_SANITIZED") != NULL) {
    /* the sanitized worker has reserved terabytes of shadow memory before
     * any limit can apply */
    print_message("skipped under the sanitizers: ASan's shadow memory is address space\n");
    skip();
    return;
  }
  edgert_isolate_options_t o = {.memory_limit = (size_t)256 << 20};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *al = bind(m, "alloc_forever", "c_long", L1, 1);
  edgert_value_t v[1];
  v[0].i = 8192; /* 8 GiB if nothing stopped it */
  int64_t r[2];
  assert_int_equal(edgert_func_call_values(al, v, r), 0);
  assert_true(r[0] > 0 && r[0] < 256);
  edgert_module_free(m);
}

/* ---- sandbox "strict" ------------------------------------------------------------ */

typedef struct {
  const char *kernel;
  int has_path;
  const char *syscall;
} escape_t;

static const escape_t escapes[] = {
    {"do_fork", 0, "clone"},
    {"do_execve", 0, "execve"},
    {"do_socket", 0, "socket"},
    {"do_write_file", 1, "openat"},
};

static int run_escape(edgert_module_t *m, const escape_t *e, const char *path, int64_t *r) {
  edgert_func_t *fn = e->has_path ? bind(m, e->kernel, "c_int", S1, 1)
                                  : bind(m, e->kernel, "c_int", NULL, 0);
  edgert_value_t v[1];
  v[0].p = (void *)path;
  return edgert_func_call_values(fn, v, r);
}

static void strict_denies_escapes_naming_the_system_call(void **state) {
  (void)state;
  NEED_WORKERS();
  char path[] = "/tmp/edgert-iso-writeXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  edgert_isolate_options_t none = {0}, strict = {.sandbox = EDGERT_SANDBOX_STRICT};
  edgert_module_t *free_m = load_iso(&none), *m = load_iso(&strict);
  for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
    const escape_t *e = &escapes[i];
    int64_t r[2] = {0, 0};
    /* without the sandbox each one does what it says */
    assert_int_equal(run_escape(free_m, e, path, r), 0);
    assert_int_equal((int)r[0], strcmp(e->kernel, "do_execve") == 0 ? -1 : 0);
    /* with it, the worker dies by SIGSYS at that system call */
    int rc = run_escape(m, e, path, r);
    if (rc != EDGERT_ECRASH)
      fail_msg("%s under strict: %d (%s)", e->kernel, rc, edgert_last_error());
    const edgert_crash_t *cr = edgert_last_crash();
    assert_int_equal(cr->isolated, 1);
    assert_int_equal(cr->signo, SIGSYS);
    assert_string_equal(cr->syscall, e->syscall);
    char want[64];
    snprintf(want, sizeof want, "denied system call '%s'", e->syscall);
    if (strstr(edgert_last_error(), want) == NULL)
      fail_msg("message '%s' lacks \"%s\"", edgert_last_error(), want);
    assert_no_zombie();
  }
  /* what a computing kernel needs still works: memory, reading a file */
  static const char *const S1b[] = {"c_char_p"};
  edgert_func_t *rd = bind(m, "do_read_file", "c_int", S1b, 1);
  edgert_func_t *al = bind(m, "alloc_forever", "c_long", L1, 1);
  edgert_value_t v[1];
  int64_t r[2];
  v[0].p = (void *)KERNELS;
  assert_int_equal(edgert_func_call_values(rd, v, r), 0);
  assert_int_equal((int)r[0], 16);
  v[0].i = 64;
  assert_int_equal(edgert_func_call_values(al, v, r), 0);
  assert_int_equal(r[0], 64);
  int rc;
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  assert_true(call_add(add, 2, 2, &rc) == 4.0);
  edgert_isolate_options_t got;
  assert_int_equal(edgert_isolate_options(m, &got), 1);
  assert_int_equal(got.sandbox, EDGERT_SANDBOX_STRICT);
  edgert_module_free(m);
  edgert_module_free(free_m);
  unlink(path);
}

/* ---- buffers -------------------------------------------------------------------- */

static void copied_buffers_come_back_only_when_out(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *scale = bind(m, "scale", NULL, SCALE, 3);
  edgert_func_t *ff = bind(m, "fill_then_fail", "c_int", BUF, 2);
  double x[3] = {1, 2, 3};
  edgert_value_t v[3];
  v[0].p = x;
  v[1].u = 3;
  v[2].d = 2;
  edgert_arg_buffer_t in_only[3] = {{sizeof x, EDGERT_BUF_IN}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, in_only, NULL), 0);
  assert_true(x[0] == 1 && x[2] == 3);
  edgert_arg_buffer_t both[3] = {{sizeof x, EDGERT_BUF_IN | EDGERT_BUF_OUT}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, both, NULL), 0);
  assert_true(x[0] == 2 && x[2] == 6);
  /* out-only: the worker sees zeros, the caller gets what it wrote */
  edgert_arg_buffer_t out_only[3] = {{sizeof x, EDGERT_BUF_OUT}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, out_only, NULL), 0);
  assert_true(x[0] == 0 && x[2] == 0);
  /* a call that returned an error code still returned: out-buffers come back */
  unsigned char b[100] = {0};
  v[0].p = b;
  v[1].u = sizeof b;
  edgert_arg_buffer_t bb[2] = {{sizeof b, EDGERT_BUF_OUT}, {0, 0}};
  int64_t r[2];
  assert_int_equal(edgert_isolate_call(ff, v, bb, r), 0);
  assert_int_equal((int)r[0], -1);
  assert_int_equal(b[99], 1);
  /* a pointer without a size is refused, naming the argument */
  v[0].p = x;
  v[1].u = 3;
  assert_int_equal(edgert_func_call_values(scale, v, NULL), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "argument 1"));
  /* a buffer larger than the channel: the channel grows */
  size_t n = (size_t)1 << 18;
  double *big = malloc(n * sizeof *big);
  assert_non_null(big);
  for (size_t i = 0; i < n; i++)
    big[i] = (double)i;
  v[0].p = big;
  v[1].u = n;
  v[2].d = 0.5;
  edgert_arg_buffer_t bigb[3] = {{n * sizeof *big, EDGERT_BUF_IN | EDGERT_BUF_OUT}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, bigb, NULL), 0);
  assert_true(big[n - 1] == (double)(n - 1) / 2);
  free(big);
  edgert_module_free(m);
}

static void shared_memory_is_passed_by_reference(void **state) {
  (void)state;
  NEED_WORKERS();
  int fds = count_fds();
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *scale = bind(m, "scale", NULL, SCALE, 3);
  double *x = NULL;
  assert_int_equal(edgert_isolate_shm_alloc(4 * sizeof *x, (void **)&x), 0);
  assert_int_equal(edgert_isolate_shm_contains(x, 4 * sizeof *x), 1);
  assert_int_equal(edgert_isolate_shm_contains(x, 1 << 20), 0);
  for (int i = 0; i < 4; i++)
    x[i] = i + 1;
  edgert_value_t v[3];
  v[0].p = x + 1; /* inside the region, not at its start */
  v[1].u = 3;
  v[2].d = 10;
  assert_int_equal(edgert_func_call_values(scale, v, NULL), 0); /* no size needed */
  assert_true(x[0] == 1 && x[1] == 20 && x[3] == 40);
  /* IN-only is ignored for shared memory: the worker writes in place */
  edgert_arg_buffer_t in_only[3] = {{3 * sizeof *x, EDGERT_BUF_IN}, {0, 0}, {0, 0}};
  assert_int_equal(edgert_isolate_call(scale, v, in_only, NULL), 0);
  assert_true(x[1] == 200);
  edgert_isolate_shm_free(x);
  double *y = NULL;
  assert_int_equal(edgert_isolate_shm_alloc(8, (void **)&y), 0);
  y[0] = 7;
  v[0].p = y;
  v[1].u = 1;
  v[2].d = 2;
  assert_int_equal(edgert_func_call_values(scale, v, NULL), 0);
  assert_true(y[0] == 14);
  edgert_isolate_shm_free(y);
  edgert_isolate_shm_free(NULL);
  edgert_isolate_shm_free(&fds); /* not one of ours: ignored */
  assert_int_equal(edgert_isolate_shm_alloc(0, (void **)&y), EDGERT_EINVAL);
  assert_int_equal(edgert_isolate_shm_alloc((size_t)1 << 41, (void **)&y), EDGERT_ELIMIT);
  edgert_module_free(m);
  assert_int_equal(count_fds(), fds);
}

static void a_shared_list_is_passed_by_reference_and_grows_shared(void **state) {
  (void)state;
  NEED_WORKERS();
  const edgert_type_t *f64 = edgert_type_builtin(EDGERT_KIND_FLOAT64);
  edgert_list_t *l = NULL;
  assert_int_equal(edgert_list_new_shared(f64, 2, &l), 0);
  assert_int_equal(edgert_list_is_shared(l), 1);
  for (int i = 0; i < 1000; i++) { /* grows: a new region and a copy each time */
    double d = i;
    assert_int_equal(edgert_list_append(l, &d), 0);
  }
  double *data = edgert_list_data(l);
  assert_int_equal(edgert_isolate_shm_contains(data, 1000 * sizeof(double)), 1);
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *scale = bind(m, "scale", NULL, SCALE, 3);
  edgert_value_t v[3];
  v[0].p = data;
  v[1].u = 1000;
  v[2].d = 2;
  assert_int_equal(edgert_func_call_values(scale, v, NULL), 0);
  assert_true(data[999] == 1998 && data[1] == 2);
  edgert_list_t *plain = NULL;
  assert_int_equal(edgert_list_new(f64, 0, &plain), 0);
  assert_int_equal(edgert_list_is_shared(plain), 0);
  edgert_list_free(plain);
  const edgert_type_t *str = edgert_type_builtin(EDGERT_KIND_STR);
  edgert_list_t *sl = NULL;
  assert_int_equal(edgert_list_new_shared(str, 0, &sl), EDGERT_EUNSUPPORTED);
  edgert_list_free(l);
  edgert_module_free(m);
}

/* ---- manifests ---------------------------------------------------------------- */

static int parse_iso(const char *iso, edgert_manifest_t **mf) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"schema_version\": 1, \"modules\": [{\"path\": \"%s\", \"sha256\": \"%064d\", "
           "\"contracts\": [], \"isolation\": %s}]}",
           KERNELS, 0, iso);
  return edgert_manifest_parse(json, strlen(json), NULL, mf);
}

static void manifest_isolation_is_read_and_checked(void **state) {
  (void)state;
  edgert_manifest_t *mf = NULL;
  assert_int_equal(parse_iso("{\"mode\": \"process\", \"timeout\": 1.5, \"memory_limit\": "
                             "268435456, \"sandbox\": \"strict\", \"workers\": 2}", &mf), 0);
  edgert_isolate_options_t o;
  assert_int_equal(edgert_manifest_module_isolation(mf, 0, &o), 1);
  assert_true(o.timeout == 1.5);
  assert_int_equal(o.memory_limit, 268435456);
  assert_int_equal(o.sandbox, EDGERT_SANDBOX_STRICT);
  assert_int_equal(o.workers, 2);
  assert_null(o.worker_path);
  assert_int_equal(edgert_manifest_module_isolation(mf, 1, &o), 0);
  edgert_manifest_free(mf);
  assert_int_equal(parse_iso("{\"mode\": \"process\"}", &mf), 0);
  assert_int_equal(edgert_manifest_module_isolation(mf, 0, &o), 1);
  assert_int_equal(o.workers, 1);
  assert_int_equal(o.sandbox, EDGERT_SANDBOX_NONE);
  edgert_manifest_free(mf);
  static const struct {
    const char *iso, *words;
  } bad[] = {
      {"{}", "missing required key 'mode'"},
      {"{\"mode\": \"thread\"}", "isolation.mode"},
      {"{\"mode\": \"process\", \"timeout\": -1}", "isolation.timeout"},
      {"{\"mode\": \"process\", \"timeout\": \"1\"}", "isolation.timeout"},
      {"{\"mode\": \"process\", \"memory_limit\": 1.5}", "isolation.memory_limit"},
      {"{\"mode\": \"process\", \"sandbox\": \"loose\"}", "isolation.sandbox"},
      {"{\"mode\": \"process\", \"workers\": 65}", "isolation.workers"},
      {"{\"mode\": \"process\", \"workers\": 0}", "isolation.workers"},
      {"{\"mode\": \"process\", \"cpus\": 2}", "unknown key 'cpus'"},
      {"\"process\"", "isolation: expected an object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mf = NULL;
    assert_int_equal(parse_iso(bad[i].iso, &mf), EDGERT_EMANIFEST);
    if (strstr(edgert_last_error(), bad[i].words) == NULL)
      fail_msg("%s: message '%s' does not name '%s'", bad[i].iso, edgert_last_error(),
               bad[i].words);
  }
}

static void a_manifest_loads_its_module_isolated(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_module_t *probe = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &probe), 0);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"schema_version\": 1, \"modules\": [{\"path\": \"%s\", \"sha256\": \"%s\", "
           "\"contracts\": [{\"function_name\": \"my_pid\", \"arg_types\": [], "
           "\"return_type\": \"c_int\"}], \"isolation\": {\"mode\": \"process\", "
           "\"timeout\": 5}}]}",
           KERNELS, edgert_module_sha256(probe));
  edgert_module_free(probe);
  edgert_manifest_t *mf = NULL;
  assert_int_equal(edgert_manifest_parse(json, strlen(json), "/", &mf), 0);
  int rc = edgert_manifest_load_modules(mf);
  if (rc != 0)
    fail_msg("%s", edgert_last_error());
  edgert_module_t *m = edgert_manifest_module(mf, 0);
  edgert_isolate_options_t o;
  assert_int_equal(edgert_isolate_options(m, &o), 1);
  assert_true(o.timeout == 5);
  int64_t r[2];
  assert_int_equal(edgert_func_call_values(edgert_module_function(m, "my_pid"), NULL, r), 0);
  assert_int_not_equal((int)r[0], (int)getpid());
  edgert_manifest_free(mf);
  assert_no_zombie();
}

/* ---- lifetimes ------------------------------------------------------------------ */

static void unload_and_free_end_every_worker(void **state) {
  (void)state;
  NEED_WORKERS();
  int fds = count_fds();
  edgert_isolate_options_t o = {.workers = 2};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *pid = bind(m, "my_pid", "c_int", NULL, 0);
  int64_t r[2];
  assert_int_equal(edgert_func_call_values(pid, NULL, r), 0);
  pid_t w = (pid_t)r[0];
  assert_int_equal(kill(w, 0), 0);
  edgert_module_unload(m);
  assert_int_equal(edgert_func_call_values(pid, NULL, r), EDGERT_EUNLOADED);
  assert_int_equal(kill(w, 0), -1); /* killed and reaped: no such process */
  assert_no_zombie();
  edgert_module_free(m);
  assert_int_equal(count_fds(), fds);
}

static void a_fork_child_starts_its_own_workers(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *pid = bind(m, "my_pid", "c_int", NULL, 0);
  int64_t r[2];
  assert_int_equal(edgert_func_call_values(pid, NULL, r), 0);
  pid_t w = (pid_t)r[0];
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    int64_t cr[2];
    if (edgert_func_call_values(pid, NULL, cr) != 0)
      _exit(1);
    if ((pid_t)cr[0] == w)
      _exit(2); /* the parent's worker answered the child */
    edgert_module_free(m); /* ends the child's worker, never the parent's */
    _exit(kill(w, 0) == 0 ? 0 : 3);
  }
  int st;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_int_equal(edgert_func_call_values(pid, NULL, r), 0);
  assert_int_equal((pid_t)r[0], w); /* the parent's worker is untouched */
  edgert_module_free(m);
}

typedef struct {
  edgert_func_t *add, *pid;
  int ok;
  int pids[2];
} conc_t;

static void *conc_thread(void *arg) {
  conc_t *c = arg;
  c->ok = 1;
  for (int i = 0; i < 200; i++) {
    int rc;
    double r = call_add(c->add, i, 0.5, &rc);
    if (rc != 0 || r != i + 0.5) {
      if (c->ok)
        print_message("call %d: rc %d, %g: %s\n", i, rc, r, rc ? edgert_last_error() : "");
      c->ok = 0;
    }
  }
  int64_t r[2];
  if (edgert_func_call_values(c->pid, NULL, r) != 0)
    c->ok = 0;
  c->pids[0] = (int)r[0];
  return NULL;
}

static void concurrent_calls_share_two_workers(void **state) {
  (void)state;
  NEED_WORKERS();
  edgert_isolate_options_t o = {.workers = 2};
  edgert_module_t *m = load_iso(&o);
  conc_t c[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    c[i].add = bind(m, "add", "c_double", DD, 2);
    c[i].pid = bind(m, "my_pid", "c_int", NULL, 0);
    assert_int_equal(pthread_create(&t[i], NULL, conc_thread, &c[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(c[i].ok, 1);
  }
  edgert_isolate_stats_t st;
  assert_int_equal(edgert_isolate_stats(m, &st), 0);
  assert_true(st.workers_running >= 1 && st.workers_running <= 2);
  assert_int_equal(st.calls, 3 * 201);
  assert_int_equal(st.crashes, 0);
  edgert_module_free(m);
  assert_no_zombie();
}

static void soak_a_crash_every_hundredth_call_leaks_nothing(void **state) {
  (void)state;
  NEED_WORKERS();
  int fds = count_fds();
  edgert_isolate_options_t o = {0};
  edgert_module_t *m = load_iso(&o);
  edgert_func_t *add = bind(m, "add", "c_double", DD, 2);
  edgert_func_t *ab = bind(m, "do_abort", NULL, NULL, 0);
  int crashes = 0;
  for (int i = 1; i <= 1000; i++) {
    int rc;
    if (i % 100 == 0) {
      rc = edgert_func_call_values(ab, NULL, NULL);
      crashes += rc == EDGERT_ECRASH;
    } else {
      double r = call_add(add, i, 1, &rc);
      assert_int_equal(rc, 0);
      assert_true(r == i + 1);
    }
    if (i % 250 == 1) { /* right after a call that returned: a worker is up */
      assert_int_equal(count_fds(), fds + 2); /* the module's memfd, the worker's socket */
      assert_no_zombie();
    }
  }
  assert_int_equal(crashes, 10);
  edgert_module_free(m);
  assert_int_equal(count_fds(), fds);
  assert_no_zombie();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(isolated_calls_give_the_in_process_results),
      cmocka_unit_test(an_isolated_module_never_runs_in_this_process),
      cmocka_unit_test(bad_options_are_refused_naming_the_field),
      cmocka_unit_test(contracts_that_cannot_travel_are_refused),
      cmocka_unit_test(a_missing_worker_program_is_reported_at_the_first_call),
      cmocka_unit_test(every_worker_death_is_contained_and_reported),
      cmocka_unit_test(a_spinning_kernel_times_out_and_the_next_call_works),
      cmocka_unit_test(a_constructor_that_spins_in_the_worker_times_out),
      cmocka_unit_test(an_interrupt_check_ends_a_spinning_call),
      cmocka_unit_test(a_memory_limit_bounds_the_worker),
      cmocka_unit_test(strict_denies_escapes_naming_the_system_call),
      cmocka_unit_test(copied_buffers_come_back_only_when_out),
      cmocka_unit_test(shared_memory_is_passed_by_reference),
      cmocka_unit_test(a_shared_list_is_passed_by_reference_and_grows_shared),
      cmocka_unit_test(manifest_isolation_is_read_and_checked),
      cmocka_unit_test(a_manifest_loads_its_module_isolated),
      cmocka_unit_test(unload_and_free_end_every_worker),
      cmocka_unit_test(a_fork_child_starts_its_own_workers),
      cmocka_unit_test(concurrent_calls_share_two_workers),
      cmocka_unit_test(soak_a_crash_every_hundredth_call_leaks_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
