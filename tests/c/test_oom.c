/*
 * test_oom.c: the allocation-failure sweep over every public C entry point
 * that allocates.
 *
 * For each entry point, tests/c/helpers/failalloc.c fails allocation 1, then
 * 2, ... inside one call, until the call makes fewer allocations than that,
 * and asserts each time that the call returned EDGERT_ENOMEM with a message,
 * left its object as it was (each case's `unchanged` check) and leaked
 * nothing (the live-block count is back to where it was). The number of
 * failure points covered is printed per entry point and in total.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/failalloc.h"

static long total_points;
static int entry_points;

static void sweep_ex(const edgert_test_oom_case_t *c, int keeps) {
  long n = edgert_test_failalloc_sweep_ex(c, keeps);
  assert_true(n >= 0);
  print_message("oom: %-40s %4ld allocation-failure point(s)\n", c->name, n);
  total_points += n;
  entry_points++;
}

static void sweep(const edgert_test_oom_case_t *c) { sweep_ex(c, c->keeps_on_success); }

static int install(void **state) {
  (void)state;
  return edgert_test_failalloc_install();
}

/* ---- abi: validates without allocating ------------------------------------ */

static int run_contract_init(void *state) {
  (void)state;
  static const char *const args[] = {"LP_c_float", "LP_c_float", "c_size_t"};
  edgert_contract_t c;
  return edgert_contract_init(&c, "vec_add_f32", args, 3, NULL, "cdecl", 1);
}

static int run_type_parse(void *state) {
  (void)state;
  edgert_abi_type_t t;
  return edgert_abi_type_parse("LP_LP_c_double", 0, &t);
}

static void abi_calls_do_not_allocate(void **state) {
  (void)state;
  const edgert_test_oom_case_t cases[] = {
      {"edgert_contract_init", NULL, run_contract_init, NULL, NULL, 0},
      {"edgert_abi_type_parse", NULL, run_type_parse, NULL, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(edgert_test_failalloc_sweep(&cases[i]), 0);
}

/* ---- types: the registry -------------------------------------------------- */

typedef struct {
  double x, y;
} point_t;
static size_t point_sizeof(void) { return sizeof(point_t); }
static int point_check(void *obj) { return obj != NULL; }
static void point_copy(void *dst, void *src) { memcpy(dst, src, sizeof(point_t)); }

typedef struct {
  char name[32];
} reg_state_t;

static void *setup_register(void) {
  static int counter;
  reg_state_t *s = malloc(sizeof *s);
  assert_non_null(s);
  snprintf(s->name, sizeof s->name, "OomPoint%d", counter++);
  return s;
}

static int run_register(void *state) {
  reg_state_t *s = state;
  const edgert_type_t *t = NULL;
  return edgert_type_register(s->name, point_sizeof, point_check, point_copy,
                              NULL, &t);
}

static int run_register_addresses(void *state) {
  reg_state_t *s = state;
  return edgert_register_custom_type(s->name, (void *)point_sizeof,
                                     (void *)point_check, (void *)point_copy);
}

static void register_unchanged(void *state) {
  reg_state_t *s = state;
  const edgert_type_t *t = NULL;
  /* A failed registration registered nothing: the name is still free. */
  assert_int_equal(edgert_type_find(s->name, &t), EDGERT_ENOTFOUND);
}

static void free_state(void *state) { free(state); }

static void guard_warm_up(void *ud) { (void)ud; }

static void type_registration_fails_cleanly(void **state) {
  (void)state;
  /* Registration runs the sizeof callback under the crash guard, whose
   * first call on a thread allocates the thread's alternate signal stack
   * (kept until the thread exits): make that first call here, so the sweep
   * sees only registration's own allocations. */
  assert_int_equal(edgert_guard_run(guard_warm_up, NULL, "warm-up"), 0);
  const edgert_test_oom_case_t cases[] = {
      {"edgert_type_register", setup_register, run_register,
       register_unchanged, free_state, 1},
      {"edgert_register_custom_type", setup_register, run_register_addresses,
       register_unchanged, free_state, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sweep(&cases[i]);
}


/* ---- dict ------------------------------------------------------------------ */

typedef struct {
  edgert_dict_t *d;
  size_t len;
  uint64_t version;
  int str;
  int version_kept; /* whether a failure must keep the version tag too */
} dict_state_t;

/* A failing reserve or set_many may have grown the storage before the
 * allocation that failed; the grown storage is kept, and a resize moves the
 * version tag by design (caches just refill). Their entries must still be
 * exactly as they were; every other failing call keeps the tag too. */
static int version_kept_now = 1;

static const edgert_type_t *type_named(const char *name) {
  const edgert_type_t *t = NULL;
  assert_int_equal(edgert_type_find(name, &t), 0);
  return t;
}

/* A dict of `n` int64 -> int64 entries (k -> 10k), or str -> bytes ("kN"). */
static dict_state_t *make_dict(size_t n, int str) {
  dict_state_t *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->str = str;
  assert_int_equal(edgert_dict_new(type_named(str ? "str" : "int64"),
                                   type_named(str ? "bytes" : "int64"), &s->d),
                   0);
  for (size_t i = 0; i < n; i++) {
    if (str) {
      char k[32], v[32];
      int kl = snprintf(k, sizeof k, "k%zu", i), vl = snprintf(v, sizeof v, "value %zu", i);
      edgert_bytes_t kb = {k, (size_t)kl}, vb = {v, (size_t)vl};
      assert_int_equal(edgert_dict_set(s->d, &kb, &vb), 0);
    } else {
      int64_t k = (int64_t)i, v = 10 * (int64_t)i;
      assert_int_equal(edgert_dict_set(s->d, &k, &v), 0);
    }
  }
  s->len = n;
  s->version = edgert_dict_version(s->d);
  s->version_kept = version_kept_now;
  return s;
}

static void dict_unchanged(void *state) {
  dict_state_t *s = state;
  assert_int_equal(edgert_dict_len(s->d), s->len);
  if (s->version_kept)
    assert_int_equal(edgert_dict_version(s->d), s->version);
  for (size_t i = 0; i < s->len; i++) {
    if (s->str) {
      char k[32], v[32];
      int kl = snprintf(k, sizeof k, "k%zu", i), vl = snprintf(v, sizeof v, "value %zu", i);
      edgert_bytes_t kb = {k, (size_t)kl}, out;
      assert_int_equal(edgert_dict_get(s->d, &kb, &out), 0);
      assert_int_equal(out.len, (size_t)vl);
      assert_memory_equal(out.data, v, out.len);
    } else {
      int64_t k = (int64_t)i;
      int64_t *v = edgert_dict_find(s->d, &k);
      assert_non_null(v);
      assert_int_equal(*v, 10 * (int64_t)i);
    }
  }
}

static void dict_teardown(void *state) {
  dict_state_t *s = state;
  edgert_dict_free(s->d);
  free(s);
}

static size_t dict_size_now;
static void *setup_dict_int(void) { return make_dict(dict_size_now, 0); }
static void *setup_dict_str(void) { return make_dict(dict_size_now, 1); }

static int run_dict_new(void *state) {
  (void)state;
  edgert_dict_t *d = NULL;
  int rc = edgert_dict_new(type_named("str"), type_named("float64"), &d);
  if (rc == 0)
    edgert_dict_free(d); /* the sweep checks the success path leaks nothing */
  return rc;
}

static int run_dict_set_new_key(void *state) {
  dict_state_t *s = state;
  if (s->str) {
    edgert_bytes_t k = {"a new key", 9}, v = {"a new value", 11};
    return edgert_dict_set(s->d, &k, &v);
  }
  int64_t k = 1000000, v = 1;
  return edgert_dict_set(s->d, &k, &v);
}

static int run_dict_copy(void *state) {
  dict_state_t *s = state;
  edgert_dict_t *c = NULL;
  int rc = edgert_dict_copy(s->d, &c);
  if (rc == 0) {
    assert_int_equal(edgert_dict_len(c), s->len);
    edgert_dict_free(c);
  } else {
    assert_null(c);
  }
  return rc;
}

static int run_dict_reserve(void *state) {
  dict_state_t *s = state;
  return edgert_dict_reserve(s->d, s->len + 100);
}

static int run_dict_set_many(void *state) {
  dict_state_t *s = state;
  if (s->str) {
    edgert_bytes_t ks[3] = {{"x", 1}, {"k0", 2}, {"y", 1}};
    edgert_bytes_t vs[3] = {{"1", 1}, {"value 0", 7}, {"3", 1}};
    return edgert_dict_set_many(s->d, ks, vs, 3);
  }
  int64_t ks[20], vs[20];
  for (int i = 0; i < 20; i++) {
    ks[i] = i < 2 ? i : 5000 + i; /* two existing keys: same values again */
    vs[i] = i < 2 ? 10 * i : i;
  }
  return edgert_dict_set_many(s->d, ks, vs, 20);
}

static int run_dict_upsert(void *state) {
  dict_state_t *s = state;
  int inserted = 0, err = 0;
  int64_t *slot = edgert_dict_upsert_i64(s->d, 777777, &inserted, &err);
  if (slot == NULL)
    return err;
  *slot = 5;
  return 0;
}

static void dict_operations_fail_cleanly(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 7, 8, 9, 16, 17, 100};
  char name[64];
  {
    const edgert_test_oom_case_t c = {"edgert_dict_new", NULL, run_dict_new, NULL, NULL, 0};
    sweep(&c);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    dict_size_now = sizes[i];
    for (int str = 0; str < 2; str++) {
      void *(*setup)(void) = str ? setup_dict_str : setup_dict_int;
      const edgert_test_oom_case_t cases[] = {
          {"edgert_dict_set", setup, run_dict_set_new_key, dict_unchanged, dict_teardown, 0},
          {"edgert_dict_copy", setup, run_dict_copy, dict_unchanged, dict_teardown, 0},
          {"edgert_dict_reserve", setup, run_dict_reserve, dict_unchanged, dict_teardown, 0},
          {"edgert_dict_set_many", setup, run_dict_set_many, dict_unchanged, dict_teardown, 0},
          {"edgert_dict_upsert_i64", setup, run_dict_upsert, dict_unchanged, dict_teardown, 0},
      };
      size_t ncases = str ? 4 : 5; /* upsert is for fixed-size values */
      for (size_t j = 0; j < ncases; j++) {
        edgert_test_oom_case_t c = cases[j];
        snprintf(name, sizeof name, "%s (%s, %zu entries)", cases[j].name,
                 str ? "str->bytes" : "int64->int64", sizes[i]);
        c.name = name;
        version_kept_now = cases[j].run != run_dict_reserve &&
                           cases[j].run != run_dict_set_many;
        sweep(&c);
        version_kept_now = 1;
      }
    }
  }
}

/* ---- loader ---------------------------------------------------------------- */

#define KERNELS EDGERT_FIXTURE_DIR "/libquality_kernels.so"

static int run_module_load(void *state) {
  (void)state;
  edgert_module_t *m = (edgert_module_t *)&m;
  int rc = edgert_module_load(KERNELS, NULL, &m);
  if (rc == 0)
    edgert_module_free(m);
  else
    assert_ptr_equal(m, (edgert_module_t *)&m); /* *out untouched */
  return rc;
}

static void *setup_module(void) {
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  return m;
}

static void teardown_module(void *state) { edgert_module_free(state); }

static int run_module_bind(void *state) {
  static const char *const args[] = {"c_int8", "c_uint16", "c_int32", "c_int64", "c_float", "c_double"};
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "q_mix", args, 6, "c_int64", NULL, 1), 0);
  edgert_func_t *fn = NULL;
  return edgert_module_bind(state, &c, &fn);
}

static int run_module_bind_fast(void *state) {
  static const char *const args[] = {"c_int", "c_int"};
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, "q_add_i32", args, 2, "c_int", NULL, 1), 0);
  return edgert_module_bind(state, &c, NULL);
}

static void module_unbound(void *state) {
  assert_null(edgert_module_function(state, "q_mix"));
  assert_null(edgert_module_function(state, "q_add_i32"));
}

static void loader_calls_fail_cleanly(void **state) {
  (void)state;
  const edgert_test_oom_case_t cases[] = {
      {"edgert_module_load", NULL, run_module_load, NULL, NULL, 0},
      {"edgert_module_bind (libffi)", setup_module, run_module_bind, module_unbound, teardown_module, 0},
      {"edgert_module_bind (fast path)", setup_module, run_module_bind_fast, module_unbound, teardown_module, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sweep(&cases[i]);
}

/* ---- manifest -------------------------------------------------------------- */

static const char manifest_text[] =
    "{\"schema_version\": 1, \"modules\": [{\"path\": \"libquality_kernels.so\", "
    "\"sha256\": \"" "0000000000000000000000000000000000000000000000000000000000000000" "\", "
    "\"contracts\": [{\"function_name\": \"q_add_i32\", \"arg_types\": [\"c_int\", \"c_int\"], "
    "\"return_type\": \"c_int\", \"calling_convention\": \"cdecl\"}, "
    "{\"function_name\": \"q_sum_f64\", \"arg_types\": [\"LP_c_double\", \"c_size_t\"], "
    "\"return_type\": \"c_double\"}]}]}";

static int run_manifest_parse(void *state) {
  (void)state;
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(manifest_text, sizeof manifest_text - 1, NULL, &m);
  if (rc == 0) {
    assert_int_equal(edgert_manifest_module_count(m), 1);
    edgert_manifest_free(m);
  } else {
    assert_null(m);
  }
  return rc;
}

static int run_manifest_parse_dir(void *state) {
  (void)state;
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_parse(manifest_text, sizeof manifest_text - 1,
                                 EDGERT_FIXTURE_DIR, &m);
  if (rc == 0)
    edgert_manifest_free(m);
  return rc;
}

static int run_contract_parse_json(void *state) {
  (void)state;
  static const char j[] = "{\"function_name\": \"f\", \"arg_types\": [\"LP_c_float\", \"c_size_t\"], "
                          "\"return_type\": null, \"calling_convention\": \"cdecl\"}";
  edgert_contract_t c;
  return edgert_contract_parse_json(j, sizeof j - 1, &c);
}

static void manifest_calls_fail_cleanly(void **state) {
  (void)state;
  const edgert_test_oom_case_t cases[] = {
      {"edgert_manifest_parse", NULL, run_manifest_parse, NULL, NULL, 0},
      {"edgert_manifest_parse (paths resolved)", NULL, run_manifest_parse_dir, NULL, NULL, 0},
      {"edgert_contract_parse_json", NULL, run_contract_parse_json, NULL, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sweep(&cases[i]);
}

/* ---- nexus ---------------------------------------------------------------- */

static int nx_double(void *ud, void **args, void *ret) {
  (void)ud;
  *(double *)ret = *(double *)args[0] * 2.0;
  return 0;
}

static int nx_released;
static void nx_release(void *ud) {
  (void)ud;
  nx_released++;
}

static int run_nexus_new(void *state) {
  (void)state;
  edgert_nexus_t *nx = NULL;
  int rc = edgert_nexus_new(&nx);
  if (rc == 0)
    edgert_nexus_free(nx);
  return rc;
}

static void *setup_nexus(void) {
  edgert_nexus_t *nx = NULL;
  assert_int_equal(edgert_nexus_new(&nx), 0);
  edgert_nexus_impl_t impl = {NULL, nx_double, NULL, NULL, NULL};
  assert_int_equal(edgert_nexus_register(nx, "first", &impl, nx_double, NULL, NULL, NULL), 0);
  nx_released = 0;
  return nx;
}

static void teardown_nexus(void *state) { edgert_nexus_free(state); }

static int run_nexus_register(void *state) {
  edgert_nexus_impl_t impl = {NULL, nx_double, NULL, NULL, nx_release};
  return edgert_nexus_register(state, "second", &impl, nx_double, NULL, NULL, NULL);
}

static void nexus_one_kernel(void *state) {
  edgert_kernel_t *k = NULL;
  assert_int_equal(edgert_nexus_count(state), 1);
  assert_int_equal(edgert_nexus_find(state, "second", &k), EDGERT_ENOTFOUND);
  assert_int_equal(nx_released, 0); /* release is not run on failure */
}

static int run_kernel_swap(void *state) {
  edgert_kernel_t *k = edgert_nexus_kernel_at(state, 0);
  edgert_nexus_impl_t impl = {NULL, nx_double, NULL, NULL, nx_release};
  uint64_t v = 0;
  return edgert_kernel_swap(k, &impl, &v);
}

static void kernel_still_v1(void *state) {
  edgert_nexus_stats_t st;
  edgert_kernel_stats(edgert_nexus_kernel_at(state, 0), &st);
  assert_int_equal(st.version, 1);
  assert_int_equal(st.versions, 1);
  assert_int_equal(nx_released, 0);
}

static int run_nexus_call(void *state) {
  double x = 4.0, out = 0;
  void *args[] = {&x};
  int rc = edgert_nexus_call(state, "first", args, &out);
  if (rc == 0)
    assert_true(out == 8.0);
  return rc;
}

static void nexus_calls_fail_cleanly(void **state) {
  (void)state;
  /* The crash guard gives each calling thread an alternate signal stack on
   * its first guarded call and keeps it until the thread exits: make that
   * first call here, so the sweep sees only the call's own allocations.
   * (Failing that allocation is covered: the guarded call returns
   * EDGERT_ENOMEM and the nexus falls back to the reference, which the
   * sweep counts as absorbed.) */
  void *nx = setup_nexus();
  assert_int_equal(run_nexus_call(nx), 0);
  teardown_nexus(nx);
  const edgert_test_oom_case_t cases[] = {
      {"edgert_nexus_new", NULL, run_nexus_new, NULL, NULL, 0},
      {"edgert_nexus_register", setup_nexus, run_nexus_register, nexus_one_kernel, teardown_nexus, 0},
      {"edgert_kernel_swap", setup_nexus, run_kernel_swap, kernel_still_v1, teardown_nexus, 0},
      {"edgert_nexus_call", setup_nexus, run_nexus_call, NULL, teardown_nexus, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sweep(&cases[i]);
}

/* ---- list ------------------------------------------------------------------ */

typedef struct {
  edgert_list_t *l;
  size_t len;
  int str;
} list_state_t;

static size_t list_size_now;

static list_state_t *make_list(size_t n, int str) {
  list_state_t *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->str = str;
  assert_int_equal(edgert_list_new(type_named(str ? "bytes" : "int64"), 0, &s->l), 0);
  for (size_t i = 0; i < n; i++) {
    if (str) {
      char v[32];
      int vl = snprintf(v, sizeof v, "item %zu", i);
      edgert_bytes_t b = {v, (size_t)vl};
      assert_int_equal(edgert_list_append(s->l, &b), 0);
    } else {
      int64_t v = (int64_t)(n - i); /* descending, so sorting moves items */
      assert_int_equal(edgert_list_append(s->l, &v), 0);
    }
  }
  s->len = n;
  return s;
}

static void *setup_list_int(void) { return make_list(list_size_now, 0); }
static void *setup_list_str(void) { return make_list(list_size_now, 1); }

static void list_unchanged(void *state) {
  list_state_t *s = state;
  assert_int_equal(edgert_list_len(s->l), s->len);
  for (size_t i = 0; i < s->len; i++) {
    if (s->str) {
      char v[32];
      int vl = snprintf(v, sizeof v, "item %zu", i);
      edgert_bytes_t out;
      assert_int_equal(edgert_list_get(s->l, i, &out), 0);
      assert_int_equal(out.len, (size_t)vl);
      assert_memory_equal(out.data, v, out.len);
    } else {
      int64_t out;
      assert_int_equal(edgert_list_get(s->l, i, &out), 0);
      assert_int_equal(out, (int64_t)(s->len - i));
    }
  }
}

static void list_teardown(void *state) {
  list_state_t *s = state;
  edgert_list_free(s->l);
  free(s);
}

static int run_list_append(void *state) {
  list_state_t *s = state;
  if (s->str) {
    edgert_bytes_t b = {"appended", 8};
    return edgert_list_append(s->l, &b);
  }
  int64_t v = 99;
  return edgert_list_append(s->l, &v);
}

static int run_list_insert(void *state) {
  list_state_t *s = state;
  if (s->str) {
    edgert_bytes_t b = {"inserted", 8};
    return edgert_list_insert(s->l, 0, &b);
  }
  int64_t v = 98;
  return edgert_list_insert(s->l, 0, &v);
}

static int run_list_set(void *state) {
  list_state_t *s = state;
  if (s->len == 0)
    return 0; /* nothing to replace */
  if (s->str) {
    edgert_bytes_t b = {"a replacement long enough to need its own block", 48};
    return edgert_list_set(s->l, 0, &b);
  }
  int64_t v = 97;
  return edgert_list_set(s->l, 0, &v);
}

static int run_list_splice(void *state) {
  list_state_t *s = state;
  size_t count = s->len < 2 ? s->len : 2;
  if (s->str) {
    edgert_bytes_t b[3] = {{"x", 1}, {"yy", 2}, {"zzz", 3}};
    return edgert_list_splice(s->l, 0, count, b, 3);
  }
  int64_t v[3] = {1, 2, 3};
  return edgert_list_splice(s->l, 0, count, v, 3);
}

static int run_list_reserve(void *state) {
  list_state_t *s = state;
  return edgert_list_reserve(s->l, s->len + 1000);
}

static int run_list_copy(void *state) {
  list_state_t *s = state;
  edgert_list_t *c = NULL;
  int rc = edgert_list_copy(s->l, &c);
  if (rc == 0) {
    assert_int_equal(edgert_list_len(c), s->len);
    edgert_list_free(c);
  } else {
    assert_null(c);
  }
  return rc;
}

static int run_list_sort(void *state) {
  list_state_t *s = state;
  if (s->str)
    return 0; /* sort is for numbers */
  return edgert_list_sort(s->l, 0);
}

static int run_list_new(void *state) {
  (void)state;
  edgert_list_t *l = NULL;
  int rc = edgert_list_new(type_named("float64"), 100, &l);
  if (rc == 0)
    edgert_list_free(l);
  return rc;
}

static void list_operations_fail_cleanly(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 8, 9, 100};
  char name[64];
  {
    const edgert_test_oom_case_t c = {"edgert_list_new", NULL, run_list_new, NULL, NULL, 0};
    sweep(&c);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    list_size_now = sizes[i];
    for (int str = 0; str < 2; str++) {
      void *(*setup)(void) = str ? setup_list_str : setup_list_int;
      const edgert_test_oom_case_t cases[] = {
          {"edgert_list_append", setup, run_list_append, list_unchanged, list_teardown, 0},
          {"edgert_list_insert", setup, run_list_insert, list_unchanged, list_teardown, 0},
          {"edgert_list_set", setup, run_list_set, list_unchanged, list_teardown, 0},
          {"edgert_list_splice", setup, run_list_splice, list_unchanged, list_teardown, 0},
          {"edgert_list_reserve", setup, run_list_reserve, list_unchanged, list_teardown, 0},
          {"edgert_list_copy", setup, run_list_copy, list_unchanged, list_teardown, 0},
          {"edgert_list_sort", setup, run_list_sort, list_unchanged, list_teardown, 0},
      };
      for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
        edgert_test_oom_case_t c = cases[j];
        snprintf(name, sizeof name, "%s (%s, %zu items)", cases[j].name, str ? "bytes" : "int64",
                 sizes[i]);
        c.name = name;
        sweep(&c);
      }
    }
  }
}

/* ---- loading a manifest's modules, and bytes already loaded ------------------ */

static char manifest_path[512];

/* A manifest file next to the fixtures, listing the kernels with their real hash. */
static void write_manifest_file(void) {
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(KERNELS, NULL, &m), 0);
  char sha[65];
  snprintf(sha, sizeof sha, "%s", edgert_module_sha256(m));
  edgert_module_free(m);
  snprintf(manifest_path, sizeof manifest_path, "%s/oom-manifest-%ld.json", EDGERT_FIXTURE_DIR,
           (long)getpid());
  FILE *f = fopen(manifest_path, "w");
  assert_non_null(f);
  fprintf(f,
          "{\"schema_version\": 1, \"modules\": [{\"path\": \"libquality_kernels.so\", "
          "\"sha256\": \"%s\", \"contracts\": [{\"function_name\": \"q_add_i32\", "
          "\"arg_types\": [\"c_int\", \"c_int\"], \"return_type\": \"c_int\"}, "
          "{\"function_name\": \"q_mix\", \"arg_types\": [\"c_int8\", \"c_uint16\", \"c_int32\", "
          "\"c_int64\", \"c_float\", \"c_double\"], \"return_type\": \"c_int64\"}]}]}",
          sha);
  fclose(f);
}

static int run_manifest_read(void *state) {
  (void)state;
  edgert_manifest_t *m = (edgert_manifest_t *)&m;
  int rc = edgert_manifest_read(manifest_path, &m);
  if (rc == 0)
    edgert_manifest_free(m);
  else
    assert_ptr_equal(m, (edgert_manifest_t *)&m);
  return rc;
}

static void *setup_manifest(void) {
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_read(manifest_path, &m), 0);
  return m;
}

static int run_manifest_load_modules(void *state) {
  return edgert_manifest_load_modules(state);
}

static void manifest_nothing_loaded(void *state) {
  /* All or nothing: after a failure no module of it is loaded. */
  assert_null(edgert_manifest_module(state, 0));
}

static void teardown_manifest(void *state) { edgert_manifest_free(state); }

static int run_manifest_load(void *state) {
  (void)state;
  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_load(manifest_path, &m);
  if (rc == 0) {
    edgert_func_t *fn = NULL;
    assert_int_equal(edgert_manifest_function(m, "q_add_i32", &fn), 0);
    edgert_manifest_free(m);
  } else {
    assert_null(m);
  }
  return rc;
}

static int run_module_load_again(void *state) {
  /* The same bytes as the module held by `state`: shares its mapping. */
  (void)state;
  edgert_module_t *m = NULL;
  int rc = edgert_module_load(KERNELS, NULL, &m);
  if (rc == 0)
    edgert_module_free(m);
  return rc;
}

static void loading_from_manifests_fails_cleanly(void **state) {
  (void)state;
  write_manifest_file();
  const edgert_test_oom_case_t cases[] = {
      {"edgert_manifest_read", NULL, run_manifest_read, NULL, NULL, 0},
      {"edgert_manifest_load_modules", setup_manifest, run_manifest_load_modules,
       manifest_nothing_loaded, teardown_manifest, 0},
      {"edgert_manifest_load", NULL, run_manifest_load, NULL, NULL, 0},
      {"edgert_module_load (bytes already loaded)", setup_module, run_module_load_again, NULL,
       teardown_module, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sweep(&cases[i]);
  unlink(manifest_path);
}

/* ---- the crash guard's first call on a new thread ----------------------------- */

typedef struct {
  long points;
  int failed;
} guard_thread_t;

static void noop_kernel(void *ud) { (void)ud; }

static void *first_guarded_calls(void *arg) {
  guard_thread_t *g = arg;
  /* The first guarded call of a thread allocates its alternate signal
   * stack, unless the thread has a big enough one already (ASan gives every
   * thread one): fail that allocation, then let it succeed. */
  stack_t cur;
  int has_stack = sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE);
  edgert_test_failalloc_fail_at(1);
  int rc = edgert_guard_run(noop_kernel, NULL, "noop");
  edgert_test_failalloc_disarm();
  if (rc == EDGERT_ENOMEM && strstr(edgert_last_error(), "alternate signal stack") != NULL)
    g->points = 1;
  else if (!(has_stack && rc == 0))
    g->failed = 1;
  if (edgert_guard_run(noop_kernel, NULL, "noop") != 0)
    g->failed = 1;
  return NULL;
}

static void a_new_threads_guard_setup_fails_cleanly(void **state) {
  (void)state;
  if (!edgert_guard_enabled())
    skip();
  long live = edgert_test_failalloc_live();
  guard_thread_t g = {0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, first_guarded_calls, &g), 0);
  pthread_join(t, NULL);
  assert_false(g.failed);
  /* The thread's stack was freed when it exited. */
  assert_int_equal(edgert_test_failalloc_live(), live);
  print_message("oom: %-40s %4ld allocation-failure point(s)\n", "edgert_guard_run (new thread)", g.points);
  total_points += g.points;
  entry_points++;
}

static int report(void **state) {
  (void)state;
  edgert_test_failalloc_uninstall();
  print_message("oom: %ld allocation-failure points covered over %d entry "
                "points (%ld absorbed without error)\n",
                total_points, entry_points, edgert_test_failalloc_absorbed());
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(abi_calls_do_not_allocate),
      cmocka_unit_test(type_registration_fails_cleanly),
      cmocka_unit_test(dict_operations_fail_cleanly),
      cmocka_unit_test(loader_calls_fail_cleanly),
      cmocka_unit_test(manifest_calls_fail_cleanly),
      cmocka_unit_test(nexus_calls_fail_cleanly),
      cmocka_unit_test(list_operations_fail_cleanly),
      cmocka_unit_test(loading_from_manifests_fails_cleanly),
      cmocka_unit_test(a_new_threads_guard_setup_fails_cleanly),
  };
  return cmocka_run_group_tests(tests, install, report);
}
