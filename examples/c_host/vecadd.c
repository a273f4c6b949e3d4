/* vecadd.c: the example's kernel, the article's vec_add_f32: xs[i] += xs[i]. */
#include <stddef.h>

void vec_add_f32(float *xs, size_t n) {
  for (size_t i = 0; i < n; i++)
    xs[i] += xs[i];
}
