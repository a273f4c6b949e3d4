/*
 * failalloc.c: the failing, counting test allocator (see failalloc.h).
 *
 * Invariants: `live` counts successful malloc-like results (malloc, and
 * realloc of NULL) minus frees of non-NULL blocks; a realloc that moves a
 * block leaves it unchanged; a failed request changes nothing but the
 * request and failure counts. A failed realloc leaves the old block alive,
 * as realloc does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgert.h"
#include "helpers/failalloc.h"

static atomic_long requests;
static atomic_long failures;
static atomic_long live;
static atomic_long fail_n;    /* request number to fail; 0: none */
static atomic_int fail_sticky; /* 1: fail every request >= fail_n */

/* Counts a request; returns 1 when this one must fail. */
static int should_fail(void) {
  long n = atomic_fetch_add(&requests, 1) + 1;
  long f = atomic_load(&fail_n);
  if (f <= 0)
    return 0;
  if (n == f || (atomic_load(&fail_sticky) && n > f)) {
    atomic_fetch_add(&failures, 1);
    return 1;
  }
  return 0;
}

static void *fa_malloc(void *ud, size_t size) {
  (void)ud;
  if (should_fail())
    return NULL;
  void *p = malloc(size);
  if (p)
    atomic_fetch_add(&live, 1);
  return p;
}

static void *fa_realloc(void *ud, void *ptr, size_t size) {
  (void)ud;
  if (should_fail())
    return NULL;
  void *p = realloc(ptr, size);
  if (p && ptr == NULL)
    atomic_fetch_add(&live, 1);
  return p;
}

static void fa_free(void *ud, void *ptr) {
  (void)ud;
  if (ptr) {
    atomic_fetch_sub(&live, 1);
    free(ptr);
  }
}

int edgert_test_failalloc_install(void) {
  static const edgert_allocator_t a = {fa_malloc, fa_realloc, fa_free, NULL};
  atomic_store(&fail_n, 0);
  atomic_store(&fail_sticky, 0);
  atomic_store(&requests, 0);
  atomic_store(&failures, 0);
  atomic_store(&live, 0);
  return edgert_set_allocator(&a);
}

void edgert_test_failalloc_uninstall(void) {
  edgert_test_failalloc_disarm();
  edgert_set_allocator(NULL);
}

void edgert_test_failalloc_fail_at(long n) {
  atomic_store(&fail_n, 0);
  atomic_store(&requests, 0);
  atomic_store(&fail_sticky, 0);
  atomic_store(&fail_n, n > 0 ? n : 0);
}

void edgert_test_failalloc_fail_from(long n) {
  atomic_store(&fail_n, 0);
  atomic_store(&requests, 0);
  atomic_store(&fail_sticky, 1);
  atomic_store(&fail_n, n > 0 ? n : 0);
}

void edgert_test_failalloc_disarm(void) {
  atomic_store(&fail_n, 0);
  atomic_store(&fail_sticky, 0);
}

long edgert_test_failalloc_requests(void) { return atomic_load(&requests); }
void edgert_test_failalloc_reset_requests(void) { atomic_store(&requests, 0); }
long edgert_test_failalloc_failures(void) { return atomic_load(&failures); }
long edgert_test_failalloc_live(void) { return atomic_load(&live); }

static long absorbed;
long edgert_test_failalloc_absorbed(void) { return absorbed; }

/* The longest sweep we accept: an entry point that allocates more than this
 * in one call is either looping or needs a smarter test. */
#define SWEEP_LIMIT 100000L

long edgert_test_failalloc_sweep(const edgert_test_oom_case_t *c) {
  return edgert_test_failalloc_sweep_ex(c, c->keeps_on_success);
}

long edgert_test_failalloc_sweep_ex(const edgert_test_oom_case_t *c,
                                    int keeps_on_success) {
  for (long n = 1; n <= SWEEP_LIMIT; n++) {
    edgert_test_failalloc_disarm();
    long base = edgert_test_failalloc_live();
    void *state = c->setup ? c->setup() : NULL;
    edgert_clear_error();
    edgert_test_failalloc_fail_at(n);
    long failed_before = edgert_test_failalloc_failures();
    int rc = c->run(state);
    long made = edgert_test_failalloc_requests();
    int injected = edgert_test_failalloc_failures() > failed_before;
    edgert_test_failalloc_disarm();
    if (!injected) {
      /* Fewer than n requests: the call ran to the end without a failure. */
      if (rc != 0)
        fail_msg("%s: returned %s (%s) with no allocation failing "
                 "(%ld requests)",
                 c->name, edgert_err_name(rc), edgert_last_error(), made);
      if (c->teardown)
        c->teardown(state);
      long after = edgert_test_failalloc_live();
      if (after != base && !keeps_on_success)
        fail_msg("%s: %ld block(s) leaked by a successful call", c->name,
                 after - base);
      return n - 1;
    }
    if (rc == 0) {
      /* The call absorbed the failure (a cache it could do without) and
       * still did its job: allowed, counted, and checked for leaks. */
      absorbed++;
      if (c->teardown)
        c->teardown(state);
      long after = edgert_test_failalloc_live();
      if (after != base && !keeps_on_success)
        fail_msg("%s: %ld block(s) leaked when allocation %ld failed and the "
                 "call went on",
                 c->name, after - base, n);
      continue;
    }
    if (rc != EDGERT_ENOMEM)
      fail_msg("%s: allocation %ld failed but the call returned %d (%s): "
               "\"%s\"",
               c->name, n, rc, edgert_err_name(rc), edgert_last_error());
    if (edgert_last_error()[0] == '\0')
      fail_msg("%s: allocation %ld failed and left no message", c->name, n);
    if (c->unchanged)
      c->unchanged(state);
    if (c->teardown)
      c->teardown(state);
    long after = edgert_test_failalloc_live();
    if (after != base)
      fail_msg("%s: %ld block(s) leaked when allocation %ld failed", c->name,
               after - base, n);
  }
  fail_msg("%s: more than %ld allocations in one call", c->name, SWEEP_LIMIT);
  return -1;
}
