/* test_resolve.c: the front of a load (src/resolve.c): library names
 * searched as the dynamic linker does, linker scripts, the process's own
 * libraries (shared, never a second C library), hashes counted in
 * characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnu/libc-version.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

static char tmpdir[256];

static int make_tmpdir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/edgert_test_resolve_XXXXXX");
  return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Restores LD_LIBRARY_PATH after each test that sets it. */
static int unset_llp(void **state) {
  (void)state;
  unsetenv("LD_LIBRARY_PATH");
  return 0;
}

/* Copies `from` to tmpdir/sub/name (creating sub), patching the ELF
 * e_machine to `machine` when nonzero; the new path in `out`. */
static void copy_to(const char *from, const char *sub, const char *name, unsigned machine,
                    char *out) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/%.200s", tmpdir, sub);
  mkdir(dir, 0700);
  snprintf(out, PATH_MAX, "%s/%.200s", dir, name);
  FILE *f = fopen(from, "rb"), *g = fopen(out, "wb");
  assert_non_null(f);
  assert_non_null(g);
  char buf[65536];
  size_t n, at = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (at == 0 && machine != 0) {
      uint16_t m = (uint16_t)machine;
      memcpy(buf + offsetof(ElfW(Ehdr), e_machine), &m, 2);
    }
    assert_int_equal(fwrite(buf, 1, n, g), n);
    at += n;
  }
  fclose(f);
  fclose(g);
}

/* The file the process maps for `soname` (its realpath), as ld.so chose it. */
static void process_file(const char *soname, char *out) {
  void *h = dlopen(soname, RTLD_NOW);
  assert_non_null(h);
  struct link_map *lm = NULL;
  assert_int_equal(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
  assert_non_null(realpath(lm->l_name, out));
  dlclose(h);
}

static const char *base(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* ---- names ------------------------------------------------------------------ */

static void a_soname_resolves_to_the_file_ld_so_maps(void **state) {
  (void)state;
  char got[PATH_MAX], real[PATH_MAX], want[PATH_MAX];
  const char *names[] = {"libc.so.6", "libm.so.6"};
  for (size_t i = 0; i < 2; i++) {
    if (edgert_find_library(names[i], got, sizeof got) != 0)
      fail_msg("%s: %s", names[i], edgert_last_error());
    assert_string_equal(base(got), names[i]);
    process_file(names[i], want);
    assert_non_null(realpath(got, real));
    assert_string_equal(real, want);
  }
}

static void a_short_name_is_lib_name_so_version(void **state) {
  (void)state;
  char got[PATH_MAX];
  assert_int_equal(edgert_find_library("c", got, sizeof got), 0);
  assert_string_equal(base(got), "libc.so.6");
  assert_int_equal(edgert_find_library("m", got, sizeof got), 0);
  assert_string_equal(base(got), "libm.so.6");
}

static void ld_library_path_comes_first_and_the_highest_version_wins(void **state) {
  (void)state;
  char p[PATH_MAX], got[PATH_MAX], dir[PATH_MAX];
  copy_to(FX("loader_kernels"), "v", "libedgertver.so.2", 0, p);
  copy_to(FX("loader_kernels"), "v", "libedgertver.so.10", 0, p);
  copy_to(FX("loader_kernels"), "v", "libedgertver.so.9.1", 0, p);
  snprintf(dir, sizeof dir, "%s/v", tmpdir);
  setenv("LD_LIBRARY_PATH", dir, 1);
  assert_int_equal(edgert_find_library("libedgertver.so.2", got, sizeof got), 0);
  assert_string_equal(base(got), "libedgertver.so.2");
  assert_int_equal(edgert_find_library("edgertver", got, sizeof got), 0);
  assert_string_equal(base(got), "libedgertver.so.10");
  /* A module loaded by a name reports the path chosen. */
  edgert_module_t *m = NULL;
  if (edgert_module_load("edgertver", NULL, &m) != 0)
    fail_msg("%s", edgert_last_error());
  assert_string_equal(edgert_module_path(m), got);
  assert_int_equal(edgert_module_shared_with_process(m), 0);
  edgert_module_free(m);
}

/* ld.so tries the subfolders of each folder first (test_deps.c checks the
 * whole list against ld.so): before glibc 2.37 every machine searches
 * tls/, so a name is found there before the folder itself. A short name
 * is looked up as ctypes.util.find_library does: the folder only. */
static void a_name_is_found_in_the_subfolders_ld_so_tries_first(void **state) {
  (void)state;
  int major = 0, minor = 0;
  sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor);
  if (major > 2 || (major == 2 && minor >= 37))
    skip(); /* no legacy subfolders; glibc-hwcaps depends on the CPU (test_deps.c) */
  char plain[PATH_MAX], sub[PATH_MAX], got[PATH_MAX], dir[PATH_MAX];
  copy_to(FX("loader_kernels"), "h", "libedgerthw.so.1", 0, plain);
  copy_to(FX("loader_kernels"), "h/tls", "libedgerthw.so.1", 0, sub);
  snprintf(dir, sizeof dir, "%s/h", tmpdir);
  setenv("LD_LIBRARY_PATH", dir, 1);
  assert_int_equal(edgert_find_library("libedgerthw.so.1", got, sizeof got), 0);
  assert_string_equal(got, sub);
  assert_int_equal(edgert_find_library("edgerthw", got, sizeof got), 0);
  assert_string_equal(got, plain);
  unlink(sub);
  assert_int_equal(edgert_find_library("libedgerthw.so.1", got, sizeof got), 0);
  assert_string_equal(got, plain);
}

static void a_file_for_another_machine_is_skipped(void **state) {
  (void)state;
  char bad[PATH_MAX], good[PATH_MAX], got[PATH_MAX], llp[2 * PATH_MAX + 2];
  copy_to(FX("loader_kernels"), "other", "libedgertarch.so.1",
          sizeof(void *) == 8 && EM_X86_64 != 0 ? EM_S390 : EM_X86_64, bad);
  copy_to(FX("loader_kernels"), "good", "libedgertarch.so.1", 0, good);
  snprintf(llp, sizeof llp, "%s/other:%s/good", tmpdir, tmpdir);
  setenv("LD_LIBRARY_PATH", llp, 1);
  assert_int_equal(edgert_find_library("libedgertarch.so.1", got, sizeof got), 0);
  assert_string_equal(got, good);
}

static void a_name_not_found_names_it_and_the_places_searched(void **state) {
  (void)state;
  char got[PATH_MAX];
  errno = 0;
  assert_int_equal(edgert_find_library("libedgert_none.so.3", got, sizeof got), EDGERT_EIO);
  assert_int_equal(errno, ENOENT);
  const char *e = edgert_last_error();
  assert_non_null(strstr(e, "no library named libedgert_none.so.3"));
  assert_non_null(strstr(e, "/etc/ld.so.cache"));
  assert_non_null(strstr(e, "LD_LIBRARY_PATH"));
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load("edgertnone", NULL, &m), EDGERT_EIO);
  assert_non_null(strstr(edgert_last_error(), "as libedgertnone.so.<N> or libedgertnone.so"));
  assert_null(m);
}

static void bad_arguments_are_refused(void **state) {
  (void)state;
  char got[8];
  assert_int_equal(edgert_find_library(NULL, got, sizeof got), EDGERT_EINVAL);
  assert_int_equal(edgert_find_library("c", NULL, 0), EDGERT_EINVAL);
  assert_int_equal(edgert_find_library("", got, sizeof got), EDGERT_EINVAL);
  assert_int_equal(edgert_find_library("libc.so.6", got, sizeof got), EDGERT_ELIMIT);
  /* A path is not searched: returned as given. */
  assert_int_equal(edgert_find_library("./x.so", got, sizeof got), 0);
  assert_string_equal(got, "./x.so");
}

/* ---- linker scripts ----------------------------------------------------------- */

static void a_linker_script_names_the_library_to_load(void **state) {
  (void)state;
  char path[PATH_MAX], dir[1024], got[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/script", tmpdir);
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/libedgertscript.so", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("/* GNU ld script\n*/\nOUTPUT_FORMAT(elf64-x86-64)\n"
        "GROUP ( /lib/x86_64-linux-gnu/libm.so.6  AS_NEEDED ( /lib/libmvec.so.1 ) )\n",
        f);
  fclose(f);
  setenv("LD_LIBRARY_PATH", dir, 1);
  assert_int_equal(edgert_find_library("libedgertscript.so", got, sizeof got), EDGERT_EFORMAT);
  assert_non_null(strstr(edgert_last_error(), "libedgertscript.so is a linker script"));
  assert_non_null(strstr(edgert_last_error(), "load libm.so.6 (/lib/x86_64-linux-gnu/libm.so.6)"));
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(path, NULL, &m), EDGERT_EFORMAT); /* by path too */
  assert_non_null(strstr(edgert_last_error(), "is a linker script"));
  assert_non_null(strstr(edgert_last_error(), "load libm.so.6"));
}

/* ---- the process's own libraries ------------------------------------------------ */

static void libc_malloc_and_free_mix_with_the_process(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  if (edgert_module_load("libc.so.6", NULL, &m) != 0)
    fail_msg("%s", edgert_last_error());
  assert_int_equal(edgert_module_shared_with_process(m), 1);
  edgert_contract_t c;
  const char *sz[] = {"c_size_t"}, *vp[] = {"c_void_p"};
  edgert_func_t *mal = NULL, *fr = NULL;
  assert_int_equal(edgert_contract_init(&c, "malloc", sz, 1, "c_void_p", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &mal), 0);
  assert_int_equal(edgert_contract_init(&c, "free", vp, 1, NULL, NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fr), 0);
  /* The process's libc, as the test's dynamic linker has it (not a
   * sanitizer's interposed malloc: that is another heap by design). */
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  assert_non_null(libc);
  void *(*libc_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
  void (*libc_free)(void *) = (void (*)(void *))dlsym(libc, "free");
  assert_non_null(libc_malloc);
  assert_non_null(libc_free);
  for (int i = 0; i < 100; i++) {
    edgert_value_t v[1];
    void *ret[2] = {NULL, NULL};
    v[0].u = 48 + (uint64_t)i;
    assert_int_equal(edgert_func_call_values(mal, v, ret), 0);
    libc_free(ret[0]);
    v[0].p = libc_malloc(48 + (size_t)i);
    assert_int_equal(edgert_func_call_values(fr, v, ret), 0);
  }
  dlclose(libc);
  edgert_module_free(m);
}

static void unloading_a_shared_library_gives_back_only_its_own_reference(void **state) {
  (void)state;
  /* Bytes of their own (a tail after the ELF contents): a private copy of
   * the same bytes still loaded would be shared instead. */
  char path[PATH_MAX];
  copy_to(FX("loader_kernels"), "shared", "libedgertshared.so", 0, path);
  FILE *f = fopen(path, "ab");
  assert_non_null(f);
  fputs("unloading_a_shared_library", f);
  fclose(f);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  assert_non_null(h);
  void *add = dlsym(h, "add");
  for (int i = 0; i < 20; i++) {
    edgert_module_t *m = NULL;
    assert_int_equal(edgert_module_load(path, NULL, &m), 0);
    assert_int_equal(edgert_module_shared_with_process(m), 1);
    void *a = NULL;
    assert_int_equal(edgert_module_address_of(m, "add", &a), 0);
    assert_ptr_equal(a, add);
    edgert_module_free(m);
    assert_int_equal(edgert_module_shared_with_process(m = NULL), 0);
  }
  /* Still mapped for the process... */
  void *again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  assert_non_null(again);
  dlclose(again);
  /* ...and after the process's own dlclose, gone: edgert kept no
   * reference either. */
  dlclose(h);
  assert_null(dlopen(path, RTLD_NOW | RTLD_NOLOAD));
}

static void the_on_disk_hash_is_checked_before_binding(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load("libc.so.6", NULL, &m), 0);
  char sha[65], wrong[65];
  snprintf(sha, sizeof sha, "%s", edgert_module_sha256(m));
  edgert_module_free(m);
  snprintf(wrong, sizeof wrong, "%s", sha);
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  assert_int_equal(edgert_module_load("libc.so.6", wrong, &m), EDGERT_EINTEGRITY);
  assert_int_equal(edgert_module_load("libc.so.6", sha, &m), 0);
  assert_int_equal(edgert_module_shared_with_process(m), 1);
  edgert_module_free(m);
}

static void a_second_c_library_is_refused(void **state) {
  (void)state;
  char libc[PATH_MAX], copy[PATH_MAX];
  process_file("libc.so.6", libc);
  copy_to(libc, "libc", "libc.so.6", 0, copy);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(copy, NULL, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "already has libc.so.6"));
  assert_null(m);
}

/* ---- characters ---------------------------------------------------------------- */

static void a_hash_of_64_non_ascii_characters_is_64_characters(void **state) {
  (void)state;
  char hex[64 * 2 + 1] = "";
  for (int i = 0; i < 64; i++)
    strcat(hex, "\xc3\xa9"); /* é */
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), hex, &m), EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "got 64 characters (not all ASCII)"));
  assert_null(strstr(edgert_last_error(), "more than"));
}

static void *oom_setup_none(void) { return NULL; }
static int oom_find(void *st) {
  (void)st;
  char got[PATH_MAX];
  return edgert_find_library("m", got, sizeof got);
}
static int oom_load_shared(void *st) {
  (void)st;
  edgert_module_t *m = NULL;
  int rc = edgert_module_load("libm.so.6", NULL, &m);
  edgert_module_free(m);
  return rc;
}

static void every_allocation_failure_is_reported(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t find = {"edgert_find_library", oom_setup_none, oom_find, NULL, NULL, 0};
  edgert_test_oom_case_t load = {"edgert_module_load(libm.so.6)", oom_setup_none,
                                 oom_load_shared, NULL, NULL, 0};
  assert_true(edgert_test_failalloc_sweep(&find) >= 2);
  assert_true(edgert_test_failalloc_sweep(&load) >= 3);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_soname_resolves_to_the_file_ld_so_maps),
      cmocka_unit_test(a_short_name_is_lib_name_so_version),
      cmocka_unit_test_teardown(ld_library_path_comes_first_and_the_highest_version_wins,
                                unset_llp),
      cmocka_unit_test_teardown(a_name_is_found_in_the_subfolders_ld_so_tries_first, unset_llp),
      cmocka_unit_test_teardown(a_file_for_another_machine_is_skipped, unset_llp),
      cmocka_unit_test(a_name_not_found_names_it_and_the_places_searched),
      cmocka_unit_test(bad_arguments_are_refused),
      cmocka_unit_test_teardown(a_linker_script_names_the_library_to_load, unset_llp),
      cmocka_unit_test(libc_malloc_and_free_mix_with_the_process),
      cmocka_unit_test(unloading_a_shared_library_gives_back_only_its_own_reference),
      cmocka_unit_test(the_on_disk_hash_is_checked_before_binding),
      cmocka_unit_test(a_second_c_library_is_refused),
      cmocka_unit_test(a_hash_of_64_non_ascii_characters_is_64_characters),
      cmocka_unit_test(every_allocation_failure_is_reported),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
