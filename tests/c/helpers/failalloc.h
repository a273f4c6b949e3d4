/*
 * failalloc.h: a failing, counting allocator for the CMocka suites.
 *
 * Installed through the public edgert_set_allocator, so it sees exactly what
 * libedgert allocates through its hook (edgert__malloc & co) and nothing
 * else: not libc's own allocations, not dlopen's, not libffi's. It can fail
 * the Nth allocation request (malloc or realloc) counted from the moment it
 * is armed, and counts live blocks so a test can check that a call leaked
 * nothing: live() after the call equals live() before it.
 *
 * The counters are atomic, so libedgert may allocate from several threads
 * while it is installed; arming a failure is meant for one thread at a time.
 * Blocks are plain malloc blocks (no header), so a block allocated before
 * install may be freed after it and vice versa: only the counts are off by
 * that block, which is why leak checks compare two readings taken while it
 * was installed.
 *
 * Every .c file in tests/c/helpers is compiled into every CMocka executable; these
 * functions are therefore available to all suites.
 */
#ifndef EDGERT_TEST_FAILALLOC_H
#define EDGERT_TEST_FAILALLOC_H

#include <stddef.h>

/* Installs the counting allocator (no failure armed) and zeroes the counts.
 * Returns edgert_set_allocator's result (0). */
int edgert_test_failalloc_install(void);
/* Restores malloc/realloc/free (edgert_set_allocator(NULL)) and disarms. */
void edgert_test_failalloc_uninstall(void);

/* Arms a failure: the nth allocation request from now (1-based) returns
 * NULL; later ones succeed again. n <= 0 disarms. Resets requests(). */
void edgert_test_failalloc_fail_at(long n);
/* Like fail_at, but every request from the nth on fails until disarmed. */
void edgert_test_failalloc_fail_from(long n);
/* Disarms any failure. */
void edgert_test_failalloc_disarm(void);

/* Allocation requests (malloc and realloc, failed ones included) since the
 * last install/fail_at/fail_from/reset_requests. */
long edgert_test_failalloc_requests(void);
void edgert_test_failalloc_reset_requests(void);
/* Requests that were made to fail since install. */
long edgert_test_failalloc_failures(void);
/* Blocks allocated and not yet freed (through the hook) since install. */
long edgert_test_failalloc_live(void);

/*
 * One entry point under an allocation-failure sweep.
 *
 * setup() builds whatever the call needs with no failure armed and returns
 * it (may return NULL when there is nothing to build; it must not fail).
 * run(state) makes the call under test and returns its result code.
 * unchanged(state) asserts (with CMocka asserts) that a failed run left
 * the state as setup() built it; may be NULL when there is no state.
 * teardown(state) frees everything setup() and a successful run made.
 */
typedef struct edgert_test_oom_case_s {
  const char *name;
  void *(*setup)(void);
  int (*run)(void *state);
  void (*unchanged)(void *state);
  void (*teardown)(void *state);
  /* 1 when a successful run keeps memory for the life of the process by
   * design (a type added to the registry): the leak check is then made on
   * the failure paths only. 0 otherwise. */
  int keeps_on_success;
} edgert_test_oom_case_t;

/*
 * Sweeps n = 1, 2, ... : for each, setup(), fail the nth allocation inside
 * run(), and assert that run() returned EDGERT_ENOMEM with a non-empty
 * message, that unchanged() holds (a run that returns 0 instead absorbed
 * the failure, e.g. by skipping a cache: allowed, and counted by
 * edgert_test_failalloc_absorbed()), and that after teardown() the live count
 * is back where it was before setup(). Stops at the first n whose run made
 * fewer than n allocation requests, asserting that run returned 0 there.
 * Also checks the successful run leaks nothing after teardown.
 * Returns the number of allocation-failure points covered (n - 1 at stop).
 * Requires the allocator to be installed.
 */
long edgert_test_failalloc_sweep(const edgert_test_oom_case_t *c);
/* The same with keeps_on_success given here (overrides the case's). */
long edgert_test_failalloc_sweep_ex(const edgert_test_oom_case_t *c,
                                    int keeps_on_success);
/* Failure points, over all sweeps so far, that a call absorbed (returned 0). */
long edgert_test_failalloc_absorbed(void);

#endif /* EDGERT_TEST_FAILALLOC_H */
