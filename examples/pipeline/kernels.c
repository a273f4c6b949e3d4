/*
 * kernels.c: the compiled side of the example pipeline. Plain C with no
 * dependency on edgert: any shared object with C functions can be a module.
 */
#include <stddef.h>
#include <stdint.h>

/* Mean of n doubles; 0 for an empty input. */
double mean_f64(const double *x, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; i++)
    s0 += x[i];
  return n ? (s0 + s1 + s2 + s3) / (double)n : 0.0;
}

/* Multiplies n doubles in place by factor. */
void scale_f64(double *x, size_t n, double factor) {
  for (size_t i = 0; i < n; i++)
    x[i] *= factor;
}

/* The article's risky kernel: 2x + 1, except that a negative input takes a
 * path with a bug that dereferences NULL. (Not instrumented by sanitizers,
 * so that under `make test-sanitize` the fault really happens and edgert's
 * guard contains it, as it does in a normal build.) */
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "undefined")))
#endif
double risky_kernel(double x) {
  if (x < 0) {
    volatile double *p = NULL;
    return *p;
  }
  return x * 2.0 + 1.0;
}
