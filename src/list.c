/*
 * list.c: the typed list.
 *
 * Invariants: `data` holds `cap` slots of `isz` bytes, the first `len` of
 * them elements (len <= cap; data is NULL only when cap == 0). The list owns
 * the data of every str/bytes element it holds, and nothing beyond `len`.
 * While pins > 0 neither `data` nor `len` changes. Every failing operation
 * leaves the list as it was: anything that can fail (allocating room,
 * copying str/bytes data) happens before the first element is touched.
 */
#include "internal.h"

#include <string.h>

struct edgert_list_s {
  const edgert_type_t *type;
  edgert_kind_t kind;
  int var; /* str/bytes */
  size_t isz, len, cap;
  unsigned char *data;
  unsigned pins;
  size_t heap_bytes;
};

#define LIST_MAX_LEN ((size_t)PTRDIFF_MAX / EDGERT_TYPE_MAX_SIZE)

int edgert_list_new(const edgert_type_t *item_type, size_t reserve, edgert_list_t **out) {
  if (item_type == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_list_new: type and out must not be NULL");
  edgert_list_t *l = edgert__calloc(1, sizeof *l);
  if (l == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory");
  l->type = item_type;
  l->kind = edgert_type_kind(item_type);
  l->var = l->kind == EDGERT_KIND_STR || l->kind == EDGERT_KIND_BYTES;
  l->isz = edgert_type_size(item_type);
  if (reserve > 0) {
    int rc = edgert_list_reserve(l, reserve);
    if (rc < 0) {
      edgert__free(l);
      return rc;
    }
  }
  *out = l;
  return 0;
}

static void release_range(edgert_list_t *l, size_t from, size_t to) {
  if (!l->var)
    return;
  for (size_t i = from; i < to; i++) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)(l->data + i * l->isz);
    l->heap_bytes -= b->data ? b->len + 1 : 0;
    edgert_bytes_release(b);
  }
}

void edgert_list_free(edgert_list_t *l) {
  if (l == NULL)
    return;
  release_range(l, 0, l->len);
  edgert__free(l->data);
  edgert__free(l);
}

const edgert_type_t *edgert_list_type(const edgert_list_t *l) { return l->type; }
size_t edgert_list_len(const edgert_list_t *l) { return l->len; }
size_t edgert_list_capacity(const edgert_list_t *l) { return l->cap; }
size_t edgert_list_itemsize(const edgert_list_t *l) { return l->isz; }
size_t edgert_list_memory(const edgert_list_t *l) {
  return sizeof *l + l->cap * l->isz + l->heap_bytes;
}
void *edgert_list_data(edgert_list_t *l) { return l->data; }
void *edgert_list_at(edgert_list_t *l, size_t i) {
  return i < l->len ? l->data + i * l->isz : NULL;
}

/* Sets the capacity to exactly `cap` (>= len). */
static int set_capacity(edgert_list_t *l, size_t cap) {
  if (cap > LIST_MAX_LEN)
    return edgert__error(EDGERT_ELIMIT, "list: %zu elements is more than a list holds", cap);
  void *p = edgert__realloc(l->data, cap * l->isz);
  if (p == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory growing to %zu elements", cap);
  l->data = p;
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
  if (i >= l->len)
    return edgert__error(EDGERT_ERANGE, "list index %zu out of range (length %zu)", i, l->len);
  memcpy(out, l->data + i * l->isz, l->isz);
  return 0;
}

int edgert_list_set(edgert_list_t *l, size_t i, const void *value) {
  if (i >= l->len)
    return edgert__error(EDGERT_ERANGE, "list assignment index %zu out of range (length %zu)",
                         i, l->len);
  unsigned char *slot = l->data + i * l->isz;
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
    memmove(slot, value, l->isz);
  }
  return 0;
}

int edgert_list_append(edgert_list_t *l, const void *value) {
  if (EDGERT__LIKELY(l->len < l->cap && !l->var && !l->pins)) {
    memcpy(l->data + l->len * l->isz, value, l->isz);
    l->len++;
    return 0;
  }
  return edgert_list_splice(l, l->len, 0, value, 1);
}

int edgert_list_insert(edgert_list_t *l, size_t i, const void *value) {
  if (i > l->len)
    i = l->len;
  return edgert_list_splice(l, i, 0, value, 1);
}

int edgert_list_pop(edgert_list_t *l, size_t i, void *out) {
  if (i >= l->len)
    return edgert__error(EDGERT_ERANGE, "pop index %zu out of range (length %zu)", i, l->len);
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  unsigned char *slot = l->data + i * l->isz;
  if (l->var) {
    edgert_bytes_t *b = (edgert_bytes_t *)(void *)slot;
    l->heap_bytes -= b->data ? b->len + 1 : 0;
    if (out)
      memcpy(out, b, sizeof *b);
    else
      edgert_bytes_release(b);
  } else if (out) {
    memcpy(out, slot, l->isz);
  }
  memmove(slot, slot + l->isz, (l->len - i - 1) * l->isz);
  l->len--;
  return 0;
}

int edgert_list_splice(edgert_list_t *l, size_t start, size_t count, const void *items,
                       size_t n) {
  if (start > l->len || count > l->len - start)
    return edgert__error(EDGERT_ERANGE, "list splice [%zu, %zu) out of range (length %zu)",
                         start, start + count, l->len);
  if (n != count && l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  if (n > LIST_MAX_LEN || l->len - count > LIST_MAX_LEN - n)
    return edgert__error(EDGERT_ELIMIT, "list: too many elements");
  size_t newlen = l->len - count + n;
  /* Everything that can fail first: the new elements' own copy (needed
   * for str/bytes data, and when `items` points into this list), then room. */
  unsigned char *tmp = NULL;
  const unsigned char *src = items;
  int overlaps = n > 0 && l->data != NULL && src < l->data + l->cap * l->isz &&
                 src + n * l->isz > l->data;
  if (n > 0 && (l->var || overlaps)) {
    tmp = edgert__malloc(n * l->isz);
    if (tmp == NULL)
      return edgert__error(EDGERT_ENOMEM, "list: out of memory copying %zu elements", n);
    if (l->var) {
      for (size_t k = 0; k < n; k++) {
        if (copy_bytes((edgert_bytes_t *)(void *)(tmp + k * l->isz),
                       (const edgert_bytes_t *)(const void *)(src + k * l->isz)) < 0) {
          for (size_t j = 0; j < k; j++)
            edgert_bytes_release((edgert_bytes_t *)(void *)(tmp + j * l->isz));
          edgert__free(tmp);
          return EDGERT_ENOMEM;
        }
      }
    } else {
      memcpy(tmp, src, n * l->isz);
    }
    src = tmp;
  }
  if (newlen > l->cap) {
    int rc = grow(l, newlen);
    if (rc < 0) {
      if (l->var)
        for (size_t j = 0; j < n; j++)
          edgert_bytes_release((edgert_bytes_t *)(void *)(tmp + j * l->isz));
      edgert__free(tmp);
      return rc;
    }
  }
  release_range(l, start, start + count);
  if (n != count)
    memmove(l->data + (start + n) * l->isz, l->data + (start + count) * l->isz,
            (l->len - start - count) * l->isz);
  if (n > 0)
    memcpy(l->data + start * l->isz, src, n * l->isz);
  if (l->var)
    for (size_t k = 0; k < n; k++)
      l->heap_bytes += ((edgert_bytes_t *)(void *)(l->data + (start + k) * l->isz))->len + 1;
  l->len = newlen;
  edgert__free(tmp);
  return 0;
}

int edgert_list_clear(edgert_list_t *l) {
  if (l->pins)
    return edgert__error(EDGERT_EBUSY, "list: cannot resize while its buffer is exported");
  release_range(l, 0, l->len);
  edgert__free(l->data);
  l->data = NULL;
  l->len = l->cap = 0;
  return 0;
}

int edgert_list_reverse(edgert_list_t *l) {
  unsigned char buf[64];
  if (l->len < 2)
    return 0;
  for (size_t i = 0, j = l->len - 1; i < j; i++, j--) {
    unsigned char *a = l->data + i * l->isz, *b = l->data + j * l->isz;
    for (size_t off = 0; off < l->isz; off += sizeof buf) {
      size_t n = l->isz - off < sizeof buf ? l->isz - off : sizeof buf;
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
  if (l->kind != EDGERT_KIND_INT64 && l->kind != EDGERT_KIND_FLOAT64 &&
      l->kind != EDGERT_KIND_BOOL)
    return edgert__error(EDGERT_ETYPE, "list: sort needs int64, float64 or bool elements, not %s",
                         edgert_type_name(l->type));
  if (l->len < 2)
    return 0;
  void *tmp = edgert__malloc(l->len * l->isz);
  if (tmp == NULL)
    return edgert__error(EDGERT_ENOMEM, "list: out of memory sorting %zu elements", l->len);
  if (l->kind == EDGERT_KIND_INT64)
    sort_i64((int64_t *)(void *)l->data, tmp, l->len, descending);
  else if (l->kind == EDGERT_KIND_FLOAT64)
    sort_f64((double *)(void *)l->data, tmp, l->len, descending);
  else
    sort_u8(l->data, tmp, l->len, descending);
  edgert__free(tmp);
  return 0;
}

int edgert_list_copy(const edgert_list_t *l, edgert_list_t **out) {
  edgert_list_t *c;
  int rc = edgert_list_new(l->type, l->len, &c);
  if (rc < 0)
    return rc;
  rc = edgert_list_splice(c, 0, 0, l->data, l->len);
  if (rc < 0) {
    edgert_list_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int edgert_list_swap(edgert_list_t *a, edgert_list_t *b) {
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

void edgert_list_pin(edgert_list_t *l) { l->pins++; }
int edgert_list_unpin(edgert_list_t *l) {
  if (l->pins == 0)
    return edgert__error(EDGERT_EINVAL, "list: unpin without a pin");
  l->pins--;
  return 0;
}
unsigned edgert_list_pins(const edgert_list_t *l) { return l->pins; }
