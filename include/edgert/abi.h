/*
 * edgert/abi.h: ABI contracts, the C side of ABIContract.
 *
 * A contract names a function and its C signature in ctypes' vocabulary:
 * argument types and a return type, each a simple type (c_int, c_double,
 * c_size_t, ...), c_char_p, c_void_p, or POINTER(t) ("LP_c_float"). The type
 * names table lives here once and serves both the JSON manifest reader and
 * the Python binding, so C and Python read a contract the same way.
 * Implemented in src/abi.c. None of these functions runs foreign code or
 * allocates; all are thread-safe.
 *
 * Names on x86-64 Linux (LP64) follow ctypes, where several names are one
 * class: c_size_t, c_ulong, c_ulonglong and c_uint64 are all c_ulong, and
 * c_ssize_t, c_long, c_longlong, c_int64 (and c_time_t, Python 3.12+) are all
 * c_long. Every name of one ctypes class parses to one code here, and the
 * canonical (written) name of the 64-bit integers is their size-type name:
 * "c_size_t" for EDGERT_CT_ULONG, "c_ssize_t" for EDGERT_CT_LONG, as the
 * article's `['LP_c_float', 'c_size_t']` requires. docs/abi.md has the table.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_ABI_H
#define EDGERT_ABI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most arguments a contract may have. */
#define EDGERT_MAX_ARGS 32
/* The longest function name (bytes, without the NUL). */
#define EDGERT_MAX_NAME 255
/* The most POINTER levels of one type ("LP_" prefixes). */
#define EDGERT_MAX_POINTER_DEPTH 8
/* The most arguments of a callback signature (CFUNCTYPE). */
#define EDGERT_MAX_CALLBACK_ARGS 16
/* A buffer this size holds any canonical type name, NUL included: the
 * longest is a CFUNCTYPE with EDGERT_MAX_CALLBACK_ARGS pointer arguments of
 * EDGERT_MAX_POINTER_DEPTH levels (edgert/callback.h). */
#define EDGERT_ABI_TYPE_NAME_MAX 704

/* C types, as ctypes names them. Aliases (c_size_t is c_ulong on LP64,
 * c_int32 is c_int, ...) map onto these codes when parsed. */
typedef enum edgert_ctype_e {
  EDGERT_CT_VOID = 0,   /* return type only: None */
  EDGERT_CT_BOOL,       /* c_bool */
  EDGERT_CT_CHAR,       /* c_char: one byte, from bytes of length 1 */
  EDGERT_CT_WCHAR,      /* c_wchar: wchar_t, from str of length 1 */
  EDGERT_CT_BYTE,       /* c_byte, c_int8 */
  EDGERT_CT_UBYTE,      /* c_ubyte, c_uint8 */
  EDGERT_CT_SHORT,      /* c_short, c_int16 */
  EDGERT_CT_USHORT,     /* c_ushort, c_uint16 */
  EDGERT_CT_INT,        /* c_int, c_int32 */
  EDGERT_CT_UINT,       /* c_uint, c_uint32 */
  EDGERT_CT_LONG,       /* c_ssize_t (canonical), c_long, c_longlong, c_int64, c_time_t */
  EDGERT_CT_ULONG,      /* c_size_t (canonical), c_ulong, c_ulonglong, c_uint64 */
  EDGERT_CT_LONGLONG,   /* long long, for contracts C hosts build by hand; no
                           name parses to it on LP64, where ctypes' c_longlong
                           is c_long. Written "c_longlong". */
  EDGERT_CT_ULONGLONG,  /* unsigned long long, likewise; written "c_ulonglong" */
  EDGERT_CT_FLOAT,      /* c_float */
  EDGERT_CT_DOUBLE,     /* c_double */
  EDGERT_CT_LONGDOUBLE, /* c_longdouble */
  EDGERT_CT_CHAR_P,     /* c_char_p: NUL-terminated bytes, or NULL */
  EDGERT_CT_WCHAR_P,    /* c_wchar_p: NUL-terminated wchar_t string, or NULL */
  EDGERT_CT_VOID_P,     /* c_void_p (alias c_voidp): an address, NULL, or any contiguous buffer */
  EDGERT_CT_POINTER,    /* POINTER(pointee): a buffer whose items are pointee */
  EDGERT_CT_STRUCT,     /* "struct NAME": a struct by value; `layout` says
                           which (edgert/struct.h) */
  EDGERT_CT_FUNCPTR,    /* CFUNCTYPE(restype, argtypes...): a C function
                           pointer of signature `sig` (edgert/callback.h) */
  EDGERT_CT__COUNT
} edgert_ctype_t;

struct edgert_struct_s;
struct edgert_fnsig_s;

/* One argument or return type. For EDGERT_CT_POINTER, `pointee` is the item
 * type (never VOID, POINTER or FUNCPTR) and `depth` counts the POINTER levels
 * (1 for POINTER(c_float) "LP_c_float", 2 for "LP_LP_c_float", at most
 * EDGERT_MAX_POINTER_DEPTH); both are 0 otherwise. `layout` is the struct
 * when the type (code EDGERT_CT_STRUCT) or its pointee is a struct, NULL
 * otherwise; layouts are defined once and live as long as the process
 * (edgert/struct.h), so a type stays plain data. For EDGERT_CT_FUNCPTR,
 * `sig` is the callback signature: interned by edgert_abi_type_parse (one
 * immortal copy per distinct signature, so two types are the same signature
 * exactly when their `sig` pointers are equal); NULL for every other code.
 * `is_const` (0 or 1) marks a pointer whose items the callee only reads
 * ("const LP_c_double", C's `const double *`): only a POINTER or c_void_p
 * argument may carry it, and only such an argument takes a read-only
 * buffer. Initialize it with designated initializers: fields are added. */
typedef struct edgert_abi_type_s {
  edgert_ctype_t code;
  edgert_ctype_t pointee;
  unsigned char depth;
  unsigned char is_const;
  const struct edgert_struct_s *layout;
  const struct edgert_fnsig_s *sig;
} edgert_abi_type_t;

/* A contract. Plain data: copy it freely; it owns no memory (the struct
 * layouts its types point to are the process's, never freed). */
typedef struct edgert_contract_s {
  char function_name[EDGERT_MAX_NAME + 1]; /* a C identifier */
  unsigned nargs;                          /* 0..EDGERT_MAX_ARGS */
  edgert_abi_type_t args[EDGERT_MAX_ARGS];
  edgert_abi_type_t ret;                   /* code EDGERT_CT_VOID for None */
  int release_gil;                         /* 1 (default): callers may drop their lock around the call */
  unsigned char use_errno;                 /* 1: errno is swapped with this thread's saved copy
                                              around the call (edgert_get_errno) */
  unsigned char variadic;                  /* 1: the function ends in `...`: `nargs` fixed
                                              arguments, then any extra ones per call
                                              (edgert_func_call_variadic) */
} edgert_contract_t;

/*
 * Parses a ctypes type name as ABIContract.to_dict writes it, or any ctypes
 * alias of it: "c_double", "c_size_t", "c_ulong", "c_int32", "LP_c_float",
 * "LP_LP_c_char", "LP_c_ulong", and callback types
 * "CFUNCTYPE(c_int, LP_c_int, LP_c_int)" (edgert/callback.h: the first item
 * is the return type, "None" for void); "const " before a POINTER or c_void_p
 * name sets is_const ("const LP_c_double", "const c_void_p"). "None" (the
 * void return) only when `allow_void`. A CFUNCTYPE is interned on first parse (thread-safe, no
 * lock); EDGERT_ELIMIT past EDGERT_MAX_FNSIGS distinct ones, EDGERT_ENOMEM
 * if its copy cannot be allocated. Returns 0 with *out set, or (with *out
 * unchanged):
 *   EDGERT_EINVAL        unknown name (the message quotes it), NULL name or
 *                        out, "None" where not allowed, "LP_None", "const "
 *                        before a type that is not a pointer;
 *                        "struct NAME" when no struct NAME is defined
 *                        (edgert_struct_define);
 *   EDGERT_EUNSUPPORTED  a known but unsupported type: "union NAME",
 *                        py_object;
 *   EDGERT_ELIMIT        more than EDGERT_MAX_POINTER_DEPTH "LP_" levels.
 * Messages have no field prefix; edgert_contract_init adds one.
 */
EDGERT_EXTERN int edgert_abi_type_parse(const char *name, int allow_void,
                                        edgert_abi_type_t *out);

/*
 * Writes the canonical name of `t` ("LP_c_float", "c_size_t" for
 * EDGERT_CT_ULONG, "LP_c_size_t" for a pointer to it, "None" for VOID) into
 * buf (NUL-terminated; EDGERT_ABI_TYPE_NAME_MAX bytes always suffice).
 * Returns 0, or EDGERT_EINVAL if `t` is invalid or buf too small.
 */
EDGERT_EXTERN int edgert_abi_type_name(const edgert_abi_type_t *t, char *buf,
                                       size_t size);

/* Bytes a value of `t` takes as an argument (sizeof(void *) for pointers,
 * the struct's size for a struct, 0 for VOID or an invalid type). */
EDGERT_EXTERN size_t edgert_abi_type_size(const edgert_abi_type_t *t);

/*
 * The known type names, one per call: index 0, 1, ... give every name
 * edgert_abi_type_parse accepts without "LP_" (canonical names and aliases,
 * "None" included), then NULL past the end. Static strings. Lets bindings
 * and docs enumerate the table instead of copying it.
 */
EDGERT_EXTERN const char *edgert_abi_type_alias(size_t index);

/*
 * Fills `c` and validates it: `function_name` a C identifier of at most
 * EDGERT_MAX_NAME bytes, at most EDGERT_MAX_ARGS arguments, every argument
 * type a non-void type name, `return_type` NULL or "None" for void,
 * `calling_convention` NULL or "cdecl" (the only one on x86-64 Linux).
 * `arg_types` may be NULL when nargs is 0; nothing is kept after the call.
 * Returns 0, or EDGERT_EINVAL / EDGERT_ELIMIT / EDGERT_EUNSUPPORTED with a
 * message that starts with the field, "function_name: ...",
 * "arg_types[2]: unknown type name 'c_flaot'", "return_type: ...",
 * "calling_convention: ..."; `c` is unchanged on failure.
 */
EDGERT_EXTERN int edgert_contract_init(edgert_contract_t *c,
                                       const char *function_name,
                                       const char *const *arg_types,
                                       size_t nargs, const char *return_type,
                                       const char *calling_convention,
                                       int release_gil);

/*
 * Makes initialized contract `c` variadic: its `nargs` arguments are the
 * fixed ones, and `nfixed` must equal them (the manifest's "variadic": N and
 * ABIContract(..., variadic=N) say it twice on purpose, so a contract that
 * lists one argument too few or many is caught). C needs one named parameter
 * before `...`, so nfixed is at least 1. Returns 0, or EDGERT_EINVAL with a
 * message starting "variadic: "; `c` unchanged on failure.
 */
EDGERT_EXTERN int edgert_contract_set_variadic(edgert_contract_t *c,
                                               unsigned nfixed);

/* The C default argument promotion of an extra (variadic) argument's type:
 * c_float becomes c_double; c_bool, c_char, c_byte, c_ubyte, c_short,
 * c_ushort and c_wchar become c_int; every other type is itself (const
 * dropped). */
EDGERT_EXTERN edgert_abi_type_t edgert_abi_type_promote(const edgert_abi_type_t *t);

/*
 * Writes `c` as a C-like signature into buf (NUL-terminated):
 * "None vec_add_f32(LP_c_float, c_size_t)"; a variadic contract ends in
 * ", ...)". For logs and tools.
 * Returns 0, or EDGERT_EINVAL if `c` holds an invalid type or buf is too
 * small (buf then holds a truncated, still NUL-terminated signature).
 */
EDGERT_EXTERN int edgert_contract_format(const edgert_contract_t *c, char *buf,
                                         size_t size);


/*
 * Buffer items: the one reader of struct-module / PEP 3118 item formats, used
 * by the loader's POINTER(t) argument check, the containers' buffer paths and
 * the comparison, so a buffer one of them takes is taken by all of them.
 *
 * A format names one item: an optional byte order prefix ('@' native order
 * and sizes, the default; '=' native order, standard sizes; '<' little and
 * '>' / '!' big endian, standard sizes) and one code letter. The letter gives
 * the kind, `itemsize` (the buffer's, in bytes) the width, and the two must
 * agree: under '@' (or no prefix) itemsize is the letter's native size
 * ('l' 8 on LP64); under '=', '<', '>', '!' it is the letter's standard size
 * ('l' 4) or its native size, because ctypes writes its arrays as '<l' with
 * 8-byte items. Codes: b h i l q n signed, B H I L Q N unsigned, e f d g
 * floats (half, float, double, long double), '?' bool, 'c' char, 'u' 'w'
 * wchar_t, 'P' and any format starting with '&' (a PEP 3118 pointer, as
 * ctypes writes POINTER(t) arrays: "&<f") a pointer. n N P g have no standard
 * size. A NULL format is "B" (PEP 3118: unsigned bytes).
 *
 * Not one scalar item: an empty format, a repeat count ("2d", "5s"), a struct
 * ("T{...}", "dd"), an unknown letter ('Z', 's', 'x', 'O'), a width that does
 * not fit the letter ('b' with 8-byte items), and a byte order other than the
 * host's for items wider than one byte.
 */
typedef enum edgert_item_kind_e {
  EDGERT_ITEM_NONE = 0, /* not one scalar item; `reason` says why */
  EDGERT_ITEM_SIGNED,   /* b h i l q n */
  EDGERT_ITEM_UNSIGNED, /* B H I L Q N */
  EDGERT_ITEM_FLOAT,    /* e f d g */
  EDGERT_ITEM_BOOL,     /* ? */
  EDGERT_ITEM_CHAR,     /* c */
  EDGERT_ITEM_WCHAR,    /* u w */
  EDGERT_ITEM_POINTER   /* P, &... */
} edgert_item_kind_t;

typedef struct edgert_buffer_item_s {
  edgert_item_kind_t kind;
  /* The C type of one item: EDGERT_CT_BYTE..EDGERT_CT_ULONG for integers by
   * width (8-byte integers are EDGERT_CT_LONG / EDGERT_CT_ULONG, as ctypes'
   * c_int64 and c_longlong are c_long on LP64), EDGERT_CT_FLOAT, _DOUBLE,
   * _LONGDOUBLE, _BOOL, _CHAR, _WCHAR, EDGERT_CT_VOID_P for pointers; and
   * EDGERT_CT_VOID for a half float (no C type) or kind NONE. */
  edgert_ctype_t code;
  size_t size;        /* bytes per item: itemsize */
  char letter;        /* the code letter ('&' for a PEP 3118 pointer), 0 for NONE */
  const char *reason; /* kind NONE: a static sentence naming the problem; else NULL */
} edgert_buffer_item_t;

/*
 * Reads the item format `format` (NULL: "B") of a buffer whose items are
 * `itemsize` bytes. Fills *out and returns 0 whether or not the format is one
 * scalar item (kind NONE and `reason` when not; no thread error is set, so
 * callers on a hot path pay nothing for a refusal). EDGERT_EINVAL only if
 * `out` is NULL. No allocation, no foreign code, thread-safe.
 */
EDGERT_EXTERN int edgert_buffer_item_parse(const char *format, size_t itemsize,
                                           edgert_buffer_item_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_ABI_H */
