/*
 * error.c: error codes, the per-thread message and the allocator.
 *
 * Invariants: the message lives in thread-local storage, so a failing call on
 * one thread never changes what another thread reads; it is always
 * NUL-terminated and truncated (never overflowed) when long. The allocator is
 * swapped as a whole under no lock: it must be set before other threads use
 * the library, as the header says.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_SIZE 1024

static _Thread_local char last_message[MESSAGE_SIZE];

const char *edgert_err_name(int err) {
  switch (err) {
  case EDGERT_OK:
    return "OK";
#define XX(name, value, desc)                                                  \
  case EDGERT_##name:                                                          \
    return #name;
    EDGERT_ERRNO_MAP(XX)
#undef XX
  default:
    return "UNKNOWN";
  }
}

const char *edgert_strerror(int err) {
  switch (err) {
  case EDGERT_OK:
    return "success";
#define XX(name, value, desc)                                                  \
  case EDGERT_##name:                                                          \
    return desc;
    EDGERT_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *edgert_last_error(void) { return last_message; }

void edgert_clear_error(void) { last_message[0] = '\0'; }

int edgert__verror(int err, const char *fmt, va_list ap) {
  int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
  if (n < 0)
    snprintf(last_message, sizeof last_message, "%s", edgert_strerror(err));
  return err;
}

int edgert__null_arg(const char *fn, const char *arg) {
  return edgert__error(EDGERT_EINVAL, "%s: %s is NULL", fn, arg);
}

int edgert__error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  edgert__verror(err, fmt, ap);
  va_end(ap);
  return err;
}

/* The allocator. */

static void *default_malloc(void *ud, size_t size) {
  (void)ud;
  return malloc(size);
}
static void *default_realloc(void *ud, void *ptr, size_t size) {
  (void)ud;
  return realloc(ptr, size);
}
static void default_free(void *ud, void *ptr) {
  (void)ud;
  free(ptr);
}

static edgert_allocator_t allocator = {default_malloc, default_realloc,
                                       default_free, NULL};

int edgert_set_allocator(const edgert_allocator_t *alloc) {
  if (alloc == NULL) {
    allocator.malloc_fn = default_malloc;
    allocator.realloc_fn = default_realloc;
    allocator.free_fn = default_free;
    allocator.ud = NULL;
    return 0;
  }
  if (!alloc->malloc_fn || !alloc->realloc_fn || !alloc->free_fn)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_set_allocator: malloc_fn, realloc_fn and "
                         "free_fn must all be set");
  allocator = *alloc;
  return 0;
}

void *edgert__malloc(size_t size) {
  return allocator.malloc_fn(allocator.ud, size ? size : 1);
}

void *edgert__calloc(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size)
    return NULL;
  size_t bytes = count * size;
  void *p = edgert__malloc(bytes);
  if (p && bytes > 0)
    memset(p, 0, bytes);
  return p;
}

void *edgert__realloc(void *ptr, size_t size) {
  return allocator.realloc_fn(allocator.ud, ptr, size ? size : 1);
}

void edgert__free(void *ptr) {
  if (ptr)
    allocator.free_fn(allocator.ud, ptr);
}

char *edgert__strndup(const char *s, size_t n) {
  char *p = edgert__malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

char *edgert__strdup(const char *s) { return edgert__strndup(s, strlen(s)); }

const char *edgert_version(void) { return EDGERT_VERSION_STRING; }
