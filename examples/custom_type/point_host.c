/*
 * point_host.c: a C host using a custom inline type with no Python at all.
 *
 * The host's own "objects" are tagged structs; the registry's check/copy
 * callbacks receive them as opaque pointers. Points then live inline in a
 * typed list (one contiguous array a kernel can read) and as values of a
 * typed dict keyed by name.
 */
#include <stdio.h>
#include <string.h>

#include "edgert.h"

typedef struct {
  double x, y;
} point_t;

/* What this host hands the registry: its own tagged object. */
typedef struct {
  const char *kind; /* "point" */
  double x, y;
} host_obj_t;

static size_t point_size(void) { return sizeof(point_t); }
static int point_check(void *obj) {
  const host_obj_t *o = obj;
  return o != NULL && o->kind != NULL && strcmp(o->kind, "point") == 0;
}
static void point_copy(void *dst, void *src) {
  const host_obj_t *o = src;
  point_t p = {o->x, o->y};
  memcpy(dst, &p, sizeof p);
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s)\n", what, edgert_strerror(rc), edgert_last_error());
  return 1;
}

int main(void) {
  const edgert_type_t *point;
  int rc = edgert_type_register("HostPoint", point_size, point_check, point_copy, NULL, &point);
  if (rc < 0)
    return fail("register", rc);

  edgert_list_t *pts;
  if ((rc = edgert_list_new(point, 0, &pts)) < 0)
    return fail("list", rc);
  for (int i = 0; i < 5; i++) {
    host_obj_t o = {"point", i, i * i};
    point_t inline_value;
    if (edgert_type_check(point, &o) != 1)
      return fail("check", EDGERT_ETYPE);
    edgert_type_copy(point, &inline_value, &o);
    if ((rc = edgert_list_append(pts, &inline_value)) < 0)
      return fail("append", rc);
  }
  const point_t *arr = edgert_list_data(pts); /* what a kernel gets */
  double sy = 0;
  for (size_t i = 0; i < edgert_list_len(pts); i++)
    sy += arr[i].y;

  const edgert_type_t *str;
  edgert_type_find("str", &str);
  edgert_dict_t *byname;
  if ((rc = edgert_dict_new(str, point, &byname)) < 0)
    return fail("dict", rc);
  edgert_bytes_t key = {"origin", 6};
  if ((rc = edgert_dict_set(byname, &key, &arr[0])) < 0)
    return fail("set", rc);
  const point_t *origin = edgert_dict_find(byname, &key);

  printf("%zu points, sum of y = %g, origin = (%g, %g)\n", edgert_list_len(pts), sy,
         origin->x, origin->y);
  int ok = sy == 30.0 && origin->x == 0.0 && origin->y == 0.0;
  edgert_dict_free(byname);
  edgert_list_free(pts);
  return ok ? 0 : 1;
}
