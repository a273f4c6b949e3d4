/*
 * edgert/callback.h: callback signatures (CFUNCTYPE) and libffi closures.
 *
 * A contract argument of code EDGERT_CT_FUNCPTR is a C function pointer; its
 * edgert_abi_type_t points to the signature the pointer must have, an
 * edgert_fnsig_t. Its canonical name is ctypes' spelling of the type,
 * "CFUNCTYPE(c_int, LP_c_int, LP_c_int)": the return type first ("None" for
 * void), then the argument types, each a scalar, a string or a pointer type
 * name (a callback whose arguments are themselves callbacks is refused).
 * edgert_abi_type_parse reads that name (and so do manifests and the Python
 * binding, which hand type names to it), and interns the signature: one
 * immortal copy per distinct signature, holding the libffi cif prepared
 * once, so a closure of any signature never prepares a cif again and two
 * types are one signature exactly when their `sig` pointers are equal.
 *
 * Closures turn a C handler plus user data into a plain C function pointer
 * of a signature, for a C library (qsort, a solver) to call. Implemented in
 * src/callback.c. The NULL rule of edgert/abi.h holds.
 */
#ifndef EDGERT_CALLBACK_H
#define EDGERT_CALLBACK_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most distinct callback signatures a process interns. */
#define EDGERT_MAX_FNSIGS 4096

/* A callback signature. Interned copies only (edgert_abi_type_parse makes
 * them); never freed, never changed. Slots past `nargs` are zero. */
typedef struct edgert_fnsig_s {
  edgert_abi_type_t ret;                          /* code EDGERT_CT_VOID for None */
  unsigned nargs;                                 /* 0..EDGERT_MAX_CALLBACK_ARGS */
  edgert_abi_type_t args[EDGERT_MAX_CALLBACK_ARGS]; /* never VOID or FUNCPTR */
} edgert_fnsig_t;

/*
 * Whether the bound function of contract `c` can be passed where a function
 * pointer of signature `sig` is expected: the same return type and the same
 * argument types, in order (names do not matter). Returns 0 if so, else
 * EDGERT_EINVAL with a message naming the first difference ("argument 1 is
 * LP_c_double, the callback type has LP_c_int"). No allocation.
 */
EDGERT_EXTERN int edgert_fnsig_check_contract(const edgert_fnsig_t *sig,
                                              const edgert_contract_t *c);

/*
 * A closure's handler, called each time C calls the closure's code, on the
 * calling thread. `args[i]` points to argument i as the C type of
 * sig->args[i] (an `int` for c_int, a `void *` for a pointer); the handler
 * stores the return value as the exact C type of sig->ret at `ret` (an
 * `int` for c_int; nothing for void). `ret` is zeroed before the handler
 * runs, so a handler that stores nothing returns 0 (or NULL, or 0.0).
 */
typedef void (*edgert_closure_handler_t)(const edgert_fnsig_t *sig, void *ret,
                                         void *const *args, void *user);

typedef struct edgert_closure_s edgert_closure_t;

/*
 * Makes a closure for the callback type `type` (code EDGERT_CT_FUNCPTR, as
 * edgert_abi_type_parse returns it) that calls handler(sig, ret, args,
 * user). *out owns executable memory from libffi (ffi_closure_alloc); free
 * it with edgert_closure_free. `user` is borrowed: it must outlive the
 * closure. Returns 0, or EDGERT_EINVAL (NULL argument, `type` not a
 * FUNCPTR), EDGERT_ENOMEM, EDGERT_EUNSUPPORTED (libffi has no closures on
 * this platform, or refused the signature). Thread-safe.
 */
EDGERT_EXTERN int edgert_closure_new(edgert_closure_t **out,
                                     const edgert_abi_type_t *type,
                                     edgert_closure_handler_t handler,
                                     void *user);

/* The C function pointer that calls the closure (cast it to the
 * signature's prototype), or NULL for a NULL closure. */
EDGERT_EXTERN void *edgert_closure_code(const edgert_closure_t *c);

/* The closure's signature, or NULL for a NULL closure. */
EDGERT_EXTERN const edgert_fnsig_t *edgert_closure_sig(const edgert_closure_t *c);

/* Frees the closure. Calling its code afterwards is undefined (it jumps to
 * freed memory): free it only when no C code can call it any more. NULL
 * does nothing. */
EDGERT_EXTERN void edgert_closure_free(edgert_closure_t *c);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_CALLBACK_H */
