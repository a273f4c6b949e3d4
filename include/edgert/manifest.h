/*
 * edgert/manifest.h: JSON manifests of verified modules and their contracts.
 *
 * A manifest lists shared objects, the SHA-256 each must have, and the ABI
 * contracts to bind in each, in the schema ABIContract.to_dict() writes:
 *
 *   {"schema_version": 1,
 *    "modules": [{"path": "kernels/libvecadd.so",
 *                 "sha256": "<64 hex digits>",
 *                 "contracts": [{"function_name": "vec_add_f32",
 *                                "arg_types": ["LP_c_float", "c_size_t"],
 *                                "return_type": null,
 *                                "calling_convention": "cdecl"}],
 *                 "dependencies": [{"path": "kernels/libhelper.so",
 *                                   "sha256": "<64 hex digits>"}]}]}
 *
 * "isolation" (optional): {"mode": "process", "timeout": 1.5,
 * "memory_limit": 268435456, "sandbox": "strict", "workers": 2} loads the
 * module isolated (edgert/isolate.h); only "mode" is required; an unknown
 * key or a bad value is EDGERT_EMANIFEST naming it (timeout a number >= 0,
 * memory_limit whole bytes >= 1 MiB, sandbox "none" or "strict", workers 1
 * to EDGERT_ISOLATE_MAX_WORKERS).
 * "dependencies" (optional) lists the module's own libraries that are not
 * in a trusted system folder (edgert/loader.h): each is verified against
 * its sha256 and mapped before the module (edgert_load_options_t
 * .dependencies, keyed by its resolved path).
 * Relative paths are relative to the manifest's directory. The reader is
 * strict, and every refusal is EDGERT_EMANIFEST with a message that starts
 * with the field: "modules[0].contracts[1].arg_types[2]: unknown type name
 * 'c_flaot'". Refused: invalid JSON (with line and column), trailing data,
 * anything strict JSON (RFC 8259) refuses and cJSON would take (numbers like
 * "01", raw control characters in strings, other whitespace, bytes that are
 * not UTF-8), NUL bytes and escaped NULs (\u0000) anywhere, unknown keys,
 * duplicate keys,
 * keys that differ only in case, wrong JSON types, missing required keys, a
 * schema_version other than 1, a "version" that is not a positive integer,
 * an "expires" that is not an RFC 3339 UTC time (both optional, and what a
 * signed manifest must carry: edgert/sign.h), bad hex, paths that do not name an existing
 * regular file, a path listed twice, a function bound twice in one module,
 * and everything edgert_contract_init refuses (non-identifier names, more
 * than 32 arguments, unknown type names, ...). docs/manifest.md has the
 * full schema. The Python package reads manifests with this same code.
 *
 * Ownership: an edgert_manifest_t belongs to the caller
 * (edgert_manifest_free); every pointer an accessor returns is borrowed
 * from it and valid until then. Threads: a manifest is plain data once
 * built; concurrent reads are safe, edgert_manifest_load_modules and
 * edgert_manifest_free must not race with anything on the same manifest.
 */
/*
 * The NULL rule (every edgert header, docs/c-api.md): passing NULL where a
 * pointer is required returns EDGERT_EINVAL with a message naming the
 * function and the argument; a function that returns a pointer returns NULL,
 * one that returns a count, size or flag returns 0; *_free, *_release and
 * void functions given a NULL handle do nothing. Arguments documented as
 * optional (an out-parameter such as `err`, a NULL `opts`) are not required.
 */
#ifndef EDGERT_MANIFEST_H
#define EDGERT_MANIFEST_H

#include "abi.h"
#include "common.h"
#include "isolate.h"
#include "loader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema_version this library reads and writes. */
#define EDGERT_MANIFEST_SCHEMA_VERSION 1
/* Manifests larger than this are refused. */
#define EDGERT_MANIFEST_MAX_BYTES ((size_t)16 << 20)
/* The most modules in one manifest, and contracts in one module. */
#define EDGERT_MANIFEST_MAX_MODULES 4096
#define EDGERT_MANIFEST_MAX_CONTRACTS 65536

typedef struct edgert_manifest_s edgert_manifest_t;

/*
 * Parses manifest text: `len` bytes at `json` (no terminator needed).
 * `base_dir`: the directory relative paths are resolved against; each
 * module's file must then exist and be a regular file, and its resolved
 * absolute path is what edgert_manifest_module_file returns. With base_dir
 * NULL paths are neither resolved nor checked (the file is the path as
 * written): a pure syntax and schema check.
 * Returns 0 and a new manifest in *out, or EDGERT_EMANIFEST (message names
 * the field), EDGERT_EINVAL (NULL json or out), EDGERT_ENOMEM; *out is
 * untouched on failure. Loads nothing, runs no foreign code.
 */
EDGERT_EXTERN int edgert_manifest_parse(const char *json, size_t len,
                                        const char *base_dir,
                                        edgert_manifest_t **out);

/*
 * Reads and parses the manifest file at `path`, resolving module paths
 * against the file's directory. Returns as edgert_manifest_parse, plus
 * EDGERT_EIO when the file cannot be opened or read or is not a regular
 * file (the message names it and says why), and EDGERT_EMANIFEST when it is
 * larger than EDGERT_MANIFEST_MAX_BYTES. Loads nothing.
 */
EDGERT_EXTERN int edgert_manifest_read(const char *path,
                                       edgert_manifest_t **out);

/*
 * Loads and verifies every module of a parsed manifest, in order, with
 * edgert_module_load_ex(file, sha256, {its dependencies}) and binds each of its contracts with
 * edgert_module_bind. All or nothing: on failure the modules this call
 * loaded are freed again and the manifest is as before. Returns 0,
 * EDGERT_EINVAL (NULL, parsed with base_dir NULL, or already loaded), or
 * the loader's error (EDGERT_EINTEGRITY, EDGERT_EFORMAT, EDGERT_EIO,
 * EDGERT_ENOTFOUND, ...) with its message prefixed by the module:
 * "modules[1] ('kernels/libx.so'): ...". May run foreign code: module
 * constructors.
 */
EDGERT_EXTERN int edgert_manifest_load_modules(edgert_manifest_t *m);

/*
 * edgert_manifest_read + edgert_manifest_load_modules: the one call a C
 * host needs. Returns 0 and a manifest whose modules are loaded and bound,
 * or any error of the two (nothing stays loaded). May run foreign code:
 * module constructors.
 */
EDGERT_EXTERN int edgert_manifest_load(const char *path,
                                       edgert_manifest_t **out);

/* Frees the manifest and every module it loaded (edgert_module_free: its
 * functions become invalid). NULL is ignored. No call through its
 * functions may be in progress. */
EDGERT_EXTERN void edgert_manifest_free(edgert_manifest_t *m);

/* The manifest's top-level "version" (a positive integer, at most 2^53-1),
 * or 0 when it has none (or m is NULL). Signed manifests must carry one:
 * edgert/sign.h. */
EDGERT_EXTERN int64_t edgert_manifest_version(const edgert_manifest_t *m);
/* The manifest's top-level "expires" as written ("2027-01-01T00:00:00Z"),
 * or NULL when it has none; with `seconds` non-NULL the time in seconds
 * since the epoch goes there. Borrowed from m. */
EDGERT_EXTERN const char *edgert_manifest_expires(const edgert_manifest_t *m,
                                                  int64_t *seconds);

/* The number of modules listed (0 for NULL). */
EDGERT_EXTERN size_t edgert_manifest_module_count(const edgert_manifest_t *m);
/* Module i's "path" as written in the manifest, or NULL if i is out of range. */
EDGERT_EXTERN const char *edgert_manifest_module_path(const edgert_manifest_t *m,
                                                      size_t i);
/* Module i's resolved absolute file path (the path as written when parsed
 * with base_dir NULL), or NULL if i is out of range. */
EDGERT_EXTERN const char *edgert_manifest_module_file(const edgert_manifest_t *m,
                                                      size_t i);
/* Module i's expected SHA-256, 64 lowercase hex digits, or NULL. */
EDGERT_EXTERN const char *edgert_manifest_module_sha256(const edgert_manifest_t *m,
                                                        size_t i);
/* The number of "dependencies" of module i (0 if none or out of range). */
EDGERT_EXTERN size_t edgert_manifest_dependency_count(const edgert_manifest_t *m,
                                                      size_t i);
/* Dependency j of module i: its "path" as written (NULL if out of range),
 * its resolved absolute file in *file and its SHA-256 (64 lowercase hex
 * digits) in *sha256 (either may be NULL). Borrowed from m. */
EDGERT_EXTERN const char *edgert_manifest_dependency(const edgert_manifest_t *m, size_t i,
                                                     size_t j, const char **file,
                                                     const char **sha256);
/* 1 if module i has an "isolation" object (it is then loaded isolated by
 * edgert_manifest_load_modules), with its options in *out (optional;
 * worker_path NULL: the default worker); 0 if not or out of range. */
EDGERT_EXTERN int edgert_manifest_module_isolation(const edgert_manifest_t *m, size_t i,
                                                   edgert_isolate_options_t *out);
/* The number of contracts of module i (0 if out of range). */
EDGERT_EXTERN size_t edgert_manifest_contract_count(const edgert_manifest_t *m,
                                                    size_t i);
/* Contract j of module i, or NULL if out of range. */
EDGERT_EXTERN const edgert_contract_t *
edgert_manifest_contract(const edgert_manifest_t *m, size_t i, size_t j);

/* Module i's loaded module, or NULL before edgert_manifest_load_modules
 * (or if i is out of range). Borrowed: the manifest frees it. */
EDGERT_EXTERN edgert_module_t *edgert_manifest_module(const edgert_manifest_t *m,
                                                      size_t i);
/* The loaded module whose manifest "path" is `path` (as written), or NULL. */
EDGERT_EXTERN edgert_module_t *
edgert_manifest_module_by_path(const edgert_manifest_t *m, const char *path);

/*
 * The bound function `name` of a loaded manifest, in *out (borrowed).
 * Returns 0, EDGERT_ENOTFOUND when no module binds it, or EDGERT_EINVAL
 * when several modules do (the message names them: use
 * edgert_module_function(edgert_manifest_module(m, i), name) then) or
 * when nothing is loaded. Runs no foreign code.
 */
EDGERT_EXTERN int edgert_manifest_function(const edgert_manifest_t *m,
                                           const char *name,
                                           edgert_func_t **out);

/*
 * Parses one contract object in the schema ABIContract.to_dict() writes
 * ({"function_name": ..., "arg_types": [...], "return_type": ...,
 * "calling_convention": ..., "release_gil": ...}), as strictly as the
 * manifest reader. Returns 0, or EDGERT_EMANIFEST naming the field
 * ("arg_types[2]: unknown type name 'c_flaot'"), EDGERT_EINVAL for NULL
 * arguments; *out is unchanged on failure.
 */
EDGERT_EXTERN int edgert_contract_parse_json(const char *json, size_t len,
                                             edgert_contract_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EDGERT_MANIFEST_H */
