/*
 * edgert/struct.h: struct layouts, the C side of ctypes.Structure contract
 * types and of a manifest's "structs" section.
 *
 * A layout is a named C struct: its size, its alignment and its fields, each
 * a name, a type (a scalar, a pointer, a nested struct, or a fixed array of
 * one of those), an offset and a count. Layouts are defined once per name and
 * process: defining a name again with the same layout returns the first
 * definition, with a different one is refused naming the first field that
 * differs. A defined layout never changes and is never freed (as registered
 * types are not), so a contract that points to it stays plain data, and
 * "struct NAME" means one layout everywhere in the process: in contracts
 * built in C, from Python classes and from manifests.
 *
 * Defining validates the layout: every offset aligned for its field (unless
 * the struct is packed: alignment below its fields'), fields in offset order
 * without overlap (a union is refused), the size covering every field and a
 * multiple of the alignment. It also prepares the libffi type that passes the
 * struct by value; a packed layout libffi would lay out differently (checked
 * with ffi_get_struct_offsets) is still a layout, usable behind POINTER, but
 * refused by value with a message naming the field.
 * Implemented in src/struct.c. Thread-safe; nothing here runs foreign code.
 */
#ifndef EDGERT_STRUCT_H
#define EDGERT_STRUCT_H

#include "abi.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest struct name ("LP_" * 8 + "struct " + name fits
 * EDGERT_ABI_TYPE_NAME_MAX). */
#define EDGERT_STRUCT_NAME_MAX 32
/* The longest field name. */
#define EDGERT_STRUCT_FIELD_NAME_MAX 63
/* The most fields of one struct, and the most scalar elements once nested
 * structs and arrays are expanded (what libffi gets). */
#define EDGERT_STRUCT_MAX_FIELDS 256
#define EDGERT_STRUCT_MAX_ELEMENTS 65536
/* The largest struct (the largest inline container value too). */
#define EDGERT_STRUCT_MAX_SIZE 65536

typedef struct edgert_struct_s edgert_struct_t;

/* One field as a host describes it. `type` is a type name as
 * edgert_abi_type_parse reads it ("c_double", "LP_c_float", "struct Inner"
 * for a struct defined before); `count` 0 for a single value, n >= 1 for a
 * fixed array of n (a ctypes `c_double * 3`; nested arrays are flattened). */
typedef struct edgert_struct_field_desc_s {
  const char *name;
  const char *type;
  size_t offset;
  size_t count;
} edgert_struct_field_desc_t;

/* One field of a defined layout (borrowed from it). */
typedef struct edgert_struct_field_s {
  const char *name;
  edgert_abi_type_t type; /* never VOID; a struct field has code EDGERT_CT_STRUCT */
  size_t offset;
  size_t count;           /* 0: one value; n: an array of n */
} edgert_struct_field_t;

/*
 * Defines struct `name` (a C identifier of at most EDGERT_STRUCT_NAME_MAX
 * bytes) with `nfields` fields (1..EDGERT_STRUCT_MAX_FIELDS, in offset
 * order), `size` bytes (1..EDGERT_STRUCT_MAX_SIZE) and alignment `align` (a
 * power of two, 1..64). Nothing of the arguments is kept.
 * Returns 0 with *out (optional) set to the layout, or:
 *   EDGERT_EINVAL  a bad name, field name (not an identifier, duplicate),
 *                  field type (unknown, void, a union), offset (misaligned,
 *                  before the previous field's end: overlapping), size (does
 *                  not cover the fields, not a multiple of align), align;
 *                  the message starts with "struct NAME: field 'y': ...";
 *   EDGERT_ELIMIT  too many fields or elements, too large;
 *   EDGERT_EEXIST  NAME is defined with another layout (the message names
 *                  the first difference);
 *   EDGERT_ENOMEM.
 * Thread-safe: of two threads defining one name differently, one wins.
 */
EDGERT_EXTERN int edgert_struct_define(const char *name,
                                       const edgert_struct_field_desc_t *fields,
                                       size_t nfields, size_t size, size_t align,
                                       const edgert_struct_t **out);

/* The layout defined as `name`: 0 with *out set, EDGERT_ENOTFOUND naming
 * it, EDGERT_EINVAL for NULL arguments. */
EDGERT_EXTERN int edgert_struct_find(const char *name, const edgert_struct_t **out);

/* Accessors; a NULL layout (the NULL rule, docs/c-api.md) gives NULL or 0
 * with the message set. */
EDGERT_EXTERN const char *edgert_struct_name(const edgert_struct_t *s);
EDGERT_EXTERN size_t edgert_struct_size(const edgert_struct_t *s);
EDGERT_EXTERN size_t edgert_struct_align(const edgert_struct_t *s);
EDGERT_EXTERN size_t edgert_struct_nfields(const edgert_struct_t *s);
/* Field `i` (0-based), NULL past the end. */
EDGERT_EXTERN const edgert_struct_field_t *edgert_struct_field(const edgert_struct_t *s,
                                                               size_t i);
/* NULL when the layout can be passed and returned by value; else a message
 * (static to the layout) saying why not: "struct P: field 'd' at offset 1
 * is packed; libffi would place it at 8, so P cannot be passed by value
 * (pass a POINTER(P))". */
EDGERT_EXTERN const char *edgert_struct_by_value_problem(const edgert_struct_t *s);

/*
 * Buffers of structs (PEP 3118). edgert_struct_format is the layout's item
 * format, with explicit padding ("T{d:x:d:y:}", "T{c:c:7xd:d:}", arrays as
 * "(3)f"; '=' before a packed field), a string owned by the layout: what a
 * container of the struct exports. edgert_struct_check_format reads a
 * buffer's item format (a "T{...}" as numpy writes it for a structured
 * dtype, nested structs and shapes included; '@' items aligned naturally,
 * '=', '<', '>', '!' ones not; "Nx" padding) and returns 0 when its items
 * are exactly `s`: `itemsize` the struct's size, each field's name,
 * offset, count and element kind and size the same. Otherwise
 * EDGERT_ETYPE with a message naming the first field that differs ("field
 * 'y' is at offset 4 in the buffer, 8 in struct P"), or the size.
 */
EDGERT_EXTERN const char *edgert_struct_format(const edgert_struct_t *s);
EDGERT_EXTERN int edgert_struct_check_format(const edgert_struct_t *s, const char *format,
                                             size_t itemsize);

/*
 * Copies a value of `s` from `src` to `dst` (both edgert_struct_size bytes,
 * not overlapping) field by field, nested structs included, and writes
 * zeros to every padding byte: equal values become equal bytes, as the
 * containers' hashing and comparison need. NULL arguments do nothing (a
 * void function).
 */
EDGERT_EXTERN void edgert_struct_copy_value(const edgert_struct_t *s, void *dst,
                                            const void *src);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_STRUCT_H */
