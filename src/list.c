/*
 * list.c: the typed list.
 *
 * Invariants: `data` holds `cap` slots of `itemsize` bytes, the first `len` of
 * them elements (len <= cap; data is NULL only when cap == 0). The list owns
 * the data of every str/bytes element it holds, and nothing beyond `len`.
 * While pins > 0 neither `data` nor `len` changes. Every failing operation
 * leaves the list as it was: anything that can fail (allocating room,
 * copying str/bytes data) happens before the first element is touched.
 * A bool list holds only the bytes 0 and 1: every entry point that writes
 * items (set, append, insert, splice, the strided assignment) refuses any
 * other byte with EDGERT_EINVAL before it writes anything.
 *
 * Every public function refuses a NULL list handle or required pointer
 * before touching anything (EDGERT_EINVAL, or the NULL/0 the header names,
 * with a message naming the function and the argument).
 */
#include "internal.h"

#include <string.h>

struct edgert_list_s {
  edgert_list_view_t v; /* first: data, len, itemsize, for inline readers */
  const edgert_type_t *type;
  edgert_kind_t kind;
  int var; /* str/bytes */
  size_t cap;
  unsigned pins;
  size_t heap_bytes;
  int shared; /* storage in shared regions (edgert_isolate_shm_alloc) */
};

/* Frees the storage of l, wherever it lives. */
static void data_free(edgert_list_t *l, void *data) {
  if (l->shared)
    edgert_isolate_shm_free(data);
  else
    edgert__free(data);
}

#define LIST_MAX_LEN ((size_t)PTRDIFF_MAX / EDGERT_TYPE_MAX_SIZE)

static int list_new(const edgert_type_t *item_type, size_t reserve, int shared,
                    edgert_list_t **out) {
  const char *who = shared ? "edgert_list_new_shared" : "edgert_list_new";
  if (item_type == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "%s: type and out must not be NULL", who);
  edgert_kind_t kind = edgert_type_kind(item_type);
  if (shared && (kind == EDGERT_KIND_STR || kind == EDGERT_KIND_BYTES))
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "edgert_list_new_shared: items of type '%s' hold pointers into this "
                         "process, which a worker cannot follow: only inline value types "
                         "can be shared",
                         edgert_type_name(item_type));
  int rc0 = edgert__type_acquire(item_type, who);
  if (rc0 < 0)
    return rc0;
  edgert_list_t *l = edgert__calloc(1, sizeof *l);
  if (l == NULL) {
    edgert__type_release(item_type);
    return edgert__error(EDGERT_ENOMEM, "list: out of memory");
  }
  l->type = item_type;
  l->shared = shared;
  l->kind = edgert_type_kind(item_type);
  l->var = l->kind == EDGERT_KIND_STR || l->kind == EDGERT_KIND_BYTES;
  l->v.itemsize = edgert_type_size(item_type);
  if (reserve > 0) {
    int rc = edgert_list_reserve(l, reserve);
    if (rc < 0) {
      edgert__free(l);
      edgert__type_release(item_type);
      return rc;
    }
  }
  *out = l;
  return 0;
}

int edgert_list_new(const edgert_type_t *item_type, size_t reserve, edgert_list_t **out) {
  return list_new(item_type, reserve, 0, out);
}

int edgert_list_new_shared(const edgert_type_t *item_type, size_t reserve,
                           edgert_list_t **out) {
  return list_new(item_type, reserve, 1, out);
}

int edgert_list_is_shared(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return l->shared;
}

static void release_range(edgert_list_t *l, size_t from, size_t to) {
  if (!l->var)
    return;
  for (size_t i = from; i < to; i++) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)(l->v.data + i * l->v.itemsize);
    l->heap_bytes -= b->data ? b->len + 1 : 0;
    edgert_bytes_release(b);
  }
}

void edgert_list_free(edgert_list_t *l) {
  if (l == NULL)
    return;
  release_range(l, 0, l->v.len);
  data_free(l, l->v.data);
  edgert__type_release(l->type);
  edgert__free(l);
}

const edgert_list_view_t *edgert_list_view(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, NULL);
  return &l->v;
}
const edgert_type_t *edgert_list_type(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, NULL);
  return l->type;
}
size_t edgert_list_len(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return l->v.len;
}
size_t edgert_list_capacity(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return l->cap;
}
size_t edgert_list_itemsize(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return l->v.itemsize;
}
size_t edgert_list_memory(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return sizeof *l + l->cap * l->v.itemsize + l->heap_bytes;
}
void *edgert_list_data(edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, NULL);
  return l->v.data;
}
void *edgert_list_at(edgert_list_t *l, size_t i) {
  EDGERT__RETURN_IF_NULL(l, NULL);
  return i < l->v.len ? l->v.data + i * l->v.itemsize : NULL;
}

/* Sets the capacity to exactly `cap` (>= len). */
static int set_capacity(edgert_list_t *l, size_t cap) {
  if (cap > LIST_MAX_LEN)
    return edgert__error(EDGERT_ELIMIT, "list: %zu elements is more than a list holds", cap);
  if (l->shared) { /* a new region and a copy: regions do not grow */
    void *q = NULL;
    if (cap > 0) {
      int rc = edgert_isolate_shm_alloc(cap * l->v.itemsize, &q);
      if (rc != 0)
        return rc;
      size_t keep = l->v.len < cap ? l->v.len : cap;
      if (keep > 0)
        memcpy(q, l->v.data, keep * l->v.itemsize);
    }
    edgert_isolate_shm_free(l->v.data);
    l->v.data = q;
    l->cap = cap;
    return 0;
  }
  void *p = edgert__realloc(l->v.data, cap * l->v.itemsize);
  if (p == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory growing to %zu elements", cap);
  l->v.data = p;
  l->cap = cap;
  return 0;
}

/* Room for `need` elements, growing geometrically. */
static int grow(edgert_list_t *l, size_t need) {
  if (need <= l->cap)
    return 0;
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  size_t cap = l->cap < 4 ? 4 : l->cap < 65536 ? l->cap + l->cap / 2 : l->cap + l->cap / 16;
  if (cap < need)
    cap = need;
  return set_capacity(l, cap);
}

int edgert_list_reserve(edgert_list_t *l, size_t n) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (n <= l->cap)
    return 0;
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  return set_capacity(l, n);
}

static int copy_bytes(edgert_bytes_t *dst, const edgert_bytes_t *src) {
  char *p = edgert__malloc(src->len + 1);
  if (p == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory copying %zu bytes", src->len);
  if (src->len)
    memcpy(p, src->data, src->len);
  p[src->len] = '\0';
  dst->data = p;
  dst->len = src->len;
  return 0;
}

int edgert_list_get(const edgert_list_t *l, size_t i, void *out) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  if (i >= l->v.len)
    return edgert__error(EDGERT_ERANGE, "list index %zu out of range (length %zu)", i, l->v.len);
  memcpy(out, l->v.data + i * l->v.itemsize, l->v.itemsize);
  return 0;
}

int edgert_list_set(edgert_list_t *l, size_t i, const void *value) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value, EDGERT_EINVAL);
  if (i >= l->v.len)
    return edgert__error(EDGERT_ERANGE, "list assignment index %zu out of range (length %zu)",
                         i, l->v.len);
  if (l->kind == EDGERT_KIND_BOOL && edgert__bool_items(value, 1, 1, "list") < 0)
    return EDGERT_EINVAL;
  unsigned char *slot = l->v.data + i * l->v.itemsize;
  if (l->var) {
    edgert_bytes_t nb;
    if (copy_bytes(&nb, value) < 0)
      return EDGERT_ENOMEM;
    edgert_bytes_t *old = (edgert_bytes_t *)(void *)slot;
    l->heap_bytes -= old->data ? old->len + 1 : 0;
    edgert_bytes_release(old);
    *old = nb;
    l->heap_bytes += nb.len + 1;
  } else {
    memmove(slot, value, l->v.itemsize);
  }
  return 0;
}

int edgert_list_append(edgert_list_t *l, const void *value) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value, EDGERT_EINVAL);
  if (EDGERT__LIKELY(l->v.len < l->cap && !l->var && !l->pins &&
                     (l->kind != EDGERT_KIND_BOOL || *(const unsigned char *)value <= 1))) {
    memcpy(l->v.data + l->v.len * l->v.itemsize, value, l->v.itemsize);
    l->v.len++;
    return 0;
  }
  return edgert_list_splice(l, l->v.len, 0, value, 1);
}

int edgert_list_insert(edgert_list_t *l, size_t i, const void *value) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(value, EDGERT_EINVAL);
  if (i > l->v.len)
    i = l->v.len;
  return edgert_list_splice(l, i, 0, value, 1);
}

int edgert_list_pop(edgert_list_t *l, size_t i, void *out) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (i >= l->v.len)
    return edgert__error(EDGERT_ERANGE, "pop index %zu out of range (length %zu)", i, l->v.len);
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  unsigned char *slot = l->v.data + i * l->v.itemsize;
  if (l->var) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)slot;
    l->heap_bytes -= b->data ? b->len + 1 : 0;
    if (out)
      memcpy(out, b, sizeof *b);
    else
      edgert_bytes_release(b);
  } else if (out) {
    memcpy(out, slot, l->v.itemsize);
  }
  memmove(slot, slot + l->v.itemsize, (l->v.len - i - 1) * l->v.itemsize);
  l->v.len--;
  return 0;
}

int edgert_list_splice(edgert_list_t *l, size_t start, size_t count, const void *items,
                       size_t n) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (EDGERT__UNLIKELY(items == NULL && n > 0))
    return edgert__error(EDGERT_EINVAL, "edgert_list_splice: items is NULL (with n = %zu)", n);
  if (start > l->v.len || count > l->v.len - start)
    return edgert__error(EDGERT_ERANGE, "list splice [%zu, %zu) out of range (length %zu)",
                         start, start + count, l->v.len);
  if (n != count && l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  if (n > LIST_MAX_LEN || l->v.len - count > LIST_MAX_LEN - n)
    return edgert__error(EDGERT_ELIMIT, "list: too many elements");
  if (l->kind == EDGERT_KIND_BOOL && edgert__bool_items(items, n, 1, "list") < 0)
    return EDGERT_EINVAL;
  size_t newlen = l->v.len - count + n;
  /* Everything that can fail first: the new elements' own copy (needed
   * for str/bytes data, and when `items` points into this list), then room. */
  unsigned char *tmp = NULL;
  const unsigned char *src = items;
  int overlaps = n > 0 && l->v.data != NULL && src < l->v.data + l->cap * l->v.itemsize &&
                 src + n * l->v.itemsize > l->v.data;
  if (n > 0 && (l->var || overlaps)) {
    tmp = edgert__malloc(n * l->v.itemsize);
    if (tmp == NULL)
      return edgert__error(EDGERT_ENOMEM, "list: out of memory copying %zu elements", n);
    if (l->var) {
      for (size_t k = 0; k < n; k++) {
        if (copy_bytes((edgert_bytes_t *)(void *)(tmp + k * l->v.itemsize),
                       (const edgert_bytes_t *)(const void *)(src + k * l->v.itemsize)) < 0) {
          for (size_t j = 0; j < k; j++)
            edgert_bytes_release((edgert_bytes_t *)(void *)(tmp + j * l->v.itemsize));
          edgert__free(tmp);
          return EDGERT_ENOMEM;
        }
      }
    } else {
      memcpy(tmp, src, n * l->v.itemsize);
    }
    src = tmp;
  }
  if (newlen > l->cap) {
    int rc = grow(l, newlen);
    if (rc < 0) {
      if (l->var)
        for (size_t j = 0; j < n; j++)
          edgert_bytes_release((edgert_bytes_t *)(void *)(tmp + j * l->v.itemsize));
      edgert__free(tmp);
      return rc;
    }
  }
  release_range(l, start, start + count);
  if (n != count)
    memmove(l->v.data + (start + n) * l->v.itemsize, l->v.data + (start + count) * l->v.itemsize,
            (l->v.len - start - count) * l->v.itemsize);
  if (n > 0)
    memcpy(l->v.data + start * l->v.itemsize, src, n * l->v.itemsize);
  if (l->var)
    for (size_t k = 0; k < n; k++)
      l->heap_bytes += ((edgert_bytes_t *)(void *)(l->v.data + (start + k) * l->v.itemsize))->len + 1;
  l->v.len = newlen;
  edgert__free(tmp);
  return 0;
}

int edgert_list_clear(edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  release_range(l, 0, l->v.len);
  data_free(l, l->v.data);
  l->v.data = NULL;
  l->v.len = l->cap = 0;
  return 0;
}

int edgert_list_reverse(edgert_list_t *l) {
  unsigned char buf[64];
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (l->v.len < 2)
    return 0;
  for (size_t i = 0, j = l->v.len - 1; i < j; i++, j--) {
    unsigned char *a = l->v.data + i * l->v.itemsize, *b = l->v.data + j * l->v.itemsize;
    for (size_t off = 0; off < l->v.itemsize; off += sizeof buf) {
      size_t n = l->v.itemsize - off < sizeof buf ? l->v.itemsize - off : sizeof buf;
      memcpy(buf, a + off, n);
      memcpy(a + off, b + off, n);
      memcpy(b + off, buf, n);
    }
  }
  return 0;
}

/* Stable bottom-up merge sort of n elements of type T with `before(a, b)`
 * meaning a must come before b (strictly). */
#define DEFINE_MERGE_SORT(name, T, BEFORE)                                                 \
  static void name(T *a, T *tmp, size_t n, int desc) {                                     \
    for (size_t width = 1; width < n; width *= 2) {                                        \
      for (size_t lo = 0; lo < n; lo += 2 * width) {                                       \
        size_t mid = lo + width < n ? lo + width : n;                                      \
        size_t hi = lo + 2 * width < n ? lo + 2 * width : n;                               \
        size_t i = lo, j = mid, k = lo;                                                    \
        while (i < mid && j < hi) {                                                        \
          /* take from the right only when it must come strictly first */                  \
          int right = desc ? BEFORE(a[i], a[j]) : BEFORE(a[j], a[i]);                      \
          tmp[k++] = right ? a[j++] : a[i++];                                              \
        }                                                                                  \
        while (i < mid)                                                                    \
          tmp[k++] = a[i++];                                                               \
        while (j < hi)                                                                     \
          tmp[k++] = a[j++];                                                               \
      }                                                                                    \
      memcpy(a, tmp, n * sizeof(T));                                                       \
    }                                                                                      \
  }

#define I64_LT(x, y) ((x) < (y))
/* NaN sorts after every number (ascending). */
#define F64_LT(x, y) ((x) < (y) || ((y) != (y) && (x) == (x)))
#define U8_LT(x, y) ((x) < (y))
DEFINE_MERGE_SORT(sort_i64, int64_t, I64_LT)
DEFINE_MERGE_SORT(sort_f64, double, F64_LT)
DEFINE_MERGE_SORT(sort_u8, unsigned char, U8_LT)

int edgert_list_sort(edgert_list_t *l, int descending) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (l->kind != EDGERT_KIND_INT64 && l->kind != EDGERT_KIND_FLOAT64 &&
      l->kind != EDGERT_KIND_BOOL)
    return edgert__error(EDGERT_ETYPE, "list: sort needs int64, float64 or bool elements, not %s",
                         edgert_type_name(l->type));
  if (l->v.len < 2)
    return 0;
  void *tmp = edgert__malloc(l->v.len * l->v.itemsize);
  if (tmp == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory sorting %zu elements", l->v.len);
  if (l->kind == EDGERT_KIND_INT64)
    sort_i64((int64_t *)(void *)l->v.data, tmp, l->v.len, descending);
  else if (l->kind == EDGERT_KIND_FLOAT64)
    sort_f64((double *)(void *)l->v.data, tmp, l->v.len, descending);
  else
    sort_u8(l->v.data, tmp, l->v.len, descending);
  edgert__free(tmp);
  return 0;
}

int edgert_list_copy(const edgert_list_t *l, edgert_list_t **out) {
  edgert_list_t *c;
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  int rc = edgert_list_new(l->type, l->v.len, &c);
  if (rc < 0)
    return rc;
  rc = edgert_list_splice(c, 0, 0, l->v.data, l->v.len);
  if (rc < 0) {
    edgert_list_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int edgert_list_swap(edgert_list_t *a, edgert_list_t *b) {
  EDGERT__RETURN_IF_NULL(a, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(b, EDGERT_EINVAL);
  if (a->type != b->type)
    return edgert__error(EDGERT_ETYPE, "list swap: element types differ (%s, %s)",
                         edgert_type_name(a->type), edgert_type_name(b->type));
  if (a->pins || b->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  edgert_list_t t = *a;
  *a = *b;
  *b = t;
  return 0;
}

void edgert_list_pin(edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, );
  l->pins++;
}
int edgert_list_unpin(edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (l->pins == 0)
    return edgert__error(EDGERT_EINVAL, "edgert_list_unpin: the list is not pinned (each unpin "
                                        "must match an earlier edgert_list_pin)");
  l->pins--;
  return 0;
}
unsigned edgert_list_pins(const edgert_list_t *l) {
  EDGERT__RETURN_IF_NULL(l, 0);
  return l->pins;
}

/* ---- strided slices and repeat --------------------------------------- */

/* Whether the `count` indices start, start+step, ... all lie in [0, len),
 * computed without overflow. `mag` gets |step|. */
static int strided_ok(const edgert_list_t *l, size_t start, ptrdiff_t step, size_t count,
                      const char *fn, size_t *mag) {
  if (step == 0)
    return edgert__error(EDGERT_EINVAL, "%s: step must not be zero", fn);
  *mag = step < 0 ? (size_t)0 - (size_t)step : (size_t)step;
  if (count == 0)
    return 0;
  size_t len = l->v.len;
  int ok = start < len && (step > 0 ? (count - 1) <= (len - 1 - start) / *mag
                                    : (count - 1) <= start / *mag);
  if (!ok)
    return edgert__error(EDGERT_ERANGE,
                         "%s: %zu items from %zu by step %td leave the list (length %zu)", fn,
                         count, start, step, len);
  return 0;
}

int edgert_list_delete_strided(edgert_list_t *l, size_t start, ptrdiff_t step, size_t count) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  size_t mag;
  int rc = strided_ok(l, start, step, count, "edgert_list_delete_strided", &mag);
  if (rc < 0 || count == 0)
    return rc;
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  if (step < 0)
    start -= (count - 1) * mag; /* the same indices, ascending */
  size_t isz = l->v.itemsize, w = start;
  unsigned char *d = l->v.data;
  for (size_t k = 0; k < count; k++) {
    size_t drop = start + k * mag;
    release_range(l, drop, drop + 1);
    /* the kept run after `drop`: up to the next dropped index or the end */
    size_t next = k + 1 < count ? drop + mag : l->v.len;
    size_t run = next - drop - 1;
    if (run)
      memmove(d + w * isz, d + (drop + 1) * isz, run * isz);
    w += run;
  }
  l->v.len -= count;
  return 0;
}

int edgert_list_assign_strided(edgert_list_t *l, size_t start, ptrdiff_t step, size_t count,
                               const void *items, size_t n) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  if (EDGERT__UNLIKELY(items == NULL && n > 0))
    return edgert__error(EDGERT_EINVAL, "edgert_list_assign_strided: items is NULL (with n = %zu)",
                         n);
  size_t mag;
  int rc = strided_ok(l, start, step, count, "edgert_list_assign_strided", &mag);
  if (rc < 0)
    return rc;
  if (n != count)
    return edgert__error(EDGERT_EINVAL,
                         "attempt to assign sequence of size %zu to extended slice of size %zu",
                         n, count);
  if (n == 0)
    return 0;
  if (l->kind == EDGERT_KIND_BOOL && edgert__bool_items(items, n, 1, "list") < 0)
    return EDGERT_EINVAL;
  size_t isz = l->v.itemsize;
  /* Everything that can fail first: a private copy of the items (their
   * str/bytes data, or items that point into this list). */
  const unsigned char *src = items;
  unsigned char *tmp = NULL;
  int overlaps = src < l->v.data + l->cap * isz && src + n * isz > l->v.data;
  if (l->var || overlaps) {
    tmp = edgert__malloc(n * isz);
    if (tmp == NULL)
      return edgert__error(EDGERT_ENOMEM, "list: out of memory copying %zu elements", n);
    if (l->var) {
      for (size_t k = 0; k < n; k++) {
        if (copy_bytes((edgert_bytes_t *)(void *)(tmp + k * isz),
                       (const edgert_bytes_t *)(const void *)(src + k * isz)) < 0) {
          for (size_t j = 0; j < k; j++)
            edgert_bytes_release((edgert_bytes_t *)(void *)(tmp + j * isz));
          edgert__free(tmp);
          return EDGERT_ENOMEM;
        }
      }
    } else {
      memcpy(tmp, src, n * isz);
    }
    src = tmp;
  }
  unsigned char *base = l->v.data;
  size_t at = start;
  if (!l->var && isz == 8) {
    for (size_t k = 0; k < n; k++, at = step > 0 ? at + mag : at - mag)
      memcpy(base + at * 8, src + k * 8, 8);
  } else {
    for (size_t k = 0; k < n; k++, at = step > 0 ? at + mag : at - mag) {
      unsigned char *d = base + at * isz;
      if (l->var) {
        edgert_bytes_t *old = (edgert_bytes_t *)(void *)d;
        l->heap_bytes -= old->data ? old->len + 1 : 0;
        edgert_bytes_release(old);
        l->heap_bytes += ((const edgert_bytes_t *)(const void *)(src + k * isz))->len + 1;
      }
      memcpy(d, src + k * isz, isz);
    }
  }
  edgert__free(tmp);
  return 0;
}

int edgert_list_repeat(edgert_list_t *l, size_t times) {
  EDGERT__RETURN_IF_NULL(l, EDGERT_EINVAL);
  size_t len = l->v.len, isz = l->v.itemsize;
  if (times == 1 || len == 0)
    return 0;
  if (times == 0) {
    if (l->pins)
      return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
    release_range(l, 0, len);
    l->v.len = 0;
    return 0;
  }
  if (times > LIST_MAX_LEN / len)
    return edgert__error(EDGERT_ELIMIT, "list: %zu elements repeated %zu times are too many",
                         len, times);
  size_t total = len * times;
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  if (total > l->cap) {
    int rc = set_capacity(l, total);
    if (rc < 0)
      return rc;
  }
  unsigned char *d = l->v.data;
  if (l->var) {
    /* each copy owns its data; on failure release what was made */
    for (size_t i = len; i < total; i++) {
      if (copy_bytes((edgert_bytes_t *)(void *)(d + i * isz),
                     (const edgert_bytes_t *)(const void *)(d + (i % len) * isz)) < 0) {
        for (size_t j = len; j < i; j++) {
          edgert_bytes_t *b = (edgert_bytes_t *)(void *)(d + j * isz);
          l->heap_bytes -= b->len + 1;
          edgert_bytes_release(b);
        }
        return EDGERT_ENOMEM;
      }
      l->heap_bytes += ((edgert_bytes_t *)(void *)(d + i * isz))->len + 1;
    }
  } else {
    /* doubling copies: log2(times) memcpy calls */
    size_t done = len;
    while (done < total) {
      size_t chunk = done <= total - done ? done : total - done;
      memcpy(d + done * isz, d, chunk * isz);
      done += chunk;
    }
  }
  l->v.len = total;
  return 0;
}
