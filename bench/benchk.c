/* benchk.c: the kernels every bench row calls (libbenchk.so). The floor
 * extension, edgert, ctypes and cffi all call these same functions. */
#include <stdint.h>
#include <stddef.h>

double add(double a, double b) { return a + b; }
int64_t inc(int64_t x) { return x + 1; }
void noop(void) {}
float addf(float a, float b) { return a + b; }
int32_t mul3(int32_t a, int32_t b, int32_t c) { return a * b * c; }
/* Five mixed arguments: beyond edgert's trampolines, so it runs through libffi. */
double mix5(int32_t a, double b, float c, int64_t d, uint8_t e) {
  return a + b + (double)c + (double)d + e;
}
double sum_f64(const double *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  return s;
}
