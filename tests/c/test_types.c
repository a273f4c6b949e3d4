/* test_types.c: the type registry, from a C host with no Python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "edgert.h"
#include "helpers/failalloc.h"

/* The article's Point, with a C host's idea of an object: a struct tagged
 * with a magic number. */
typedef struct {
  double x, y;
} point_t;
typedef struct {
  int magic;
  double x, y;
} host_point_t;
#define POINT_MAGIC 0x501

static size_t sizeof_point(void) { return sizeof(point_t); }
static int check_point(void *obj) {
  if (obj == NULL)
    return -1;
  return ((host_point_t *)obj)->magic == POINT_MAGIC;
}
static void copy_point(void *dst, void *src) {
  host_point_t *h = src;
  point_t p = {h->x, h->y};
  memcpy(dst, &p, sizeof p);
}
static host_point_t boxed;
static void *box_point(const void *src) {
  point_t p;
  memcpy(&p, src, sizeof p);
  boxed.magic = POINT_MAGIC;
  boxed.x = p.x;
  boxed.y = p.y;
  return &boxed;
}
static size_t sizeof_zero(void) { return 0; }
static size_t sizeof_huge(void) { return EDGERT_TYPE_MAX_SIZE + 1; }

/* What a custom-type library writes: one line, its own entry point. */
EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_AS(test_register_custom_type)

static void builtins_are_found_by_every_name(void **state) {
  (void)state;
  const edgert_type_t *t;
  assert_int_equal(edgert_type_find("int", &t), 0);
  assert_ptr_equal(t, edgert_type_builtin(EDGERT_KIND_INT64));
  assert_int_equal(edgert_type_find("int64", &t), 0);
  assert_string_equal(edgert_type_name(t), "int64");
  assert_int_equal(edgert_type_size(t), 8);
  assert_int_equal(edgert_type_find("float", &t), 0);
  assert_int_equal(edgert_type_kind(t), EDGERT_KIND_FLOAT64);
  assert_int_equal(edgert_type_find("float64", &t), 0);
  assert_int_equal(edgert_type_find("bool", &t), 0);
  assert_int_equal(edgert_type_size(t), 1);
  assert_int_equal(edgert_type_find("str", &t), 0);
  assert_int_equal(edgert_type_size(t), sizeof(edgert_bytes_t));
  assert_int_equal(edgert_type_find("bytes", &t), 0);
  assert_int_equal(edgert_type_kind(t), EDGERT_KIND_BYTES);
  assert_null(edgert_type_builtin(EDGERT_KIND_CUSTOM));
  assert_int_equal(edgert_type_find("object", &t), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_find("NoSuchType", &t), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), "NoSuchType"));
  assert_int_equal(edgert_type_find(NULL, &t), EDGERT_EINVAL);
}

static void point_registers_and_its_callbacks_run(void **state) {
  (void)state;
  const edgert_type_t *t = NULL;
  assert_int_equal(edgert_type_register("Point", sizeof_point, check_point, copy_point,
                                        box_point, &t),
                   0);
  assert_non_null(t);
  const edgert_type_t *found;
  assert_int_equal(edgert_type_find("Point", &found), 0);
  assert_ptr_equal(found, t);
  assert_int_equal(edgert_type_kind(t), EDGERT_KIND_CUSTOM);
  assert_int_equal(edgert_type_size(t), sizeof(point_t));
  assert_string_equal(edgert_type_name(t), "Point");
  assert_int_equal(edgert_type_has_box(t), 1);

  host_point_t hp = {POINT_MAGIC, 1.5, -2.0};
  host_point_t other = {7, 0, 0};
  assert_int_equal(edgert_type_check(t, &hp), 1);
  assert_int_equal(edgert_type_check(t, &other), 0);
  assert_int_equal(edgert_type_check(t, NULL), EDGERT_EFAILED);
  point_t p;
  assert_int_equal(edgert_type_copy(t, &p, &hp), 0);
  assert_true(p.x == 1.5 && p.y == -2.0);
  void *o = NULL;
  assert_int_equal(edgert_type_box(t, &p, &o), 0);
  assert_ptr_equal(o, &boxed);
  assert_true(boxed.x == 1.5 && boxed.y == -2.0);

  /* Built-ins have no callbacks. */
  assert_int_equal(edgert_type_check(edgert_type_builtin(EDGERT_KIND_INT64), &hp), EDGERT_ETYPE);
}

static void registration_refuses_bad_input(void **state) {
  (void)state;
  assert_int_equal(edgert_type_register("Point", sizeof_point, check_point, copy_point, NULL,
                                        NULL),
                   EDGERT_EEXIST);
  assert_non_null(strstr(edgert_last_error(), "already registered"));
  assert_int_equal(edgert_type_register("float", sizeof_point, check_point, copy_point, NULL,
                                        NULL),
                   EDGERT_EEXIST);
  assert_int_equal(edgert_type_register("object", sizeof_point, check_point, copy_point, NULL,
                                        NULL),
                   EDGERT_EEXIST);
  const char *bad[] = {"", "1abc", "a b", "x-y", ".a",
                       "a123456789012345678901234567890123456789012345678901234567890123"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(edgert_type_register(bad[i], sizeof_point, check_point, copy_point, NULL,
                                          NULL),
                     EDGERT_EINVAL);
    assert_non_null(strstr(edgert_last_error(), "invalid type name"));
  }
  assert_int_equal(edgert_type_register(NULL, sizeof_point, check_point, copy_point, NULL, NULL),
                   EDGERT_EINVAL);
  assert_int_equal(edgert_type_register("NoCheck", sizeof_point, NULL, copy_point, NULL, NULL),
                   EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "check"));
  assert_int_equal(edgert_type_register("NoCopy", sizeof_point, check_point, NULL, NULL, NULL),
                   EDGERT_EINVAL);
  assert_int_equal(edgert_type_register("Zero", sizeof_zero, check_point, copy_point, NULL, NULL),
                   EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "sizeof returned 0"));
  assert_int_equal(edgert_type_register("Huge", sizeof_huge, check_point, copy_point, NULL, NULL),
                   EDGERT_EINVAL);
  /* None of the failures registered anything. */
  const edgert_type_t *t;
  assert_int_equal(edgert_type_find("Zero", &t), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_find("NoCheck", &t), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_type_register("a.b_C9", sizeof_point, check_point, copy_point, NULL,
                                        NULL),
                   0);
}

static void the_header_helper_defines_a_forwarding_entry_point(void **state) {
  (void)state;
  assert_int_equal(test_register_custom_type("Vec2", (void *)sizeof_point, (void *)check_point,
                                             (void *)copy_point),
                   0);
  const edgert_type_t *t;
  assert_int_equal(edgert_type_find("Vec2", &t), 0);
  assert_int_equal(edgert_type_size(t), sizeof(point_t));
  assert_int_equal(edgert_type_has_box(t), 0);
  void *o;
  point_t p = {0, 0};
  assert_int_equal(edgert_type_box(t, &p, &o), EDGERT_EUNSUPPORTED);
  assert_int_equal(test_register_custom_type("Vec2", (void *)sizeof_point, (void *)check_point,
                                             (void *)copy_point),
                   EDGERT_EEXIST);
  assert_int_equal(edgert_register_custom_type("Vec3", (void *)sizeof_point, NULL,
                                               (void *)copy_point),
                   EDGERT_EINVAL);
}

#define THREADS 8
static int results[THREADS];
static void *race(void *arg) {
  int i = (int)(intptr_t)arg;
  results[i] = edgert_type_register("Raced", sizeof_point, check_point, copy_point, NULL, NULL);
  char name[32];
  snprintf(name, sizeof name, "Own%d", i);
  if (edgert_type_register(name, sizeof_point, check_point, copy_point, NULL, NULL) != 0)
    results[i] = 99;
  return NULL;
}

static void concurrent_registration_admits_exactly_one(void **state) {
  (void)state;
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, race, (void *)(intptr_t)i), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  int ok = 0;
  for (int i = 0; i < THREADS; i++) {
    assert_true(results[i] == 0 || results[i] == EDGERT_EEXIST);
    ok += results[i] == 0;
  }
  assert_int_equal(ok, 1);
  for (int i = 0; i < THREADS; i++) {
    char name[32];
    const edgert_type_t *found;
    snprintf(name, sizeof name, "Own%d", i);
    assert_int_equal(edgert_type_find(name, &found), 0);
  }
}

static void bytes_release_frees_and_zeroes(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  /* A str list hands out owned data on pop; releasing it frees it. */
  edgert_list_t *l;
  assert_int_equal(edgert_list_new(edgert_type_builtin(EDGERT_KIND_STR), 0, &l), 0);
  edgert_bytes_t in = {"hello", 5}, out;
  assert_int_equal(edgert_list_append(l, &in), 0);
  assert_int_equal(edgert_list_pop(l, 0, &out), 0);
  assert_int_equal(out.len, 5);
  assert_string_equal(out.data, "hello");
  edgert_bytes_release(&out);
  assert_null(out.data);
  assert_int_equal(out.len, 0);
  edgert_bytes_release(NULL);
  edgert_list_free(l);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(builtins_are_found_by_every_name),
      cmocka_unit_test(point_registers_and_its_callbacks_run),
      cmocka_unit_test(registration_refuses_bad_input),
      cmocka_unit_test(the_header_helper_defines_a_forwarding_entry_point),
      cmocka_unit_test(concurrent_registration_admits_exactly_one),
      cmocka_unit_test(bytes_release_frees_and_zeroes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
