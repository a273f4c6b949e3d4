/*
 * edgert/list.h: a list of one element type, stored contiguously inline.
 *
 * edgert_list_data() is the elements as one C array (int64_t[], double[],
 * unsigned char[] for bool, edgert_bytes_t[] for str/bytes, custom inline
 * structs back to back): that array is what kernels get, without copying.
 * Growth is pre-allocated: capacity grows by half while small and by a
 * sixteenth beyond 64 Ki elements, so a large list wastes at most ~6%.
 *
 * Elements are passed by pointer to their C representation and copied in
 * (str/bytes data included); the list owns all element data.
 *
 * Pinning (edgert_list_pin) keeps the array where it is and its length
 * fixed: while pinned, anything that would change the length or move the
 * array fails with EDGERT_EBUSY and changes nothing (element writes, sort
 * and reverse are still allowed).
 *
 * Every failing call leaves the list unchanged. No function here runs
 * foreign code. A list is not thread-safe: callers serialize access.
 *
 * NULL: a NULL list handle or required pointer is refused, never
 * dereferenced: int-returning functions return EDGERT_EINVAL, the
 * pointer-returning ones NULL, and each leaves a message naming the
 * function and the argument (edgert_last_error()). Getters and
 * edgert_list_pin say what they do instead. Pointers documented as
 * optional, and `items` when n is 0, may be NULL.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_LIST_H
#define EDGERT_LIST_H

#include "common.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgert_list_s edgert_list_t;

/*
 * What a host reads without a call: the element array, its length and the
 * element size, kept current by the list (edgert_list_view() returns the
 * same pointer for the list's whole life). Read-only. edgert_list_view() is
 * never NULL for a valid handle; NULL, with the message set, for a NULL one.
 */
typedef struct edgert_list_view_s {
  unsigned char *data; /* NULL while no storage is allocated */
  size_t len;
  size_t itemsize;
} edgert_list_view_t;
EDGERT_EXTERN const edgert_list_view_t *edgert_list_view(const edgert_list_t *l);

/* A new empty list with room for `reserve` elements. 0 with *out set,
 * EDGERT_EINVAL (NULL arguments) or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_list_new(const edgert_type_t *item_type, size_t reserve,
                                  edgert_list_t **out);
/* edgert_list_new with the items' storage in shared memory (edgert_isolate_shm_alloc,
 * edgert/isolate.h): a pointer to it passed to an isolated module's function
 * is handed to the worker by reference, zero copy. Growth moves the storage
 * to a new shared region (refused while the list is pinned, as for any list). */
EDGERT_EXTERN int edgert_list_new_shared(const edgert_type_t *item_type, size_t reserve,
                                         edgert_list_t **out);
/* 1 if the list's storage is shared memory (edgert_list_new_shared), else 0. */
EDGERT_EXTERN int edgert_list_is_shared(const edgert_list_t *l);
/* Frees the list and its data. NULL does nothing. */
EDGERT_EXTERN void edgert_list_free(edgert_list_t *l);

/* Getters. For a NULL handle (message set): the type NULL, the numbers 0. */
EDGERT_EXTERN const edgert_type_t *edgert_list_type(const edgert_list_t *l);
EDGERT_EXTERN size_t edgert_list_len(const edgert_list_t *l);
EDGERT_EXTERN size_t edgert_list_capacity(const edgert_list_t *l);
EDGERT_EXTERN size_t edgert_list_itemsize(const edgert_list_t *l);
/* Bytes the list owns (array, str/bytes data, struct). */
EDGERT_EXTERN size_t edgert_list_memory(const edgert_list_t *l);
/* The element array (borrowed; moves when the list grows unless pinned);
 * NULL while no storage is allocated. */
EDGERT_EXTERN void *edgert_list_data(edgert_list_t *l);
/* Element i (borrowed), NULL when i >= len (or, message set, `l` NULL). */
EDGERT_EXTERN void *edgert_list_at(edgert_list_t *l, size_t i);

/* Copies element i to *out (str/bytes: a borrowed descriptor). 0 or EDGERT_ERANGE. */
EDGERT_EXTERN int edgert_list_get(const edgert_list_t *l, size_t i, void *out);
/* The bool rule: a bool list holds only the bytes 0 and 1. set, append,
 * insert, splice and assign_strided refuse any other byte with EDGERT_EINVAL
 * ("list: a bool is 0 or 1, not 7 (item 3)") and write nothing. */
/* Replaces element i with a copy of *value. 0, EDGERT_ERANGE, EDGERT_EINVAL
 * (a bool that is not 0 or 1) or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_list_set(edgert_list_t *l, size_t i, const void *value);
/* Appends a copy of *value. 0, EDGERT_EBUSY, EDGERT_ELIMIT, EDGERT_EINVAL
 * (bool rule) or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_list_append(edgert_list_t *l, const void *value);
/* Inserts before i (i > len means at the end). Codes as append. */
EDGERT_EXTERN int edgert_list_insert(edgert_list_t *l, size_t i, const void *value);
/* Removes element i, moving it to *out (the caller owns str/bytes data;
 * NULL `out` discards it). 0, EDGERT_ERANGE or EDGERT_EBUSY. */
EDGERT_EXTERN int edgert_list_pop(edgert_list_t *l, size_t i, void *out);
/*
 * Replaces elements [start, start+count) with copies of the n elements at
 * `items` (a C array of the element representation; it may point into this
 * list). Covers insert-many, extend (start = len, count = 0), delete (n = 0)
 * and contiguous slice assignment; `items` may be NULL when n is 0. All or
 * nothing. 0, EDGERT_ERANGE (start+count > len), EDGERT_EBUSY (pinned and
 * n != count), EDGERT_ELIMIT, EDGERT_ENOMEM, EDGERT_EINVAL (NULL `l`, NULL
 * `items` with n > 0, or a bool item that is not 0 or 1).
 */
EDGERT_EXTERN int edgert_list_splice(edgert_list_t *l, size_t start, size_t count,
                                     const void *items, size_t n);
/*
 * Strided slices (Python's l[start:stop:step] with step != 1), given as the
 * `count` indices start, start+step, ... (step may be negative; Python's
 * PySlice_AdjustIndices gives start, step and count). Every index must lie
 * in [0, len): EDGERT_ERANGE otherwise, EDGERT_EINVAL for step 0.
 *
 * delete_strided removes those items, keeping the order of the rest; it
 * never allocates. 0, EDGERT_ERANGE, EDGERT_EINVAL, EDGERT_EBUSY (pinned,
 * count > 0).
 *
 * assign_strided replaces them, in index order, with copies of the n items
 * at `items` (which may point into this list); n must equal count
 * (EDGERT_EINVAL "attempt to assign sequence of size 3 to extended slice of
 * size 2"). All or nothing; allowed while pinned (the length does not
 * change). 0, EDGERT_ERANGE, EDGERT_EINVAL (also the bool rule),
 * EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_list_delete_strided(edgert_list_t *l, size_t start, ptrdiff_t step,
                                             size_t count);
EDGERT_EXTERN int edgert_list_assign_strided(edgert_list_t *l, size_t start, ptrdiff_t step,
                                             size_t count, const void *items, size_t n);
/*
 * Repeats the contents in place: `times` copies one after another (Python's
 * l *= times; 0 empties the list, 1 changes nothing). All or nothing.
 * 0, EDGERT_ELIMIT (len * times more than a list holds, checked before any
 * arithmetic can overflow), EDGERT_EBUSY (pinned and the length would
 * change), EDGERT_ENOMEM.
 */
EDGERT_EXTERN int edgert_list_repeat(edgert_list_t *l, size_t times);
/* Room for n elements in total. 0, EDGERT_EBUSY, EDGERT_ELIMIT, EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_list_reserve(edgert_list_t *l, size_t n);
/* Removes everything and frees the array. 0 or EDGERT_EBUSY. */
EDGERT_EXTERN int edgert_list_clear(edgert_list_t *l);
/* Reverses in place. 0 (EDGERT_EINVAL for a NULL handle). */
EDGERT_EXTERN int edgert_list_reverse(edgert_list_t *l);
/*
 * Sorts in place, ascending or (descending != 0) descending; stable.
 * int64, float64 (NaNs last) and bool only: EDGERT_ETYPE otherwise.
 * EDGERT_ENOMEM (the merge buffer). Allowed while pinned.
 */
EDGERT_EXTERN int edgert_list_sort(edgert_list_t *l, int descending);
/* A deep copy. 0 or EDGERT_ENOMEM. */
EDGERT_EXTERN int edgert_list_copy(const edgert_list_t *l, edgert_list_t **out);
/* Exchanges the contents of two lists of the same type. 0, EDGERT_ETYPE,
 * EDGERT_EBUSY (either pinned). */
EDGERT_EXTERN int edgert_list_swap(edgert_list_t *a, edgert_list_t *b);

/* Pin counting (see above). unpin returns EDGERT_EINVAL if not pinned.
 * With a NULL handle: pin does nothing but set the message (it has no return
 * value to report with), unpin returns EDGERT_EINVAL, pins returns 0. */
EDGERT_EXTERN void edgert_list_pin(edgert_list_t *l);
EDGERT_EXTERN int edgert_list_unpin(edgert_list_t *l);
EDGERT_EXTERN unsigned edgert_list_pins(const edgert_list_t *l);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_LIST_H */
