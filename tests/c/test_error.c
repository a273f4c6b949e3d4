/* test_error.c: error codes, per-thread messages and the allocator hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgert.h"

static void names_and_descriptions_come_from_one_list(void **state) {
  (void)state;
  assert_string_equal(edgert_err_name(EDGERT_EINVAL), "EINVAL");
  assert_string_equal(edgert_err_name(EDGERT_ECRASH), "ECRASH");
  assert_string_equal(edgert_strerror(EDGERT_ENOMEM), "out of memory");
  assert_string_equal(edgert_err_name(12345), "UNKNOWN");
  assert_string_equal(edgert_strerror(0), "success");
  assert_string_equal(edgert_version(), EDGERT_VERSION_STRING);
}

/* A failing public call, to leave a message: a set_allocator with no realloc. */
static int fail_with_message(void) {
  edgert_allocator_t bad = {NULL, NULL, NULL, NULL};
  return edgert_set_allocator(&bad);
}

static void *other_thread(void *arg) {
  (void)arg;
  edgert_clear_error();
  char *before = strdup(edgert_last_error()); /* "" here, whatever main did */
  return before;
}

static void message_is_per_thread(void **state) {
  (void)state;
  assert_int_equal(fail_with_message(), EDGERT_EINVAL);
  char *mine = strdup(edgert_last_error());
  assert_true(strlen(mine) > 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
  char *theirs;
  assert_int_equal(pthread_join(t, (void **)&theirs), 0);
  assert_string_equal(theirs, ""); /* clearing there left ours alone */
  free(theirs);
  assert_string_equal(edgert_last_error(), mine);
  free(mine);
  edgert_clear_error();
  assert_string_equal(edgert_last_error(), "");
}

static int calls, frees;
static void *count_malloc(void *ud, size_t n) {
  (void)ud;
  calls++;
  return malloc(n);
}
static void *count_realloc(void *ud, void *p, size_t n) {
  (void)ud;
  calls++;
  return realloc(p, n);
}
static void count_free(void *ud, void *p) {
  (void)ud;
  frees++;
  free(p);
}

static void allocator_hook_is_used_and_restored(void **state) {
  (void)state;
  edgert_allocator_t bad = {count_malloc, NULL, count_free, NULL};
  assert_int_equal(edgert_set_allocator(&bad), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "realloc_fn"));

  /* What the library allocates goes through the hook, and is freed by it. */
  edgert_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
  assert_int_equal(edgert_set_allocator(&a), 0);
  edgert_list_t *l = NULL;
  assert_int_equal(edgert_list_new(edgert_type_builtin(EDGERT_KIND_FLOAT64), 16, &l), 0);
  assert_true(calls >= 1);
  edgert_list_free(l);
  assert_true(frees >= 1);

  /* Restored: the same calls no longer reach it. */
  assert_int_equal(edgert_set_allocator(NULL), 0);
  int before = calls;
  assert_int_equal(edgert_list_new(edgert_type_builtin(EDGERT_KIND_FLOAT64), 16, &l), 0);
  edgert_list_free(l);
  assert_int_equal(calls, before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_and_descriptions_come_from_one_list),
      cmocka_unit_test(message_is_per_thread),
      cmocka_unit_test(allocator_hook_is_used_and_restored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
