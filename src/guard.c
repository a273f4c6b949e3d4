/*
 * guard.c: crash containment for calls into foreign code.
 * (Minimal form: calls straight through; the containing guard is issue 3.)
 */
#include "internal.h"

static _Thread_local edgert_crash_t last_crash = {0, 0, NULL, "", ""};

const edgert_crash_t *edgert_last_crash(void) { return &last_crash; }

int edgert__guarded_invoke(edgert__tramp_t tramp, void *fn, void **args,
                           void *ret, const char *function,
                           const char *module) {
  (void)function;
  (void)module;
  tramp(fn, args, ret);
  return 0;
}
