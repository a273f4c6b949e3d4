/*
 * isolate_rt.c: the isolated call's round trip (issue #17's speed rows),
 * by hand (not part of `make bench`):
 *
 *   cc -O2 -Iinclude bench/isolate_rt.c -o build/isolate_rt \
 *      -Lbuild/py/edgert -ledgert -Wl,-rpath,$PWD/build/py/edgert
 *   build/isolate_rt build/fixtures/libisolate_kernels.so
 *
 * Prints the median and p90 of: an in-process add(double, double); the same
 * call isolated (a worker, the shared-memory channel); a pipe ping-pong of
 * 16 bytes with a child process (the baseline a pipe or socket channel
 * would cost); and a respawn (the first call after a worker's death, which
 * starts a new one). Timing is wall time (CLOCK_MONOTONIC) per call.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgert.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp);
  printf("%-34s median %8.3f us   p90 %8.3f us   (n=%d)\n", what, t[n / 2], t[n * 9 / 10], n);
}

static edgert_func_t *bind(edgert_module_t *m, const char *name, const char *ret,
                           const char *const *args, size_t n) {
  edgert_contract_t c;
  edgert_func_t *fn = NULL;
  if (edgert_contract_init(&c, name, args, n, ret, NULL, 1) != 0 ||
      edgert_module_bind(m, &c, &fn) != 0) {
    fprintf(stderr, "bind %s: %s\n", name, edgert_last_error());
    exit(1);
  }
  return fn;
}

#define N 20000

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "build/fixtures/libisolate_kernels.so";
  static double t[N];
  static const char *const DD[] = {"c_double", "c_double"};
  edgert_module_t *plain = NULL, *iso = NULL;
  edgert_isolate_options_t o = {0};
  edgert_load_options_t lo = {.isolation = &o};
  if (edgert_module_load(path, NULL, &plain) != 0 ||
      edgert_module_load_ex(path, NULL, &lo, &iso) != 0) {
    fprintf(stderr, "load: %s\n", edgert_last_error());
    return 1;
  }
  edgert_func_t *fns[2] = {bind(plain, "add", "c_double", DD, 2),
                           bind(iso, "add", "c_double", DD, 2)};
  const char *names[2] = {"add(double, double) in-process", "add(double, double) isolated"};
  for (int k = 0; k < 2; k++) {
    edgert_value_t v[2];
    double r[2];
    for (int i = 0; i < N / 10; i++) { /* warm up (starts the worker) */
      v[0].d = i;
      v[1].d = 1;
      edgert_func_call_values(fns[k], v, r);
    }
    for (int i = 0; i < N; i++) {
      v[0].d = i;
      v[1].d = 1;
      double a = now_us();
      int rc = edgert_func_call_values(fns[k], v, r);
      t[i] = now_us() - a;
      if (rc != 0 || r[0] != i + 1.0) {
        fprintf(stderr, "call: %d %s\n", rc, edgert_last_error());
        return 1;
      }
    }
    report(names[k], t, N);
    fflush(stdout);
  }
  /* a pipe ping-pong of 16 bytes with a child */
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0)
    return 1;
  pid_t child = fork();
  if (child == 0) {
    close(down[1]);
    close(up[0]);
    char b[16];
    while (read(down[0], b, sizeof b) == (ssize_t)sizeof b)
      if (write(up[1], b, sizeof b) != (ssize_t)sizeof b)
        break;
    _exit(0);
  }
  close(down[0]);
  close(up[1]);
  char b[16] = {0};
  for (int i = 0; i < N; i++) {
    double a = now_us();
    if (write(down[1], b, sizeof b) != (ssize_t)sizeof b || read(up[0], b, sizeof b) != (ssize_t)sizeof b)
      return 1;
    t[i] = now_us() - a;
  }
  report("pipe ping-pong, 16 bytes", t, N);
  close(down[1]);
  waitpid(child, NULL, 0);
  /* respawn: the call after a worker's death starts a new one */
  edgert_func_t *ab = bind(iso, "do_abort", NULL, NULL, 0);
  int nr = 50;
  for (int i = 0; i < nr; i++) {
    edgert_func_call_values(ab, NULL, NULL);
    edgert_value_t v[2] = {{.d = 1}, {.d = 2}};
    double r[2];
    double a = now_us();
    edgert_func_call_values(fns[1], v, r);
    t[i] = now_us() - a;
  }
  report("respawn (first call after a death)", t, nr);
  edgert_isolate_stats_t st;
  edgert_isolate_stats(iso, &st);
  printf("isolation_stats: calls %llu crashes %llu respawns %llu p50 %.2f us p99 %.2f us\n",
         st.calls, st.crashes, st.respawns, st.latency_p50_us, st.latency_p99_us);
  edgert_module_free(iso);
  edgert_module_free(plain);
  return 0;
}
