/*
 * fuzz_containers.c: a differential harness for the typed dict and list
 * (include/edgert/dict.h, list.h) against simple models.
 *
 * Input: one byte choosing the container (bit 1: list, else dict; bit 0:
 * str -> bytes dict or bytes list, else int64; for a str dict, (bits 2-3) % 3
 * installs no host hash, a colliding one or a constant one, and the
 * *_hashed calls are used with it), then
 * operations, one byte each plus operands. Every operation runs on the dict
 * and on the model (a dense array with the dict's documented order: new keys
 * go last, a delete moves the last entry into the hole), and after each one
 * the two are compared entry by entry, in order, together with len, the
 * version tag rule (moves on a new key and on a delete, not on a value
 * replaced) and the values array. An operation byte with its top bit set
 * first arms an allocation failure (the Nth allocation inside that
 * operation fails); the operation must then either succeed anyway or return
 * EDGERT_ENOMEM and leave the dict exactly as the model says it was. Pinning
 * is exercised too: while pinned, adding or removing entries is
 * EDGERT_EBUSY and changes nothing. LeakSanitizer checks str/bytes ownership.
 * The list runs against an array model the same way: append, insert, pop,
 * set, get, splice (items from outside or from the list itself), reserve,
 * clear, reverse, stable sort, copy, swap and pins.
 */
#include "fuzz_common.h"

#include "edgert.h"

/* ---- an allocator that can fail the Nth allocation ----------------------- */

static long fz_countdown; /* 0: off; N: the Nth request from now fails */
static long fz_failed;

static int fz_should_fail(void) {
  if (fz_countdown > 0 && --fz_countdown == 0) {
    fz_failed++;
    return 1;
  }
  return 0;
}
static void *fz_malloc(void *ud, size_t n) {
  (void)ud;
  return fz_should_fail() ? NULL : malloc(n);
}
static void *fz_realloc(void *ud, void *p, size_t n) {
  (void)ud;
  return fz_should_fail() ? NULL : realloc(p, n);
}
static void fz_free(void *ud, void *p) {
  (void)ud;
  free(p);
}
static void fz_install(void) {
  static int done;
  if (!done) {
    static const edgert_allocator_t a = {fz_malloc, fz_realloc, fz_free, NULL};
    FUZZ_CHECK(edgert_set_allocator(&a) == 0);
    done = 1;
  }
}

/* ---- the model ------------------------------------------------------------ */

#define MODEL_MAX 512
#define KEY_MAX 24
#define VAL_MAX 48

typedef struct {
  int64_t ik, iv;               /* int dict */
  char sk[KEY_MAX];             /* str dict */
  size_t sklen;
  char sv[VAL_MAX];
  size_t svlen;
} entry_t;

typedef struct {
  int str; /* 0: int64 -> int64, 1: str -> bytes */
  entry_t e[MODEL_MAX];
  size_t len;
  unsigned pins;
} model_t;

static int same_key(const model_t *m, const entry_t *a, const entry_t *b) {
  if (!m->str)
    return a->ik == b->ik;
  return a->sklen == b->sklen && memcmp(a->sk, b->sk, a->sklen) == 0;
}

static ptrdiff_t model_index(const model_t *m, const entry_t *k) {
  for (size_t i = 0; i < m->len; i++)
    if (same_key(m, &m->e[i], k))
      return (ptrdiff_t)i;
  return -1;
}

static void model_remove(model_t *m, size_t i) {
  m->e[i] = m->e[m->len - 1];
  m->len--;
}

/* Weak host hashes for str/bytes keys (edgert_dict_set_hasher): one that
 * collides a lot (the length), one that collides on everything. */
static uint64_t hash_by_len(const char *data, size_t len, void *ud) {
  (void)data;
  (void)ud;
  return (uint64_t)len * 0x9E3779B97F4A7C15ull;
}
static uint64_t hash_constant(const char *data, size_t len, void *ud) {
  (void)data;
  (void)len;
  (void)ud;
  return 42;
}
static edgert_dict_hash_fn hasher; /* the current dict's, or NULL */

static uint64_t key_hash(const entry_t *k) {
  return hasher ? hasher(k->sk, k->sklen, NULL) : 0;
}

/* ---- operands ------------------------------------------------------------- */

/* A key from a small space, so hits, misses and collisions all happen. */
static void read_key(fuzz_in_t *in, const model_t *m, entry_t *k) {
  uint8_t b = fuzz_u8(in);
  memset(k, 0, sizeof *k);
  if (!m->str) {
    k->ik = (b & 0x80) ? (int64_t)fuzz_u64(in) : (int64_t)(b & 0x3f) - 8;
    return;
  }
  /* "k" + 0..4 copies of one of 16 bytes (NUL included: str data is counted). */
  size_t reps = b % 5;
  char ch = (char)((b >> 3) & 0x0f);
  k->sk[0] = 'k';
  for (size_t i = 0; i < reps; i++)
    k->sk[1 + i] = (char)(ch ? 'a' + ch : 0);
  k->sklen = 1 + reps;
}

static void read_value(fuzz_in_t *in, const model_t *m, entry_t *v) {
  memset(v, 0, sizeof *v);
  if (!m->str) {
    v->iv = (int64_t)fuzz_u64(in);
    return;
  }
  uint8_t b = fuzz_u8(in);
  v->svlen = b % VAL_MAX;
  for (size_t i = 0; i < v->svlen; i++)
    v->sv[i] = (char)(b + i);
}

/* Views of a model entry in the dict's C representation. */
typedef struct {
  int64_t i;
  edgert_bytes_t b;
} cval_t;

static const void *key_repr(const model_t *m, entry_t *k, cval_t *c) {
  if (!m->str) {
    c->i = k->ik;
    return &c->i;
  }
  c->b.data = k->sk;
  c->b.len = k->sklen;
  return &c->b;
}

static const void *val_repr(const model_t *m, entry_t *v, cval_t *c) {
  if (!m->str) {
    c->i = v->iv;
    return &c->i;
  }
  c->b.data = v->sv;
  c->b.len = v->svlen;
  return &c->b;
}

/* ---- comparison ----------------------------------------------------------- */

static void check_key(const model_t *m, const void *k, const entry_t *e) {
  FUZZ_CHECK(k != NULL);
  if (!m->str) {
    FUZZ_CHECK(*(const int64_t *)k == e->ik);
  } else {
    const edgert_bytes_t *b = k;
    FUZZ_CHECK(b->len == e->sklen && memcmp(b->data, e->sk, b->len) == 0);
    FUZZ_CHECK(b->data[b->len] == '\0');
  }
}

static void check_value(const model_t *m, const void *v, const entry_t *e) {
  FUZZ_CHECK(v != NULL);
  if (!m->str) {
    FUZZ_CHECK(*(const int64_t *)v == e->iv);
  } else {
    const edgert_bytes_t *b = v;
    FUZZ_CHECK(b->len == e->svlen);
    FUZZ_CHECK(b->len == 0 || memcmp(b->data, e->sv, b->len) == 0);
  }
}

static void compare(edgert_dict_t *d, const model_t *m) {
  FUZZ_CHECK(edgert_dict_len(d) == m->len);
  FUZZ_CHECK(edgert_dict_pins(d) == m->pins);
  size_t vsize = m->str ? sizeof(edgert_bytes_t) : sizeof(int64_t);
  char *values = edgert_dict_values(d);
  FUZZ_CHECK(m->len == 0 ? 1 : values != NULL);
  for (size_t i = 0; i < m->len; i++) {
    check_key(m, edgert_dict_key_at(d, i), &m->e[i]);
    check_value(m, edgert_dict_value_at(d, i), &m->e[i]);
    FUZZ_CHECK(edgert_dict_value_at(d, i) == values + i * vsize);
  }
  /* Iteration sees the same entries in the same order. */
  edgert_dict_iter_t it;
  edgert_dict_iter_init(d, &it);
  const void *k;
  void *v;
  size_t n = 0;
  int rc;
  while ((rc = edgert_dict_iter_next(&it, &k, &v)) == 1) {
    FUZZ_CHECK(n < m->len);
    check_key(m, k, &m->e[n]);
    check_value(m, v, &m->e[n]);
    n++;
  }
  FUZZ_CHECK(rc == 0 && n == m->len);
}

/* ---- the operations -------------------------------------------------------- */

enum {
  OP_SET, OP_DEL, OP_POP, OP_GET, OP_FIND, OP_POPITEM, OP_CLEAR, OP_RESERVE,
  OP_COPY, OP_UPSERT, OP_SET_MANY, OP_GET_MANY, OP_PIN, OP_UNPIN, OP_ITER_MUT,
  OP_CACHE, OP__COUNT
};

static void run(fuzz_in_t *in, int str, int hash_mode) {
  static model_t m; /* large: static, reset per input */
  memset(&m, 0, sizeof m);
  m.str = str;
  const edgert_type_t *kt, *vt;
  FUZZ_CHECK(edgert_type_find(str ? "str" : "int64", &kt) == 0);
  FUZZ_CHECK(edgert_type_find(str ? "bytes" : "int64", &vt) == 0);
  edgert_dict_t *d = NULL;
  FUZZ_CHECK(edgert_dict_new(kt, vt, &d) == 0 && d != NULL);
  hasher = NULL;
  if (str && hash_mode) {
    hasher = hash_mode == 1 ? hash_by_len : hash_constant;
    FUZZ_CHECK(edgert_dict_set_hasher(d, hasher, NULL) == 0);
  } else if (!str && hash_mode) {
    FUZZ_CHECK(edgert_dict_set_hasher(d, hash_by_len, NULL) == EDGERT_ETYPE);
  }

  while (!fuzz_empty(in)) {
    uint8_t opb = fuzz_u8(in);
    long fail_at = 0;
    if (opb & 0x80)
      fail_at = 1 + fuzz_u8(in) % 8;
    int op = (opb & 0x7f) % OP__COUNT;
    entry_t k, v;
    cval_t kc, vc;
    read_key(in, &m, &k);
    read_value(in, &m, &v);
    const void *kr = key_repr(&m, &k, &kc);
    const void *vr = val_repr(&m, &v, &vc);
    ptrdiff_t at = model_index(&m, &k);
    uint64_t ver = edgert_dict_version(d);
    int rc = 0;

    fz_countdown = fail_at;
    long failed_before = fz_failed;
    switch (op) {
    case OP_SET:
    case OP_UPSERT: {
      if (op == OP_UPSERT && str)
        op = OP_SET; /* upsert is for fixed-size values */
      if (op == OP_SET) {
        rc = (hasher && (opb & 0x40)) ? edgert_dict_set_hashed(d, kr, key_hash(&k), vr)
                                      : edgert_dict_set(d, kr, vr);
      } else if (opb & 0x40) {
        /* Probe, then insert at the probed slot (or update in place). */
        edgert_dict_probe_t pr;
        int64_t *slot = edgert_dict_probe_i64_inline(edgert_dict_view(d), k.ik, &pr);
        FUZZ_CHECK((slot != NULL) == (at >= 0));
        int inserted = at < 0, err = 0;
        if (slot == NULL)
          slot = edgert_dict_insert_i64_probed(d, k.ik, &pr, &err);
        if (slot == NULL) {
          rc = err;
          FUZZ_CHECK(rc < 0);
        } else {
          if (inserted)
            FUZZ_CHECK(*slot == 0);
          *slot = v.iv;
        }
      } else {
        int inserted = -1, err = 0;
        int64_t *slot = edgert_dict_upsert_i64(d, k.ik, &inserted, &err);
        if (slot == NULL) {
          rc = err;
          FUZZ_CHECK(rc < 0);
        } else {
          FUZZ_CHECK(inserted == (at < 0));
          if (inserted)
            FUZZ_CHECK(*slot == 0);
          *slot = v.iv;
        }
      }
      if (rc == 0) {
        if (at < 0) {
          FUZZ_CHECK(m.pins == 0 && m.len < MODEL_MAX);
          m.e[m.len] = k;
          at = (ptrdiff_t)m.len++;
          FUZZ_CHECK(edgert_dict_version(d) != ver);
        } else {
          FUZZ_CHECK(edgert_dict_version(d) == ver);
        }
        m.e[at].iv = v.iv;
        memcpy(m.e[at].sv, v.sv, v.svlen);
        m.e[at].svlen = v.svlen;
      } else if (rc == EDGERT_EBUSY) {
        FUZZ_CHECK(m.pins > 0 && at < 0);
      } else {
        FUZZ_CHECK(rc == EDGERT_ENOMEM && fz_failed > failed_before);
      }
      break;
    }
    case OP_DEL:
    case OP_POP: {
      cval_t out;
      memset(&out, 0, sizeof out);
      void *outp = str ? (void *)&out.b : (void *)&out.i;
      rc = op == OP_DEL                  ? edgert_dict_del(d, kr)
           : (hasher && (opb & 0x40))    ? edgert_dict_pop_hashed(d, kr, key_hash(&k), outp)
                                         : edgert_dict_pop(d, kr, outp);
      if (rc == 0) {
        FUZZ_CHECK(at >= 0 && m.pins == 0);
        if (op == OP_POP) {
          check_value(&m, str ? (void *)&out.b : (void *)&out.i, &m.e[at]);
          if (str)
            edgert_bytes_release(&out.b);
        }
        model_remove(&m, (size_t)at);
        FUZZ_CHECK(edgert_dict_version(d) != ver);
      } else if (rc == EDGERT_EKEY) {
        FUZZ_CHECK(at < 0);
      } else {
        FUZZ_CHECK(rc == EDGERT_EBUSY && m.pins > 0);
      }
      break;
    }
    case OP_GET: {
      cval_t out;
      rc = edgert_dict_get(d, kr, str ? (void *)&out.b : (void *)&out.i);
      if (at >= 0) {
        FUZZ_CHECK(rc == 0);
        check_value(&m, str ? (void *)&out.b : (void *)&out.i, &m.e[at]);
      } else {
        FUZZ_CHECK(rc == EDGERT_EKEY);
      }
      FUZZ_CHECK(edgert_dict_index(d, kr) == at);
      break;
    }
    case OP_FIND: {
      void *p = edgert_dict_find(d, kr);
      void *q = edgert_dict_find_tagged(d, kr, v.iv); /* any tag is safe */
      FUZZ_CHECK((p != NULL) == (at >= 0) && p == q);
      if (p)
        check_value(&m, p, &m.e[at]);
      if (!str) {
        FUZZ_CHECK(edgert_dict_find_i64(d, k.ik) == p);
        FUZZ_CHECK(edgert_dict_find_i64_inline(edgert_dict_view(d), k.ik) == p);
      }
      if (hasher)
        FUZZ_CHECK(edgert_dict_find_hashed(d, kr, key_hash(&k)) == p);
      FUZZ_CHECK(edgert_dict_version(d) == ver);
      break;
    }
    case OP_POPITEM: {
      cval_t ko, vo;
      memset(&ko, 0, sizeof ko);
      memset(&vo, 0, sizeof vo);
      rc = edgert_dict_popitem(d, str ? (void *)&ko.b : (void *)&ko.i,
                               str ? (void *)&vo.b : (void *)&vo.i);
      if (rc == 0) {
        FUZZ_CHECK(m.len > 0 && m.pins == 0);
        check_key(&m, str ? (void *)&ko.b : (void *)&ko.i, &m.e[m.len - 1]);
        check_value(&m, str ? (void *)&vo.b : (void *)&vo.i, &m.e[m.len - 1]);
        if (str) {
          edgert_bytes_release(&ko.b);
          edgert_bytes_release(&vo.b);
        }
        m.len--;
      } else if (rc == EDGERT_EKEY) {
        FUZZ_CHECK(m.len == 0);
      } else {
        FUZZ_CHECK(rc == EDGERT_EBUSY && m.pins > 0);
      }
      break;
    }
    case OP_CLEAR:
      rc = edgert_dict_clear(d);
      if (rc == 0) {
        FUZZ_CHECK(m.pins == 0);
        m.len = 0;
      } else {
        FUZZ_CHECK(rc == EDGERT_EBUSY && m.pins > 0);
      }
      break;
    case OP_RESERVE: {
      size_t n = (size_t)(v.iv & 0x3ff);
      rc = edgert_dict_reserve(d, n);
      FUZZ_CHECK(rc == 0 || rc == EDGERT_EBUSY || rc == EDGERT_ENOMEM);
      if (rc == EDGERT_EBUSY)
        FUZZ_CHECK(m.pins > 0);
      if (rc == EDGERT_ENOMEM)
        FUZZ_CHECK(fz_failed > failed_before);
      break;
    }
    case OP_COPY: {
      edgert_dict_t *c = NULL;
      rc = edgert_dict_copy(d, &c);
      if (rc == 0) {
        FUZZ_CHECK(c != NULL);
        unsigned pins = m.pins;
        m.pins = 0; /* the copy is not pinned */
        compare(c, &m);
        m.pins = pins;
        edgert_dict_free(c);
      } else {
        FUZZ_CHECK(rc == EDGERT_ENOMEM && c == NULL);
      }
      break;
    }
    case OP_SET_MANY: {
      /* Up to 8 pairs, keys possibly repeated: applied in order, all or nothing. */
      size_t n = (size_t)(fuzz_u8(in) % 9);
      entry_t ks[8], vs[8];
      cval_t kcs[8], vcs[8];
      int64_t ik[8], iv[8];
      edgert_bytes_t sk[8], sv[8];
      for (size_t i = 0; i < n; i++) {
        read_key(in, &m, &ks[i]);
        read_value(in, &m, &vs[i]);
        key_repr(&m, &ks[i], &kcs[i]);
        val_repr(&m, &vs[i], &vcs[i]);
        ik[i] = kcs[i].i;
        iv[i] = vcs[i].i;
        sk[i] = kcs[i].b;
        sv[i] = vcs[i].b;
      }
      rc = edgert_dict_set_many(d, str ? (void *)sk : (void *)ik,
                                str ? (void *)sv : (void *)iv, n);
      if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
          ptrdiff_t j = model_index(&m, &ks[i]);
          if (j < 0) {
            FUZZ_CHECK(m.pins == 0 && m.len < MODEL_MAX);
            m.e[m.len] = ks[i];
            j = (ptrdiff_t)m.len++;
          }
          m.e[j].iv = vs[i].iv;
          memcpy(m.e[j].sv, vs[i].sv, vs[i].svlen);
          m.e[j].svlen = vs[i].svlen;
        }
      } else {
        FUZZ_CHECK(rc == EDGERT_EBUSY || rc == EDGERT_ENOMEM);
        if (rc == EDGERT_EBUSY)
          FUZZ_CHECK(m.pins > 0);
        else
          FUZZ_CHECK(fz_failed > failed_before);
      }
      break;
    }
    case OP_GET_MANY: {
      if (str)
        break;
      size_t n = (size_t)(fuzz_u8(in) % 9);
      int64_t keys[8], out[8], dflt = -77;
      entry_t ks[8];
      for (size_t i = 0; i < n; i++) {
        read_key(in, &m, &ks[i]);
        keys[i] = ks[i].ik;
      }
      size_t missing = (size_t)-1;
      int use_dflt = (int)(v.iv & 1);
      rc = edgert_dict_get_many(d, keys, n, out, use_dflt ? &dflt : NULL, &missing);
      size_t i = 0;
      for (; i < n; i++) {
        ptrdiff_t j = model_index(&m, &ks[i]);
        if (j < 0 && !use_dflt)
          break;
        if (rc == 0 || i < missing)
          FUZZ_CHECK(out[i] == (j < 0 ? dflt : m.e[j].iv));
      }
      if (i < n) {
        FUZZ_CHECK(rc == EDGERT_EKEY && missing == i);
      } else {
        FUZZ_CHECK(rc == 0);
      }
      break;
    }
    case OP_PIN:
      if (m.pins < 4) {
        edgert_dict_pin(d);
        m.pins++;
      }
      break;
    case OP_UNPIN:
      rc = edgert_dict_unpin(d);
      if (m.pins > 0) {
        FUZZ_CHECK(rc == 0);
        m.pins--;
      } else {
        FUZZ_CHECK(rc == EDGERT_EINVAL);
      }
      break;
    case OP_ITER_MUT: {
      /* An insert or delete during iteration is caught at the next step. */
      edgert_dict_iter_t it;
      edgert_dict_iter_init(d, &it);
      const void *ik2;
      void *iv2;
      if (m.len == 0 || m.pins > 0)
        break;
      FUZZ_CHECK(edgert_dict_iter_next(&it, &ik2, &iv2) == 1);
      cval_t kk;
      entry_t last = m.e[m.len - 1];
      FUZZ_CHECK(edgert_dict_del(d, key_repr(&m, &last, &kk)) == 0);
      m.len--;
      FUZZ_CHECK(edgert_dict_iter_next(&it, &ik2, &iv2) == EDGERT_ECHANGED);
      break;
    }
    case OP_CACHE: {
      int mode = (int)(v.iv & 3);
      rc = edgert_dict_set_cache(d, mode);
      FUZZ_CHECK(mode <= 2 ? rc == 0 : rc == EDGERT_EINVAL);
      edgert_dict_cache_stats_t st;
      edgert_dict_cache_stats(d, &st);
      if (mode <= 2)
        FUZZ_CHECK(st.mode == mode);
      break;
    }
    }
    fz_countdown = 0;
    compare(d, &m);
  }
  FUZZ_CHECK(edgert_dict_memory(d) >= sizeof(void *));
  edgert_dict_free(d);
}


/* ---- the typed list against an array model --------------------------------- */

#define LIST_MAX 512

typedef struct {
  int str;
  entry_t e[LIST_MAX]; /* items in the value fields: iv, or sv/svlen */
  size_t len;
  unsigned pins;
} lmodel_t;

static void lcheck_item(const lmodel_t *m, const void *p, const entry_t *e) {
  model_t tmp;
  tmp.str = m->str;
  check_value(&tmp, p, e);
}

static void lcompare(edgert_list_t *l, const lmodel_t *m) {
  FUZZ_CHECK(edgert_list_len(l) == m->len);
  FUZZ_CHECK(edgert_list_pins(l) == m->pins);
  FUZZ_CHECK(edgert_list_capacity(l) >= m->len);
  size_t isz = edgert_list_itemsize(l);
  FUZZ_CHECK(isz == (m->str ? sizeof(edgert_bytes_t) : sizeof(int64_t)));
  char *data = edgert_list_data(l);
  for (size_t i = 0; i < m->len; i++) {
    void *at = edgert_list_at(l, i);
    FUZZ_CHECK(at == data + i * isz);
    lcheck_item(m, at, &m->e[i]);
  }
  FUZZ_CHECK(edgert_list_at(l, m->len) == NULL);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = ((const entry_t *)a)->iv, y = ((const entry_t *)b)->iv;
  return (x > y) - (x < y);
}

/* Stable insertion sort of the model (the list's sort is stable). */
static void lmodel_sort(lmodel_t *m, int descending) {
  for (size_t i = 1; i < m->len; i++) {
    entry_t x = m->e[i];
    size_t j = i;
    while (j > 0) {
      int c = cmp_i64(&m->e[j - 1], &x);
      if (descending ? c >= 0 : c <= 0)
        break;
      m->e[j] = m->e[j - 1];
      j--;
    }
    m->e[j] = x;
  }
}

enum {
  LOP_APPEND, LOP_INSERT, LOP_POP, LOP_SET, LOP_GET, LOP_SPLICE, LOP_RESERVE, LOP_CLEAR,
  LOP_REVERSE, LOP_SORT, LOP_COPY, LOP_SWAP, LOP_PIN, LOP_UNPIN, LOP__COUNT
};

static void run_list(fuzz_in_t *in, int str) {
  static lmodel_t m;
  memset(&m, 0, sizeof m);
  m.str = str;
  model_t vm; /* for read_value/val_repr */
  vm.str = str;
  const edgert_type_t *t;
  FUZZ_CHECK(edgert_type_find(str ? "bytes" : "int64", &t) == 0);
  edgert_list_t *l = NULL;
  FUZZ_CHECK(edgert_list_new(t, fuzz_u8(in) % 8, &l) == 0 && l != NULL);

  while (!fuzz_empty(in)) {
    uint8_t opb = fuzz_u8(in);
    long fail_at = (opb & 0x80) ? 1 + fuzz_u8(in) % 8 : 0;
    int op = (opb & 0x7f) % LOP__COUNT;
    size_t idx = fuzz_u8(in);
    entry_t v;
    cval_t vc;
    read_value(in, &vm, &v);
    const void *vr = val_repr(&vm, &v, &vc);
    int rc = 0;
    fz_countdown = fail_at;
    long failed_before = fz_failed;
#define FAILED_BY_ALLOC (rc == EDGERT_ENOMEM && fz_failed > failed_before)
    switch (op) {
    case LOP_APPEND:
    case LOP_INSERT:
      rc = op == LOP_APPEND ? edgert_list_append(l, vr) : edgert_list_insert(l, idx, vr);
      if (rc == 0) {
        FUZZ_CHECK(m.len < LIST_MAX);
        size_t at = (op == LOP_APPEND || idx > m.len) ? m.len : idx;
        memmove(&m.e[at + 1], &m.e[at], (m.len - at) * sizeof m.e[0]);
        m.e[at] = v;
        m.len++;
      } else {
        FUZZ_CHECK((rc == EDGERT_EBUSY && m.pins > 0) || FAILED_BY_ALLOC);
      }
      break;
    case LOP_POP: {
      cval_t out;
      memset(&out, 0, sizeof out);
      rc = edgert_list_pop(l, idx, str ? (void *)&out.b : (void *)&out.i);
      if (rc == 0) {
        FUZZ_CHECK(idx < m.len && m.pins == 0);
        lcheck_item(&m, str ? (void *)&out.b : (void *)&out.i, &m.e[idx]);
        if (str)
          edgert_bytes_release(&out.b);
        memmove(&m.e[idx], &m.e[idx + 1], (m.len - idx - 1) * sizeof m.e[0]);
        m.len--;
      } else {
        FUZZ_CHECK((rc == EDGERT_ERANGE && idx >= m.len) ||
                   (rc == EDGERT_EBUSY && m.pins > 0));
      }
      break;
    }
    case LOP_SET:
      rc = edgert_list_set(l, idx, vr);
      if (rc == 0) {
        FUZZ_CHECK(idx < m.len);
        m.e[idx] = v;
      } else {
        FUZZ_CHECK((rc == EDGERT_ERANGE && idx >= m.len) || FAILED_BY_ALLOC);
      }
      break;
    case LOP_GET: {
      cval_t out;
      rc = edgert_list_get(l, idx, str ? (void *)&out.b : (void *)&out.i);
      if (idx < m.len) {
        FUZZ_CHECK(rc == 0);
        lcheck_item(&m, str ? (void *)&out.b : (void *)&out.i, &m.e[idx]);
      } else {
        FUZZ_CHECK(rc == EDGERT_ERANGE);
      }
      break;
    }
    case LOP_SPLICE: {
      /* Replace [start, start+count) by n new items, or by items taken from
       * the list itself (the header allows items pointing into the list). */
      size_t start = idx % (m.len + 2), count = fuzz_u8(in) % 4;
      size_t n = fuzz_u8(in) % 6;
      int from_self = (int)(v.iv & 1) && !str && m.len >= n && n > 0;
      entry_t items[6];
      int64_t ik[6];
      edgert_bytes_t sb[6];
      for (size_t i = 0; i < n; i++) {
        if (from_self) {
          items[i] = m.e[i];
        } else {
          read_value(in, &vm, &items[i]);
        }
        cval_t c;
        memset(&c, 0, sizeof c);
        val_repr(&vm, &items[i], &c);
        ik[i] = c.i;
        sb[i] = c.b;
      }
      const void *src = from_self ? edgert_list_data(l) : (str ? (void *)sb : (void *)ik);
      rc = edgert_list_splice(l, start, count, src, n);
      if (rc == 0) {
        FUZZ_CHECK(start + count <= m.len);
        FUZZ_CHECK(m.pins == 0 || n == count);
        FUZZ_CHECK(m.len - count + n <= LIST_MAX);
        memmove(&m.e[start + n], &m.e[start + count], (m.len - start - count) * sizeof m.e[0]);
        memcpy(&m.e[start], items, n * sizeof items[0]);
        m.len = m.len - count + n;
      } else {
        FUZZ_CHECK((rc == EDGERT_ERANGE && start + count > m.len) ||
                   (rc == EDGERT_EBUSY && m.pins > 0 && n != count) || FAILED_BY_ALLOC);
      }
      break;
    }
    case LOP_RESERVE:
      rc = edgert_list_reserve(l, idx * 3);
      FUZZ_CHECK(rc == 0 || (rc == EDGERT_EBUSY && m.pins > 0) || FAILED_BY_ALLOC);
      if (rc == 0)
        FUZZ_CHECK(edgert_list_capacity(l) >= idx * 3);
      break;
    case LOP_CLEAR:
      rc = edgert_list_clear(l);
      if (rc == 0) {
        FUZZ_CHECK(m.pins == 0);
        m.len = 0;
      } else {
        FUZZ_CHECK(rc == EDGERT_EBUSY && m.pins > 0);
      }
      break;
    case LOP_REVERSE:
      FUZZ_CHECK(edgert_list_reverse(l) == 0);
      for (size_t i = 0; i < m.len / 2; i++) {
        entry_t x = m.e[i];
        m.e[i] = m.e[m.len - 1 - i];
        m.e[m.len - 1 - i] = x;
      }
      break;
    case LOP_SORT:
      rc = edgert_list_sort(l, (int)(idx & 1));
      if (str) {
        FUZZ_CHECK(rc == EDGERT_ETYPE);
      } else if (rc == 0) {
        lmodel_sort(&m, (int)(idx & 1));
      } else {
        FUZZ_CHECK(FAILED_BY_ALLOC);
      }
      break;
    case LOP_COPY: {
      edgert_list_t *c = NULL;
      rc = edgert_list_copy(l, &c);
      if (rc == 0) {
        unsigned pins = m.pins;
        m.pins = 0;
        lcompare(c, &m);
        m.pins = pins;
        /* Swapping with a copy exchanges equal contents: nothing changes. */
        int src = edgert_list_swap(l, c);
        FUZZ_CHECK(src == 0 || (src == EDGERT_EBUSY && m.pins > 0));
        edgert_list_free(c);
      } else {
        FUZZ_CHECK(FAILED_BY_ALLOC && c == NULL);
      }
      break;
    }
    case LOP_SWAP: {
      const edgert_type_t *other;
      FUZZ_CHECK(edgert_type_find(str ? "int64" : "bytes", &other) == 0);
      edgert_list_t *o = NULL;
      rc = edgert_list_new(other, 0, &o);
      if (rc == 0) {
        FUZZ_CHECK(edgert_list_swap(l, o) == EDGERT_ETYPE);
        edgert_list_free(o);
      } else {
        FUZZ_CHECK(FAILED_BY_ALLOC);
      }
      break;
    }
    case LOP_PIN:
      if (m.pins < 4) {
        edgert_list_pin(l);
        m.pins++;
      }
      break;
    case LOP_UNPIN:
      rc = edgert_list_unpin(l);
      if (m.pins > 0) {
        FUZZ_CHECK(rc == 0);
        m.pins--;
      } else {
        FUZZ_CHECK(rc == EDGERT_EINVAL);
      }
      break;
    }
#undef FAILED_BY_ALLOC
    fz_countdown = 0;
    lcompare(l, &m);
  }
  FUZZ_CHECK(edgert_list_memory(l) >= sizeof(void *));
  edgert_list_free(l);
}

int edgert_fuzz_containers(const uint8_t *data, size_t size) {
  fz_install();
  fuzz_in_t in = {data, size};
  uint8_t mode = fuzz_u8(&in);
  if (mode & 2)
    run_list(&in, mode & 1);
  else
    run(&in, mode & 1, (mode >> 2) % 3);
  return 0;
}

#ifndef EDGERT_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return edgert_fuzz_containers(data, size);
}
#endif
