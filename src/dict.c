/*
 * dict.c: the typed hash map.
 *
 * Layout: dense entry arrays (keys, values and, for str/bytes/custom keys,
 * their 64-bit hashes), `len` used of `ecap`, plus an open-addressing index
 * of `icap` uint32 slots probed linearly. A slot is 0 when empty, else
 * (tag << ebits) | (entry + 1), where tag is a few more bits of the hash so
 * that most probes that would meet another key are rejected without
 * touching the key arrays. icap runs through 8, 12, 16, 24, 32, 48, ...
 * (home slot = high bits of hash * icap), so memory tracks the size closely;
 * at most ilimit = 70% of the slots are used.
 *
 * Invariants:
 *  - every entry 0 .. len-1 has exactly one index slot, reachable from its
 *    home slot without crossing an empty slot (deletes shift following
 *    slots back instead of leaving tombstones);
 *  - len <= ecap, len <= ilimit, ilimit < 2^ebits - 1;
 *  - the dict owns the data of every str/bytes key and value it holds;
 *  - `version` changes on every insert, delete and resize; the ring cache
 *    is valid only while ring_version == version;
 *  - the view `v` (first member, read by the inline lookups in dict.h) is
 *    the one copy of index, sizes, arrays, len and version: it is always
 *    current;
 *  - str/bytes key hashes come from the host's hasher when one is set
 *    (only while empty), so every stored hash is of one function;
 *  - while pins > 0 no entry is added or removed and no array moves;
 *  - every failing operation leaves the dict as it was;
 *  - a bool key or value is the byte 0 or 1: set, set_hashed, set_many and
 *    upsert (its key) refuse any other byte with EDGERT_EINVAL before they
 *    write; a value written through a pointer upsert returns is the
 *    caller's to keep 0 or 1;
 *  - every public function refuses a NULL dict handle or required pointer
 *    before touching anything (EDGERT_EINVAL, or the NULL/0/-1 the header
 *    names, with a message naming the function and the argument); the
 *    inline lookups in dict.h check nothing.
 */
#include "internal.h"

#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define RING_EMPTY UINT32_MAX
#define CACHE_WINDOW 256u
#define CACHE_MIN_HITS (CACHE_WINDOW / 4u)
#define CACHE_IDLE 65536u

typedef struct {
  uint64_t tag;       /* the key's hash (or the caller's tag) */
  const char *kdata;  /* str/bytes keys: where the caller's key bytes were */
  size_t klen;
  uint32_t entry;
} ring_slot_t;

struct edgert_dict_s {
  edgert_dict_view_t v; /* first: what the inline lookups in dict.h read */
  const edgert_type_t *kt, *vt;
  edgert_kind_t kkind, vkind;
  size_t ksize;
  int khashed;  /* keys keep their hash in `hashes` */
  int kvar, vvar; /* str/bytes: owned data */
  size_t ecap;
  size_t ilimit;
  unsigned pins;
  size_t heap_bytes; /* str/bytes data owned */
  edgert_dict_hash_fn hasher; /* str/bytes keys: the host's hash, or NULL */
  void *hasher_ud;
  /* inline cache */
  int cache_mode;
  unsigned ring_next;
  uint64_t ring_version;
  ring_slot_t ring[EDGERT_DICT_CACHE_SLOTS];
  uint64_t hits, misses, bypassed;
  unsigned window, window_hits, idle;
};

/* ---- hashing --------------------------------------------------------- */

static inline uint64_t hash_u64(uint64_t x) { return x * GOLDEN; }

static uint64_t hash_bytes(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * GOLDEN);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w ^ ((uint64_t)n << 59)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
  }
  h *= 0x94D049BB133111EBull;
  h ^= h >> 31;
  return h;
}

static inline uint64_t hash_f64(double x) {
  if (x == 0.0)
    x = 0.0; /* -0.0 and 0.0 are one key */
  uint64_t b;
  memcpy(&b, &x, 8);
  return hash_u64(b ^ (b >> 32));
}

static uint64_t hash_key(const edgert_dict_t *d, const void *key) {
  switch (d->kkind) {
  case EDGERT_KIND_INT64: {
    int64_t k;
    memcpy(&k, key, 8);
    return hash_u64((uint64_t)k);
  }
  case EDGERT_KIND_FLOAT64: {
    double x;
    memcpy(&x, key, 8);
    return hash_f64(x);
  }
  case EDGERT_KIND_BOOL:
    return hash_u64(*(const unsigned char *)key != 0);
  case EDGERT_KIND_STR:
  case EDGERT_KIND_BYTES: {
    const edgert_bytes_t *b = key;
    if (d->hasher != NULL)
      return d->hasher(b->data ? b->data : "", b->len, d->hasher_ud);
    return hash_bytes(b->data, b->len);
  }
  default:
    return hash_bytes(key, d->ksize);
  }
}

static inline uint64_t entry_hash(const edgert_dict_t *d, size_t e) {
  if (d->khashed)
    return d->v.hashes[e];
  return hash_key(d, d->v.keys + e * d->ksize);
}

/* 1 if entry e's key equals `key`; `h` is key's hash (checked first for
 * hashed keys, skipped when have_h is 0). */
static inline int key_eq(const edgert_dict_t *d, size_t e, const void *key, uint64_t h,
                         int have_h) {
  const unsigned char *k = d->v.keys + e * d->ksize;
  switch (d->kkind) {
  case EDGERT_KIND_INT64:
    return memcmp(k, key, 8) == 0;
  case EDGERT_KIND_FLOAT64: {
    double a, b;
    memcpy(&a, k, 8);
    memcpy(&b, key, 8);
    return a == b;
  }
  case EDGERT_KIND_BOOL:
    return (*k != 0) == (*(const unsigned char *)key != 0);
  case EDGERT_KIND_STR:
  case EDGERT_KIND_BYTES: {
    if (have_h && d->v.hashes[e] != h)
      return 0;
    const edgert_bytes_t *a = (const edgert_bytes_t *)(const void *)k, *b = key;
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
  }
  default:
    if (have_h && d->v.hashes[e] != h)
      return 0;
    return memcmp(k, key, d->ksize) == 0;
  }
}

/* ---- index ----------------------------------------------------------- */

static inline size_t home_of(size_t icap, uint64_t h) {
  return (size_t)(((unsigned __int128)h * icap) >> 64);
}
static inline uint32_t tag_of(const edgert_dict_t *d, uint64_t h) {
  return ((uint32_t)(h >> 16) & d->v.tagmask) << d->v.ebits;
}

static size_t limit_of(size_t icap) { return icap / 10 * 7 + (icap % 10) * 7 / 10; }

static unsigned bits_for(size_t v) {
  unsigned b = 0;
  while (v) {
    b++;
    v >>= 1;
  }
  return b;
}

/* Smallest icap of the 8, 12, 16, 24, ... sequence whose limit holds n. */
static size_t icap_for(size_t n) {
  size_t c = 8;
  while (limit_of(c) < n) {
    if ((c & (c - 1)) == 0)
      c = c / 2 * 3;
    else
      c = c / 3 * 4;
  }
  return c;
}

/* Looks up `key` (hash h). Returns the entry, or -1 with *slot_out set to
 * the empty slot where it would go. The index must exist. */
static inline ptrdiff_t probe(const edgert_dict_t *d, const void *key, uint64_t h,
                              size_t *slot_out) {
  size_t i = home_of(d->v.icap, h);
  uint32_t tag = tag_of(d, h);
  uint32_t tmask = ~d->v.emask;
  for (;;) {
    uint32_t s = d->v.index[i];
    if (s == 0) {
      if (slot_out)
        *slot_out = i;
      return -1;
    }
    if ((s & tmask) == tag) {
      size_t e = (s & d->v.emask) - 1;
      if (key_eq(d, e, key, h, 1))
        return (ptrdiff_t)e;
    }
    if (++i == d->v.icap)
      i = 0;
  }
}

static inline ptrdiff_t probe_i64(const edgert_dict_t *d, int64_t key, uint64_t h) {
  size_t i = home_of(d->v.icap, h);
  uint32_t tag = tag_of(d, h);
  uint32_t tmask = ~d->v.emask;
  const int64_t *keys = (const int64_t *)(const void *)d->v.keys;
  for (;;) {
    uint32_t s = d->v.index[i];
    if (s == 0)
      return -1;
    if ((s & tmask) == tag) {
      size_t e = (s & d->v.emask) - 1;
      if (keys[e] == key)
        return (ptrdiff_t)e;
    }
    if (++i == d->v.icap)
      i = 0;
  }
}

/* Rebuilds the index with `icap` slots. Bumps the version. */
static int rebuild_index(edgert_dict_t *d, size_t icap) {
  size_t limit = limit_of(icap);
  if (limit > EDGERT_DICT_MAX_LEN)
    limit = EDGERT_DICT_MAX_LEN;
  uint32_t *index = edgert__calloc(icap, sizeof *index);
  if (index == NULL)
    return edgert__error(EDGERT_ENOMEM, "dict: out of memory growing the index to %zu slots",
                         icap);
  edgert__free(d->v.index);
  d->v.index = index;
  d->v.icap = icap;
  d->ilimit = limit;
  d->v.ebits = bits_for(limit + 1);
  d->v.emask = (uint32_t)((1ull << d->v.ebits) - 1);
  d->v.tagmask = d->v.ebits >= 32 ? 0 : (uint32_t)((1ull << (32 - d->v.ebits)) - 1);
  if (d->kkind == EDGERT_KIND_INT64) {
    /* The common case, with the hash inlined. */
    const int64_t *keys = (const int64_t *)(const void *)d->v.keys;
    for (size_t e = 0; e < d->v.len; e++) {
      uint64_t h = hash_u64((uint64_t)keys[e]);
      size_t i = home_of(icap, h);
      while (index[i] != 0)
        if (++i == icap)
          i = 0;
      index[i] = tag_of(d, h) | (uint32_t)(e + 1);
    }
  } else {
    for (size_t e = 0; e < d->v.len; e++) {
      uint64_t h = entry_hash(d, e);
      size_t i = home_of(icap, h);
      while (index[i] != 0)
        if (++i == icap)
          i = 0;
      index[i] = tag_of(d, h) | (uint32_t)(e + 1);
    }
  }
  d->v.version++;
  return 0;
}

static int grow_entries(edgert_dict_t *d, size_t need) {
  if (need <= d->ecap)
    return 0;
  /* Doubling while small (few reallocations where they cost most per
   * entry), then by half, then by a quarter beyond 64 Ki entries. */
  size_t cap = d->ecap < 16   ? 16
               : d->ecap < 512 ? 2 * d->ecap
               : d->ecap < 65536 ? d->ecap + d->ecap / 2
                                 : d->ecap + d->ecap / 4;
  if (cap < need)
    cap = need;
  if (cap > EDGERT_DICT_MAX_LEN)
    cap = EDGERT_DICT_MAX_LEN;
  /* Each array is grown on its own; a later failure leaves an earlier
   * array merely larger than ecap says, which is harmless. */
  void *k = edgert__realloc(d->v.keys, cap * d->ksize);
  if (k == NULL)
    goto oom;
  d->v.keys = k;
  void *v = edgert__realloc(d->v.values, cap * d->v.vsize);
  if (v == NULL)
    goto oom;
  d->v.values = v;
  if (d->khashed) {
    void *h = edgert__realloc(d->v.hashes, cap * sizeof(uint64_t));
    if (h == NULL)
      goto oom;
    d->v.hashes = h;
  }
  d->ecap = cap;
  return 0;
oom:
  return edgert__error(EDGERT_ENOMEM, "dict: out of memory growing to %zu entries", cap);
}

/* Room for n entries in total, without pin checks. `ahead`: an insert is
 * growing the dict, so size the index for more than n (twice n while
 * small, 1.5 times beyond 64 Ki entries) and rebuild it less often. */
static int reserve_ex(edgert_dict_t *d, size_t n, int ahead) {
  if (n > EDGERT_DICT_MAX_LEN)
    return edgert__error(EDGERT_ELIMIT, "dict: %zu entries is more than the %zu a dict holds", n,
                         (size_t)EDGERT_DICT_MAX_LEN);
  if (n > d->ilimit || d->v.index == NULL) {
    size_t target = n;
    if (ahead)
      target = n < 65536 ? 2 * n : n + n / 2;
    if (target > EDGERT_DICT_MAX_LEN)
      target = EDGERT_DICT_MAX_LEN;
    size_t icap = icap_for(target);
    /* A version bump is the point of a resize; entries need room first so
     * a failure there leaves the old index in place. */
    if (grow_entries(d, n) < 0)
      return EDGERT_ENOMEM;
    if (rebuild_index(d, icap) < 0)
      return EDGERT_ENOMEM;
    return 0;
  }
  return grow_entries(d, n);
}

static int reserve_raw(edgert_dict_t *d, size_t n) { return reserve_ex(d, n, 0); }

/* ---- lifetime -------------------------------------------------------- */

int edgert_dict_new(const edgert_type_t *key_type, const edgert_type_t *value_type,
                    edgert_dict_t **out) {
  if (key_type == NULL || value_type == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_dict_new: types and out must not be NULL");
  int rc = edgert__type_acquire(key_type, "edgert_dict_new");
  if (rc < 0)
    return rc;
  if ((rc = edgert__type_acquire(value_type, "edgert_dict_new")) < 0) {
    edgert__type_release(key_type);
    return rc;
  }
  edgert_dict_t *d = edgert__calloc(1, sizeof *d);
  if (d == NULL) {
    edgert__type_release(key_type);
    edgert__type_release(value_type);
    return edgert__error(EDGERT_ENOMEM, "dict: out of memory");
  }
  d->kt = key_type;
  d->vt = value_type;
  d->kkind = edgert_type_kind(key_type);
  d->vkind = edgert_type_kind(value_type);
  d->ksize = edgert_type_size(key_type);
  d->v.vsize = edgert_type_size(value_type);
  d->kvar = d->kkind == EDGERT_KIND_STR || d->kkind == EDGERT_KIND_BYTES;
  d->vvar = d->vkind == EDGERT_KIND_STR || d->vkind == EDGERT_KIND_BYTES;
  d->khashed = d->kvar || d->kkind == EDGERT_KIND_CUSTOM;
  d->cache_mode = EDGERT_DICT_CACHE_AUTO;
  d->v.cache_active = 1;
  d->ring_version = UINT64_MAX;
  *out = d;
  return 0;
}

static void release_entry_data(edgert_dict_t *d, size_t e) {
  if (d->kvar) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)(d->v.keys + e * d->ksize);
    d->heap_bytes -= b->data ? b->len + 1 : 0;
    edgert_bytes_release(b);
  }
  if (d->vvar) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)(d->v.values + e * d->v.vsize);
    d->heap_bytes -= b->data ? b->len + 1 : 0;
    edgert_bytes_release(b);
  }
}

static void release_storage(edgert_dict_t *d) {
  for (size_t e = 0; e < d->v.len; e++)
    release_entry_data(d, e);
  edgert__free(d->v.keys);
  edgert__free(d->v.values);
  edgert__free(d->v.hashes);
  edgert__free(d->v.index);
  d->v.keys = d->v.values = NULL;
  d->v.hashes = NULL;
  d->v.index = NULL;
  d->v.len = d->ecap = d->v.icap = d->ilimit = 0;
}

void edgert_dict_free(edgert_dict_t *d) {
  if (d == NULL)
    return;
  release_storage(d);
  edgert__type_release(d->kt);
  edgert__type_release(d->vt);
  edgert__free(d);
}

const edgert_dict_view_t *edgert_dict_view(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return &d->v;
}
const edgert_type_t *edgert_dict_key_type(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return d->kt;
}
const edgert_type_t *edgert_dict_value_type(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return d->vt;
}
size_t edgert_dict_len(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, 0);
  return d->v.len;
}
uint64_t edgert_dict_version(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, 0);
  return d->v.version;
}

size_t edgert_dict_memory(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, 0);
  return sizeof *d + d->ecap * (d->ksize + d->v.vsize + (d->khashed ? 8 : 0)) +
         d->v.icap * sizeof(uint32_t) + d->heap_bytes;
}

/* ---- inline cache ---------------------------------------------------- */

static inline void cache_adapt(edgert_dict_t *d) {
  if (++d->window < CACHE_WINDOW)
    return;
  if (d->cache_mode == EDGERT_DICT_CACHE_AUTO && d->window_hits < CACHE_MIN_HITS) {
    d->v.cache_active = 0;
    d->idle = CACHE_IDLE;
  }
  d->window = d->window_hits = 0;
}

/* A lookup that skipped the ring. Only AUTO counts them (as the idle
 * countdown), so OFF costs nothing at all. */
static inline void cache_bypass(edgert_dict_t *d) {
  if (d->cache_mode == EDGERT_DICT_CACHE_AUTO && --d->idle == 0) {
    d->bypassed += CACHE_IDLE;
    d->v.cache_active = 1;
    d->window = d->window_hits = 0;
  }
}

/* Looks `tag` up in the ring: the entry whose key equals `key`, or -1. */
static inline ptrdiff_t cache_lookup(edgert_dict_t *d, const void *key, uint64_t tag) {
  if (d->ring_version != d->v.version) {
    for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++)
      d->ring[r].entry = RING_EMPTY;
    d->ring_version = d->v.version;
    return -1;
  }
  for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++) {
    if (d->ring[r].tag == tag && d->ring[r].entry != RING_EMPTY &&
        key_eq(d, d->ring[r].entry, key, 0, 0)) {
      d->hits++;
      d->window_hits++;
      cache_adapt(d);
      return (ptrdiff_t)d->ring[r].entry;
    }
  }
  return -1;
}

/* str/bytes keys from C: a lookup whose key bytes sit where a recent
 * one's did (a constant, a reused buffer) is checked against that entry
 * before anything is hashed; the bytes are compared, so a buffer that
 * changed in between is simply a miss. */
static inline ptrdiff_t cache_lookup_bytes(edgert_dict_t *d, const edgert_bytes_t *key) {
  if (d->ring_version != d->v.version) {
    for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++)
      d->ring[r].entry = RING_EMPTY;
    d->ring_version = d->v.version;
    return -1;
  }
  for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++) {
    if (d->ring[r].kdata == key->data && d->ring[r].klen == key->len &&
        d->ring[r].entry != RING_EMPTY && key_eq(d, d->ring[r].entry, key, 0, 0)) {
      d->hits++;
      d->window_hits++;
      cache_adapt(d);
      return (ptrdiff_t)d->ring[r].entry;
    }
  }
  return -1;
}

/* The ring for int64 keys: the hash and the key itself compared. */
static inline ptrdiff_t cache_lookup_i64(edgert_dict_t *d, int64_t key, uint64_t h) {
  if (d->ring_version != d->v.version) {
    for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++)
      d->ring[r].entry = RING_EMPTY;
    d->ring_version = d->v.version;
    return -1;
  }
  const int64_t *keys = (const int64_t *)(const void *)d->v.keys;
  for (unsigned r = 0; r < EDGERT_DICT_CACHE_SLOTS; r++) {
    uint32_t e = d->ring[r].entry;
    if (d->ring[r].tag == h && e != RING_EMPTY && keys[e] == key) {
      d->hits++;
      d->window_hits++;
      cache_adapt(d);
      return (ptrdiff_t)e;
    }
  }
  return -1;
}

static inline void cache_store(edgert_dict_t *d, uint64_t tag, ptrdiff_t e) {
  d->misses++;
  if (e >= 0) {
    d->ring[d->ring_next].tag = tag;
    d->ring[d->ring_next].kdata = NULL;
    d->ring[d->ring_next].entry = (uint32_t)e;
    d->ring_next = (d->ring_next + 1) % EDGERT_DICT_CACHE_SLOTS;
  }
  cache_adapt(d);
}

int edgert_dict_set_cache(edgert_dict_t *d, int mode) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (mode != EDGERT_DICT_CACHE_OFF && mode != EDGERT_DICT_CACHE_ON &&
      mode != EDGERT_DICT_CACHE_AUTO)
    return edgert__error(EDGERT_EINVAL, "dict: unknown cache mode %d", mode);
  d->cache_mode = mode;
  d->v.cache_active = mode != EDGERT_DICT_CACHE_OFF;
  d->hits = d->misses = d->bypassed = 0;
  d->window = d->window_hits = 0;
  d->ring_version = UINT64_MAX;
  return 0;
}

void edgert_dict_cache_stats(const edgert_dict_t *d, edgert_dict_cache_stats_t *out) {
  EDGERT__RETURN_IF_NULL(out, );
  if (EDGERT__UNLIKELY(d == NULL)) {
    memset(out, 0, sizeof *out);
    edgert__null_arg(__func__, "d");
    return;
  }
  out->hits = d->hits;
  out->misses = d->misses;
  out->bypassed = d->bypassed;
  if (d->cache_mode == EDGERT_DICT_CACHE_AUTO && !d->v.cache_active)
    out->bypassed += CACHE_IDLE - d->idle;
  out->mode = d->cache_mode;
  out->active = d->v.cache_active;
}

/* ---- lookups --------------------------------------------------------- */

static inline ptrdiff_t find_entry(edgert_dict_t *d, const void *key, uint64_t tag,
                                   int have_tag) {
  if (d->v.len == 0)
    return -1;
  if (d->v.cache_active) {
    if (have_tag) {
      ptrdiff_t e = cache_lookup(d, key, tag);
      if (e >= 0)
        return e;
      e = probe(d, key, hash_key(d, key), NULL);
      cache_store(d, tag, e);
      return e;
    }
    if (d->kvar) {
      const edgert_bytes_t *b = key;
      ptrdiff_t e = cache_lookup_bytes(d, b);
      if (e >= 0)
        return e;
      unsigned slot = d->ring_next;
      uint64_t h = hash_key(d, key);
      e = probe(d, key, h, NULL);
      cache_store(d, h, e);
      if (e >= 0) {
        d->ring[slot].kdata = b->data;
        d->ring[slot].klen = b->len;
      }
      return e;
    }
    uint64_t h = hash_key(d, key);
    ptrdiff_t e = cache_lookup(d, key, h);
    if (e >= 0)
      return e;
    e = probe(d, key, h, NULL);
    cache_store(d, h, e);
    return e;
  }
  cache_bypass(d);
  return probe(d, key, hash_key(d, key), NULL);
}

/* With the key's hash given (it must be the dict's own hash of the key). */
static inline ptrdiff_t find_entry_h(edgert_dict_t *d, const void *key, uint64_t h) {
  if (d->v.len == 0)
    return -1;
  if (d->v.cache_active) {
    ptrdiff_t e = cache_lookup(d, key, h);
    if (e >= 0)
      return e;
    e = probe(d, key, h, NULL);
    cache_store(d, h, e);
    return e;
  }
  cache_bypass(d);
  return probe(d, key, h, NULL);
}

void *edgert_dict_find_hashed(edgert_dict_t *d, const void *key, uint64_t hash) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  EDGERT__RETURN_IF_NULL(key, NULL);
  ptrdiff_t e = find_entry_h(d, key, hash);
  return e < 0 ? NULL : d->v.values + (size_t)e * d->v.vsize;
}

int edgert_dict_set_hasher(edgert_dict_t *d, edgert_dict_hash_fn fn, void *ud) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (!d->kvar)
    return edgert__error(EDGERT_ETYPE, "dict: a hasher is for str or bytes keys, not %s",
                         edgert_type_name(d->kt));
  if (d->v.len != 0)
    return edgert__error(EDGERT_EINVAL, "dict: the hasher can only be set while it is empty");
  d->hasher = fn;
  d->hasher_ud = ud;
  return 0;
}

void *edgert_dict_find(edgert_dict_t *d, const void *key) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  EDGERT__RETURN_IF_NULL(key, NULL);
  ptrdiff_t e = find_entry(d, key, 0, 0);
  return e < 0 ? NULL : d->v.values + (size_t)e * d->v.vsize;
}

void *edgert_dict_find_tagged(edgert_dict_t *d, const void *key, uint64_t tag) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  EDGERT__RETURN_IF_NULL(key, NULL);
  ptrdiff_t e = find_entry(d, key, tag, 1);
  return e < 0 ? NULL : d->v.values + (size_t)e * d->v.vsize;
}

ptrdiff_t edgert_dict_index(edgert_dict_t *d, const void *key) {
  EDGERT__RETURN_IF_NULL(d, -1);
  EDGERT__RETURN_IF_NULL(key, -1);
  return find_entry(d, key, 0, 0);
}

void *edgert_dict_find_i64(edgert_dict_t *d, int64_t key) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  if (d->v.len == 0)
    return NULL;
  uint64_t h = hash_u64((uint64_t)key);
  ptrdiff_t e;
  if (EDGERT__UNLIKELY(d->v.cache_active)) {
    e = cache_lookup_i64(d, key, h);
    if (e < 0) {
      e = probe_i64(d, key, h);
      cache_store(d, h, e);
    }
  } else {
    cache_bypass(d);
    e = probe_i64(d, key, h);
  }
  return e < 0 ? NULL : d->v.values + (size_t)e * d->v.vsize;
}

/* EDGERT_EKEY naming the key that was looked for, so a C host sees which
 * one is missing (strings are quoted, cut at 64 bytes). */
static int key_not_found(const edgert_dict_t *d, const void *key) {
  switch (d->kkind) {
  case EDGERT_KIND_INT64: {
    int64_t k;
    memcpy(&k, key, 8);
    return edgert__error(EDGERT_EKEY, "key %lld not found in the dict", (long long)k);
  }
  case EDGERT_KIND_FLOAT64: {
    double x;
    memcpy(&x, key, 8);
    return edgert__error(EDGERT_EKEY, "key %.17g not found in the dict", x);
  }
  case EDGERT_KIND_BOOL:
    return edgert__error(EDGERT_EKEY, "key %s not found in the dict",
                         *(const unsigned char *)key ? "true" : "false");
  case EDGERT_KIND_STR:
  case EDGERT_KIND_BYTES: {
    const edgert_bytes_t *b = key;
    int n = b->len > 64 ? 64 : (int)b->len;
    return edgert__error(EDGERT_EKEY, "key '%.*s'%s not found in the dict", n,
                         b->data ? b->data : "", b->len > 64 ? "..." : "");
  }
  default:
    return edgert__error(EDGERT_EKEY, "key (a %zu-byte custom value) not found in the dict",
                         d->ksize);
  }
}

int edgert_dict_get(edgert_dict_t *d, const void *key, void *value_out) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value_out, EDGERT_EINVAL);
  void *v = edgert_dict_find(d, key);
  if (v == NULL)
    return key_not_found(d, key);
  memcpy(value_out, v, d->v.vsize);
  return 0;
}

/* ---- inserts --------------------------------------------------------- */

static int copy_bytes(edgert_bytes_t *dst, const edgert_bytes_t *src) {
  char *p = edgert__malloc(src->len + 1);
  if (p == NULL)
    return edgert__error(EDGERT_ENOMEM, "dict: out of memory copying %zu bytes", src->len);
  if (src->len)
    memcpy(p, src->data, src->len);
  p[src->len] = '\0';
  dst->data = p;
  dst->len = src->len;
  return 0;
}

/* Appends entry `len` for key (hash h) at index slot `slot`, with the key
 * copied from `key` (for str/bytes: taking `owned_key` when not NULL) and
 * a zero value. Room must exist. */
static size_t append_entry(edgert_dict_t *d, const void *key, const edgert_bytes_t *owned_key,
                           uint64_t h, size_t slot) {
  size_t e = d->v.len++;
  unsigned char *k = d->v.keys + e * d->ksize;
  if (owned_key != NULL) {
    memcpy(k, owned_key, sizeof *owned_key);
    d->heap_bytes += owned_key->len + 1;
  } else {
    memcpy(k, key, d->ksize);
  }
  if (d->khashed)
    d->v.hashes[e] = h;
  unsigned char *v = d->v.values + e * d->v.vsize;
  if (d->v.vsize == 8)
    memcpy(v, &(uint64_t){0}, 8);
  else
    memset(v, 0, d->v.vsize);
  d->v.index[slot] = tag_of(d, h) | (uint32_t)(e + 1);
  d->v.version++;
  return e;
}

/* Finds key or inserts it (zero value). For str/bytes keys, a new key's data
 * is copied. Returns the entry or a negative code. */
/* The bool rule (see edgert__bool_items) for a key and a value. */
static int bools_ok(const edgert_dict_t *d, const void *keys, const void *values, size_t n) {
  if (d->kkind == EDGERT_KIND_BOOL && keys != NULL &&
      edgert__bool_items(keys, n, d->ksize, "dict key") < 0)
    return EDGERT_EINVAL;
  if (d->vkind == EDGERT_KIND_BOOL && values != NULL &&
      edgert__bool_items(values, n, d->v.vsize, "dict value") < 0)
    return EDGERT_EINVAL;
  return 0;
}

static ptrdiff_t upsert_entry_h(edgert_dict_t *d, const void *key, uint64_t h, int *inserted) {
  size_t slot = 0;
  if (d->v.index != NULL) {
    ptrdiff_t e = probe(d, key, h, &slot);
    if (e >= 0) {
      *inserted = 0;
      return e;
    }
  }
  if (d->pins)
    return edgert__error(EDGERT_EBUSY,
                         "dict: cannot insert while its values buffer is exported");
  edgert_bytes_t owned = {NULL, 0};
  if (d->kvar && copy_bytes(&owned, key) < 0)
    return EDGERT_ENOMEM;
  if (d->v.len + 1 > d->ilimit || d->v.len + 1 > d->ecap || d->v.index == NULL) {
    size_t old_icap = d->v.icap;
    int rc = reserve_ex(d, d->v.len + 1, 1);
    if (rc < 0) {
      edgert_bytes_release(&owned);
      return rc;
    }
    if (d->v.icap != old_icap)
      probe(d, key, h, &slot);
  }
  *inserted = 1;
  return (ptrdiff_t)append_entry(d, key, d->kvar ? &owned : NULL, h, slot);
}

static ptrdiff_t upsert_entry(edgert_dict_t *d, const void *key, int *inserted) {
  return upsert_entry_h(d, key, hash_key(d, key), inserted);
}

void *edgert_dict_upsert(edgert_dict_t *d, const void *key, int *inserted, int *err) {
  int ins = 0;
  EDGERT__RETURN_NULL_IF_NULL_ERR(d, err);
  EDGERT__RETURN_NULL_IF_NULL_ERR(key, err);
  if (d->vvar) {
    int rc = edgert__error(EDGERT_ETYPE, "dict: upsert needs a fixed-size value type, not %s",
                           edgert_type_name(d->vt));
    if (err)
      *err = rc;
    return NULL;
  }
  if (d->kkind == EDGERT_KIND_BOOL && bools_ok(d, key, NULL, 1) < 0) {
    if (err)
      *err = EDGERT_EINVAL;
    return NULL;
  }
  ptrdiff_t e = upsert_entry(d, key, &ins);
  if (e < 0) {
    if (err)
      *err = (int)e;
    return NULL;
  }
  if (inserted)
    *inserted = ins;
  return d->v.values + (size_t)e * d->v.vsize;
}

void *edgert_dict_upsert_i64(edgert_dict_t *d, int64_t key, int *inserted, int *err) {
  EDGERT__RETURN_NULL_IF_NULL_ERR(d, err);
  if (d->kkind != EDGERT_KIND_INT64 || d->vvar || d->v.index == NULL || d->pins)
    return edgert_dict_upsert(d, &key, inserted, err);
  /* The common insert, in one probe: find the key or the empty slot. */
  uint64_t h = hash_u64((uint64_t)key);
  size_t i = home_of(d->v.icap, h);
  uint32_t tag = tag_of(d, h), tmask = ~d->v.emask;
  const int64_t *keys = (const int64_t *)(const void *)d->v.keys;
  for (;;) {
    uint32_t s = d->v.index[i];
    if (s == 0)
      break;
    if ((s & tmask) == tag && keys[(s & d->v.emask) - 1] == key) {
      if (inserted)
        *inserted = 0;
      return d->v.values + (size_t)((s & d->v.emask) - 1) * d->v.vsize;
    }
    if (++i == d->v.icap)
      i = 0;
  }
  if (d->v.len + 1 > d->ilimit || d->v.len + 1 > d->ecap)
    return edgert_dict_upsert(d, &key, inserted, err);
  size_t e = append_entry(d, &key, NULL, h, i);
  if (inserted)
    *inserted = 1;
  return d->v.values + e * d->v.vsize;
}

static int set_h(edgert_dict_t *d, const void *key, uint64_t h, const void *value) {
  if (EDGERT__UNLIKELY(d->kkind == EDGERT_KIND_BOOL || d->vkind == EDGERT_KIND_BOOL) &&
      bools_ok(d, key, value, 1) < 0)
    return EDGERT_EINVAL;
  edgert_bytes_t nv = {NULL, 0};
  if (d->vvar && copy_bytes(&nv, value) < 0)
    return EDGERT_ENOMEM;
  int ins = 0;
  ptrdiff_t e = upsert_entry_h(d, key, h, &ins);
  if (e < 0) {
    edgert_bytes_release(&nv);
    return (int)e;
  }
  unsigned char *v = d->v.values + (size_t)e * d->v.vsize;
  if (d->vvar) {
    edgert_bytes_t *old = (edgert_bytes_t *)(void *)v;
    if (old->data)
      d->heap_bytes -= old->len + 1;
    edgert_bytes_release(old);
    *old = nv;
    d->heap_bytes += nv.len + 1;
  } else {
    memcpy(v, value, d->v.vsize);
  }
  return 0;
}

void *edgert_dict_insert_i64_probed(edgert_dict_t *d, int64_t key, const edgert_dict_probe_t *p,
                                    int *err) {
  EDGERT__RETURN_NULL_IF_NULL_ERR(d, err);
  /* The probe still holds if nothing was inserted, deleted or resized
   * since (the version) and its slot is still empty; else start over. */
  if (p != NULL && p->version == d->v.version && d->v.index != NULL && p->slot < d->v.icap &&
      d->v.index[p->slot] == 0 && d->kkind == EDGERT_KIND_INT64 && !d->vvar && !d->pins &&
      d->v.len + 1 <= d->ilimit && d->v.len + 1 <= d->ecap) {
    /* append_entry, specialized: int64 key, fixed-size zeroed value. */
    size_t e = d->v.len++;
    ((int64_t *)(void *)d->v.keys)[e] = key;
    unsigned char *v = d->v.values + e * d->v.vsize;
    if (d->v.vsize == 8)
      memcpy(v, &(uint64_t){0}, 8);
    else
      memset(v, 0, d->v.vsize);
    d->v.index[p->slot] = tag_of(d, hash_u64((uint64_t)key)) | (uint32_t)(e + 1);
    d->v.version++;
    return v;
  }
  return edgert_dict_upsert_i64(d, key, NULL, err);
}

int edgert_dict_set(edgert_dict_t *d, const void *key, const void *value) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value, EDGERT_EINVAL);
  return set_h(d, key, hash_key(d, key), value);
}

int edgert_dict_set_hashed(edgert_dict_t *d, const void *key, uint64_t hash,
                           const void *value) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value, EDGERT_EINVAL);
  return set_h(d, key, hash, value);
}

int edgert_dict_reserve(edgert_dict_t *d, size_t n) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (d->pins)
    return edgert__error(EDGERT_EBUSY, "dict: cannot resize while its values buffer is exported");
  return reserve_raw(d, n);
}

/* ---- deletes --------------------------------------------------------- */

static inline size_t cdist(size_t icap, size_t from, size_t to) {
  return to >= from ? to - from : to + icap - from;
}

/* Empties index slot i and shifts the following cluster back. */
static void remove_slot(edgert_dict_t *d, size_t i) {
  size_t hole = i, k = i;
  for (;;) {
    if (++k == d->v.icap)
      k = 0;
    uint32_t s = d->v.index[k];
    if (s == 0)
      break;
    size_t hk = home_of(d->v.icap, entry_hash(d, (s & d->v.emask) - 1));
    if (cdist(d->v.icap, hk, k) >= cdist(d->v.icap, hole, k)) {
      d->v.index[hole] = s;
      hole = k;
    }
  }
  d->v.index[hole] = 0;
}

/* The index slot holding entry e. */
static size_t slot_of(const edgert_dict_t *d, size_t e) {
  size_t i = home_of(d->v.icap, entry_hash(d, e));
  while ((d->v.index[i] & d->v.emask) != e + 1)
    if (++i == d->v.icap)
      i = 0;
  return i;
}

/* Removes entry e (its data already moved out or released): the last entry
 * takes its place. */
static void remove_entry(edgert_dict_t *d, size_t e) {
  remove_slot(d, slot_of(d, e));
  size_t last = d->v.len - 1;
  if (e != last) {
    size_t s = slot_of(d, last);
    d->v.index[s] = (d->v.index[s] & ~d->v.emask) | (uint32_t)(e + 1);
    memcpy(d->v.keys + e * d->ksize, d->v.keys + last * d->ksize, d->ksize);
    memcpy(d->v.values + e * d->v.vsize, d->v.values + last * d->v.vsize, d->v.vsize);
    if (d->khashed)
      d->v.hashes[e] = d->v.hashes[last];
  }
  d->v.len--;
  d->v.version++;
}

static int take_entry(edgert_dict_t *d, size_t e, void *key_out, void *value_out) {
  unsigned char *k = d->v.keys + e * d->ksize, *v = d->v.values + e * d->v.vsize;
  if (d->kvar) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)k;
    d->heap_bytes -= b->data ? b->len + 1 : 0;
    if (key_out)
      memcpy(key_out, b, sizeof *b);
    else
      edgert_bytes_release(b);
  } else if (key_out) {
    memcpy(key_out, k, d->ksize);
  }
  if (d->vvar) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)v;
    d->heap_bytes -= b->data ? b->len + 1 : 0;
    if (value_out)
      memcpy(value_out, b, sizeof *b);
    else
      edgert_bytes_release(b);
  } else if (value_out) {
    memcpy(value_out, v, d->v.vsize);
  }
  remove_entry(d, e);
  return 0;
}

static int pop_h(edgert_dict_t *d, const void *key, uint64_t h, void *value_out) {
  ptrdiff_t e = d->v.len == 0 ? -1 : probe(d, key, h, NULL);
  if (e < 0)
    return key_not_found(d, key);
  if (d->pins)
    return edgert__error(EDGERT_EBUSY,
                         "dict: cannot delete while its values buffer is exported");
  return take_entry(d, (size_t)e, NULL, value_out);
}

int edgert_dict_pop(edgert_dict_t *d, const void *key, void *value_out) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  return pop_h(d, key, d->v.len ? hash_key(d, key) : 0, value_out);
}

int edgert_dict_pop_hashed(edgert_dict_t *d, const void *key, uint64_t hash, void *value_out) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  return pop_h(d, key, hash, value_out);
}

int edgert_dict_del(edgert_dict_t *d, const void *key) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(key, EDGERT_EINVAL);
  return edgert_dict_pop(d, key, NULL);
}

int edgert_dict_popitem(edgert_dict_t *d, void *key_out, void *value_out) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (d->v.len == 0)
    return edgert__error(EDGERT_EKEY, "popitem(): the dict is empty");
  if (d->pins)
    return edgert__error(EDGERT_EBUSY,
                         "dict: cannot delete while its values buffer is exported");
  return take_entry(d, d->v.len - 1, key_out, value_out);
}

int edgert_dict_clear(edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (d->pins)
    return edgert__error(EDGERT_EBUSY, "dict: cannot clear while its values buffer is exported");
  release_storage(d);
  d->v.version++;
  return 0;
}

/* ---- copies and batches ---------------------------------------------- */

static int copy_dict(const edgert_dict_t *src, edgert_dict_t **out) {
  edgert_dict_t *d;
  int rc = edgert_dict_new(src->kt, src->vt, &d);
  if (rc < 0)
    return rc;
  d->cache_mode = src->cache_mode;
  d->v.cache_active = src->cache_mode != EDGERT_DICT_CACHE_OFF;
  d->hasher = src->hasher;
  d->hasher_ud = src->hasher_ud;
  if (src->v.len == 0) {
    *out = d;
    return 0;
  }
  if (reserve_raw(d, src->v.len) < 0)
    goto fail;
  memcpy(d->v.keys, src->v.keys, src->v.len * src->ksize);
  memcpy(d->v.values, src->v.values, src->v.len * src->v.vsize);
  if (src->khashed)
    memcpy(d->v.hashes, src->v.hashes, src->v.len * sizeof(uint64_t));
  /* Deep-copy var data. The aliases of src's data are zeroed first, so a
   * failure part way leaves only owned (or NULL) data to free. */
  if (src->kvar)
    memset(d->v.keys, 0, src->v.len * src->ksize);
  if (src->vvar)
    memset(d->v.values, 0, src->v.len * src->v.vsize);
  d->v.len = src->v.len;
  for (size_t e = 0; e < src->v.len; e++) {
    if (src->kvar) {
      const edgert_bytes_t *o = (const edgert_bytes_t *)(const void *)(src->v.keys + e * src->ksize);
      if (copy_bytes((edgert_bytes_t *)(void *)(d->v.keys + e * d->ksize), o) < 0)
        goto fail;
      d->heap_bytes += o->len + 1;
    }
    if (src->vvar) {
      const edgert_bytes_t *o =
          (const edgert_bytes_t *)(const void *)(src->v.values + e * src->v.vsize);
      if (copy_bytes((edgert_bytes_t *)(void *)(d->v.values + e * d->v.vsize), o) < 0)
        goto fail;
      d->heap_bytes += o->len + 1;
    }
  }
  d->v.len = src->v.len;
  if (rebuild_index(d, d->v.icap) < 0)
    goto fail;
  *out = d;
  return 0;
fail:
  edgert_dict_free(d);
  return edgert__error(EDGERT_ENOMEM, "dict: out of memory copying %zu entries", src->v.len);
}

int edgert_dict_copy(const edgert_dict_t *d, edgert_dict_t **out) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  return copy_dict(d, out);
}

int edgert_dict_set_many(edgert_dict_t *d, const void *keys, const void *values, size_t n) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (EDGERT__UNLIKELY(n > 0 && (keys == NULL || values == NULL)))
    return edgert__error(EDGERT_EINVAL, "edgert_dict_set_many: %s is NULL (with n = %zu)",
                         keys == NULL ? "keys" : "values", n);
  if (n == 0)
    return 0;
  const unsigned char *ks = keys, *vs = values;
  if (bools_ok(d, keys, values, n) < 0)
    return EDGERT_EINVAL;
  /* Make room for every key being new, and copy all str/bytes data first:
   * after that nothing can fail. */
  if (d->pins) {
    for (size_t i = 0; i < n; i++)
      if (d->v.len == 0 || probe(d, ks + i * d->ksize, hash_key(d, ks + i * d->ksize), NULL) < 0)
        return edgert__error(EDGERT_EBUSY,
                             "dict: cannot insert while its values buffer is exported");
  } else if (d->v.len + n > d->ilimit || d->v.len + n > d->ecap) {
    if (d->v.len + n < d->v.len || d->v.len + n > EDGERT_DICT_MAX_LEN)
      return edgert__error(EDGERT_ELIMIT, "dict: too many entries");
    int rc = reserve_raw(d, d->v.len + n);
    if (rc < 0)
      return rc;
  }
  edgert_bytes_t *kc = NULL, *vc = NULL;
  if (d->kvar || d->vvar) {
    kc = d->kvar ? edgert__calloc(n, sizeof *kc) : NULL;
    vc = d->vvar ? edgert__calloc(n, sizeof *vc) : NULL;
    if ((d->kvar && kc == NULL) || (d->vvar && vc == NULL))
      goto oom;
    for (size_t i = 0; i < n; i++) {
      if (d->kvar && copy_bytes(&kc[i], (const edgert_bytes_t *)(const void *)(ks + i * d->ksize)) < 0)
        goto oom;
      if (d->vvar && copy_bytes(&vc[i], (const edgert_bytes_t *)(const void *)(vs + i * d->v.vsize)) < 0)
        goto oom;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const void *key = ks + i * d->ksize;
    uint64_t h = hash_key(d, key);
    size_t slot = 0;
    /* The index exists: either entries exist or reserve_raw made it. */
    ptrdiff_t e = probe(d, key, h, &slot);
    if (e < 0)
      e = (ptrdiff_t)append_entry(d, key, d->kvar ? &kc[i] : NULL, h, slot);
    else if (d->kvar)
      edgert_bytes_release(&kc[i]);
    unsigned char *v = d->v.values + (size_t)e * d->v.vsize;
    if (d->vvar) {
      edgert_bytes_t *old = (edgert_bytes_t *)(void *)v;
      d->heap_bytes -= old->data ? old->len + 1 : 0;
      edgert_bytes_release(old);
      *old = vc[i];
      d->heap_bytes += vc[i].len + 1;
    } else {
      memcpy(v, vs + i * d->v.vsize, d->v.vsize);
    }
  }
  edgert__free(kc);
  edgert__free(vc);
  return 0;
oom:
  for (size_t i = 0; i < n; i++) {
    if (kc)
      edgert_bytes_release(&kc[i]);
    if (vc)
      edgert_bytes_release(&vc[i]);
  }
  edgert__free(kc);
  edgert__free(vc);
  return edgert__error(EDGERT_ENOMEM, "dict: out of memory in set_many");
}

int edgert_dict_get_many(edgert_dict_t *d, const void *keys, size_t n, void *values_out,
                         const void *dflt, size_t *missing_at) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (EDGERT__UNLIKELY(n > 0 && (keys == NULL || values_out == NULL)))
    return edgert__error(EDGERT_EINVAL, "edgert_dict_get_many: %s is NULL (with n = %zu)",
                         keys == NULL ? "keys" : "values_out", n);
  const unsigned char *ks = keys;
  unsigned char *out = values_out;
  size_t vsz = d->v.vsize;
  if (d->kkind == EDGERT_KIND_INT64 && d->v.len > 0) {
    const int64_t *ik = keys;
    for (size_t i = 0; i < n; i++) {
      ptrdiff_t e = probe_i64(d, ik[i], hash_u64((uint64_t)ik[i]));
      if (e >= 0 && vsz == 8) {
        memcpy(out + i * 8, d->v.values + (size_t)e * 8, 8);
      } else if (e >= 0) {
        memcpy(out + i * vsz, d->v.values + (size_t)e * vsz, vsz);
      } else if (dflt) {
        memcpy(out + i * vsz, dflt, vsz);
      } else {
        if (missing_at)
          *missing_at = i;
        return edgert__error(EDGERT_EKEY, "key %lld not found in the dict", (long long)ik[i]);
      }
    }
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const void *key = ks + i * d->ksize;
    ptrdiff_t e = d->v.len ? probe(d, key, hash_key(d, key), NULL) : -1;
    if (e >= 0) {
      memcpy(out + i * vsz, d->v.values + (size_t)e * vsz, vsz);
    } else if (dflt) {
      memcpy(out + i * vsz, dflt, vsz);
    } else {
      if (missing_at)
        *missing_at = i;
      return edgert__error(EDGERT_EKEY, "key number %zu not found in the dict", i);
    }
  }
  return 0;
}

/* ---- dense access, pins, iteration ----------------------------------- */

const void *edgert_dict_key_at(const edgert_dict_t *d, size_t i) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return i < d->v.len ? d->v.keys + i * d->ksize : NULL;
}
void *edgert_dict_value_at(edgert_dict_t *d, size_t i) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return i < d->v.len ? d->v.values + i * d->v.vsize : NULL;
}
void *edgert_dict_values(edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, NULL);
  return d->v.len ? d->v.values : NULL;
}

void edgert_dict_pin(edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, );
  d->pins++;
}
int edgert_dict_unpin(edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, EDGERT_EINVAL);
  if (d->pins == 0)
    return edgert__error(EDGERT_EINVAL, "edgert_dict_unpin: the dict is not pinned (each unpin "
                                        "must match an earlier edgert_dict_pin)");
  d->pins--;
  return 0;
}
unsigned edgert_dict_pins(const edgert_dict_t *d) {
  EDGERT__RETURN_IF_NULL(d, 0);
  return d->pins;
}

void edgert_dict_iter_init(edgert_dict_t *d, edgert_dict_iter_t *it) {
  EDGERT__RETURN_IF_NULL(it, );
  it->dict = d;
  it->pos = 0;
  if (EDGERT__UNLIKELY(d == NULL)) {
    /* An iterator over no dict is at its end (see iter_next). */
    it->version = 0;
    edgert__null_arg(__func__, "d");
    return;
  }
  it->version = d->v.version;
}

/* One step of an iterator, from the front or (reverse) from the back: the
 * entry it->pos places from that end. */
static inline int iter_step(edgert_dict_iter_t *it, const void **key, void **value,
                            int reverse) {
  edgert_dict_t *d = it->dict;
  if (EDGERT__UNLIKELY(d == NULL))
    return 0;
  if (d->v.version != it->version)
    return edgert__error(EDGERT_ECHANGED, "dictionary changed size during iteration");
  if (it->pos >= d->v.len)
    return 0;
  size_t e = reverse ? d->v.len - 1 - it->pos++ : it->pos++;
  if (key)
    *key = d->v.keys + e * d->ksize;
  if (value)
    *value = d->v.values + e * d->v.vsize;
  return 1;
}

int edgert_dict_iter_next(edgert_dict_iter_t *it, const void **key, void **value) {
  EDGERT__RETURN_IF_NULL(it, EDGERT_EINVAL);
  return iter_step(it, key, value, 0);
}

int edgert_dict_iter_prev(edgert_dict_iter_t *it, const void **key, void **value) {
  EDGERT__RETURN_IF_NULL(it, EDGERT_EINVAL);
  return iter_step(it, key, value, 1);
}
