/* test_dict.c: the typed dict, from a C host with no Python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgert.h"
#include "helpers/failalloc.h"

static const edgert_type_t *T(edgert_kind_t k) { return edgert_type_builtin(k); }

static edgert_dict_t *new_dict(edgert_kind_t k, edgert_kind_t v) {
  edgert_dict_t *d = NULL;
  assert_int_equal(edgert_dict_new(T(k), T(v), &d), 0);
  assert_non_null(d);
  return d;
}

static void int_float_basics_and_version_rules(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  assert_int_equal(edgert_dict_len(d), 0);
  assert_null(edgert_dict_find_i64(d, 1));
  assert_null(edgert_dict_values(d));
  int64_t k = 42;
  double v = 1.5, out = 0;
  uint64_t ver = edgert_dict_version(d);
  assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  assert_true(edgert_dict_version(d) != ver); /* insert */
  ver = edgert_dict_version(d);
  v = 2.5;
  assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  assert_true(edgert_dict_version(d) == ver); /* a replaced value is no insert */
  assert_int_equal(edgert_dict_get(d, &k, &out), 0);
  assert_true(out == 2.5);
  assert_int_equal(edgert_dict_len(d), 1);
  int64_t missing = 43;
  assert_int_equal(edgert_dict_get(d, &missing, &out), EDGERT_EKEY);
  assert_int_equal(edgert_dict_del(d, &missing), EDGERT_EKEY);
  assert_int_equal(edgert_dict_del(d, &k), 0);
  assert_true(edgert_dict_version(d) != ver); /* delete */
  assert_int_equal(edgert_dict_len(d), 0);
  assert_int_equal(edgert_dict_popitem(d, NULL, NULL), EDGERT_EKEY);
  assert_non_null(strstr(edgert_last_error(), "empty"));

  int inserted = -1, err = 0;
  double *slot = edgert_dict_upsert_i64(d, -7, &inserted, &err);
  assert_non_null(slot);
  assert_int_equal(inserted, 1);
  assert_true(*slot == 0.0); /* new values start zeroed */
  *slot = 9.0;
  slot = edgert_dict_upsert_i64(d, -7, &inserted, &err);
  assert_int_equal(inserted, 0);
  assert_true(*slot == 9.0);
  edgert_dict_free(d);
  edgert_dict_free(NULL);
}

/* A model: parallel arrays in the dict's documented order. */
typedef struct {
  int64_t *k;
  double *v;
  size_t n;
} model_t;

static ptrdiff_t model_find(const model_t *m, int64_t k) {
  for (size_t i = 0; i < m->n; i++)
    if (m->k[i] == k)
      return (ptrdiff_t)i;
  return -1;
}

static void check_model(edgert_dict_t *d, const model_t *m) {
  assert_int_equal(edgert_dict_len(d), m->n);
  const double *vals = edgert_dict_values(d);
  for (size_t i = 0; i < m->n; i++) {
    assert_true(*(const int64_t *)edgert_dict_key_at(d, i) == m->k[i]);
    assert_true(vals[i] == m->v[i]);
  }
}

static void random_operations_match_a_model(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  const edgert_dict_view_t *view = edgert_dict_view(d);
  model_t m = {malloc(4096 * sizeof(int64_t)), malloc(4096 * sizeof(double)), 0};
  srand(12345);
  for (int step = 0; step < 60000; step++) {
    /* Keys from a small range so that hits, replaces and deletes happen;
     * multiples of 2^32 stress the hash. */
    int64_t key = (int64_t)(rand() % 3000) * ((step & 1) ? 1 : 4294967296LL) - 1000;
    int op = rand() % 10;
    ptrdiff_t at = model_find(&m, key);
    if (op < 5) {
      double val = (double)step;
      assert_int_equal(edgert_dict_set(d, &key, &val), 0);
      if (at >= 0) {
        m.v[at] = val;
      } else {
        m.k[m.n] = key;
        m.v[m.n++] = val;
      }
    } else if (op < 8) {
      int rc = edgert_dict_del(d, &key);
      if (at < 0) {
        assert_int_equal(rc, EDGERT_EKEY);
      } else {
        assert_int_equal(rc, 0);
        m.n--;
        m.k[at] = m.k[m.n]; /* the last entry takes the hole */
        m.v[at] = m.v[m.n];
      }
    } else {
      void *p = edgert_dict_find_i64(d, key);
      assert_ptr_equal(p, edgert_dict_find_i64_inline(view, key));
      assert_ptr_equal(p, edgert_dict_find(d, &key));
      if (at < 0) {
        assert_null(p);
        assert_int_equal(edgert_dict_index(d, &key), -1);
      } else {
        assert_true(*(double *)p == m.v[at]);
        assert_int_equal(edgert_dict_index(d, &key), at);
      }
    }
    if (step % 997 == 0)
      check_model(d, &m);
  }
  check_model(d, &m);
  /* Drain with popitem: last entry first. */
  while (m.n > 0) {
    int64_t k;
    double v;
    assert_int_equal(edgert_dict_popitem(d, &k, &v), 0);
    m.n--;
    assert_true(k == m.k[m.n] && v == m.v[m.n]);
  }
  assert_int_equal(edgert_dict_len(d), 0);
  free(m.k);
  free(m.v);
  edgert_dict_free(d);
}

static void probed_inserts_take_the_probed_slot_only_while_current(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  const edgert_dict_view_t *v = edgert_dict_view(d);
  edgert_dict_probe_t p;
  int err = 0;
  /* No index yet: the probe finds nothing and the insert falls back. */
  assert_null(edgert_dict_probe_i64_inline(v, 5, &p));
  double *slot = edgert_dict_insert_i64_probed(d, 5, &p, &err);
  assert_non_null(slot);
  *slot = 5.0;
  for (int64_t k = 0; k < 5000; k++) {
    double *found = edgert_dict_probe_i64_inline(v, k, &p);
    if (found == NULL) {
      found = edgert_dict_insert_i64_probed(d, k, &p, &err);
      assert_non_null(found);
      *found = (double)k;
    }
    assert_ptr_equal(edgert_dict_probe_i64_inline(v, k, &p), edgert_dict_find_i64(d, k));
  }
  assert_int_equal(edgert_dict_len(d), 5000);
  /* A stale probe (the dict changed since) is not trusted. */
  assert_null(edgert_dict_probe_i64_inline(v, -1, &p));
  int64_t other = -2;
  double val = 2.0;
  assert_int_equal(edgert_dict_set(d, &other, &val), 0);
  slot = edgert_dict_insert_i64_probed(d, -1, &p, &err);
  *slot = -1.0;
  assert_true(*(double *)edgert_dict_find_i64(d, -1) == -1.0);
  assert_true(*(double *)edgert_dict_find_i64(d, -2) == 2.0);
  assert_int_equal(edgert_dict_len(d), 5002);
  assert_int_equal(edgert_dict_version(d), v->version);
  edgert_dict_free(d);
}

static void float_keys_compare_as_doubles(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_FLOAT64, EDGERT_KIND_BOOL);
  double z = 0.0, nz = -0.0, nan = NAN;
  unsigned char t = 1, out = 0;
  assert_int_equal(edgert_dict_set(d, &z, &t), 0);
  assert_int_equal(edgert_dict_get(d, &nz, &out), 0);
  assert_int_equal(out, 1);
  assert_int_equal(edgert_dict_set(d, &nan, &t), 0);
  assert_int_equal(edgert_dict_set(d, &nan, &t), 0);
  assert_int_equal(edgert_dict_len(d), 3); /* a NaN matches nothing, not even itself */
  assert_null(edgert_dict_find(d, &nan));
  edgert_dict_free(d);
}

static edgert_bytes_t B(const char *s) {
  edgert_bytes_t b = {(char *)s, strlen(s)};
  return b;
}

static void str_keys_and_bytes_values_are_owned_copies(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  long live = edgert_test_failalloc_live();
  edgert_dict_t *d = new_dict(EDGERT_KIND_STR, EDGERT_KIND_BYTES);
  char kbuf[16], vbuf[16];
  for (int i = 0; i < 500; i++) {
    snprintf(kbuf, sizeof kbuf, "key%d", i);
    snprintf(vbuf, sizeof vbuf, "v%d", i * 7);
    edgert_bytes_t k = B(kbuf), v = B(vbuf);
    assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  }
  memset(kbuf, 'X', sizeof kbuf); /* the dict kept its own copies */
  edgert_bytes_t k = B("key17"), out;
  assert_int_equal(edgert_dict_get(d, &k, &out), 0);
  assert_int_equal(out.len, 4);
  assert_memory_equal(out.data, "v119", 4);
  assert_ptr_equal(edgert_dict_find_tagged(d, &k, 12345), edgert_dict_find(d, &k));
  /* Replace a value, then pop it: the caller owns what pop hands out. */
  edgert_bytes_t nv = {"\0bin\0", 5};
  assert_int_equal(edgert_dict_set(d, &k, &nv), 0);
  assert_int_equal(edgert_dict_pop(d, &k, &out), 0);
  assert_int_equal(out.len, 5);
  assert_memory_equal(out.data, "\0bin\0", 5);
  edgert_bytes_release(&out);
  edgert_bytes_t empty = B("");
  assert_int_equal(edgert_dict_set(d, &empty, &empty), 0);
  assert_int_equal(edgert_dict_get(d, &empty, &out), 0);
  assert_int_equal(out.len, 0);
  /* A copy is deep. */
  edgert_dict_t *c;
  assert_int_equal(edgert_dict_copy(d, &c), 0);
  assert_int_equal(edgert_dict_len(c), 500);
  assert_int_equal(edgert_dict_clear(d), 0);
  assert_int_equal(edgert_dict_len(d), 0);
  k = B("key499");
  assert_int_equal(edgert_dict_get(c, &k, &out), 0);
  assert_memory_equal(out.data, "v3493", 5);
  assert_true(edgert_dict_memory(c) > 500 * (2 * sizeof(edgert_bytes_t)));
  edgert_dict_free(c);
  edgert_dict_free(d);
  assert_int_equal(edgert_test_failalloc_live(), live);
  edgert_test_failalloc_uninstall();
}

static void iteration_fails_after_an_insert_or_delete(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_INT64);
  for (int64_t i = 0; i < 10; i++)
    assert_int_equal(edgert_dict_set(d, &i, &i), 0);
  edgert_dict_iter_t it;
  const void *k;
  void *v;
  int n = 0;
  edgert_dict_iter_init(d, &it);
  while (edgert_dict_iter_next(&it, &k, &v) == 1) {
    *(int64_t *)v += 100; /* writing values is fine */
    n++;
  }
  assert_int_equal(n, 10);
  edgert_dict_iter_init(d, &it);
  assert_int_equal(edgert_dict_iter_next(&it, &k, &v), 1);
  int64_t nk = 99;
  assert_int_equal(edgert_dict_set(d, &nk, &nk), 0);
  assert_int_equal(edgert_dict_iter_next(&it, &k, &v), EDGERT_ECHANGED);
  assert_non_null(strstr(edgert_last_error(), "changed size during iteration"));
  edgert_dict_iter_init(d, &it);
  assert_int_equal(edgert_dict_del(d, &nk), 0);
  assert_int_equal(edgert_dict_iter_next(&it, &k, &v), EDGERT_ECHANGED);
  edgert_dict_free(d);
}

static void pinned_dict_refuses_inserts_and_deletes(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  int64_t k = 1, k2 = 2;
  double v = 1.0;
  assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  void *values = edgert_dict_values(d);
  edgert_dict_pin(d);
  assert_int_equal(edgert_dict_set(d, &k2, &v), EDGERT_EBUSY);
  assert_int_equal(edgert_dict_del(d, &k), EDGERT_EBUSY);
  assert_int_equal(edgert_dict_clear(d), EDGERT_EBUSY);
  assert_int_equal(edgert_dict_reserve(d, 1000), EDGERT_EBUSY);
  assert_int_equal(edgert_dict_popitem(d, NULL, NULL), EDGERT_EBUSY);
  int64_t ks[2] = {1, 2};
  double vs[2] = {5.0, 6.0};
  assert_int_equal(edgert_dict_set_many(d, ks, vs, 2), EDGERT_EBUSY);
  assert_true(*(double *)edgert_dict_find_i64(d, 1) == 1.0); /* all or nothing */
  v = 3.0;
  assert_int_equal(edgert_dict_set(d, &k, &v), 0); /* replacing is fine */
  assert_int_equal(edgert_dict_set_many(d, ks, vs, 1), 0);
  assert_ptr_equal(edgert_dict_values(d), values);
  assert_int_equal(edgert_dict_len(d), 1);
  assert_int_equal(edgert_dict_unpin(d), 0);
  assert_int_equal(edgert_dict_unpin(d), EDGERT_EINVAL);
  assert_int_equal(edgert_dict_set(d, &k2, &v), 0);
  edgert_dict_free(d);
}

static void batches_get_and_set_many(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  int64_t ks[1000];
  double vs[1000], out[1000];
  for (int i = 0; i < 1000; i++) {
    ks[i] = (int64_t)i * 7919;
    vs[i] = i * 0.5;
  }
  assert_int_equal(edgert_dict_set_many(d, ks, vs, 1000), 0);
  assert_int_equal(edgert_dict_len(d), 1000);
  assert_int_equal(edgert_dict_get_many(d, ks, 1000, out, NULL, NULL), 0);
  assert_memory_equal(out, vs, sizeof vs);
  int64_t q[3] = {0, 5, 7919};
  size_t missing = 99;
  assert_int_equal(edgert_dict_get_many(d, q, 3, out, NULL, &missing), EDGERT_EKEY);
  assert_int_equal(missing, 1);
  assert_non_null(strstr(edgert_last_error(), "5"));
  double dflt = -1;
  assert_int_equal(edgert_dict_get_many(d, q, 3, out, &dflt, NULL), 0);
  assert_true(out[0] == 0.0 && out[1] == -1.0 && out[2] == 0.5);
  /* A repeated key in one batch: the last wins. */
  int64_t rk[2] = {3, 3};
  double rv[2] = {1, 2};
  assert_int_equal(edgert_dict_set_many(d, rk, rv, 2), 0);
  assert_true(*(double *)edgert_dict_find_i64(d, 3) == 2.0);
  assert_int_equal(edgert_dict_len(d), 1001);
  edgert_dict_free(d);
}

static void the_inline_cache_hits_on_repeats_and_stands_aside_otherwise(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_INT64);
  for (int64_t i = 0; i < 100000; i++)
    assert_int_equal(edgert_dict_set(d, &i, &i), 0);
  edgert_dict_cache_stats_t st;
  assert_int_equal(edgert_dict_set_cache(d, EDGERT_DICT_CACHE_ON), 0);
  for (int r = 0; r < 1000; r++)
    for (int64_t k = 0; k < 4; k++)
      assert_true(*(int64_t *)edgert_dict_find_i64(d, k) == k);
  edgert_dict_cache_stats(d, &st);
  assert_int_equal(st.misses, 4);
  assert_int_equal(st.hits, 3996);
  assert_int_equal(st.active, 1);
  /* An insert invalidates the ring (the version moved). */
  int64_t nk = -5;
  assert_int_equal(edgert_dict_set(d, &nk, &nk), 0);
  assert_non_null(edgert_dict_find_i64(d, 0));
  edgert_dict_cache_stats(d, &st);
  assert_int_equal(st.misses, 5);

  /* AUTO on keys that never repeat: the ring stands aside. */
  assert_int_equal(edgert_dict_set_cache(d, EDGERT_DICT_CACHE_AUTO), 0);
  for (int64_t k = 0; k < 50000; k++)
    assert_non_null(edgert_dict_find_i64(d, k));
  edgert_dict_cache_stats(d, &st);
  assert_int_equal(st.active, 0);
  assert_int_equal(st.hits + st.misses, 256);
  assert_int_equal(st.bypassed, 50000 - 256);
  assert_int_equal(st.mode, EDGERT_DICT_CACHE_AUTO);

  assert_int_equal(edgert_dict_set_cache(d, EDGERT_DICT_CACHE_OFF), 0);
  for (int64_t k = 0; k < 100; k++)
    assert_non_null(edgert_dict_find_i64(d, 1));
  edgert_dict_cache_stats(d, &st);
  assert_int_equal(st.hits + st.misses + st.bypassed, 0);
  assert_int_equal(edgert_dict_set_cache(d, 7), EDGERT_EINVAL);
  edgert_dict_free(d);
}

typedef struct {
  int32_t a, b;
} pair_t;
static size_t pair_sizeof(void) { return sizeof(pair_t); }
static int pair_check(void *obj) { return obj != NULL; }
static void pair_copy(void *dst, void *src) { memcpy(dst, src, sizeof(pair_t)); }

static void custom_keys_compare_bitwise(void **state) {
  (void)state;
  const edgert_type_t *kt;
  assert_int_equal(edgert_type_register("DictPair", pair_sizeof, pair_check, pair_copy, NULL,
                                        &kt),
                   0);
  edgert_dict_t *d = NULL;
  assert_int_equal(edgert_dict_new(kt, T(EDGERT_KIND_INT64), &d), 0);
  for (int32_t i = 0; i < 300; i++) {
    pair_t host = {i, -i}, key;
    assert_int_equal(edgert_type_copy(kt, &key, &host), 0);
    int64_t v = i;
    assert_int_equal(edgert_dict_set(d, &key, &v), 0);
  }
  pair_t k = {17, -17}, absent = {17, 17};
  assert_true(*(int64_t *)edgert_dict_find(d, &k) == 17);
  assert_null(edgert_dict_find(d, &absent));
  assert_int_equal(edgert_dict_del(d, &k), 0);
  assert_null(edgert_dict_find(d, &k));
  assert_int_equal(edgert_dict_len(d), 299);
  edgert_dict_free(d);
}

static uint64_t fnv_calls;
static uint64_t fnv(const char *data, size_t len, void *ud) {
  (void)ud;
  fnv_calls++;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
  return h;
}

static void a_host_hash_serves_hashed_lookups(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_STR, EDGERT_KIND_INT64);
  edgert_dict_t *i = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_INT64);
  assert_int_equal(edgert_dict_set_hasher(i, fnv, NULL), EDGERT_ETYPE);
  edgert_dict_free(i);
  assert_int_equal(edgert_dict_set_hasher(d, fnv, NULL), 0);
  char buf[32];
  for (int64_t n = 0; n < 2000; n++) {
    snprintf(buf, sizeof buf, "name-%lld", (long long)n);
    edgert_bytes_t k = B(buf);
    assert_int_equal(edgert_dict_set_hashed(d, &k, fnv(buf, k.len, NULL), &n), 0);
  }
  assert_int_equal(edgert_dict_set_hasher(d, NULL, NULL), EDGERT_EINVAL); /* not empty */
  const edgert_dict_view_t *v = edgert_dict_view(d);
  fnv_calls = 0;
  for (int64_t n = 0; n < 2000; n += 7) {
    snprintf(buf, sizeof buf, "name-%lld", (long long)n);
    edgert_bytes_t k = B(buf);
    uint64_t h = fnv(buf, k.len, NULL);
    int64_t *p = edgert_dict_find_hashed(d, &k, h);
    assert_non_null(p);
    assert_int_equal(*p, n);
    assert_ptr_equal(edgert_dict_find_bytes_inline(v, buf, k.len, h), p);
    assert_ptr_equal(edgert_dict_find(d, &k), p); /* unhashed: calls the hasher */
  }
  assert_int_equal(fnv_calls, 2 * 286); /* ours above, and find()'s */
  edgert_bytes_t gone = B("name-5");
  assert_int_equal(edgert_dict_pop_hashed(d, &gone, fnv("name-5", 6, NULL), NULL), 0);
  assert_null(edgert_dict_find(d, &gone));
  assert_null(edgert_dict_find_bytes_inline(v, "name-5", 6, fnv("name-5", 6, NULL)));
  edgert_bytes_t near = B("name-50");
  assert_null(edgert_dict_find_bytes_inline(v, "name-5", 6, fnv("name-50", 7, NULL)));
  assert_non_null(edgert_dict_find(d, &near));
  edgert_dict_t *c;
  assert_int_equal(edgert_dict_copy(d, &c), 0); /* the copy keeps the hasher */
  edgert_bytes_t k = B("name-1999");
  assert_int_equal(*(int64_t *)edgert_dict_find_hashed(c, &k, fnv("name-1999", 9, NULL)), 1999);
  edgert_dict_free(c);
  edgert_dict_free(d);
}

static void repeated_key_buffers_hit_the_cache_without_hashing(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_STR, EDGERT_KIND_INT64);
  assert_int_equal(edgert_dict_set_hasher(d, fnv, NULL), 0);
  char buf[32];
  for (int64_t n = 0; n < 100; n++) {
    snprintf(buf, sizeof buf, "key-%lld", (long long)n);
    edgert_bytes_t k = B(buf);
    assert_int_equal(edgert_dict_set(d, &k, &n), 0);
  }
  assert_int_equal(edgert_dict_set_cache(d, EDGERT_DICT_CACHE_ON), 0);
  char a[] = "key-7", b[] = "key-42";
  edgert_bytes_t ka = B(a), kb = B(b);
  fnv_calls = 0;
  for (int r = 0; r < 50; r++) {
    assert_int_equal(*(int64_t *)edgert_dict_find(d, &ka), 7);
    assert_int_equal(*(int64_t *)edgert_dict_find(d, &kb), 42);
  }
  assert_int_equal(fnv_calls, 2); /* hashed once each; the rest were hits */
  edgert_dict_cache_stats_t st;
  edgert_dict_cache_stats(d, &st);
  assert_int_equal(st.hits, 98);
  assert_int_equal(st.misses, 2);
  /* Same buffer, new content: compared, so a miss with the right answer. */
  memcpy(a, "key-8", 5);
  assert_int_equal(*(int64_t *)edgert_dict_find(d, &ka), 8);
  memcpy(a, "nokey", 5);
  assert_null(edgert_dict_find(d, &ka));
  assert_int_equal(fnv_calls, 4);
  edgert_dict_free(d);
}

/* ---- allocation failures: nothing changes, nothing leaks ----------------- */

static void *setup_str_dict(void) {
  edgert_dict_t *d = new_dict(EDGERT_KIND_STR, EDGERT_KIND_STR);
  char buf[16];
  for (int i = 0; i < 20; i++) {
    snprintf(buf, sizeof buf, "k%d", i);
    edgert_bytes_t k = B(buf);
    assert_int_equal(edgert_dict_set(d, &k, &k), 0);
  }
  return d;
}
static void str_dict_unchanged(void *state) {
  edgert_dict_t *d = state;
  assert_int_equal(edgert_dict_len(d), 20);
  edgert_bytes_t k = B("k3"), out;
  assert_int_equal(edgert_dict_get(d, &k, &out), 0);
  assert_memory_equal(out.data, "k3", 2);
  edgert_bytes_t nk = B("new");
  assert_null(edgert_dict_find(d, &nk));
}
static void free_dict(void *state) { edgert_dict_free(state); }
static int run_set_new(void *state) {
  edgert_bytes_t k = B("new"), v = B("value");
  return edgert_dict_set(state, &k, &v);
}
static int run_set_many(void *state) {
  edgert_bytes_t ks[30], vs[30];
  char names[30][8];
  for (int i = 0; i < 30; i++) {
    snprintf(names[i], sizeof names[i], "n%d", i);
    ks[i] = B(names[i]);
    vs[i] = B("v");
  }
  ks[29] = B("new");
  return edgert_dict_set_many(state, ks, vs, 30);
}
static int run_replace(void *state) {
  edgert_bytes_t k = B("k3"), v = B("k3"); /* same content, new copy */
  return edgert_dict_set(state, &k, &v);
}
static int run_copy(void *state) {
  edgert_dict_t *c = NULL;
  int rc = edgert_dict_copy(state, &c);
  edgert_dict_free(c);
  return rc;
}
static void *setup_empty_int(void) { return new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64); }
static void empty_int_unchanged(void *state) { assert_int_equal(edgert_dict_len(state), 0); }
static int run_reserve(void *state) { return edgert_dict_reserve(state, 5000); }

static void allocation_failures_change_nothing(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  const edgert_test_oom_case_t cases[] = {
      {"edgert_dict_set (new key)", setup_str_dict, run_set_new, str_dict_unchanged, free_dict,
       0},
      {"edgert_dict_set_many", setup_str_dict, run_set_many, str_dict_unchanged, free_dict, 0},
      {"edgert_dict_set (replace)", setup_str_dict, run_replace, str_dict_unchanged, free_dict,
       0},
      {"edgert_dict_copy", setup_str_dict, run_copy, str_dict_unchanged, free_dict, 0},
      {"edgert_dict_reserve", setup_empty_int, run_reserve, empty_int_unchanged, free_dict, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_true(edgert_test_failalloc_sweep(&cases[i]) > 0);
  edgert_test_failalloc_uninstall();
}

static void memory_per_int_float_entry_is_compact(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  for (int64_t i = 0; i < 1000000; i++) {
    int64_t k = i * 2654435761LL;
    double v = (double)i;
    assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  }
  double per = (double)edgert_dict_memory(d) / 1e6;
  print_message("int->float: %.1f bytes per entry at 1e6\n", per);
  assert_true(per <= 32.0);
  edgert_dict_free(d);
}

/* ---- the bool rule and reverse iteration ---------------------------------- */

static void bool_keys_and_values_are_0_or_1_at_every_entry_point(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_BOOL);
  int64_t k = 1, ks[3] = {1, 2, 3};
  unsigned char one = 1, seven = 7, vs[3] = {0, 1, 9};
  assert_int_equal(edgert_dict_set(d, &k, &one), 0);
  assert_int_equal(edgert_dict_set(d, &k, &seven), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "dict value: a bool is 0 or 1, not 7"));
  assert_int_equal(edgert_dict_set_hashed(d, &k, 12345, &seven), EDGERT_EINVAL);
  assert_int_equal(edgert_dict_set_many(d, ks, vs, 3), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "not 9 (item 2)"));
  assert_int_equal(edgert_dict_len(d), 1); /* all or nothing */
  unsigned char out = 0xEE;
  assert_int_equal(edgert_dict_get(d, &k, &out), 0);
  assert_int_equal(out, 1);
  edgert_dict_free(d);
  edgert_dict_t *b = new_dict(EDGERT_KIND_BOOL, EDGERT_KIND_INT64);
  int64_t v = 5;
  assert_int_equal(edgert_dict_set(b, &one, &v), 0);
  assert_int_equal(edgert_dict_set(b, &seven, &v), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "dict key: a bool is 0 or 1, not 7"));
  int err = 0;
  assert_null(edgert_dict_upsert(b, &seven, NULL, &err));
  assert_int_equal(err, EDGERT_EINVAL);
  unsigned char bk[2] = {0, 3};
  int64_t bv[2] = {1, 2};
  assert_int_equal(edgert_dict_set_many(b, bk, bv, 2), EDGERT_EINVAL);
  assert_int_equal(edgert_dict_len(b), 1);
  edgert_dict_free(b);
}

static void reverse_iteration_walks_entries_from_the_last(void **state) {
  (void)state;
  edgert_dict_t *d = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  for (int64_t k = 0; k < 5; k++) {
    double v = (double)k / 2;
    assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  }
  edgert_dict_iter_t it;
  edgert_dict_iter_init(d, &it);
  const void *key;
  void *val;
  for (int64_t want = 4; want >= 0; want--) {
    assert_int_equal(edgert_dict_iter_prev(&it, &key, &val), 1);
    assert_int_equal(*(const int64_t *)key, want);
    assert_true(*(double *)val == (double)want / 2);
  }
  assert_int_equal(edgert_dict_iter_prev(&it, &key, &val), 0);
  assert_int_equal(edgert_dict_iter_prev(&it, NULL, NULL), 0);
  /* a change during iteration stops it */
  edgert_dict_iter_init(d, &it);
  assert_int_equal(edgert_dict_iter_prev(&it, NULL, NULL), 1);
  int64_t k = 99;
  double v = 1;
  assert_int_equal(edgert_dict_set(d, &k, &v), 0);
  assert_int_equal(edgert_dict_iter_prev(&it, &key, &val), EDGERT_ECHANGED);
  assert_int_equal(edgert_dict_iter_prev(NULL, &key, &val), EDGERT_EINVAL);
  /* an empty dict, and the zero iterator, give nothing */
  edgert_dict_t *e = new_dict(EDGERT_KIND_INT64, EDGERT_KIND_FLOAT64);
  edgert_dict_iter_init(e, &it);
  assert_int_equal(edgert_dict_iter_prev(&it, &key, &val), 0);
  edgert_dict_iter_t zero = {0};
  assert_int_equal(edgert_dict_iter_prev(&zero, &key, &val), 0);
  edgert_dict_free(e);
  edgert_dict_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(int_float_basics_and_version_rules),
      cmocka_unit_test(random_operations_match_a_model),
      cmocka_unit_test(probed_inserts_take_the_probed_slot_only_while_current),
      cmocka_unit_test(float_keys_compare_as_doubles),
      cmocka_unit_test(str_keys_and_bytes_values_are_owned_copies),
      cmocka_unit_test(iteration_fails_after_an_insert_or_delete),
      cmocka_unit_test(pinned_dict_refuses_inserts_and_deletes),
      cmocka_unit_test(batches_get_and_set_many),
      cmocka_unit_test(custom_keys_compare_bitwise),
      cmocka_unit_test(a_host_hash_serves_hashed_lookups),
      cmocka_unit_test(repeated_key_buffers_hit_the_cache_without_hashing),
      cmocka_unit_test(the_inline_cache_hits_on_repeats_and_stands_aside_otherwise),
      cmocka_unit_test(allocation_failures_change_nothing),
      cmocka_unit_test(memory_per_int_float_entry_is_compact),
      cmocka_unit_test(bool_keys_and_values_are_0_or_1_at_every_entry_point),
      cmocka_unit_test(reverse_iteration_walks_entries_from_the_last),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
