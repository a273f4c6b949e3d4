/*
 * struct.c: struct layouts (edgert/struct.h).
 *
 * Invariants: a layout is validated completely before it is published; once
 * on the `layouts` list it never changes and is never freed, so the pointers
 * contracts keep stay valid for the life of the process and readers holding
 * one need no lock. Names are unique on the list; the list is changed and
 * searched under `layouts_lock`. A published layout's libffi type is already
 * initialized (ffi_get_struct_offsets ran at definition), so concurrent
 * ffi_prep_cif calls only read it. `by_value_problem` is NULL exactly when
 * libffi's layout of the elements reproduces every declared offset, the size
 * and the alignment. `format` (PEP 3118, explicit padding) is built at
 * definition too; the reader of buffer formats (edgert_struct_check_format)
 * allocates nothing, bounds every number it reads and nests at most 16 deep.
 */
#include "loader_internal.h"

#include <float.h>
#include <stdio.h>
#include <string.h>

struct edgert_struct_s {
  char name[EDGERT_STRUCT_NAME_MAX + 1];
  size_t size, align, nfields;
  edgert_struct_field_t *fields; /* names point into `names` */
  char *names;
  ffi_type ffi;                  /* FFI_TYPE_STRUCT over `elements` */
  ffi_type **elements;           /* NULL-terminated, arrays expanded */
  char *by_value_problem;        /* NULL: passable by value */
  char *format;                  /* PEP 3118 item format, explicit padding */
  struct edgert_struct_s *next;
};

static pthread_mutex_t layouts_lock = PTHREAD_MUTEX_INITIALIZER;
static edgert_struct_t *layouts; /* guarded by layouts_lock */

static edgert_struct_t *find_locked(const char *name) {
  for (edgert_struct_t *s = layouts; s != NULL; s = s->next)
    if (strcmp(s->name, name) == 0)
      return s;
  return NULL;
}

static int is_identifier(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max)
    return 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_'))
      return 0;
  }
  return 1;
}

/* The natural alignment of one element of `t`. */
static size_t elem_align(const edgert_abi_type_t *t) {
  switch (t->code) {
  case EDGERT_CT_STRUCT:
    return t->layout->align;
  case EDGERT_CT_LONGDOUBLE:
    return _Alignof(long double);
  case EDGERT_CT_BOOL:
    return _Alignof(_Bool);
  default:
    return edgert_abi_type_size(t); /* every other scalar is aligned to its size */
  }
}

/* Number of libffi elements: one per field, arrays expanded (a nested
 * struct is one element, its own ffi_type). */
static size_t layout_elements(const edgert_struct_t *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->nfields; i++) {
    n += s->fields[i].count ? s->fields[i].count : 1;
    if (n > EDGERT_STRUCT_MAX_ELEMENTS)
      return EDGERT_STRUCT_MAX_ELEMENTS + 1;
  }
  return n;
}

/* The first difference between two layouts of one name, for EEXIST. */
static void describe_difference(const edgert_struct_t *a, const edgert_struct_t *b, char *buf,
                                size_t size) {
  if (a->nfields != b->nfields) {
    snprintf(buf, size, "%zu fields, not %zu", a->nfields, b->nfields);
    return;
  }
  for (size_t i = 0; i < a->nfields; i++) {
    const edgert_struct_field_t *x = &a->fields[i], *y = &b->fields[i];
    char tx[EDGERT_ABI_TYPE_NAME_MAX], ty[EDGERT_ABI_TYPE_NAME_MAX];
    if (edgert_abi_type_name(&x->type, tx, sizeof tx) != 0)
      snprintf(tx, sizeof tx, "?");
    if (edgert_abi_type_name(&y->type, ty, sizeof ty) != 0)
      snprintf(ty, sizeof ty, "?");
    if (strcmp(x->name, y->name) != 0 || strcmp(tx, ty) != 0 || x->offset != y->offset ||
        x->count != y->count || x->type.layout != y->type.layout) {
      snprintf(buf, size,
               "field %zu is '%s' %.64s[%zu] at offset %zu, not '%s' %.64s[%zu] at offset %zu", i,
               x->name, tx, x->count, x->offset, y->name, ty, y->count, y->offset);
      return;
    }
  }
  snprintf(buf, size, "size %zu align %zu, not size %zu align %zu", a->size, a->align,
           b->size, b->align);
}

static int same_layout(const edgert_struct_t *a, const edgert_struct_t *b) {
  if (a->size != b->size || a->align != b->align || a->nfields != b->nfields)
    return 0;
  for (size_t i = 0; i < a->nfields; i++) {
    const edgert_struct_field_t *x = &a->fields[i], *y = &b->fields[i];
    if (strcmp(x->name, y->name) != 0 || x->offset != y->offset || x->count != y->count ||
        x->type.code != y->type.code || x->type.pointee != y->type.pointee ||
        x->type.depth != y->type.depth || x->type.layout != y->type.layout)
      return 0;
  }
  return 1;
}

static void free_layout(edgert_struct_t *s) {
  if (s == NULL)
    return;
  edgert__free(s->fields);
  edgert__free(s->names);
  edgert__free(s->elements);
  edgert__free(s->by_value_problem);
  edgert__free(s->format);
  edgert__free(s);
}

/* Builds s->elements and s->ffi, and decides s->by_value_problem. */
static int prepare_ffi(edgert_struct_t *s) {
  size_t n = layout_elements(s);
  if (n > EDGERT_STRUCT_MAX_ELEMENTS)
    return edgert__error(EDGERT_ELIMIT, "struct %s: more than %d scalar elements", s->name,
                         EDGERT_STRUCT_MAX_ELEMENTS);
  s->elements = edgert__calloc(n + 1, sizeof *s->elements);
  size_t *offsets = edgert__calloc(n, sizeof *offsets);
  size_t *owner = edgert__calloc(n, sizeof *owner);
  if (s->elements == NULL || offsets == NULL || owner == NULL) {
    edgert__free(offsets);
    edgert__free(owner);
    return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", s->name);
  }
  size_t k = 0;
  for (size_t i = 0; i < s->nfields; i++) {
    const edgert_struct_field_t *f = &s->fields[i];
    ffi_type *et = f->type.code == EDGERT_CT_STRUCT
                       ? (ffi_type *)&((edgert_struct_t *)(uintptr_t)f->type.layout)->ffi
                       : edgert__ffi_type_of(f->type.code);
    size_t esz = edgert_abi_type_size(&f->type);
    size_t cnt = f->count ? f->count : 1;
    for (size_t j = 0; j < cnt; j++, k++) {
      s->elements[k] = et;
      offsets[k] = f->offset + j * esz;
      owner[k] = i;
    }
  }
  s->elements[n] = NULL;
  s->ffi.size = 0;
  s->ffi.alignment = 0;
  s->ffi.type = FFI_TYPE_STRUCT;
  s->ffi.elements = s->elements;
  size_t *got = edgert__calloc(n, sizeof *got);
  if (got == NULL) {
    edgert__free(offsets);
    edgert__free(owner);
    return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", s->name);
  }
  ffi_status st = ffi_get_struct_offsets(FFI_DEFAULT_ABI, &s->ffi, got);
  char msg[400];
  msg[0] = '\0';
  if (st != FFI_OK) {
    snprintf(msg, sizeof msg, "struct %s: libffi cannot lay it out (status %d), so it "
             "cannot be passed by value (pass a POINTER(%s))", s->name, (int)st, s->name);
  } else {
    for (size_t j = 0; j < n && msg[0] == '\0'; j++)
      if (got[j] != offsets[j])
        snprintf(msg, sizeof msg,
                 "struct %s: field '%s' at offset %zu is packed; libffi would place it at "
                 "%zu, so %s cannot be passed by value (pass a POINTER(%s))",
                 s->name, s->fields[owner[j]].name, offsets[j], got[j], s->name, s->name);
    if (msg[0] == '\0' && (s->ffi.size != s->size || s->ffi.alignment != s->align))
      snprintf(msg, sizeof msg,
               "struct %s: size %zu and alignment %zu differ from the natural layout's "
               "(%zu, %u), so it cannot be passed by value (pass a POINTER(%s))",
               s->name, s->size, s->align, (size_t)s->ffi.size, (unsigned)s->ffi.alignment,
               s->name);
  }
  edgert__free(got);
  edgert__free(offsets);
  edgert__free(owner);
  if (msg[0] != '\0') {
    s->by_value_problem = edgert__strdup(msg);
    if (s->by_value_problem == NULL)
      return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", s->name);
  }
  return 0;
}

static int build_format(edgert_struct_t *s);

int edgert_struct_define(const char *name, const edgert_struct_field_desc_t *fields,
                         size_t nfields, size_t size, size_t align,
                         const edgert_struct_t **out) {
  if (name == NULL || (fields == NULL && nfields > 0))
    return edgert__error(EDGERT_EINVAL, "edgert_struct_define: name and fields must not be NULL");
  if (!is_identifier(name, EDGERT_STRUCT_NAME_MAX))
    return edgert__error(EDGERT_EINVAL,
                         "struct name '%.80s' is not a C identifier of 1 to %d characters",
                         name, EDGERT_STRUCT_NAME_MAX);
  if (nfields == 0)
    return edgert__error(EDGERT_EINVAL, "struct %s: has no fields (C has no empty structs)",
                         name);
  if (nfields > EDGERT_STRUCT_MAX_FIELDS)
    return edgert__error(EDGERT_ELIMIT, "struct %s: %zu fields is more than the limit of %d",
                         name, nfields, EDGERT_STRUCT_MAX_FIELDS);
  if (align == 0 || align > 64 || (align & (align - 1)) != 0)
    return edgert__error(EDGERT_EINVAL, "struct %s: alignment %zu is not a power of two "
                         "from 1 to 64", name, align);
  if (size == 0 || size > EDGERT_STRUCT_MAX_SIZE)
    return edgert__error(size ? EDGERT_ELIMIT : EDGERT_EINVAL,
                         "struct %s: size %zu is not 1 to %d bytes", name, size,
                         EDGERT_STRUCT_MAX_SIZE);
  if (size % align != 0)
    return edgert__error(EDGERT_EINVAL, "struct %s: size %zu is not a multiple of its "
                         "alignment %zu", name, size, align);
  edgert_struct_t *s = edgert__calloc(1, sizeof *s);
  size_t names_len = 0;
  for (size_t i = 0; i < nfields; i++) {
    if (fields[i].name == NULL || fields[i].type == NULL) {
      edgert__free(s);
      return edgert__error(EDGERT_EINVAL, "struct %s: field %zu: %s is missing (NULL)", name,
                           i, fields[i].name == NULL ? "name" : "type");
    }
    names_len += strlen(fields[i].name) + 1;
  }
  if (s == NULL)
    return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", name);
  memcpy(s->name, name, strlen(name) + 1);
  s->size = size;
  s->align = align;
  s->nfields = nfields;
  s->fields = edgert__calloc(nfields, sizeof *s->fields);
  s->names = edgert__malloc(names_len);
  if (s->fields == NULL || s->names == NULL) {
    free_layout(s);
    return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", name);
  }
  char *np = s->names;
  size_t end = 0; /* where the previous field ended */
  for (size_t i = 0; i < nfields; i++) {
    const edgert_struct_field_desc_t *d = &fields[i];
    edgert_struct_field_t *f = &s->fields[i];
    int rc = 0;
    if (!is_identifier(d->name, EDGERT_STRUCT_FIELD_NAME_MAX)) {
      rc = edgert__error(EDGERT_EINVAL, "struct %s: field %zu: name '%.80s' is not a C "
                         "identifier of 1 to %d characters", name, i, d->name,
                         EDGERT_STRUCT_FIELD_NAME_MAX);
      goto fail;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(s->fields[j].name, d->name) == 0) {
        rc = edgert__error(EDGERT_EINVAL, "struct %s: field '%s' appears twice", name, d->name);
        goto fail;
      }
    size_t nl = strlen(d->name) + 1;
    memcpy(np, d->name, nl);
    f->name = np;
    np += nl;
    rc = edgert_abi_type_parse(d->type, 0, &f->type);
    if (rc < 0) {
      char m[600];
      snprintf(m, sizeof m, "%s", edgert_last_error());
      rc = edgert__error(rc, "struct %s: field '%s': %s", name, d->name, m);
      goto fail;
    }
    if (f->type.code == EDGERT_CT_STRUCT && strcmp(f->type.layout->name, name) == 0) {
      rc = edgert__error(EDGERT_EINVAL, "struct %s: field '%s' contains struct %s itself "
                         "(a struct cannot contain itself; use a POINTER)", name, d->name, name);
      goto fail;
    }
    f->offset = d->offset;
    f->count = d->count;
    size_t esz = edgert_abi_type_size(&f->type);
    size_t ea = elem_align(&f->type);
    size_t cnt = d->count ? d->count : 1;
    if (d->count > EDGERT_STRUCT_MAX_SIZE || esz * cnt > EDGERT_STRUCT_MAX_SIZE) {
      rc = edgert__error(EDGERT_ELIMIT, "struct %s: field '%s': %zu elements of %zu bytes "
                         "exceed the struct size limit of %d", name, d->name, cnt, esz,
                         EDGERT_STRUCT_MAX_SIZE);
      goto fail;
    }
    size_t need = ea < align ? ea : align; /* packed structs lower it */
    if (d->offset % need != 0) {
      rc = edgert__error(EDGERT_EINVAL, "struct %s: field '%s' at offset %zu is not aligned "
                         "to %zu bytes", name, d->name, d->offset, need);
      goto fail;
    }
    if (d->offset < end) {
      rc = edgert__error(EDGERT_EINVAL, "struct %s: field '%s' at offset %zu overlaps the "
                         "field before it, which ends at %zu (fields must be in offset order; "
                         "unions are not supported)", name, d->name, d->offset, end);
      goto fail;
    }
    end = d->offset + esz * cnt;
    if (end > size) {
      rc = edgert__error(EDGERT_EINVAL, "struct %s: field '%s' ends at %zu, past the size %zu",
                         name, d->name, end, size);
      goto fail;
    }
    continue;
  fail:
    free_layout(s);
    return rc;
  }
  int rc = prepare_ffi(s);
  if (rc == 0)
    rc = build_format(s);
  if (rc < 0) {
    free_layout(s);
    return rc;
  }
  edgert__fork_init();
  pthread_mutex_lock(&layouts_lock);
  edgert_struct_t *old = find_locked(name);
  if (old != NULL) {
    pthread_mutex_unlock(&layouts_lock);
    if (same_layout(old, s)) {
      free_layout(s);
      if (out != NULL)
        *out = old;
      return 0;
    }
    char diff[400];
    describe_difference(old, s, diff, sizeof diff);
    free_layout(s);
    return edgert__error(EDGERT_EEXIST, "struct %s is already defined with another layout: %s",
                         name, diff);
  }
  s->next = layouts;
  layouts = s;
  pthread_mutex_unlock(&layouts_lock);
  if (out != NULL)
    *out = s;
  return 0;
}

/* fork.c's handlers: layouts_lock is held for a list walk only (never
 * while foreign code runs). */
void edgert__struct_fork_prepare(void) { pthread_mutex_lock(&layouts_lock); }
void edgert__struct_fork_parent(void) { pthread_mutex_unlock(&layouts_lock); }
void edgert__struct_fork_child(void) { pthread_mutex_unlock(&layouts_lock); }

int edgert_struct_find(const char *name, const edgert_struct_t **out) {
  if (name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_struct_find: name and out must not be NULL");
  pthread_mutex_lock(&layouts_lock);
  edgert_struct_t *s = find_locked(name);
  pthread_mutex_unlock(&layouts_lock);
  if (s == NULL)
    return edgert__error(EDGERT_ENOTFOUND, "no struct named '%.80s' is defined", name);
  *out = s;
  return 0;
}

const char *edgert_struct_name(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, NULL);
  return s->name;
}
size_t edgert_struct_size(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, 0);
  return s->size;
}
size_t edgert_struct_align(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, 0);
  return s->align;
}
size_t edgert_struct_nfields(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, 0);
  return s->nfields;
}
const edgert_struct_field_t *edgert_struct_field(const edgert_struct_t *s, size_t i) {
  EDGERT__RETURN_IF_NULL(s, NULL);
  return i < s->nfields ? &s->fields[i] : NULL;
}
ffi_type *edgert__struct_ffi_type(const edgert_struct_t *s) {
  return (ffi_type *)&((edgert_struct_t *)(uintptr_t)s)->ffi;
}

const char *edgert_struct_by_value_problem(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, NULL);
  return s->by_value_problem;
}

void edgert_struct_copy_value(const edgert_struct_t *s, void *dst, const void *src) {
  if (s == NULL || dst == NULL || src == NULL)
    return;
  unsigned char *d = dst;
  const unsigned char *p = src;
  size_t at = 0;
  for (size_t i = 0; i < s->nfields; i++) {
    const edgert_struct_field_t *f = &s->fields[i];
    size_t esz = edgert_abi_type_size(&f->type);
    size_t cnt = f->count ? f->count : 1;
    memset(d + at, 0, f->offset - at);
    if (f->type.code == EDGERT_CT_STRUCT) {
      for (size_t j = 0; j < cnt; j++)
        edgert_struct_copy_value(f->type.layout, d + f->offset + j * esz,
                                 p + f->offset + j * esz);
    } else if (f->type.code == EDGERT_CT_LONGDOUBLE) {
      /* x87 long double: 10 value bytes, 6 of padding */
      for (size_t j = 0; j < cnt; j++) {
        memset(d + f->offset + j * esz, 0, esz);
        memcpy(d + f->offset + j * esz, p + f->offset + j * esz,
               LDBL_MANT_DIG == 64 ? 10 : esz);
      }
    } else {
      memcpy(d + f->offset, p + f->offset, esz * cnt);
    }
    at = f->offset + esz * cnt;
  }
  memset(d + at, 0, s->size - at);
}

/* ---- buffer formats (PEP 3118) --------------------------------------------- */

static char format_letter(edgert_ctype_t code) {
  switch (code) {
  case EDGERT_CT_BOOL:
    return '?';
  case EDGERT_CT_CHAR:
    return 'c';
  case EDGERT_CT_WCHAR:
    return 'w';
  case EDGERT_CT_BYTE:
    return 'b';
  case EDGERT_CT_UBYTE:
    return 'B';
  case EDGERT_CT_SHORT:
    return 'h';
  case EDGERT_CT_USHORT:
    return 'H';
  case EDGERT_CT_INT:
    return 'i';
  case EDGERT_CT_UINT:
    return 'I';
  case EDGERT_CT_LONG:
  case EDGERT_CT_LONGLONG:
    return 'q';
  case EDGERT_CT_ULONG:
  case EDGERT_CT_ULONGLONG:
    return 'Q';
  case EDGERT_CT_FLOAT:
    return 'f';
  case EDGERT_CT_DOUBLE:
    return 'd';
  case EDGERT_CT_LONGDOUBLE:
    return 'g';
  default:
    return 'P';
  }
}

/* Appends the format of `s` to buf at *at (sizes checked by the caller:
 * format_length). */
static void format_write(const edgert_struct_t *s, char *buf, size_t *at) {
  size_t end = 0;
  *at += (size_t)sprintf(buf + *at, "T{");
  for (size_t i = 0; i < s->nfields; i++) {
    const edgert_struct_field_t *f = &s->fields[i];
    if (f->offset > end)
      *at += (size_t)sprintf(buf + *at, "%zux", f->offset - end);
    if (f->count)
      *at += (size_t)sprintf(buf + *at, "(%zu)", f->count);
    if (f->type.code == EDGERT_CT_STRUCT) {
      format_write(f->type.layout, buf, at);
    } else {
      int natural = f->offset % elem_align(&f->type) == 0 || f->type.code == EDGERT_CT_LONGDOUBLE;
      *at += (size_t)sprintf(buf + *at, "%s%c", natural ? "@" : "=", format_letter(f->type.code));
    }
    *at += (size_t)sprintf(buf + *at, ":%s:", f->name);
    end = f->offset + edgert_abi_type_size(&f->type) * (f->count ? f->count : 1);
  }
  if (s->size > end)
    *at += (size_t)sprintf(buf + *at, "%zux", s->size - end);
  *at += (size_t)sprintf(buf + *at, "}");
}

/* An upper bound of the format's length. */
static size_t format_length(const edgert_struct_t *s) {
  size_t n = 3;
  for (size_t i = 0; i < s->nfields; i++) {
    const edgert_struct_field_t *f = &s->fields[i];
    n += 2 * 24 + 4 + strlen(f->name) + 2;
    if (f->type.code == EDGERT_CT_STRUCT)
      n += format_length(f->type.layout);
  }
  return n + 24;
}

static int build_format(edgert_struct_t *s) {
  size_t n = format_length(s);
  s->format = edgert__malloc(n);
  if (s->format == NULL)
    return edgert__error(EDGERT_ENOMEM, "struct %s: out of memory", s->name);
  size_t at = 0;
  format_write(s, s->format, &at);
  return 0;
}

const char *edgert_struct_format(const edgert_struct_t *s) {
  EDGERT__RETURN_IF_NULL(s, NULL);
  return s->format;
}

/* One item of a parsed "T{...}": a scalar or a nested struct. */
typedef struct {
  char name[EDGERT_STRUCT_FIELD_NAME_MAX + 1];
  size_t offset, count, size, align;
  int nested;            /* a "T{...}" item: checked against the field's layout */
  const char *body;      /* nested: where its "T{" starts */
  edgert_buffer_item_t item; /* scalar: the element */
  int is_string;         /* 's': count chars */
} fmt_item_t;

typedef struct {
  const char *p;  /* the next character of the format */
  char why[300];  /* what differs, when a check fails */
} fmt_reader_t;

static size_t native_size(char c) {
  switch (c) {
  case 'x': case 'c': case 'b': case 'B': case '?': case 's': return 1;
  case 'h': case 'H': case 'e': return 2;
  case 'i': case 'I': case 'f': return 4;
  case 'l': case 'L': case 'q': case 'Q': case 'n': case 'N': case 'd': case 'P':
  case '&': case 'z': case 'Z': case 'O': return 8;
  case 'u': case 'w': return sizeof(wchar_t);
  case 'g': return sizeof(long double);
  default: return 0;
  }
}
static size_t standard_size(char c) {
  switch (c) {
  case 'l': case 'L': return 4;
  case 'u': return 2;
  case 'w': return 4;
  case 'n': case 'N': case 'g': case 'P': case '&': case 'z': case 'Z': return 0;
  default: return native_size(c);
  }
}

static size_t read_number(fmt_reader_t *r) {
  size_t n = 0;
  while (*r->p >= '0' && *r->p <= '9') {
    n = n * 10 + (size_t)(*r->p - '0');
    if (n > EDGERT_STRUCT_MAX_SIZE)
      n = EDGERT_STRUCT_MAX_SIZE + 1;
    r->p++;
  }
  return n;
}

static int check_struct_body(const edgert_struct_t *s, fmt_reader_t *r, size_t *size_out,
                             size_t *align_out, int depth);

/* Compares item `it` with field `f` of `s`: 0, or -1 with r->why set. */
static int compare_field(const edgert_struct_t *s, const edgert_struct_field_t *f,
                         const fmt_item_t *it, fmt_reader_t *r) {
  size_t cnt = f->count ? f->count : 1;
  size_t icnt = it->count ? it->count : 1;
  if (strcmp(it->name, f->name) != 0) {
    snprintf(r->why, sizeof r->why, "the buffer's field '%s' is where struct %s has '%s'",
             it->name, s->name, f->name);
    return -1;
  }
  if (it->offset != f->offset) {
    snprintf(r->why, sizeof r->why, "field '%s' is at offset %zu in the buffer, %zu in struct %s",
             f->name, it->offset, f->offset, s->name);
    return -1;
  }
  if (icnt != cnt) {
    snprintf(r->why, sizeof r->why, "field '%s' has %zu elements in the buffer, %zu in struct %s",
             f->name, icnt, cnt, s->name);
    return -1;
  }
  if (f->type.code == EDGERT_CT_STRUCT) {
    if (!it->nested) {
      snprintf(r->why, sizeof r->why, "field '%s' is a scalar in the buffer, struct %s in struct %s",
               f->name, f->type.layout->name, s->name);
      return -1;
    }
    return 0; /* its body was checked against the field's layout when read */
  }
  size_t want = edgert_abi_type_size(&f->type);
  int ok = !it->nested && it->size == want;
  if (ok) {
    switch (f->type.code) {
    case EDGERT_CT_CHAR: case EDGERT_CT_BYTE: case EDGERT_CT_UBYTE:
      ok = it->is_string || it->item.kind == EDGERT_ITEM_CHAR ||
           (f->type.code == EDGERT_CT_BYTE ? it->item.kind == EDGERT_ITEM_SIGNED
                                            : f->type.code == EDGERT_CT_UBYTE
                                                  ? it->item.kind == EDGERT_ITEM_UNSIGNED
                                                  : it->item.kind == EDGERT_ITEM_SIGNED ||
                                                        it->item.kind == EDGERT_ITEM_UNSIGNED);
      break;
    case EDGERT_CT_BOOL: ok = it->item.kind == EDGERT_ITEM_BOOL; break;
    case EDGERT_CT_WCHAR: ok = it->item.kind == EDGERT_ITEM_WCHAR; break;
    case EDGERT_CT_SHORT: case EDGERT_CT_INT: case EDGERT_CT_LONG: case EDGERT_CT_LONGLONG:
      ok = it->item.kind == EDGERT_ITEM_SIGNED; break;
    case EDGERT_CT_USHORT: case EDGERT_CT_UINT: case EDGERT_CT_ULONG: case EDGERT_CT_ULONGLONG:
      ok = it->item.kind == EDGERT_ITEM_UNSIGNED; break;
    case EDGERT_CT_FLOAT: case EDGERT_CT_DOUBLE: case EDGERT_CT_LONGDOUBLE:
      ok = it->item.kind == EDGERT_ITEM_FLOAT; break;
    default: ok = it->item.kind == EDGERT_ITEM_POINTER; break;
    }
  }
  if (!ok) {
    char tn[EDGERT_ABI_TYPE_NAME_MAX];
    if (edgert_abi_type_name(&f->type, tn, sizeof tn) != 0)
      snprintf(tn, sizeof tn, "?");
    snprintf(r->why, sizeof r->why,
             "field '%s' has %zu-byte items of another kind in the buffer; struct %s has %.64s",
             f->name, it->nested ? (size_t)0 : it->size, s->name, tn);
    return -1;
  }
  return 0;
}

/* Reads the body of a "T{" (r->p just past it) against layout `s`. */
static int check_struct_body(const edgert_struct_t *s, fmt_reader_t *r, size_t *size_out,
                             size_t *align_out, int depth) {
  if (depth > 16) {
    snprintf(r->why, sizeof r->why, "structs nested more than 16 deep");
    return -1;
  }
  size_t at = 0, align = 1, nf = 0;
  char mode = '@';
  for (;;) {
    char c = *r->p;
    if (c == '\0') {
      snprintf(r->why, sizeof r->why, "the format ends inside T{...}");
      return -1;
    }
    if (c == '}') {
      r->p++;
      break;
    }
    if (c == '@' || c == '=' || c == '<' || c == '>' || c == '!') {
      mode = c;
      r->p++;
      continue;
    }
    fmt_item_t it;
    memset(&it, 0, sizeof it);
    if (c == '(') {
      r->p++;
      size_t n = 1;
      for (;;) {
        size_t d = read_number(r);
        n = d == 0 || n > EDGERT_STRUCT_MAX_SIZE / d ? EDGERT_STRUCT_MAX_SIZE + 1 : n * d;
        if (*r->p == ',') {
          r->p++;
          continue;
        }
        if (*r->p == ')') {
          r->p++;
          break;
        }
        snprintf(r->why, sizeof r->why, "a bad shape in the format");
        return -1;
      }
      it.count = n;
      c = *r->p;
    }
    size_t rep = 0;
    if (c >= '0' && c <= '9') {
      rep = read_number(r);
      c = *r->p;
    }
    if (c == 'x') {
      r->p++;
      at += rep ? rep : 1;
      continue;
    }
    size_t elem_size, elem_align;
    if (c == 'T' && r->p[1] == '{') {
      if (nf >= s->nfields || s->fields[nf].type.code != EDGERT_CT_STRUCT) {
        snprintf(r->why, sizeof r->why, "a nested struct in the buffer where struct %s has %s",
                 s->name, nf < s->nfields ? s->fields[nf].name : "no more fields");
        if (nf < s->nfields)
          snprintf(r->why, sizeof r->why, "field '%s' is a struct in the buffer, not in struct %s",
                   s->fields[nf].name, s->name);
        return -1;
      }
      r->p += 2;
      it.nested = 1;
      if (check_struct_body(s->fields[nf].type.layout, r, &elem_size, &elem_align, depth + 1) < 0)
        return -1;
    } else {
      char piece[4] = {mode, c, 0, 0};
      if (c == '&') { /* a pointer: skip what it points to */
        r->p++;
        while (*r->p == '@' || *r->p == '=' || *r->p == '<' || *r->p == '>' || *r->p == '!')
          r->p++;
        if (*r->p == '\0') {
          snprintf(r->why, sizeof r->why, "the format ends inside a pointer");
          return -1;
        }
      }
      elem_size = mode == '@' ? native_size(c) : standard_size(c);
      if (c == 'z' || c == 'Z')
        elem_size = sizeof(void *), piece[1] = 'P', piece[0] = '@';
      if (c == '&')
        piece[0] = '@', piece[1] = 'P', elem_size = sizeof(void *);
      if (c == 's') {
        it.is_string = 1;
        it.count = it.count ? it.count * (rep ? rep : 1) : (rep ? rep : 1);
        if (it.count == 1 && nf < s->nfields && s->fields[nf].count == 0)
          it.count = 0;
        rep = 0;
        piece[1] = 'c';
      }
      if (elem_size == 0) {
        snprintf(r->why, sizeof r->why, "the buffer's item code '%c' is not a C scalar", c);
        return -1;
      }
      if (edgert_buffer_item_parse(piece, elem_size, &it.item) != 0 ||
          it.item.kind == EDGERT_ITEM_NONE) {
        snprintf(r->why, sizeof r->why, "the buffer's item code '%c' (%s) is not a C scalar",
                 c, it.item.reason ? it.item.reason : "unknown");
        return -1;
      }
      elem_align = mode == '@' ? elem_size : 1;
      if (mode == '@' && c == 'g')
        elem_align = _Alignof(long double);
      r->p++;
    }
    if (rep > 1)
      it.count = it.count ? it.count * rep : rep;
    if (mode == '@' || it.nested)
      at = (at + elem_align - 1) / elem_align * elem_align;
    if (elem_align > align && (mode == '@' || it.nested))
      align = elem_align;
    it.offset = at;
    it.size = elem_size;
    if (*r->p != ':') {
      snprintf(r->why, sizeof r->why, "an item without a :name: in the format (the items of "
               "struct %s have names)", s->name);
      return -1;
    }
    r->p++;
    const char *colon = strchr(r->p, ':');
    if (colon == NULL || (size_t)(colon - r->p) > EDGERT_STRUCT_FIELD_NAME_MAX) {
      snprintf(r->why, sizeof r->why, "a bad field name in the format");
      return -1;
    }
    memcpy(it.name, r->p, (size_t)(colon - r->p));
    it.name[colon - r->p] = '\0';
    r->p = colon + 1;
    if (nf >= s->nfields) {
      snprintf(r->why, sizeof r->why, "the buffer has a field '%s' past the last of struct %s",
               it.name, s->name);
      return -1;
    }
    if (compare_field(s, &s->fields[nf], &it, r) < 0)
      return -1;
    at += elem_size * (it.count ? it.count : 1);
    nf++;
  }
  if (nf < s->nfields) {
    snprintf(r->why, sizeof r->why, "field '%s' of struct %s is missing from the buffer",
             s->fields[nf].name, s->name);
    return -1;
  }
  if (mode == '@')
    at = (at + align - 1) / align * align;
  *size_out = at;
  *align_out = align;
  return 0;
}

int edgert_struct_check_format(const edgert_struct_t *s, const char *format, size_t itemsize) {
  EDGERT__RETURN_IF_NULL(s, EDGERT_EINVAL);
  if (format != NULL && strcmp(format, s->format) == 0 && itemsize == s->size)
    return 0;
  fmt_reader_t r;
  r.p = format ? format : "B";
  r.why[0] = '\0';
  while (*r.p == '@' || *r.p == '=' || *r.p == '<')
    r.p++;
  if (!(r.p[0] == 'T' && r.p[1] == '{'))
    return edgert__error(EDGERT_ETYPE, "a buffer of struct %s must have struct items "
                         "(format 'T{...}'), not format '%.60s'", s->name,
                         format ? format : "B");
  r.p += 2;
  size_t size = 0, align = 1;
  if (check_struct_body(s, &r, &size, &align, 0) < 0)
    return edgert__error(EDGERT_ETYPE, "a buffer of struct %s: %s", s->name, r.why);
  if (itemsize != s->size)
    return edgert__error(EDGERT_ETYPE, "a buffer of struct %s has %zu-byte items, not %zu",
                         s->name, itemsize, s->size);
  return 0;
}
