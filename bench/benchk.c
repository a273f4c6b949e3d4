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
/* A c_char_p argument: the first byte, so the kernel's own cost stays flat
 * whatever the string's length (the rows measure passing the string). */
int32_t first_c(const char *s) { return s ? (unsigned char)s[0] : -1; }

/* The fastest single-core read of a float64 array we know how to write: four
 * 4-wide accumulators (16 sums in flight) and software prefetch 4 KiB ahead,
 * built for AVX2 where the CPU has it. It is not a kernel edgert calls: the
 * containers bench calls it through ctypes to show what one core can read
 * per second, the bound no single-threaded sum can beat. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define CEILING_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CEILING_CLONES
#endif
#if defined(__GNUC__)
typedef double ceiling_v4d __attribute__((vector_size(32)));
CEILING_CLONES double read_ceiling_f64(const double *x, size_t n) {
  ceiling_v4d a = {0, 0, 0, 0}, b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __builtin_prefetch(x + i + 512);
    __builtin_prefetch(x + i + 520);
    ceiling_v4d u, v, w, y;
    __builtin_memcpy(&u, x + i, sizeof u);
    __builtin_memcpy(&v, x + i + 4, sizeof v);
    __builtin_memcpy(&w, x + i + 8, sizeof w);
    __builtin_memcpy(&y, x + i + 12, sizeof y);
    a += u;
    b += v;
    c += w;
    d += y;
  }
  double s = 0;
  for (; i < n; i++)
    s += x[i];
  ceiling_v4d e = (a + b) + (c + d);
  return s + ((e[0] + e[1]) + (e[2] + e[3]));
}
#else
double read_ceiling_f64(const double *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  return s;
}
#endif
