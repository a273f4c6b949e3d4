/*
 * edgert/types.h: the type registry, the element types of typed containers.
 *
 * Every typed dict and list stores its keys and values inline in one of
 * these representations:
 *
 *   kind                   C representation        inline size
 *   EDGERT_KIND_INT64      int64_t                 8
 *   EDGERT_KIND_FLOAT64    double                  8
 *   EDGERT_KIND_BOOL       unsigned char (0 or 1)  1
 *   EDGERT_KIND_STR        edgert_bytes_t (UTF-8)  sizeof(edgert_bytes_t)
 *   EDGERT_KIND_BYTES      edgert_bytes_t          sizeof(edgert_bytes_t)
 *   EDGERT_KIND_CUSTOM     the type's own bytes    sizeof_fn()
 *
 * Custom types are fixed-size, bit-copyable C structs registered with
 * sizeof/check/copy (and optionally box) callbacks. The object those
 * callbacks receive is an opaque host pointer: a PyObject * when the
 * container is used from Python, whatever the host chooses otherwise.
 * `const edgert_type_t *` handles stay valid as memory for the life of the
 * process, even after edgert_type_unregister. Registration, lookup and
 * unregistration are thread-safe.
 *
 * Lifetimes: when a callback lies in a module mapped by edgert's loader,
 * the type keeps that mapping alive (unloading or reloading the module
 * leaves it mapped) until edgert_type_unregister, which is refused while a
 * container of the type exists. So a type registered from a module never
 * calls into unmapped code, whatever happens to the module's handles.
 *
 * NULL: a NULL type handle or required pointer is refused, never
 * dereferenced: int-returning functions return EDGERT_EINVAL, the others the
 * value their comment names, and each leaves a message naming the function
 * and the argument (edgert_last_error()). Optional pointers say so.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_TYPES_H
#define EDGERT_TYPES_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  EDGERT_KIND_NONE = 0, /* no kind: edgert_type_kind's answer for a NULL handle */
  EDGERT_KIND_INT64 = 1,
  EDGERT_KIND_FLOAT64 = 2,
  EDGERT_KIND_BOOL = 3,
  EDGERT_KIND_STR = 4,
  EDGERT_KIND_BYTES = 5,
  EDGERT_KIND_CUSTOM = 6
} edgert_kind_t;

/*
 * The owned form of a str (UTF-8, not validated by the core) or bytes value
 * inside a container: `len` bytes at `data`, followed by a NUL that is not
 * counted (so str data can be used as a C string when it holds no NUL).
 * A container owns the `data` of every element it holds. Functions that hand
 * one out say whether the caller receives a borrowed view or ownership; an
 * owned one is released with edgert_bytes_release().
 */
typedef struct edgert_bytes_s {
  char *data;
  size_t len;
} edgert_bytes_t;

/* Frees an owned edgert_bytes_t's data and zeroes it. NULL does nothing. */
EDGERT_EXTERN void edgert_bytes_release(edgert_bytes_t *b);

/* An element type. Opaque; handles are valid for the life of the process. */
typedef struct edgert_type_s edgert_type_t;

/* The size in bytes of the inline value: 1 .. EDGERT_TYPE_MAX_SIZE. */
typedef size_t (*edgert_sizeof_fn)(void);
/* 1 if `obj` (an opaque host object) is an instance, 0 if not, -1 if the
 * check itself failed (the host records its own error, e.g. a Python
 * exception). */
typedef int (*edgert_check_fn)(void *obj);
/* Writes the inline representation of `src` (which passed check) to `dst`.
 * A host that can fail here reports it its own way (Python: an exception
 * set, which the extension checks after the call). */
typedef void (*edgert_copy_fn)(void *dst, void *src);
/* Optional: a new host object for the inline value at `src`, or NULL with
 * the host's error set. Without it, Python sees custom values as bytes. */
typedef void *(*edgert_box_fn)(const void *src);

#define EDGERT_TYPE_MAX_SIZE 65536
#define EDGERT_TYPE_NAME_MAX 63

/*
 * Finds a type by name: "int" or "int64", "float" or "float64", "bool",
 * "str", "bytes", or a registered custom type's name.
 * Returns 0 with *out set, EDGERT_EINVAL (NULL arguments) or
 * EDGERT_ENOTFOUND naming the type. Runs no foreign code.
 */
EDGERT_EXTERN int edgert_type_find(const char *name, const edgert_type_t **out);

/* The built-in type of `kind` (not EDGERT_KIND_CUSTOM nor EDGERT_KIND_NONE),
 * NULL otherwise (without a message: any kind value is a valid question). */
EDGERT_EXTERN const edgert_type_t *edgert_type_builtin(edgert_kind_t kind);

/*
 * Registers a custom type. `name`: 1 to EDGERT_TYPE_NAME_MAX characters,
 * a letter or '_' then letters, digits, '_' or '.'; it must not be a
 * built-in name ("int", "int64", "float", "float64", "bool", "str",
 * "bytes", "object") nor an already registered one. `sizeof_fn`,
 * `check_fn`, `copy_fn` are required, `box_fn` may be NULL. Calls
 * `sizeof_fn` once (foreign code) and keeps what it returned.
 * Returns 0 (with *out set when `out` is not NULL), EDGERT_EINVAL (NULL or
 * bad name, missing callback, size 0 or above EDGERT_TYPE_MAX_SIZE),
 * EDGERT_EEXIST (name taken) or EDGERT_ENOMEM. The name is copied.
 * Thread-safe: of two threads registering one name, exactly one succeeds.
 */
EDGERT_EXTERN int edgert_type_register(const char *name, edgert_sizeof_fn sizeof_fn,
                                       edgert_check_fn check_fn, edgert_copy_fn copy_fn,
                                       edgert_box_fn box_fn, const edgert_type_t **out);

/*
 * The same with the callbacks as plain addresses, the form in which a
 * loader or ctypes hands them over (the article's
 * `register_custom_type(b"Point", sizeof_fp, check_fp, copy_fp)`).
 * Same return codes as edgert_type_register.
 */
EDGERT_EXTERN int edgert_register_custom_type(const char *name, void *sizeof_fn,
                                              void *check_fn, void *copy_fn);
EDGERT_EXTERN int edgert_register_custom_type_boxed(const char *name, void *sizeof_fn,
                                                    void *check_fn, void *copy_fn,
                                                    void *box_fn);

/*
 * Registers struct `layout` (edgert/struct.h) as a custom inline type named
 * "struct.NAME", no callbacks needed: its size is the layout's, a C host's
 * value is a pointer to the struct's bytes (check: non-NULL), copying it
 * copies the fields and zeroes every padding byte (edgert_struct_copy_value),
 * and it has no box (EDGERT_EUNSUPPORTED: read the bytes in place). The
 * Python binding checks and boxes instances of the layout's ctypes class.
 * Registering one layout again returns the same type. Returns 0 (with *out
 * set when not NULL), EDGERT_EINVAL, EDGERT_EEXIST (the name is taken by
 * another type) or EDGERT_ENOMEM. Runs no foreign code.
 */
struct edgert_struct_s;
EDGERT_EXTERN int edgert_type_register_struct(const struct edgert_struct_s *layout,
                                              const edgert_type_t **out);
/* The layout of a struct type, NULL for every other type (and, with the
 * message set, for a NULL type). */
EDGERT_EXTERN const struct edgert_struct_s *edgert_type_layout(const edgert_type_t *t);

/*
 * Removes the custom type `name` from the registry and releases the module
 * mappings its callbacks kept alive (which may unmap them: dlclose, the
 * module's destructors). Refused while any typed list or dict of the type
 * exists (created and not yet freed): EDGERT_EBUSY, the message says how
 * many. Afterwards the name can be registered again; a handle kept from
 * before stays readable (name, size) but no container of it can be made
 * (edgert_list_new / edgert_dict_new: EDGERT_ENOTFOUND).
 * Returns 0, EDGERT_EINVAL (NULL, or a built-in name), EDGERT_ENOTFOUND,
 * EDGERT_EBUSY. May run foreign code (the destructors of an unmapped module).
 */
EDGERT_EXTERN int edgert_type_unregister(const char *name);
/* The number of containers of the type that exist now (0 for a built-in one). */
EDGERT_EXTERN size_t edgert_type_containers(const edgert_type_t *t);

/*
 * Accessors. They never fail for a valid handle and run no foreign code.
 * For a NULL handle (with the message set): name NULL, kind
 * EDGERT_KIND_NONE, size 0 (no type has size 0), has_box 0.
 */
EDGERT_EXTERN const char *edgert_type_name(const edgert_type_t *t);   /* "int64", "Point" */
EDGERT_EXTERN edgert_kind_t edgert_type_kind(const edgert_type_t *t);
EDGERT_EXTERN size_t edgert_type_size(const edgert_type_t *t);        /* inline size */
EDGERT_EXTERN int edgert_type_has_box(const edgert_type_t *t);        /* 1 or 0 */

/*
 * Custom types only (EDGERT_ETYPE for a built-in one), all running foreign
 * code: edgert_type_check returns 1, 0, or EDGERT_EFAILED when the check
 * reported -1; edgert_type_copy zeroes the type's size bytes at `dst` and
 * then calls copy_fn (so padding the callback does not write is always
 * zero, and equal values are equal bytes for hashing), and returns 0; edgert_type_box returns the new
 * host object in *out, or EDGERT_EUNSUPPORTED without a box callback,
 * EDGERT_EFAILED when it returned NULL. `t`, `dst`, `src` and `out` must not
 * be NULL (EDGERT_EINVAL); `obj` is the host's and is passed on as it is,
 * NULL included.
 */
EDGERT_EXTERN int edgert_type_check(const edgert_type_t *t, void *obj);
EDGERT_EXTERN int edgert_type_copy(const edgert_type_t *t, void *dst, void *obj);
EDGERT_EXTERN int edgert_type_box(const edgert_type_t *t, const void *src, void **out);

/*
 * One line in a custom-type library defines its own entry point
 *
 *   int register_custom_type(const char *name, void *sizeof_fn,
 *                            void *check_fn, void *copy_fn);
 *
 * with default visibility, forwarding to this process's registry, so a
 * loader that binds only functions the library defines itself can call it:
 *
 *   EDGERT_DEFINE_REGISTER_CUSTOM_TYPE()
 *
 * EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_AS(fname) names the function `fname`;
 * EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_BOXED(fname) defines
 * `int fname(name, sizeof_fn, check_fn, copy_fn, box_fn)`. The library links
 * libedgert (the same instance the host uses, so one registry).
 */
#if defined(__GNUC__)
#define EDGERT__PUBLIC_FN __attribute__((visibility("default")))
#else
#define EDGERT__PUBLIC_FN
#endif
#define EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_AS(fname)                                    \
  EDGERT__PUBLIC_FN int fname(const char *name, void *sizeof_fn, void *check_fn,        \
                              void *copy_fn);                                           \
  EDGERT__PUBLIC_FN int fname(const char *name, void *sizeof_fn, void *check_fn,        \
                              void *copy_fn) {                                          \
    return edgert_register_custom_type(name, sizeof_fn, check_fn, copy_fn);             \
  }
#define EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_BOXED(fname)                                 \
  EDGERT__PUBLIC_FN int fname(const char *name, void *sizeof_fn, void *check_fn,        \
                              void *copy_fn, void *box_fn);                             \
  EDGERT__PUBLIC_FN int fname(const char *name, void *sizeof_fn, void *check_fn,        \
                              void *copy_fn, void *box_fn) {                            \
    return edgert_register_custom_type_boxed(name, sizeof_fn, check_fn, copy_fn,        \
                                             box_fn);                                   \
  }
#define EDGERT_DEFINE_REGISTER_CUSTOM_TYPE()                                            \
  EDGERT_DEFINE_REGISTER_CUSTOM_TYPE_AS(register_custom_type)

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_TYPES_H */
