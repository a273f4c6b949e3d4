/*
 * edgert/dict.h: a hash map with one key type and one value type, both
 * stored inline (see edgert/types.h for the representations).
 *
 * Entries are dense: entry i (0 <= i < len) has its key at
 * edgert_dict_key_at(d, i) and its value at edgert_dict_value_at(d, i), and
 * the values form one contiguous array (edgert_dict_values()), in iteration
 * order. Deleting an entry moves the last entry into its place, so deletes
 * change the order of the remaining entries.
 *
 * Keys are passed by pointer to their C representation (int64_t *, double *,
 * unsigned char * for bool, edgert_bytes_t * for str and bytes, the inline
 * bytes for a custom type, compared bitwise). Float keys compare as C
 * doubles (0.0 == -0.0, a NaN matches nothing). The dict copies every key
 * and value it stores, str and bytes data included.
 *
 * Version tag: edgert_dict_version() changes on every insert of a new key,
 * every delete and every resize (not when an existing key's value is
 * replaced). Iterators record it and fail with EDGERT_ECHANGED when it
 * moved; the inline cache (a ring of the last EDGERT_DICT_CACHE_SLOTS
 * lookups, keyed by hash and, for str/bytes keys, by where the caller's key
 * bytes were) is invalidated by it.
 *
 * Pinning (edgert_dict_pin) keeps the values array where it is: while
 * pinned, anything that would add or remove an entry or reallocate fails
 * with EDGERT_EBUSY and changes nothing.
 *
 * No function here runs foreign code, except a hasher the host installed
 * with edgert_dict_set_hasher. A dict is not thread-safe: callers
 * serialize access (the Python binding does so with the GIL).
 *
 * NULL: a NULL dict handle or required pointer is refused, never
 * dereferenced: int-returning functions return EDGERT_EINVAL, the
 * pointer-returning ones NULL (setting *err to EDGERT_EINVAL where they
 * have one), and each leaves a message naming the function and the
 * argument (edgert_last_error()). Getters, void functions and
 * edgert_dict_index say what they do instead. Pointers documented as
 * optional, and arrays when their count is 0, may be NULL. The static
 * inline lookups check nothing: their arguments must not be NULL.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_DICT_H
#define EDGERT_DICT_H

#include "common.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgert_dict_s edgert_dict_t;

#define EDGERT_DICT_CACHE_SLOTS 4
/* Most entries a dict holds (its index stores 31-bit entry numbers). */
#define EDGERT_DICT_MAX_LEN ((size_t)0x7FFFFFF0u)

/*
 * The read-only view the inline lookups below use: the dict keeps it
 * current (it is part of the dict; edgert_dict_view() returns the same
 * pointer for the dict's whole life). Its layout is part of this header's
 * contract for the inline functions only; treat every field as read-only.
 */
typedef struct edgert_dict_view_s {
  uint32_t *index;       /* icap slots: 0, or (tag << ebits) | (entry + 1) */
  size_t icap;
  uint32_t emask, tagmask;
  unsigned ebits;
  unsigned char *keys;   /* dense key array */
  unsigned char *values; /* dense value array */
  size_t vsize;          /* inline value size */
  size_t len;
  uint64_t *hashes;      /* str/bytes/custom keys: each entry's hash */
  int cache_active;      /* whether the inline cache is being consulted: a host
                            that wants it used calls the non-inline finds then */
  uint64_t version;      /* the version tag (edgert_dict_version) */
} edgert_dict_view_t;

/* What edgert_dict_probe_i64_inline found out about an absent key. */
typedef struct edgert_dict_probe_s {
  size_t slot;      /* the empty index slot where the key would go */
  uint64_t version; /* the dict's version when probed */
} edgert_dict_probe_t;

/*
 * A new empty dict. Returns 0 with *out set (free with edgert_dict_free),
 * EDGERT_EINVAL (NULL arguments) or EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_dict_new(const edgert_type_t *key_type,
                                  const edgert_type_t *value_type, edgert_dict_t **out);
/* Frees the dict and everything it owns. NULL does nothing. */
EDGERT_EXTERN void edgert_dict_free(edgert_dict_t *d);

/* Getters. For a NULL handle (message set): the types NULL, the numbers 0. */
EDGERT_EXTERN const edgert_type_t *edgert_dict_key_type(const edgert_dict_t *d);
EDGERT_EXTERN const edgert_type_t *edgert_dict_value_type(const edgert_dict_t *d);
EDGERT_EXTERN size_t edgert_dict_len(const edgert_dict_t *d);
EDGERT_EXTERN uint64_t edgert_dict_version(const edgert_dict_t *d);
/* Bytes the dict owns (its arrays and its str/bytes data), struct included. */
EDGERT_EXTERN size_t edgert_dict_memory(const edgert_dict_t *d);

/*
 * Lookups. edgert_dict_find returns a pointer to the value stored for `key`
 * (borrowed: valid until the next insert, delete, resize or free; writing a
 * fixed-size value through it is allowed), or NULL when the key is absent.
 * edgert_dict_find_i64 is the same for int64 keys (the key type must be
 * int64). edgert_dict_find_tagged uses `tag` instead of the dict's own hash
 * as the inline cache's key, so a host with a cheaper hash of its own (e.g.
 * a cached one) skips hashing on a cache hit; any tag is safe, since every
 * cache hit is confirmed by comparing keys.
 */
EDGERT_EXTERN void *edgert_dict_find(edgert_dict_t *d, const void *key);
EDGERT_EXTERN void *edgert_dict_find_i64(edgert_dict_t *d, int64_t key);
EDGERT_EXTERN void *edgert_dict_find_tagged(edgert_dict_t *d, const void *key, uint64_t tag);
/*
 * A host hash for str/bytes keys. By default the dict hashes their bytes
 * itself; a host that already holds a hash of its own for its key objects
 * (Python caches one in every str) installs it here, while the dict is
 * empty, and then passes that hash to the *_hashed calls, so no lookup
 * hashes anything. `fn(data, len, ud)` must be deterministic for the life
 * of the dict and is still called by the unhashed calls (and set_many);
 * a dict's copy keeps it; a NULL `fn` restores the dict's own hash.
 * Returns 0, EDGERT_ETYPE (keys not str/bytes) or EDGERT_EINVAL (not empty,
 * or `d` NULL). Foreign code: `fn` runs inside later calls.
 */
typedef uint64_t (*edgert_dict_hash_fn)(const char *data, size_t len, void *ud);
EDGERT_EXTERN int edgert_dict_set_hasher(edgert_dict_t *d, edgert_dict_hash_fn fn, void *ud);
/* find / set / pop with the key's hash given: `hash` must be what the
 * dict's hasher returns for the key. Same results and codes otherwise. */
EDGERT_EXTERN void *edgert_dict_find_hashed(edgert_dict_t *d, const void *key, uint64_t hash);
EDGERT_EXTERN int edgert_dict_set_hashed(edgert_dict_t *d, const void *key, uint64_t hash,
                                         const void *value);
EDGERT_EXTERN int edgert_dict_pop_hashed(edgert_dict_t *d, const void *key, uint64_t hash,
                                         void *value_out);
/* Entry number of `key` (0 .. len-1), or -1 when absent (and, with the
 * message set, when `d` or `key` is NULL). */
EDGERT_EXTERN ptrdiff_t edgert_dict_index(edgert_dict_t *d, const void *key);

/* The dict's view: never NULL for a valid handle (and stable for the dict's
 * life); NULL, with the message set, for a NULL handle. */
EDGERT_EXTERN const edgert_dict_view_t *edgert_dict_view(const edgert_dict_t *d);

/*
 * edgert_dict_find_i64 without a function call, for hot loops in hosts
 * (int64 keys only). Same result; it neither consults nor counts the inline
 * cache, so a host that wants the cache used (view->cache_active) calls
 * edgert_dict_find_i64 while it is active. Like every inline function here
 * it checks nothing: `v` (and `p`, `data` below) must not be NULL.
 */
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 edgert__u128; /* quiet under -pedantic */
static inline void *edgert_dict_find_i64_inline(const edgert_dict_view_t *v, int64_t key) {
  if (v->len == 0)
    return NULL;
  uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(((edgert__u128)h * v->icap) >> 64);
  uint32_t tag = ((uint32_t)(h >> 16) & v->tagmask) << v->ebits;
  uint32_t tmask = ~v->emask;
  const int64_t *keys = (const int64_t *)(const void *)v->keys;
  for (;;) {
    uint32_t s = v->index[i];
    if (s == 0)
      return NULL;
    if ((s & tmask) == tag) {
      size_t e = (s & v->emask) - 1;
      if (keys[e] == key)
        return v->values + e * v->vsize;
    }
    if (++i == v->icap)
      i = 0;
  }
}

/*
 * The same lookup, remembering where an absent key would go, so that
 * edgert_dict_insert_i64_probed can insert it without probing again.
 */
static inline void *edgert_dict_probe_i64_inline(const edgert_dict_view_t *v, int64_t key,
                                                 edgert_dict_probe_t *p) {
  p->version = v->version;
  p->slot = (size_t)-1;
  if (v->index == NULL)
    return NULL;
  uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(((edgert__u128)h * v->icap) >> 64);
  uint32_t tag = ((uint32_t)(h >> 16) & v->tagmask) << v->ebits;
  uint32_t tmask = ~v->emask;
  const int64_t *keys = (const int64_t *)(const void *)v->keys;
  for (;;) {
    uint32_t s = v->index[i];
    if (s == 0) {
      p->slot = i;
      return NULL;
    }
    if ((s & tmask) == tag) {
      size_t e = (s & v->emask) - 1;
      if (keys[e] == key)
        return v->values + e * v->vsize;
    }
    if (++i == v->icap)
      i = 0;
  }
}

/*
 * edgert_dict_find_hashed for str/bytes keys without a function call:
 * `data`/`len` the key's bytes, `hash` the dict's hash of them.
 */
static inline void *edgert_dict_find_bytes_inline(const edgert_dict_view_t *v,
                                                  const char *data, size_t len,
                                                  uint64_t hash) {
  if (v->len == 0)
    return NULL;
  size_t i = (size_t)(((edgert__u128)hash * v->icap) >> 64);
  uint32_t tag = ((uint32_t)(hash >> 16) & v->tagmask) << v->ebits;
  uint32_t tmask = ~v->emask;
  const edgert_bytes_t *keys = (const edgert_bytes_t *)(const void *)v->keys;
  for (;;) {
    uint32_t s = v->index[i];
    if (s == 0)
      return NULL;
    if ((s & tmask) == tag) {
      size_t e = (s & v->emask) - 1;
      if (keys[e].len == len) { /* the tag already matched: compare the bytes */
        const char *a = keys[e].data;
        uint64_t x, y;
        if (len >= 8) {
          /* 8 bytes at a time; the last word overlaps the one before. */
          size_t k = 0;
          for (; k + 8 < len; k += 8) {
            __builtin_memcpy(&x, a + k, 8);
            __builtin_memcpy(&y, data + k, 8);
            if (x != y)
              goto next;
          }
          __builtin_memcpy(&x, a + len - 8, 8);
          __builtin_memcpy(&y, data + len - 8, 8);
          if (x == y)
            return v->values + e * v->vsize;
        } else {
          size_t k = 0;
          while (k < len && a[k] == data[k])
            k++;
          if (k == len)
            return v->values + e * v->vsize;
        }
      }
    }
  next:
    if (++i == v->icap)
      i = 0;
  }
}
#else
#define edgert_dict_find_i64_inline(v, key) edgert_dict_find_i64((edgert_dict_t *)(void *)(v), (key))
#define edgert_dict_probe_i64_inline(v, key, p)                                             \
  ((p)->slot = (size_t)-1, (p)->version = (v)->version,                                    \
   edgert_dict_find_i64((edgert_dict_t *)(void *)(v), (key)))
#define edgert_dict_find_bytes_inline(v, data, len, hash)                                   \
  edgert_dict_find_hashed((edgert_dict_t *)(void *)(v),                                   \
                          &(edgert_bytes_t){(char *)(data), (len)}, (hash))
#endif

/*
 * Copies the value for `key` to *value_out (for str/bytes values the
 * descriptor borrows the dict's data). 0, EDGERT_EKEY, or EDGERT_EINVAL
 * (`d`, `key` or `value_out` NULL).
 */
EDGERT_EXTERN int edgert_dict_get(edgert_dict_t *d, const void *key, void *value_out);

/*
 * Sets `key` to a copy of `value`, inserting the key if absent.
 * Returns 0, EDGERT_EBUSY (pinned and the key is new), EDGERT_ELIMIT,
 * EDGERT_ENOMEM, or EDGERT_EINVAL for a bool key or value that is not the
 * byte 0 or 1 ("dict value: a bool is 0 or 1, not 7 (item 0)": the bool
 * rule, also kept by set_hashed, set_many and upsert's key); on failure the
 * dict is unchanged.
 */
EDGERT_EXTERN int edgert_dict_set(edgert_dict_t *d, const void *key, const void *value);

/*
 * Finds `key` or inserts it with a zero-filled value, and returns the value
 * slot to fill (borrowed, as for find) with *inserted set to 1 for a new
 * key (`inserted` and `err` are optional); a bool key must be 0 or 1
 * (EDGERT_EINVAL), and a bool value written into the slot is the caller's
 * to keep 0 or 1. Fixed-size value types only
 * (EDGERT_ETYPE for str/bytes values). NULL on failure (EDGERT_EBUSY,
 * EDGERT_ELIMIT, EDGERT_ENOMEM, EDGERT_ETYPE, EDGERT_EINVAL for a NULL `d` or
 * `key`, in *err when err is not NULL), dict unchanged.
 */
EDGERT_EXTERN void *edgert_dict_upsert(edgert_dict_t *d, const void *key, int *inserted,
                                       int *err);
EDGERT_EXTERN void *edgert_dict_upsert_i64(edgert_dict_t *d, int64_t key, int *inserted,
                                           int *err);

/*
 * Inserts int64 `key`, which `p` (from edgert_dict_probe_i64_inline on this
 * dict) found absent, with a zero value, and returns its value slot. When
 * the dict changed since the probe, or must grow, or `p` is NULL, it works
 * as edgert_dict_upsert_i64. `p` must come from a probe of this very key:
 * the dict checks that it is still current, not that it was for this key
 * (`p` and `err` are optional).
 * NULL on failure with *err set (as upsert), dict unchanged.
 */
EDGERT_EXTERN void *edgert_dict_insert_i64_probed(edgert_dict_t *d, int64_t key,
                                                  const edgert_dict_probe_t *p, int *err);

/*
 * Removes `key`. edgert_dict_pop moves its value to *value_out first (the
 * caller then owns str/bytes data; NULL value_out discards it).
 * 0, EDGERT_EKEY or EDGERT_EBUSY.
 */
EDGERT_EXTERN int edgert_dict_del(edgert_dict_t *d, const void *key);
EDGERT_EXTERN int edgert_dict_pop(edgert_dict_t *d, const void *key, void *value_out);
/*
 * Removes the last entry, moving its key and value out (caller owns
 * str/bytes data; NULL discards). 0, EDGERT_EKEY when empty, EDGERT_EBUSY.
 */
EDGERT_EXTERN int edgert_dict_popitem(edgert_dict_t *d, void *key_out, void *value_out);
/* Removes everything and releases the storage. 0 or EDGERT_EBUSY. */
EDGERT_EXTERN int edgert_dict_clear(edgert_dict_t *d);
/* Makes room for `n` entries in total. 0, EDGERT_EBUSY, EDGERT_ELIMIT, EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_dict_reserve(edgert_dict_t *d, size_t n);
/* A deep copy (new version tag, empty cache). 0 or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_dict_copy(const edgert_dict_t *d, edgert_dict_t **out);

/*
 * Batch operations over arrays of C representations. set_many sets
 * keys[i] to values[i] for i in order (a repeated key: the last wins), all
 * or nothing: on failure (EDGERT_EBUSY, EDGERT_ELIMIT, EDGERT_ENOMEM,
 * EDGERT_EINVAL for a bool key or value not 0 or 1) the dict is unchanged. get_many copies the value of each keys[i] to
 * values_out[i]; an absent key gets a copy of *dflt, or, with dflt NULL,
 * stops with EDGERT_EKEY and *missing_at = i (values before i are written;
 * `missing_at` is optional). str/bytes values are copied as borrowed
 * descriptors. The arrays may be NULL when n is 0 (EDGERT_EINVAL otherwise).
 */
EDGERT_EXTERN int edgert_dict_set_many(edgert_dict_t *d, const void *keys, const void *values,
                                       size_t n);
EDGERT_EXTERN int edgert_dict_get_many(edgert_dict_t *d, const void *keys, size_t n,
                                       void *values_out, const void *dflt, size_t *missing_at);

/* Dense storage, borrowed, valid until the next insert/delete/resize.
 * NULL when i >= len (and, with the message set, for a NULL handle). */
EDGERT_EXTERN const void *edgert_dict_key_at(const edgert_dict_t *d, size_t i);
EDGERT_EXTERN void *edgert_dict_value_at(edgert_dict_t *d, size_t i);
/* The values array: len values of the value type's inline size; NULL when empty. */
EDGERT_EXTERN void *edgert_dict_values(edgert_dict_t *d);

/* Pin counting (see above). unpin returns EDGERT_EINVAL if not pinned.
 * With a NULL handle: pin does nothing but set the message (it has no return
 * value to report with), unpin returns EDGERT_EINVAL, pins returns 0. */
EDGERT_EXTERN void edgert_dict_pin(edgert_dict_t *d);
EDGERT_EXTERN int edgert_dict_unpin(edgert_dict_t *d);
EDGERT_EXTERN unsigned edgert_dict_pins(const edgert_dict_t *d);

/* Iteration: keys and values in entry order. Any insert or delete during
 * iteration makes the next step fail with EDGERT_ECHANGED. iter_init with a
 * NULL dict sets the message and leaves `it` at its end (iter_next returns
 * 0, as for a zero-filled iterator); with a NULL `it` it only sets the
 * message. */
typedef struct edgert_dict_iter_s {
  edgert_dict_t *dict;
  size_t pos;
  uint64_t version;
} edgert_dict_iter_t;
EDGERT_EXTERN void edgert_dict_iter_init(edgert_dict_t *d, edgert_dict_iter_t *it);
/* 1 with *key and *value set (borrowed; either may be NULL), 0 at the end,
 * EDGERT_ECHANGED, or EDGERT_EINVAL for a NULL `it`. */
EDGERT_EXTERN int edgert_dict_iter_next(edgert_dict_iter_t *it, const void **key,
                                        void **value);
/* Reverse iteration (Python's reversed(d)): from an iterator fresh from
 * edgert_dict_iter_init, each call gives the entry before the one it gave
 * last, starting at the last entry; `pos` counts the entries given. Returns
 * as iter_next. Do not mix iter_next and iter_prev on one iterator. */
EDGERT_EXTERN int edgert_dict_iter_prev(edgert_dict_iter_t *it, const void **key,
                                        void **value);

/*
 * The inline cache. OFF: never consulted. ON: every find consults it.
 * AUTO (the default): consulted while it hits on at least a quarter of the
 * lookups of a 256-lookup window; after a poor window it is bypassed for
 * 65536 lookups and then tried again, so it cannot make a lookup-heavy
 * workload that does not repeat keys measurably slower.
 */
enum { EDGERT_DICT_CACHE_OFF = 0, EDGERT_DICT_CACHE_ON = 1, EDGERT_DICT_CACHE_AUTO = 2 };
/* 0 or EDGERT_EINVAL for an unknown mode. Resets the counters. */
EDGERT_EXTERN int edgert_dict_set_cache(edgert_dict_t *d, int mode);
typedef struct edgert_dict_cache_stats_s {
  uint64_t hits;     /* lookups answered from the ring */
  uint64_t misses;   /* lookups that consulted the ring and went on to the table */
  uint64_t bypassed; /* lookups that skipped the ring while AUTO was idle */
  int mode;          /* EDGERT_DICT_CACHE_* */
  int active;        /* whether the ring is consulted right now */
} edgert_dict_cache_stats_t;
/* Fills *out. A NULL `d` zero-fills *out and sets the message; a NULL `out`
 * only sets the message. */
EDGERT_EXTERN void edgert_dict_cache_stats(const edgert_dict_t *d,
                                           edgert_dict_cache_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_DICT_H */
