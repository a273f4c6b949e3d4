/*
 * c_host: a C program that runs verified kernels through libedgert, with no
 * Python anywhere.
 *
 *   c_host MANIFEST [FUNCTION]
 *
 * Reads MANIFEST (docs/manifest.md), loads every module it lists (each one's
 * SHA-256 verified before any of its code runs) and binds its contracts,
 * prints what it loaded, then calls FUNCTION (default vec_add_f32), whose
 * contract must be `None FUNCTION(LP_c_float, c_size_t)`, on the floats
 * 1 2 3 4 and prints them afterwards. Exits 0, or 1 with the error code and
 * message on stderr (a tampered module: EINTEGRITY, naming the module).
 */
#include <edgert.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "c_host: %s: %s: %s\n", what, edgert_err_name(rc),
          edgert_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s MANIFEST [FUNCTION]\n", argv[0]);
    return 2;
  }
  const char *name = argc == 3 ? argv[2] : "vec_add_f32";

  edgert_manifest_t *m = NULL;
  int rc = edgert_manifest_load(argv[1], &m);
  if (rc < 0)
    return fail("loading the manifest", rc);

  char sig[512];
  for (size_t i = 0; i < edgert_manifest_module_count(m); i++) {
    printf("module %s sha256 %s\n", edgert_manifest_module_path(m, i),
           edgert_module_sha256(edgert_manifest_module(m, i)));
    for (size_t j = 0; j < edgert_manifest_contract_count(m, i); j++)
      if (edgert_contract_format(edgert_manifest_contract(m, i, j), sig,
                                 sizeof sig) == 0)
        printf("  %s\n", sig);
  }

  edgert_func_t *fn = NULL;
  rc = edgert_manifest_function(m, name, &fn);
  if (rc < 0) {
    edgert_manifest_free(m);
    return fail("finding the kernel", rc);
  }
  /* The manifest says what the function takes: check before calling. */
  const edgert_contract_t *c = edgert_func_contract(fn);
  if (c->nargs != 2 || c->args[0].code != EDGERT_CT_POINTER ||
      c->args[0].pointee != EDGERT_CT_FLOAT || c->args[0].depth != 1 ||
      c->args[1].code != EDGERT_CT_ULONG || c->ret.code != EDGERT_CT_VOID) {
    edgert_contract_format(c, sig, sizeof sig);
    fprintf(stderr, "c_host: %s has the contract %s, not "
                    "None %s(LP_c_float, c_size_t)\n", name, sig, name);
    edgert_manifest_free(m);
    return 1;
  }

  float xs[4] = {1, 2, 3, 4};
  float *p = xs;
  size_t n = 4;
  void *args[2] = {&p, &n};
  rc = edgert_func_call(fn, args, NULL);
  if (rc < 0) {
    edgert_manifest_free(m);
    return fail("calling the kernel", rc);
  }
  printf("%s([1, 2, 3, 4]) -> [%g, %g, %g, %g]\n", name, xs[0], xs[1], xs[2],
         xs[3]);
  edgert_manifest_free(m);
  return 0;
}
