/* test_list.c: the typed list, from a C host with no Python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>

#include "edgert.h"
#include "helpers/failalloc.h"

static edgert_list_t *new_list(edgert_kind_t k, size_t reserve) {
  edgert_list_t *l = NULL;
  assert_int_equal(edgert_list_new(edgert_type_builtin(k), reserve, &l), 0);
  assert_non_null(l);
  return l;
}

static void float_list_is_one_contiguous_array(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_FLOAT64, 0);
  assert_null(edgert_list_data(l));
  for (int i = 0; i < 1000; i++) {
    double v = i * 0.25;
    assert_int_equal(edgert_list_append(l, &v), 0);
  }
  assert_int_equal(edgert_list_len(l), 1000);
  assert_int_equal(edgert_list_itemsize(l), sizeof(double));
  const double *a = edgert_list_data(l);
  double sum = 0;
  for (int i = 0; i < 1000; i++)
    sum += a[i];
  assert_true(sum == 0.25 * 999 * 1000 / 2);
  double out;
  assert_int_equal(edgert_list_get(l, 999, &out), 0);
  assert_true(out == 249.75);
  assert_int_equal(edgert_list_get(l, 1000, &out), EDGERT_ERANGE);
  assert_non_null(strstr(edgert_last_error(), "out of range"));
  assert_null(edgert_list_at(l, 1000));
  double v = -1;
  assert_int_equal(edgert_list_set(l, 0, &v), 0);
  assert_true(a[0] == -1);
  assert_int_equal(edgert_list_set(l, 5000, &v), EDGERT_ERANGE);
  edgert_list_free(l);
  edgert_list_free(NULL);
}

static void insert_pop_and_splice_move_elements(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_INT64, 4);
  int64_t xs[] = {1, 2, 3, 4, 5};
  assert_int_equal(edgert_list_splice(l, 0, 0, xs, 5), 0);
  int64_t z = 0;
  assert_int_equal(edgert_list_insert(l, 0, &z), 0);
  assert_int_equal(edgert_list_insert(l, 99, &z), 0); /* past the end: appends */
  const int64_t *a = edgert_list_data(l);
  int64_t want1[] = {0, 1, 2, 3, 4, 5, 0};
  assert_memory_equal(a, want1, sizeof want1);
  int64_t out;
  assert_int_equal(edgert_list_pop(l, 3, &out), 0);
  assert_int_equal(out, 3);
  /* Replace [1, 3) with three elements taken from the list itself. */
  a = edgert_list_data(l);
  assert_int_equal(edgert_list_splice(l, 1, 2, a + 3, 3), 0);
  a = edgert_list_data(l);
  int64_t want2[] = {0, 4, 5, 0, 4, 5, 0};
  assert_int_equal(edgert_list_len(l), 7);
  assert_memory_equal(a, want2, sizeof want2);
  assert_int_equal(edgert_list_splice(l, 5, 3, NULL, 0), EDGERT_ERANGE);
  assert_int_equal(edgert_list_splice(l, 0, 7, NULL, 0), 0);
  assert_int_equal(edgert_list_len(l), 0);
  assert_int_equal(edgert_list_pop(l, 0, &out), EDGERT_ERANGE);
  edgert_list_free(l);
}

static void sort_is_stable_numeric_and_puts_nan_last(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_FLOAT64, 0);
  double xs[] = {3, NAN, -1, 0.0, 2, -0.0, 10, NAN, -5};
  assert_int_equal(edgert_list_splice(l, 0, 0, xs, 9), 0);
  assert_int_equal(edgert_list_sort(l, 0), 0);
  const double *a = edgert_list_data(l);
  assert_true(a[0] == -5 && a[1] == -1 && a[4] == 2 && a[5] == 3 && a[6] == 10);
  assert_false(signbit(a[2])); /* 0.0 came before -0.0: stable */
  assert_true(signbit(a[3]));
  assert_true(isnan(a[7]) && isnan(a[8]));
  assert_int_equal(edgert_list_sort(l, 1), 0);
  a = edgert_list_data(l);
  assert_true(isnan(a[0]) && a[2] == 10 && a[8] == -5);
  assert_false(signbit(a[5])); /* still stable when descending */
  assert_int_equal(edgert_list_reverse(l), 0);
  assert_true(a[0] == -5);

  edgert_list_t *s = new_list(EDGERT_KIND_STR, 0);
  assert_int_equal(edgert_list_sort(s, 0), EDGERT_ETYPE);
  edgert_list_free(s);

  edgert_list_t *big = new_list(EDGERT_KIND_INT64, 0);
  for (int64_t i = 0; i < 5000; i++) {
    int64_t v = (i * 7919) % 5003;
    assert_int_equal(edgert_list_append(big, &v), 0);
  }
  assert_int_equal(edgert_list_sort(big, 0), 0);
  const int64_t *b = edgert_list_data(big);
  for (int i = 1; i < 5000; i++)
    assert_true(b[i - 1] <= b[i]);
  edgert_list_free(big);
  edgert_list_free(l);
}

static void str_elements_are_owned(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  edgert_list_t *l = new_list(EDGERT_KIND_STR, 0);
  char buf[16];
  for (int i = 0; i < 100; i++) {
    snprintf(buf, sizeof buf, "s%d", i);
    edgert_bytes_t b = {buf, strlen(buf)};
    assert_int_equal(edgert_list_append(l, &b), 0);
  }
  edgert_bytes_t *a = edgert_list_data(l);
  assert_string_equal(a[42].data, "s42");
  edgert_bytes_t nb = {"replaced", 8};
  assert_int_equal(edgert_list_set(l, 42, &nb), 0);
  assert_string_equal(((edgert_bytes_t *)edgert_list_data(l))[42].data, "replaced");
  edgert_list_t *c;
  assert_int_equal(edgert_list_copy(l, &c), 0);
  assert_int_equal(edgert_list_splice(l, 10, 50, NULL, 0), 0);
  assert_int_equal(edgert_list_len(l), 50);
  assert_string_equal(((edgert_bytes_t *)edgert_list_data(c))[42].data, "replaced");
  assert_int_equal(edgert_list_swap(l, c), 0);
  assert_int_equal(edgert_list_len(l), 100);
  assert_int_equal(edgert_list_len(c), 50);
  edgert_list_t *f = new_list(EDGERT_KIND_FLOAT64, 0);
  assert_int_equal(edgert_list_swap(l, f), EDGERT_ETYPE);
  edgert_list_free(f);
  assert_int_equal(edgert_list_clear(c), 0);
  edgert_list_free(c);
  edgert_list_free(l);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

static void pinned_list_keeps_its_array_and_length(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_FLOAT64, 0);
  double xs[] = {1, 2, 3};
  assert_int_equal(edgert_list_splice(l, 0, 0, xs, 3), 0);
  void *data = edgert_list_data(l);
  edgert_list_pin(l);
  double v = 9;
  /* Room may exist, but a pinned list never changes length. */
  assert_int_equal(edgert_list_reserve(l, 3), 0); /* no-op: room exists */
  assert_true(edgert_list_capacity(l) > 3);
  assert_int_equal(edgert_list_append(l, &v), EDGERT_EBUSY);
  assert_int_equal(edgert_list_splice(l, 3, 0, &v, 1), EDGERT_EBUSY);
  assert_int_equal(edgert_list_pop(l, 0, NULL), EDGERT_EBUSY);
  assert_int_equal(edgert_list_clear(l), EDGERT_EBUSY);
  assert_int_equal(edgert_list_reserve(l, 1000), EDGERT_EBUSY);
  assert_non_null(strstr(edgert_last_error(), "exported"));
  assert_int_equal(edgert_list_set(l, 1, &v), 0);
  assert_int_equal(edgert_list_splice(l, 0, 1, &v, 1), 0); /* same length */
  assert_int_equal(edgert_list_sort(l, 0), 0);
  assert_int_equal(edgert_list_reverse(l), 0);
  assert_ptr_equal(edgert_list_data(l), data);
  assert_int_equal(edgert_list_len(l), 3);
  assert_int_equal(edgert_list_pins(l), 1);
  assert_int_equal(edgert_list_unpin(l), 0);
  assert_int_equal(edgert_list_unpin(l), EDGERT_EINVAL);
  while (edgert_list_len(l) < 3 + 100)
    assert_int_equal(edgert_list_append(l, &v), 0);
  edgert_list_free(l);
}

static void large_lists_waste_little_capacity(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_FLOAT64, 0);
  double v = 1;
  for (int i = 0; i < 1000000; i++)
    assert_int_equal(edgert_list_append(l, &v), 0);
  double per = (double)edgert_list_memory(l) / 1e6;
  print_message("float list built by appends: %.2f bytes per element at 1e6\n", per);
  assert_true(per <= 8.0 * (1.0 + 1.0 / 16) + 0.01);
  edgert_list_free(l);
}

/* ---- allocation failures ------------------------------------------------- */

static void *setup_strs(void) {
  edgert_list_t *l = new_list(EDGERT_KIND_BYTES, 0);
  for (int i = 0; i < 5; i++) {
    edgert_bytes_t b = {"abc", 3};
    assert_int_equal(edgert_list_append(l, &b), 0);
  }
  return l;
}
static void strs_unchanged(void *state) {
  edgert_list_t *l = state;
  assert_int_equal(edgert_list_len(l), 5);
  edgert_bytes_t *a = edgert_list_data(l);
  for (int i = 0; i < 5; i++)
    assert_memory_equal(a[i].data, "abc", 3);
}
static void free_list(void *state) { edgert_list_free(state); }
static int run_splice(void *state) {
  edgert_bytes_t items[40];
  for (int i = 0; i < 40; i++)
    items[i] = (edgert_bytes_t){"xyz", 3};
  return edgert_list_splice(state, 1, 2, items, 40);
}
static int run_set(void *state) {
  edgert_bytes_t b = {"new", 3};
  return edgert_list_set(state, 2, &b);
}
static int run_assign_strided(void *state) {
  edgert_bytes_t items[3] = {{"xyz", 3}, {"uvw", 3}, {"rst", 3}};
  return edgert_list_assign_strided(state, 0, 2, 3, items, 3);
}
static int run_repeat(void *state) { return edgert_list_repeat(state, 3); }
static int run_copy(void *state) {
  edgert_list_t *c = NULL;
  int rc = edgert_list_copy(state, &c);
  edgert_list_free(c);
  return rc;
}

static void allocation_failures_change_nothing(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  const edgert_test_oom_case_t cases[] = {
      {"edgert_list_splice", setup_strs, run_splice, strs_unchanged, free_list, 0},
      {"edgert_list_set", setup_strs, run_set, strs_unchanged, free_list, 0},
      {"edgert_list_copy", setup_strs, run_copy, strs_unchanged, free_list, 0},
      {"edgert_list_assign_strided", setup_strs, run_assign_strided, strs_unchanged, free_list, 0},
      {"edgert_list_repeat", setup_strs, run_repeat, strs_unchanged, free_list, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_true(edgert_test_failalloc_sweep(&cases[i]) > 0);
  edgert_test_failalloc_uninstall();
}

/* ---- the bool rule -------------------------------------------------------- */

static void bool_lists_refuse_bytes_other_than_0_and_1_at_every_entry_point(void **state) {
  (void)state;
  edgert_list_t *l = new_list(EDGERT_KIND_BOOL, 8); /* room: append's fast path */
  unsigned char ok[3] = {1, 0, 1}, seven = 7, bad[3] = {1, 2, 0};
  assert_int_equal(edgert_list_splice(l, 0, 0, ok, 3), 0);
  assert_int_equal(edgert_list_append(l, &seven), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "a bool is 0 or 1, not 7"));
  assert_int_equal(edgert_list_insert(l, 1, &seven), EDGERT_EINVAL);
  assert_int_equal(edgert_list_set(l, 0, &seven), EDGERT_EINVAL);
  assert_int_equal(edgert_list_splice(l, 0, 1, bad, 3), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not 2 (item 1)"));
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 2, bad, 2), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not 2 (item 1)"));
  /* without room append takes the slow path: refused there too */
  while (edgert_list_len(l) < edgert_list_capacity(l))
    assert_int_equal(edgert_list_append(l, &ok[0]), 0);
  size_t n = edgert_list_len(l);
  assert_int_equal(edgert_list_append(l, &seven), EDGERT_EINVAL);
  assert_int_equal(edgert_list_len(l), n);
  const unsigned char *d = edgert_list_data(l);
  for (size_t i = 0; i < n; i++)
    assert_true(d[i] <= 1);
  assert_int_equal(d[0], 1);
  assert_int_equal(d[1], 0);
  /* the rule is for bool lists only: an int64 7 is fine */
  edgert_list_t *i64 = new_list(EDGERT_KIND_INT64, 0);
  int64_t v = 7;
  assert_int_equal(edgert_list_append(i64, &v), 0);
  edgert_list_free(i64);
  edgert_list_free(l);
}

/* ---- strided slices and repeat -------------------------------------------- */

static edgert_list_t *range_list(int64_t n) {
  edgert_list_t *l = new_list(EDGERT_KIND_INT64, 0);
  for (int64_t i = 0; i < n; i++)
    assert_int_equal(edgert_list_append(l, &i), 0);
  return l;
}

static void assert_items(edgert_list_t *l, const int64_t *want, size_t n) {
  assert_int_equal(edgert_list_len(l), n);
  const int64_t *a = edgert_list_data(l);
  for (size_t i = 0; i < n; i++)
    if (a[i] != want[i])
      fail_msg("item %zu is %lld, want %lld", i, (long long)a[i], (long long)want[i]);
}

static void strided_delete_keeps_the_rest_in_order(void **state) {
  (void)state;
  edgert_list_t *l = range_list(10);
  /* del l[1::3] -> indices 1, 4, 7 */
  assert_int_equal(edgert_list_delete_strided(l, 1, 3, 3), 0);
  assert_items(l, (const int64_t[]){0, 2, 3, 5, 6, 8, 9}, 7);
  /* del l[::-2] on 7 items -> indices 6, 4, 2, 0 */
  assert_int_equal(edgert_list_delete_strided(l, 6, -2, 4), 0);
  assert_items(l, (const int64_t[]){2, 5, 8}, 3);
  assert_int_equal(edgert_list_delete_strided(l, 0, 5, 0), 0); /* nothing */
  assert_int_equal(edgert_list_delete_strided(l, 0, 0, 1), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "step must not be zero"));
  assert_int_equal(edgert_list_delete_strided(l, 1, 2, 2), EDGERT_ERANGE); /* 1, 3 */
  assert_int_equal(edgert_list_delete_strided(l, 1, -2, 2), EDGERT_ERANGE); /* 1, -1 */
  assert_int_equal(edgert_list_delete_strided(l, 3, 1, 1), EDGERT_ERANGE);
  assert_int_equal(edgert_list_delete_strided(l, 0, PTRDIFF_MAX, 2), EDGERT_ERANGE);
  assert_int_equal(edgert_list_delete_strided(l, 2, PTRDIFF_MIN, 2), EDGERT_ERANGE);
  assert_int_equal(edgert_list_delete_strided(l, 0, 1, SIZE_MAX), EDGERT_ERANGE);
  assert_items(l, (const int64_t[]){2, 5, 8}, 3);
  edgert_list_pin(l);
  assert_int_equal(edgert_list_delete_strided(l, 0, 2, 2), EDGERT_EBUSY);
  assert_int_equal(edgert_list_unpin(l), 0);
  assert_int_equal(edgert_list_delete_strided(NULL, 0, 1, 0), EDGERT_EINVAL);
  edgert_list_free(l);
  /* str items: the dropped ones' data is freed, the kept ones' kept */
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  edgert_list_t *s = new_list(EDGERT_KIND_STR, 0);
  for (int i = 0; i < 6; i++) {
    char buf[8];
    snprintf(buf, sizeof buf, "s%d", i);
    edgert_bytes_t b = {buf, strlen(buf)};
    assert_int_equal(edgert_list_append(s, &b), 0);
  }
  size_t mem = edgert_list_memory(s);
  assert_int_equal(edgert_list_delete_strided(s, 0, 2, 3), 0);
  assert_true(edgert_list_memory(s) < mem);
  edgert_bytes_t *a = edgert_list_data(s);
  assert_string_equal(a[0].data, "s1");
  assert_string_equal(a[2].data, "s5");
  edgert_list_free(s);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

static void strided_assignment_replaces_in_index_order(void **state) {
  (void)state;
  edgert_list_t *l = range_list(6);
  /* l[::2] = [10, 20, 30] */
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 3, (const int64_t[]){10, 20, 30}, 3),
                   0);
  assert_items(l, (const int64_t[]){10, 1, 20, 3, 30, 5}, 6);
  /* l[::-3] = [7, 8] -> index 5 gets 7, index 2 gets 8 */
  assert_int_equal(edgert_list_assign_strided(l, 5, -3, 2, (const int64_t[]){7, 8}, 2), 0);
  assert_items(l, (const int64_t[]){10, 1, 8, 3, 30, 7}, 6);
  /* items that point into the list itself: l[::2] = l[3:6] */
  int64_t *d = edgert_list_data(l);
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 3, d + 3, 3), 0);
  assert_items(l, (const int64_t[]){3, 1, 30, 3, 7, 7}, 6);
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 3, (const int64_t[]){1, 2}, 2),
                   EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(),
                         "attempt to assign sequence of size 2 to extended slice of size 3"));
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 4, (const int64_t[]){1, 2, 3, 4}, 4),
                   EDGERT_ERANGE);
  assert_int_equal(edgert_list_assign_strided(l, 0, 2, 1, NULL, 1), EDGERT_EINVAL);
  assert_int_equal(edgert_list_assign_strided(l, 0, 0, 1, (const int64_t[]){1}, 1),
                   EDGERT_EINVAL);
  assert_items(l, (const int64_t[]){3, 1, 30, 3, 7, 7}, 6);
  /* allowed while pinned: the length does not change */
  edgert_list_pin(l);
  assert_int_equal(edgert_list_assign_strided(l, 1, 2, 3, (const int64_t[]){0, 0, 0}, 3), 0);
  assert_int_equal(edgert_list_unpin(l), 0);
  assert_items(l, (const int64_t[]){3, 0, 30, 0, 7, 0}, 6);
  edgert_list_free(l);
  /* str items own fresh copies; the replaced ones are freed */
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  edgert_list_t *s = setup_strs();
  edgert_bytes_t nb[2] = {{"one", 3}, {"two", 3}};
  assert_int_equal(edgert_list_assign_strided(s, 4, -4, 2, nb, 2), 0);
  edgert_bytes_t *a = edgert_list_data(s);
  assert_memory_equal(a[4].data, "one", 3);
  assert_memory_equal(a[0].data, "two", 3);
  assert_ptr_not_equal(a[4].data, nb[0].data);
  edgert_list_free(s);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

static void repeat_copies_in_place_and_checks_overflow(void **state) {
  (void)state;
  edgert_list_t *l = range_list(3);
  assert_int_equal(edgert_list_repeat(l, 1), 0);
  assert_items(l, (const int64_t[]){0, 1, 2}, 3);
  assert_int_equal(edgert_list_repeat(l, 3), 0);
  assert_items(l, (const int64_t[]){0, 1, 2, 0, 1, 2, 0, 1, 2}, 9);
  assert_int_equal(edgert_list_repeat(l, SIZE_MAX / 2), EDGERT_ELIMIT);
  assert_non_null(strstr(edgert_last_error(), "too many"));
  assert_int_equal(edgert_list_repeat(l, SIZE_MAX), EDGERT_ELIMIT);
  assert_int_equal(edgert_list_len(l), 9);
  edgert_list_pin(l);
  assert_int_equal(edgert_list_repeat(l, 2), EDGERT_EBUSY);
  assert_int_equal(edgert_list_repeat(l, 0), EDGERT_EBUSY);
  assert_int_equal(edgert_list_repeat(l, 1), 0);
  assert_int_equal(edgert_list_unpin(l), 0);
  assert_int_equal(edgert_list_repeat(l, 0), 0);
  assert_int_equal(edgert_list_len(l), 0);
  assert_int_equal(edgert_list_repeat(l, 1000), 0); /* empty stays empty */
  assert_int_equal(edgert_list_len(l), 0);
  assert_int_equal(edgert_list_repeat(NULL, 2), EDGERT_EINVAL);
  edgert_list_free(l);
  /* 5 items x 7: 35, each a copy (odd sizes exercise the doubling tail) */
  edgert_list_t *m = range_list(5);
  assert_int_equal(edgert_list_repeat(m, 7), 0);
  assert_int_equal(edgert_list_len(m), 35);
  const int64_t *a = edgert_list_data(m);
  for (int i = 0; i < 35; i++)
    assert_int_equal(a[i], i % 5);
  edgert_list_free(m);
  /* str items: every copy owns its data */
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  edgert_list_t *s = setup_strs();
  assert_int_equal(edgert_list_repeat(s, 2), 0);
  edgert_bytes_t *b = edgert_list_data(s);
  assert_int_equal(edgert_list_len(s), 10);
  assert_ptr_not_equal(b[0].data, b[5].data);
  assert_memory_equal(b[9].data, "abc", 3);
  assert_int_equal(edgert_list_repeat(s, 0), 0);
  assert_int_equal(edgert_list_memory(s) < 1000, 1);
  edgert_list_free(s);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(float_list_is_one_contiguous_array),
      cmocka_unit_test(insert_pop_and_splice_move_elements),
      cmocka_unit_test(sort_is_stable_numeric_and_puts_nan_last),
      cmocka_unit_test(str_elements_are_owned),
      cmocka_unit_test(pinned_list_keeps_its_array_and_length),
      cmocka_unit_test(large_lists_waste_little_capacity),
      cmocka_unit_test(allocation_failures_change_nothing),
      cmocka_unit_test(bool_lists_refuse_bytes_other_than_0_and_1_at_every_entry_point),
      cmocka_unit_test(strided_delete_keeps_the_rest_in_order),
      cmocka_unit_test(strided_assignment_replaces_in_index_order),
      cmocka_unit_test(repeat_copies_in_place_and_checks_overflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
