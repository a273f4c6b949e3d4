/*
 * fuzz_common.h: what the libFuzzer harnesses share.
 *
 * Each harness fuzz_NAME.c defines `int edgert_fuzz_NAME(const uint8_t *,
 * size_t)`, its whole logic, and the libFuzzer entry point that calls it
 * unless EDGERT_FUZZ_REPLAY is defined: tests/c/test_bad_input.c includes the
 * harness sources with it defined and replays tests/fuzz/regressions/NAME/
 * through the same functions in `make test`, with gcc and no libFuzzer.
 * A broken invariant is reported by FUZZ_CHECK, which prints what failed and
 * aborts, so libFuzzer keeps the input as a crash.
 */
#ifndef EDGERT_FUZZ_COMMON_H
#define EDGERT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Reads fuzz input as a stream of fields. */
typedef struct {
  const uint8_t *p;
  size_t n;
} fuzz_in_t;

static inline int fuzz_empty(const fuzz_in_t *in) { return in->n == 0; }

static inline uint8_t fuzz_u8(fuzz_in_t *in) {
  if (in->n == 0)
    return 0;
  uint8_t v = in->p[0];
  in->p++;
  in->n--;
  return v;
}

static inline uint32_t fuzz_u32(fuzz_in_t *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)fuzz_u8(in) << (8 * i);
  return v;
}

static inline uint64_t fuzz_u64(fuzz_in_t *in) {
  return (uint64_t)fuzz_u32(in) | ((uint64_t)fuzz_u32(in) << 32);
}

/* The next field up to (not including) `sep` or the end, copied into a fresh
 * NUL-terminated malloc'd string (bytes after an embedded NUL are kept in
 * the copy but invisible to C string functions, as they would be to the
 * runtime). *len gets the field's length. Caller frees. */
static inline char *fuzz_field(fuzz_in_t *in, uint8_t sep, size_t *len) {
  size_t i = 0;
  while (i < in->n && in->p[i] != sep)
    i++;
  char *s = malloc(i + 1);
  if (s == NULL)
    abort();
  memcpy(s, in->p, i);
  s[i] = '\0';
  if (len)
    *len = i;
  in->p += i;
  in->n -= i;
  if (in->n > 0) { /* skip the separator */
    in->p++;
    in->n--;
  }
  return s;
}

#endif /* EDGERT_FUZZ_COMMON_H */
