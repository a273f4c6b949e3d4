/* benchk.c: the kernels every bench row calls (libbenchk.so). The floor
 * extension, edgert, ctypes and cffi all call these same functions. */
#include <stdint.h>
#include <stddef.h>

double add(double a, double b) { return a + b; }
int64_t inc(int64_t x) { return x + 1; }
void noop(void) {}
float addf(float a, float b) { return a + b; }
int32_t mul3(int32_t a, int32_t b, int32_t c) { return a * b * c; }
/* Five mixed arguments: beyond the exact trampolines; every argument travels
 * in a register, so edgert calls it through its register-file trampoline. */
double mix5(int32_t a, double b, float c, int64_t d, uint8_t e) {
  return a + b + (double)c + (double)d + e;
}
double sum_f64(const double *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  return s;
}
/* Seven ints: the seventh goes on the stack, so edgert calls it through libffi. */
int32_t seven(int32_t a, int32_t b, int32_t c, int32_t d, int32_t e, int32_t f, int32_t g) {
  return a + b + c + d + e + f + g;
}
/* long double: through libffi too. */
long double halve_ld(long double x) { return x / 2; }
