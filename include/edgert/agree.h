/*
 * edgert/agree.h: when two numeric results agree. The one rule, used by the
 * nexus's validation, edgert_guard_call's strict mode and the binding's
 * comparison of Python results.
 *
 * - A NaN agrees with a NaN (whatever its payload or sign) and with nothing
 *   else.
 * - Equal values agree (so +0.0 and -0.0 agree).
 * - An infinity agrees only with itself: +inf with +inf, -inf with -inf,
 *   never with a finite value, whatever the tolerance.
 * - Two finite values agree when their difference is within `tolerance`
 *   absolutely or relative to the larger magnitude:
 *   |a - b| <= tolerance  or  |a - b| <= tolerance * max(|a|, |b|).
 *
 * `tolerance` is a finite number >= 0 everywhere edgert takes one;
 * edgert_tolerance_problem() is the check and its message, used by every
 * entry point that accepts a tolerance.
 *
 * Header only (static inline, no state): C hosts and the binding compile
 * the same rule.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_AGREE_H
#define EDGERT_AGREE_H

#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when `x` (not a NaN) is an infinity: inf - inf is a NaN, x - x of a
 * finite x is 0. Not isinf(): for a long double that compares |x| with
 * LDBL_MAX, which valgrind's x87 emulation (64-bit doubles) turns into
 * +inf, so isinf() answers 0 there for an infinity. */
static inline int edgert__infinite(long double x) {
  long double z = x - x;
  return z != 0.0L;
}

/* 1 when `a` and `b` agree under `tolerance` (see above), else 0. */
static inline int edgert_agree(long double a, long double b, double tolerance) {
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b);
  if (a == b)
    return 1;
  if (edgert__infinite(a) || edgert__infinite(b))
    return 0;
  long double d = fabsl(a - b);
  if (edgert__infinite(d)) /* two huge finite values of opposite sign */
    return 0;
  long double scale = fabsl(a) > fabsl(b) ? fabsl(a) : fabsl(b);
  return d <= (long double)tolerance || d <= (long double)tolerance * scale;
}

/* NULL when `tolerance` is acceptable, else what is wrong with it: a static
 * string without the value, which every host prefixes with its context and
 * follows with ", got <tolerance>". */
static inline const char *edgert_tolerance_problem(double tolerance) {
  if (isnan(tolerance))
    return "tolerance must be a number >= 0";
  if (tolerance < 0.0)
    return "tolerance must be >= 0";
  if (isinf(tolerance))
    return "tolerance must be finite (an infinite tolerance would accept any finite result)";
  return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* EDGERT_AGREE_H */
