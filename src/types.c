/*
 * types.c: the type registry.
 *
 * Invariants: the five built-in types are static and always present; custom
 * types are heap nodes on a singly linked list (a node's fields are never
 * changed once published, except `live` and `unregistered` under the lock,
 * and a node is never freed, so handles stay valid as memory for the life
 * of the process). Every registered name is unique among built-in and
 * custom names; the list is changed and searched under `registry_lock`. A
 * custom type's size was obtained from its sizeof callback once, at
 * registration, and is within 1 .. EDGERT_TYPE_MAX_SIZE.
 *
 * Lifetimes: a custom type pins every module mapping of the loader that
 * holds one of its callbacks (edgert__image_pin), so the code they point
 * at stays mapped whatever the module's handles do, until the type is
 * unregistered. `live` counts the containers of the type (taken in
 * edgert_list_new / edgert_dict_new, given back by their _free);
 * edgert_type_unregister is refused (EDGERT_EBUSY) while it is not zero, and
 * a container of an unregistered type cannot be made. So no callback is
 * ever called after its module's code is unmapped. An unregistered node
 * moves to the `retired` list (never freed: a handle someone kept stays
 * readable) and its name is free for a new registration.
 *
 * A NULL type handle or required pointer is refused by every public
 * function (EDGERT_EINVAL, or the NULL/0/EDGERT_KIND_NONE the header names,
 * with a message naming the function and the argument); only the opaque
 * host `obj` passed through to the callbacks may be anything.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct edgert_type_s {
  const char *name;
  edgert_kind_t kind;
  size_t size;
  edgert_sizeof_fn sizeof_fn;
  edgert_check_fn check_fn;
  edgert_copy_fn copy_fn;
  edgert_box_fn box_fn;
  const edgert_struct_t *layout; /* a struct type (edgert_type_register_struct), or NULL */
  struct edgert_type_s *next;
  void *pins[4];     /* loader mappings holding the callbacks (NULL: none) */
  size_t live;       /* containers of this type (registry_lock) */
  int unregistered;  /* registry_lock */
};

static edgert_type_t builtin_types[] = {
    {.name = "int64", .kind = EDGERT_KIND_INT64, .size = sizeof(int64_t)},
    {.name = "float64", .kind = EDGERT_KIND_FLOAT64, .size = sizeof(double)},
    {.name = "bool", .kind = EDGERT_KIND_BOOL, .size = 1},
    {.name = "str", .kind = EDGERT_KIND_STR, .size = sizeof(edgert_bytes_t)},
    {.name = "bytes", .kind = EDGERT_KIND_BYTES, .size = sizeof(edgert_bytes_t)},
};

/* Names a custom type may not take; each maps to a built-in (or to none,
 * for "object", which only the Python layer knows). */
static const struct {
  const char *name;
  int builtin; /* index into builtin_types, -1 for none */
} reserved_names[] = {
    {"int", 0},   {"int64", 0}, {"float", 1}, {"float64", 1},
    {"bool", 2},  {"str", 3},   {"bytes", 4}, {"object", -1},
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static edgert_type_t *custom_types; /* guarded by registry_lock */
static edgert_type_t *retired;      /* unregistered nodes; registry_lock */

/* fork.c's handlers: registry_lock is held for list walks only. */
void edgert__types_fork_prepare(void) { pthread_mutex_lock(&registry_lock); }
void edgert__types_fork_parent(void) { pthread_mutex_unlock(&registry_lock); }
void edgert__types_fork_child(void) { pthread_mutex_unlock(&registry_lock); }

void edgert_bytes_release(edgert_bytes_t *b) {
  if (b == NULL)
    return;
  edgert__free(b->data);
  b->data = NULL;
  b->len = 0;
}

const edgert_type_t *edgert_type_builtin(edgert_kind_t kind) {
  if (kind >= EDGERT_KIND_INT64 && kind <= EDGERT_KIND_BYTES)
    return &builtin_types[kind - 1];
  return NULL;
}

static const edgert_type_t *find_locked(const char *name) {
  for (const edgert_type_t *t = custom_types; t != NULL; t = t->next)
    if (strcmp(t->name, name) == 0)
      return t;
  return NULL;
}

int edgert_type_find(const char *name, const edgert_type_t **out) {
  if (name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_type_find: name and out must not be NULL");
  for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++) {
    if (strcmp(reserved_names[i].name, name) == 0 && reserved_names[i].builtin >= 0) {
      *out = &builtin_types[reserved_names[i].builtin];
      return 0;
    }
  }
  pthread_mutex_lock(&registry_lock);
  const edgert_type_t *t = find_locked(name);
  pthread_mutex_unlock(&registry_lock);
  if (t == NULL)
    return edgert__error(EDGERT_ENOTFOUND, "no element type named '%.80s' is registered", name);
  *out = t;
  return 0;
}

static int valid_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > EDGERT_TYPE_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    int digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && (digit || c == '.'))))
      return 0;
  }
  return 1;
}

/* Trampoline for edgert__guarded_invoke: fn points at an edgert_sizeof_fn. */
static void call_sizeof(void *fn, void **args, void *ret) {
  (void)args;
  *(size_t *)ret = (*(edgert_sizeof_fn *)fn)();
}

/* A function pointer's address, without the cast ISO C frowns on. */
#define ADDR_OF_FN(fnp, out)                                                             \
  do {                                                                                   \
    memcpy(&(out), &(fnp), sizeof(out));                                                 \
  } while (0)

/* Pins the loader mappings that hold t's callbacks, each once. */
static void pin_callbacks(edgert_type_t *t) {
  void *addr[4] = {NULL, NULL, NULL, NULL};
  ADDR_OF_FN(t->sizeof_fn, addr[0]);
  ADDR_OF_FN(t->check_fn, addr[1]);
  ADDR_OF_FN(t->copy_fn, addr[2]);
  if (t->box_fn != NULL)
    ADDR_OF_FN(t->box_fn, addr[3]);
  size_t n = 0;
  for (int i = 0; i < 4; i++) {
    void *pin = NULL;
    if (!edgert__image_pin(addr[i], &pin))
      continue;
    int dup = 0;
    for (size_t j = 0; j < n; j++)
      dup |= t->pins[j] == pin;
    if (dup)
      edgert__image_unpin(pin); /* only drops the extra reference */
    else
      t->pins[n++] = pin;
  }
}

static void unpin_callbacks(edgert_type_t *t) {
  for (int i = 0; i < 4; i++) {
    edgert__image_unpin(t->pins[i]);
    t->pins[i] = NULL;
  }
}

/* edgert_type_register and its address-taking forms; `fn` is the public
 * function the host called, for the NULL messages. */
static int register_type(const char *fn, const char *name, edgert_sizeof_fn sizeof_fn,
                         edgert_check_fn check_fn, edgert_copy_fn copy_fn,
                         edgert_box_fn box_fn, const edgert_type_t **out) {
  if (name == NULL)
    return edgert__error(EDGERT_EINVAL, "%s: name is NULL", fn);
  if (!valid_name(name))
    return edgert__error(EDGERT_EINVAL,
                         "register type: invalid type name '%.80s' (1 to %d characters: a "
                         "letter or '_', then letters, digits, '_' or '.')",
                         name, EDGERT_TYPE_NAME_MAX);
  if (sizeof_fn == NULL || check_fn == NULL || copy_fn == NULL) {
    const char *which = sizeof_fn == NULL ? "sizeof" : check_fn == NULL ? "check" : "copy";
    return edgert__error(EDGERT_EINVAL, "%s: %s_fn is NULL (type '%s' needs its %s callback)",
                         fn, which, name, which);
  }
  for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
    if (strcmp(reserved_names[i].name, name) == 0)
      return edgert__error(EDGERT_EEXIST, "register type: '%s' is a built-in type name", name);
  /* Foreign code, outside the lock and under the crash guard: an address
   * that is not a sizeof function must fail the registration, not the
   * process. */
  size_t size = 0;
  int crashed = edgert__guarded_invoke(call_sizeof, (void *)&sizeof_fn, NULL, &size,
                                       "sizeof_fn", name);
  if (crashed == EDGERT_ECRASH)
    return edgert__error(crashed,
                         "register type '%s': its sizeof callback crashed (%s at address "
                         "%p): is it the address of a `size_t sizeof_fn(void)`?",
                         name, edgert_signal_name(edgert_last_crash()->signo),
                         edgert_last_crash()->address);
  if (crashed < 0) /* the guard could not be set up: its message stands */
    return crashed;
  if (size == 0 || size > EDGERT_TYPE_MAX_SIZE)
    return edgert__error(EDGERT_EINVAL,
                         "register type '%s': sizeof returned %zu (must be 1 to %d)", name,
                         size, EDGERT_TYPE_MAX_SIZE);
  edgert_type_t *t = edgert__calloc(1, sizeof *t);
  char *copy = edgert__strdup(name);
  if (t == NULL || copy == NULL) {
    edgert__free(t);
    edgert__free(copy);
    return edgert__error(EDGERT_ENOMEM, "register type '%s': out of memory", name);
  }
  t->name = copy;
  t->kind = EDGERT_KIND_CUSTOM;
  t->size = size;
  t->sizeof_fn = sizeof_fn;
  t->check_fn = check_fn;
  t->copy_fn = copy_fn;
  t->box_fn = box_fn;
  pin_callbacks(t);
  edgert__fork_init(); /* links fork.c's handlers into static builds too */
  pthread_mutex_lock(&registry_lock);
  if (find_locked(name) != NULL) {
    pthread_mutex_unlock(&registry_lock);
    unpin_callbacks(t);
    edgert__free(copy);
    edgert__free(t);
    return edgert__error(EDGERT_EEXIST, "register type: a type named '%s' is already registered",
                         name);
  }
  t->next = custom_types;
  custom_types = t;
  pthread_mutex_unlock(&registry_lock);
  if (out != NULL)
    *out = t;
  return 0;
}

int edgert_type_register(const char *name, edgert_sizeof_fn sizeof_fn,
                         edgert_check_fn check_fn, edgert_copy_fn copy_fn,
                         edgert_box_fn box_fn, const edgert_type_t **out) {
  return register_type(__func__, name, sizeof_fn, check_fn, copy_fn, box_fn, out);
}

/* Function pointers from plain addresses, without the cast ISO C frowns on. */
#define FN_FROM_ADDR(type, var, addr)                                                    \
  type var = NULL;                                                                       \
  do {                                                                                   \
    void *a_ = (addr);                                                                   \
    memcpy(&var, &a_, sizeof var);                                                       \
  } while (0)

int edgert_register_custom_type_boxed(const char *name, void *sizeof_fn, void *check_fn,
                                      void *copy_fn, void *box_fn) {
  FN_FROM_ADDR(edgert_sizeof_fn, sz, sizeof_fn);
  FN_FROM_ADDR(edgert_check_fn, ck, check_fn);
  FN_FROM_ADDR(edgert_copy_fn, cp, copy_fn);
  FN_FROM_ADDR(edgert_box_fn, bx, box_fn);
  return register_type(__func__, name, sz, ck, cp, bx, NULL);
}

int edgert_register_custom_type(const char *name, void *sizeof_fn, void *check_fn,
                                void *copy_fn) {
  FN_FROM_ADDR(edgert_sizeof_fn, sz, sizeof_fn);
  FN_FROM_ADDR(edgert_check_fn, ck, check_fn);
  FN_FROM_ADDR(edgert_copy_fn, cp, copy_fn);
  return register_type(__func__, name, sz, ck, cp, NULL, NULL);
}

const char *edgert_type_name(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, NULL);
  return t->name;
}
edgert_kind_t edgert_type_kind(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, EDGERT_KIND_NONE);
  return t->kind;
}
size_t edgert_type_size(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, 0);
  return t->size;
}
int edgert_type_has_box(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, 0);
  return t->box_fn != NULL;
}

int edgert_type_register_struct(const edgert_struct_t *layout, const edgert_type_t **out) {
  EDGERT__RETURN_IF_NULL(layout, EDGERT_EINVAL);
  char name[EDGERT_TYPE_NAME_MAX + 1];
  snprintf(name, sizeof name, "struct.%s", edgert_struct_name(layout));
  edgert_type_t *t = edgert__calloc(1, sizeof *t);
  char *copy = edgert__strdup(name);
  if (t == NULL || copy == NULL) {
    edgert__free(t);
    edgert__free(copy);
    return edgert__error(EDGERT_ENOMEM, "register struct type '%s': out of memory", name);
  }
  t->name = copy;
  t->kind = EDGERT_KIND_CUSTOM;
  t->size = edgert_struct_size(layout);
  t->layout = layout;
  edgert__fork_init();
  pthread_mutex_lock(&registry_lock);
  const edgert_type_t *old = find_locked(name);
  if (old != NULL) {
    pthread_mutex_unlock(&registry_lock);
    edgert__free(copy);
    edgert__free(t);
    if (old->layout != layout)
      return edgert__error(EDGERT_EEXIST, "register struct type: a type named '%s' is already "
                           "registered%s", name, old->layout ? " with another layout" : "");
    if (out != NULL)
      *out = old;
    return 0;
  }
  t->next = custom_types;
  custom_types = t;
  pthread_mutex_unlock(&registry_lock);
  if (out != NULL)
    *out = t;
  return 0;
}

const edgert_struct_t *edgert_type_layout(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, NULL);
  return t->layout;
}

int edgert_type_check(const edgert_type_t *t, void *obj) {
  EDGERT__RETURN_IF_NULL(t, EDGERT_EINVAL);
  if (t->layout != NULL) /* a C host's value: the struct's bytes */
    return obj != NULL;
  if (t->kind != EDGERT_KIND_CUSTOM)
    return edgert__error(EDGERT_ETYPE, "type '%s' has no check callback", t->name);
  int r = t->check_fn(obj);
  if (r < 0)
    return edgert__error(EDGERT_EFAILED, "the check callback of type '%s' failed", t->name);
  return r != 0;
}

int edgert_type_copy(const edgert_type_t *t, void *dst, void *obj) {
  EDGERT__RETURN_IF_NULL(t, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(dst, EDGERT_EINVAL);
  if (t->kind != EDGERT_KIND_CUSTOM)
    return edgert__error(EDGERT_ETYPE, "type '%s' has no copy callback", t->name);
  if (t->layout != NULL) {
    if (obj == NULL)
      return edgert__error(EDGERT_EINVAL, "edgert_type_copy: obj is NULL (type '%s' copies "
                           "the struct's bytes from it)", t->name);
    edgert_struct_copy_value(t->layout, dst, obj);
    return 0;
  }
  /* The slot is zeroed first: a copy_fn that writes field by field leaves
   * padding untouched, and the containers hash and compare all `size`
   * bytes, so two equal values must be equal bytes. */
  memset(dst, 0, t->size);
  t->copy_fn(dst, obj);
  return 0;
}

int edgert_type_box(const edgert_type_t *t, const void *src, void **out) {
  EDGERT__RETURN_IF_NULL(t, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(src, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  if (t->kind != EDGERT_KIND_CUSTOM)
    return edgert__error(EDGERT_ETYPE, "type '%s' has no box callback", t->name);
  if (t->box_fn == NULL && t->layout != NULL)
    return edgert__error(EDGERT_EUNSUPPORTED, "type '%s' is a struct: its values are the "
                         "struct's bytes, read them in place", t->name);
  if (t->box_fn == NULL)
    return edgert__error(EDGERT_EUNSUPPORTED, "type '%s' was registered without a box callback",
                         t->name);
  void *o = t->box_fn(src);
  if (o == NULL)
    return edgert__error(EDGERT_EFAILED, "the box callback of type '%s' failed", t->name);
  *out = o;
  return 0;
}

int edgert__bool_items(const void *items, size_t n, size_t stride, const char *who) {
  const unsigned char *p = items;
  for (size_t i = 0; i < n; i++, p += stride)
    if (EDGERT__UNLIKELY(*p > 1))
      return edgert__error(EDGERT_EINVAL, "%s: a bool is 0 or 1, not %u (item %zu)", who,
                           (unsigned)*p, i);
  return 0;
}

int edgert_type_unregister(const char *name) {
  if (name == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_type_unregister: name is NULL");
  for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
    if (strcmp(reserved_names[i].name, name) == 0)
      return edgert__error(EDGERT_EINVAL, "unregister type: '%s' is a built-in type", name);
  pthread_mutex_lock(&registry_lock);
  edgert_type_t **p = &custom_types;
  while (*p != NULL && strcmp((*p)->name, name) != 0)
    p = &(*p)->next;
  edgert_type_t *t = *p;
  if (t == NULL) {
    pthread_mutex_unlock(&registry_lock);
    return edgert__error(EDGERT_ENOTFOUND, "unregister type: no type named '%.80s' is registered",
                         name);
  }
  if (t->live > 0) {
    size_t n = t->live;
    pthread_mutex_unlock(&registry_lock);
    return edgert__error(EDGERT_EBUSY,
                         "cannot unregister type '%s': %zu container%s of it still exist%s "
                         "(free them first)",
                         name, n, n == 1 ? "" : "s", n == 1 ? "s" : "");
  }
  *p = t->next;
  t->unregistered = 1;
  t->next = retired;
  retired = t;
  pthread_mutex_unlock(&registry_lock);
  unpin_callbacks(t); /* may unmap the module: outside the lock */
  return 0;
}

size_t edgert_type_containers(const edgert_type_t *t) {
  EDGERT__RETURN_IF_NULL(t, 0);
  if (t->kind != EDGERT_KIND_CUSTOM)
    return 0;
  pthread_mutex_lock(&registry_lock);
  size_t n = t->live;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

int edgert__type_acquire(const edgert_type_t *t, const char *who) {
  if (t->kind != EDGERT_KIND_CUSTOM)
    return 0;
  edgert_type_t *mt = (edgert_type_t *)t; /* only custom nodes, which live on the heap */
  pthread_mutex_lock(&registry_lock);
  int gone = mt->unregistered;
  if (!gone)
    mt->live++;
  pthread_mutex_unlock(&registry_lock);
  if (gone)
    return edgert__error(EDGERT_ENOTFOUND, "%s: type '%s' was unregistered", who, t->name);
  return 0;
}

void edgert__type_release(const edgert_type_t *t) {
  if (t->kind != EDGERT_KIND_CUSTOM)
    return;
  edgert_type_t *mt = (edgert_type_t *)t;
  pthread_mutex_lock(&registry_lock);
  mt->live--;
  pthread_mutex_unlock(&registry_lock);
}
