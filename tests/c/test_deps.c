/* test_deps.c: verified dependency closure (edgert_load_options_t.dependencies).
 *
 * Fixtures (CMakeLists.txt): fixtures/deps/libdeps_top.so needs
 * libdeps_helper.so through DT_RUNPATH $ORIGIN; the helper's constructor
 * writes $EDGERT_DEPS_MARKER; libdeps_badsoname.so has DT_SONAME
 * libdeps_other.so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnu/libc-version.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define DEPS EDGERT_FIXTURE_DIR "/deps"
#define TOP DEPS "/libdeps_top.so"
#define HELPER DEPS "/libdeps_helper.so"
#define BADSONAME DEPS "/libdeps_badsoname.so"

static char tmpdir[256], marker[PATH_MAX];

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/edgert_test_deps_XXXXXX");
  if (mkdtemp(tmpdir) == NULL)
    return -1;
  snprintf(marker, sizeof marker, "%s/helper_ran", tmpdir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void copy_file(const char *from, const char *to) {
  FILE *f = fopen(from, "rb");
  assert_non_null(f);
  int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  assert_true(fd >= 0);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
  fclose(f);
  close(fd);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* The SHA-256 the loader computes for `path` (loaded alone, then freed;
 * the marker is not armed). */
static void sha_of(const char *path, char out[65]) {
  unsetenv("EDGERT_DEPS_MARKER");
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(path, NULL, &m), 0);
  memcpy(out, edgert_module_sha256(m), 65);
  edgert_module_free(m);
}

/* The object the process has under `name`, or NULL (its l_name in *who). */
static int has_object(const char *name, char *who, size_t n) {
  void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
  if (h == NULL)
    return 0;
  struct link_map *lm = NULL;
  dlinfo(h, RTLD_DI_LINKMAP, &lm);
  snprintf(who, n, "%s", lm && lm->l_name ? lm->l_name : "");
  dlclose(h);
  return 1;
}

static int call_top_add(edgert_module_t *m, int a, int b) {
  edgert_contract_t c;
  const char *args[] = {"c_int", "c_int"};
  assert_int_equal(edgert_contract_init(&c, "top_add", args, 2, "c_int", NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  int ret[4] = {0};
  void *av[] = {&a, &b};
  assert_int_equal(edgert_func_call(fn, av, ret), 0);
  return ret[0];
}

static void a_listed_dependency_loads_verified_and_goes_with_the_module(void **state) {
  (void)state;
  char hs[65], who[PATH_MAX];
  sha_of(HELPER, hs);
  edgert_dependency_t dep = {"libdeps_helper.so", hs};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  edgert_module_t *m = NULL;
  int rc = edgert_module_load_ex(TOP, NULL, &o, &m);
  assert_int_equal(rc, 0);
  assert_int_equal(call_top_add(m, 2, 3), 6);
  /* ld.so found the verified copy: the helper answers from its sealed memfd. */
  assert_true(has_object("libdeps_helper.so", who, sizeof who));
  assert_non_null(strstr(who, "/proc/self/fd/"));
  /* A second load of the same bytes shares it. */
  edgert_module_t *m2 = NULL;
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m2), 0);
  edgert_module_free(m);
  assert_int_equal(call_top_add(m2, 1, 1), 3);
  edgert_module_free(m2);
  /* Released with the module that needed it. */
  assert_false(has_object("libdeps_helper.so", who, sizeof who));
  assert_false(has_object("libdeps_top.so", who, sizeof who));
}

/* An isolated module's listed dependencies are mapped in its worker, from
 * the verified copies, and never in this process: planned as for a fresh
 * process, so a copy this process mapped for an in-process load first does
 * not hide the file from the worker. */
static void an_isolated_module_maps_its_listed_dependency_in_its_worker(void **state) {
  (void)state;
  const char *emulator = getenv("EDGERT_TEST_EMULATOR");
  if (emulator != NULL && emulator[0] != '\0') {
    print_message("skipped: under an emulator (%s) the edgert-worker program cannot be "
                  "started (no binfmt_misc)\n", emulator);
    skip();
    return;
  }
  char hs[65], who[PATH_MAX];
  sha_of(HELPER, hs);
  edgert_dependency_t dep = {"libdeps_helper.so", hs};
  edgert_isolate_options_t io = {.workers = 1};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1, .isolation = &io};
  for (int round = 0; round < 2; round++) {
    edgert_module_t *here = NULL;
    if (round == 1) { /* the helper is mapped in this process now */
      edgert_load_options_t in = {.dependencies = &dep, .ndependencies = 1};
      assert_int_equal(edgert_module_load_ex(TOP, NULL, &in, &here), 0);
      assert_true(has_object("libdeps_helper.so", who, sizeof who));
    }
    unlink(marker);
    setenv("EDGERT_DEPS_MARKER", marker, 1);
    edgert_module_t *m = NULL;
    int rc = edgert_module_load_ex(TOP, NULL, &o, &m);
    if (rc != 0)
      print_message("isolated load: %s\n", edgert_last_error());
    assert_int_equal(rc, 0);
    assert_int_equal(call_top_add(m, 2, 3), 6);
    unsetenv("EDGERT_DEPS_MARKER");
    assert_true(exists(marker)); /* the helper's constructor ran, in the worker */
    assert_int_equal(has_object("libdeps_helper.so", who, sizeof who), round == 1);
    assert_int_equal(edgert_module_dependency_count(m), 1);
    const char *name = NULL, *path = NULL, *hex = NULL;
    assert_int_equal(edgert_module_dependency(m, 0, &name, &path, &hex), 0);
    assert_string_equal(name, "libdeps_helper.so");
    assert_string_equal(hex, hs);
    edgert_module_free(m);
    edgert_module_free(here);
  }
  assert_false(has_object("libdeps_helper.so", who, sizeof who));
}

/* Refused as for an in-process load, before any code ran anywhere: an
 * unlisted dependency, and a listed one whose bytes differ. */
static void an_isolated_module_with_an_unverified_dependency_is_refused(void **state) {
  (void)state;
  edgert_isolate_options_t io = {.workers = 1};
  edgert_load_options_t o = {.isolation = &io};
  edgert_module_t *m = NULL;
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "not listed"));
  edgert_dependency_t dep = {"libdeps_helper.so",
                             "00000000000000000000000000000000000000000000000000000000000000ff"};
  o.dependencies = &dep;
  o.ndependencies = 1;
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "failed its integrity check"));
  unsetenv("EDGERT_DEPS_MARKER");
  assert_false(exists(marker));
}

static void keys_may_be_file_names_or_paths(void **state) {
  (void)state;
  char hs[65];
  sha_of(HELPER, hs);
  const char *keys[] = {HELPER, DEPS "/../deps/libdeps_helper.so"};
  for (size_t i = 0; i < 2; i++) {
    edgert_dependency_t dep = {keys[i], hs};
    edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
    edgert_module_t *m = NULL;
    assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), 0);
    assert_int_equal(call_top_add(m, 20, 1), 22);
    edgert_module_free(m);
  }
}

static void an_unlisted_dependency_is_refused_before_any_code_runs(void **state) {
  (void)state;
  char hs[65], who[PATH_MAX];
  sha_of(HELPER, hs);
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  edgert_module_t *m = NULL;
  int rc = edgert_module_load(TOP, NULL, &m);
  unsetenv("EDGERT_DEPS_MARKER");
  assert_int_equal(rc, EDGERT_EINTEGRITY);
  assert_null(m);
  const char *msg = edgert_last_error();
  char want[PATH_MAX + 64];
  assert_non_null(strstr(msg, "libdeps_helper.so"));
  assert_non_null(strstr(msg, hs));           /* its hash */
  assert_non_null(strstr(msg, "not listed"));
  snprintf(want, sizeof want, "dependencies={\"libdeps_helper.so\": \"%s\"}", hs);
  assert_non_null(strstr(msg, want));         /* how to list it */
  char *real = realpath(DEPS, NULL);
  assert_non_null(real);
  snprintf(want, sizeof want, "in folder %s,", real);
  free(real);
  assert_non_null(strstr(msg, want));         /* its folder */
  assert_false(exists(marker));               /* no constructor ran */
  assert_false(has_object("libdeps_helper.so", who, sizeof who));
  assert_false(has_object("libdeps_top.so", who, sizeof who));
}

static void a_wrong_hash_names_both(void **state) {
  (void)state;
  char hs[65];
  sha_of(HELPER, hs);
  const char *zeros = "0000000000000000000000000000000000000000000000000000000000000000";
  edgert_dependency_t dep = {"libdeps_helper.so", zeros};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  edgert_module_t *m = NULL;
  int rc = edgert_module_load_ex(TOP, NULL, &o, &m);
  unsetenv("EDGERT_DEPS_MARKER");
  assert_int_equal(rc, EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), hs));
  assert_non_null(strstr(edgert_last_error(), zeros));
  assert_false(exists(marker));
}

static void a_missing_dependency_is_an_io_error_naming_it(void **state) {
  (void)state;
  char dir[512], top[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/alone", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  copy_file(TOP, top);
  edgert_module_t *m = NULL;
  errno = 0;
  int rc = edgert_module_load(top, NULL, &m);
  assert_int_equal(rc, EDGERT_EIO);
  assert_int_equal(errno, ENOENT);
  const char *msg = edgert_last_error();
  assert_non_null(strstr(msg, "libdeps_helper.so"));
  assert_non_null(strstr(msg, "not found"));
  char *real = realpath(dir, NULL);
  assert_non_null(strstr(msg, real)); /* $ORIGIN, expanded to the real folder */
  free(real);
}

static void a_world_writable_folder_is_refused_unless_listed(void **state) {
  (void)state;
  char dir[512], top[PATH_MAX], helper[PATH_MAX], hs[65];
  snprintf(dir, sizeof dir, "%s/open", tmpdir);
  assert_int_equal(mkdir(dir, 0777), 0);
  assert_int_equal(chmod(dir, 0777), 0);
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  snprintf(helper, sizeof helper, "%s/libdeps_helper.so", dir);
  copy_file(TOP, top);
  copy_file(HELPER, helper);
  sha_of(helper, hs);
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(top, NULL, &m), EDGERT_EINTEGRITY);
  assert_false(exists(marker));
  edgert_dependency_t dep = {"libdeps_helper.so", hs};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  assert_int_equal(edgert_module_load_ex(top, NULL, &o, &m), 0);
  unsetenv("EDGERT_DEPS_MARKER");
  assert_true(exists(marker)); /* now verified: its constructor ran */
  assert_int_equal(call_top_add(m, 4, 4), 9);
  edgert_module_free(m);
}

static void a_dependency_whose_soname_differs_is_refused(void **state) {
  (void)state;
  char dir[512], top[PATH_MAX], helper[PATH_MAX], hs[65];
  snprintf(dir, sizeof dir, "%s/renamed", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  snprintf(helper, sizeof helper, "%s/libdeps_helper.so", dir);
  copy_file(TOP, top);
  copy_file(BADSONAME, helper);
  sha_of(helper, hs);
  edgert_dependency_t dep = {"libdeps_helper.so", hs};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(top, NULL, &o, &m), EDGERT_EFORMAT);
  assert_non_null(strstr(edgert_last_error(), "DT_SONAME \"libdeps_other.so\""));
  char who[PATH_MAX];
  assert_false(has_object("libdeps_other.so", who, sizeof who));
}

static void malformed_dependency_options_are_refused(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  edgert_load_options_t o = {.dependencies = NULL, .ndependencies = 1};
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), EDGERT_EINVAL);
  edgert_dependency_t bad[] = {{NULL, "00"}, {"libdeps_helper.so", NULL},
                               {"libdeps_helper.so", "xyz"}};
  for (size_t i = 0; i < 3; i++) {
    o.dependencies = &bad[i];
    assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), EDGERT_EINVAL);
    assert_non_null(strstr(edgert_last_error(), "dependency 0"));
  }
  assert_null(m);
}

#define CHAIN DEPS "/libdeps_chain.so"
#define MID DEPS "/libdeps_mid.so"

/* libdeps_chain.so (DT_RPATH $ORIGIN) -> libdeps_mid.so (no path of its
 * own) -> libdeps_helper.so: the closure is walked, the helper found
 * through the needing object's DT_RPATH as ld.so does, and both mapped
 * leaves first. */
static void the_closure_is_verified_through_every_level(void **state) {
  (void)state;
  char hs[65], ms[65], who[PATH_MAX];
  sha_of(HELPER, hs);
  { /* the middle one's hash: loaded alone, it finds the helper only
     * through LD_LIBRARY_PATH (read by the resolver at each load) */
    edgert_dependency_t dep = {"libdeps_helper.so", hs};
    edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
    edgert_module_t *t = NULL;
    assert_int_equal(edgert_module_load_ex(MID, NULL, &o, &t), EDGERT_EIO);
    setenv("LD_LIBRARY_PATH", DEPS, 1);
    assert_int_equal(edgert_module_load_ex(MID, NULL, &o, &t), 0);
    unsetenv("LD_LIBRARY_PATH");
    memcpy(ms, edgert_module_sha256(t), 65);
    edgert_module_free(t);
  }
  /* Only the middle one listed: the helper, one level down, is refused. */
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  edgert_dependency_t one[] = {{"libdeps_mid.so", ms}};
  edgert_load_options_t o = {.dependencies = one, .ndependencies = 1};
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(CHAIN, NULL, &o, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "dependency libdeps_helper.so (needed by "));
  assert_non_null(strstr(edgert_last_error(), "libdeps_mid.so)"));
  assert_false(exists(marker));
  assert_false(has_object("libdeps_mid.so", who, sizeof who));
  /* Both listed. */
  edgert_dependency_t both[] = {{"libdeps_mid.so", ms}, {"libdeps_helper.so", hs}};
  o.dependencies = both;
  o.ndependencies = 2;
  assert_int_equal(edgert_module_load_ex(CHAIN, NULL, &o, &m), 0);
  unsetenv("EDGERT_DEPS_MARKER");
  assert_true(exists(marker));
  edgert_contract_t c;
  const char *args[] = {"c_int", "c_int"};
  assert_int_equal(edgert_contract_init(&c, "chain_add", args, 2, "c_int", NULL, 1), 0);
  edgert_func_t *fn = NULL;
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  int a = 1, b = 2, ret[4] = {0};
  void *av[] = {&a, &b};
  assert_int_equal(edgert_func_call(fn, av, ret), 0);
  assert_int_equal(ret[0], 31);
  assert_true(has_object("libdeps_mid.so", who, sizeof who));
  assert_non_null(strstr(who, "/proc/self/fd/"));
  assert_true(has_object("libdeps_helper.so", who, sizeof who));
  assert_non_null(strstr(who, "/proc/self/fd/"));
  edgert_module_free(m);
  assert_false(has_object("libdeps_mid.so", who, sizeof who));
  assert_false(has_object("libdeps_helper.so", who, sizeof who));
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void a_manifest_entry_lists_dependencies(void **state) {
  (void)state;
  char ts[65], hs[65], path[PATH_MAX], json[2048];
  sha_of(HELPER, hs);
  { /* the module's own SHA-256: loaded with its helper listed */
    edgert_dependency_t dep = {"libdeps_helper.so", hs};
    edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
    edgert_module_t *t = NULL;
    assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &t), 0);
    memcpy(ts, edgert_module_sha256(t), 65);
    edgert_module_free(t);
  }
  snprintf(path, sizeof path, "%s/deps.json", tmpdir);
  const char *fmt =
      "{\"schema_version\": 1, \"modules\": [{\"path\": \"%s\", \"sha256\": \"%s\", "
      "\"contracts\": [{\"function_name\": \"top_add\", \"arg_types\": [\"c_int\", "
      "\"c_int\"], \"return_type\": \"c_int\"}]%s}]}";
  char deps[512];
  /* Unlisted: refused, naming the entry to add. */
  snprintf(json, sizeof json, fmt, TOP, ts, "");
  write_text(path, json);
  edgert_manifest_t *m = NULL;
  assert_int_equal(edgert_manifest_load(path, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "modules[0]"));
  assert_non_null(strstr(edgert_last_error(), "\"dependencies\""));
  /* Listed. */
  snprintf(deps, sizeof deps,
           ", \"dependencies\": [{\"path\": \"%s\", \"sha256\": \"%s\"}]", HELPER, hs);
  snprintf(json, sizeof json, fmt, TOP, ts, deps);
  write_text(path, json);
  assert_int_equal(edgert_manifest_load(path, &m), 0);
  assert_int_equal(edgert_manifest_dependency_count(m, 0), 1);
  const char *file = NULL, *sha = NULL;
  assert_string_equal(edgert_manifest_dependency(m, 0, 0, &file, &sha), HELPER);
  assert_string_equal(sha, hs);
  assert_int_equal(call_top_add(edgert_manifest_module(m, 0), 7, 8), 16);
  edgert_manifest_free(m);
  /* Malformed entries name the field. */
  static const char *const bad[][2] = {
      {", \"dependencies\": [{\"path\": \"x.so\"}]",
       "modules[0].dependencies[0]: missing required key 'sha256'"},
      {", \"dependencies\": [{\"path\": \"x.so\", \"sha256\": \"12\"}]",
       "modules[0].dependencies[0].sha256: '12' is not 64 hexadecimal digits"},
      {", \"dependencies\": \"x.so\"", "modules[0].dependencies: expected an array, got a string"},
      {", \"dependencies\": [7]", "modules[0].dependencies[0]: expected an object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(json, sizeof json, fmt, TOP, ts, bad[i][0]);
    assert_int_equal(edgert_manifest_parse(json, strlen(json), NULL, &m), EDGERT_EMANIFEST);
    assert_non_null(strstr(edgert_last_error(), bad[i][1]));
  }
}

static char oom_sha[65];
/* ---- edgert_module_plan_dependencies: the closure reported, not refused -- */

typedef struct {
  int n, stop_at;
  edgert_dep_kind_t kind[16];
  char name[16][64], sha[16][65], path[16][PATH_MAX], via[16][32];
  int depth[16];
} seen_t;

static int record(const edgert_dependency_report_t *d, void *ud) {
  seen_t *s = ud;
  if (s->n >= 16)
    return -999;
  int i = s->n++;
  s->kind[i] = d->kind;
  s->depth[i] = d->depth;
  snprintf(s->name[i], sizeof s->name[i], "%s", d->name);
  snprintf(s->sha[i], sizeof s->sha[i], "%s", d->sha256_hex ? d->sha256_hex : "");
  snprintf(s->path[i], sizeof s->path[i], "%s", d->path ? d->path : "");
  snprintf(s->via[i], sizeof s->via[i], "%s", d->via ? d->via : "");
  return s->n == s->stop_at ? 42 : 0;
}

/* The row of `name` in s (exactly one), its index. */
static int row_of(const seen_t *s, const char *name) {
  int at = -1;
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->name[i], name) == 0) {
      assert_int_equal(at, -1);
      at = i;
    }
  assert_true(at >= 0);
  return at;
}

/* The report of an isolated load is the worker's, as the load's plan is: a
 * helper this process has mapped is not "in the process" there, so it is
 * unlisted, and the isolated load is refused for it. */
static void the_plan_of_an_isolated_load_is_the_workers(void **state) {
  (void)state;
  char hs[65];
  sha_of(HELPER, hs);
  edgert_dependency_t dep = {"libdeps_helper.so", hs};
  edgert_load_options_t in = {.dependencies = &dep, .ndependencies = 1};
  edgert_module_t *here = NULL;
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &in, &here), 0);
  seen_t s = {0};
  assert_int_equal(edgert_module_plan_dependencies(TOP, NULL, record, &s), 0);
  assert_int_equal(s.kind[row_of(&s, "libdeps_helper.so")], EDGERT_DEP_IN_PROCESS);
  edgert_isolate_options_t io = {.workers = 1};
  edgert_load_options_t o = {.isolation = &io};
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(TOP, &o, record, &s), 0);
  assert_int_equal(s.kind[row_of(&s, "libdeps_helper.so")], EDGERT_DEP_UNLISTED);
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load_ex(TOP, NULL, &o, &m), EDGERT_EINTEGRITY);
  assert_non_null(strstr(edgert_last_error(), "not listed"));
  assert_null(m);
  o.dependencies = &dep;
  o.ndependencies = 1;
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(TOP, &o, record, &s), 0);
  assert_int_equal(s.kind[row_of(&s, "libdeps_helper.so")], EDGERT_DEP_LISTED);
  edgert_module_free(here);
}

static void the_plan_reports_what_a_load_does_with_each_dependency(void **state) {
  (void)state;
  char hsha[65];
  sha_of(HELPER, hsha);
  char hreal[PATH_MAX];
  assert_non_null(realpath(HELPER, hreal));
  /* Unlisted: reported with its hash and descended into; nothing runs.
   * (Sanitized builds: the objects also need the sanitizer runtimes,
   * which the process has.) */
  unlink(marker);
  setenv("EDGERT_DEPS_MARKER", marker, 1);
  seen_t s = {0};
  assert_int_equal(edgert_module_plan_dependencies(TOP, NULL, record, &s), 0);
  assert_false(exists(marker));
  int h = row_of(&s, "libdeps_helper.so");
  assert_int_equal(s.kind[h], EDGERT_DEP_UNLISTED);
  assert_string_equal(s.sha[h], hsha);
  assert_string_equal(s.path[h], hreal);
  assert_string_equal(s.via[h], "DT_RUNPATH");
  assert_int_equal(s.depth[h], 0);
  int libc = 0;
  for (int i = 0; i < s.n; i++) {
    if (i == h)
      continue;
    /* the process's and trusted ones are not descended into */
    assert_true(s.kind[i] == EDGERT_DEP_IN_PROCESS || s.kind[i] == EDGERT_DEP_TRUSTED);
    libc += strcmp(s.name[i], "libc.so.6") == 0 && s.depth[i] == 1 && i > h;
  }
  assert_int_equal(libc, 1); /* the helper's own, after it */
  /* ... and a load agrees: refused. */
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(TOP, NULL, &m), EDGERT_EINTEGRITY);
  /* Listed with its hash, then with another one. */
  edgert_dependency_t dep = {"libdeps_helper.so", hsha};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(TOP, &o, record, &s), 0);
  assert_int_equal(s.kind[row_of(&s, "libdeps_helper.so")], EDGERT_DEP_LISTED);
  char wrong[65];
  memset(wrong, 'a', 64);
  wrong[64] = '\0';
  dep.sha256_hex = wrong;
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(TOP, &o, record, &s), 0);
  h = row_of(&s, "libdeps_helper.so");
  assert_int_equal(s.kind[h], EDGERT_DEP_MISMATCH);
  assert_string_equal(s.sha[h], hsha);
  /* Not found: reported, not an error. */
  char dir[512], top[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/plan_alone", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  copy_file(TOP, top);
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(top, NULL, record, &s), 0);
  h = row_of(&s, "libdeps_helper.so");
  assert_int_equal(s.kind[h], EDGERT_DEP_NOT_FOUND);
  assert_string_equal(s.path[h], "");
  /* Listed with its true hash but another DT_SONAME: a load refuses it
   * (EFORMAT, a_dependency_whose_soname_differs_is_refused), the plan too. */
  char hs[65];
  snprintf(dir, sizeof dir, "%s/plan_renamed", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  copy_file(TOP, top);
  char helper[PATH_MAX];
  snprintf(helper, sizeof helper, "%s/libdeps_helper.so", dir);
  copy_file(BADSONAME, helper);
  sha_of(helper, hs);
  dep.sha256_hex = hs;
  memset(&s, 0, sizeof s);
  assert_int_equal(edgert_module_plan_dependencies(top, &o, record, &s), 0);
  h = row_of(&s, "libdeps_helper.so");
  assert_int_equal(s.kind[h], EDGERT_DEP_BAD_SONAME);
  assert_string_equal(s.sha[h], hs);
  assert_int_equal(edgert_module_load_ex(top, NULL, &o, &m), EDGERT_EFORMAT);
  /* The visitor's non-zero return stops the walk and is returned. */
  memset(&s, 0, sizeof s);
  s.stop_at = 1;
  assert_int_equal(edgert_module_plan_dependencies(TOP, NULL, record, &s), 42);
  assert_int_equal(s.n, 1);
  /* Bad arguments and files that are not modules. */
  assert_int_equal(edgert_module_plan_dependencies(NULL, NULL, record, &s), EDGERT_EINVAL);
  assert_int_equal(edgert_module_plan_dependencies(TOP, NULL, NULL, NULL), EDGERT_EINVAL);
  snprintf(top, sizeof top, "%s/nothing.so", dir);
  assert_int_equal(edgert_module_plan_dependencies(top, NULL, record, &s), EDGERT_EIO);
  unsetenv("EDGERT_DEPS_MARKER");
}

static int count_only(const edgert_dependency_report_t *d, void *ud) {
  (void)d;
  ++*(int *)ud;
  return 0;
}
static int oom_plan(void *st) {
  (void)st;
  int n = 0;
  edgert_dependency_t dep = {"libdeps_helper.so", oom_sha};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  return edgert_module_plan_dependencies(TOP, &o, count_only, &n);
}

/* ld.so tries subfolders of each search folder before the folder itself
 * (glibc-hwcaps/<level> for the CPU's levels, and before glibc 2.37 the
 * legacy hwcap combinations of tls, the platform and hwcap names). A
 * dependency edgert resolves elsewhere than ld.so would be checked as one
 * file and mapped as another: an unverified variant planted in a
 * subfolder of a search folder would run. Here the helper is planted in
 * every subfolder any machine might search (and decoys no machine does);
 * each round, the process's own ld.so (dlopen of the module, unverified:
 * the test's fixture) and edgert's plan must pick the same file, which is
 * then removed, until the plain folder's copy is left. */
static void a_dependency_is_found_in_the_subfolder_ld_so_takes(void **state) {
  (void)state;
  static const char *const platforms[] = {"x86_64", "haswell", "xeon_phi", "aarch64", "i686"};
  static const char *const hwcaps[] = {"x86_64", "atomics"};
  static const char *const levels[] = {"x86-64-v2", "x86-64-v3", "x86-64-v4", "x86-64-v5",
                                       "power10", "z15"};
  char dir[512], path[PATH_MAX], who[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/hwcaps", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  char top[PATH_MAX];
  snprintf(top, sizeof top, "%s/libdeps_top.so", dir);
  copy_file(TOP, top);
  /* planted: every combination of tls, a platform, avx512_1 and a hwcap
   * name, in ld.so's component order, and every glibc-hwcaps level */
  static char planted[400][160];
  int np = 0;
  for (size_t p = 0; p < sizeof platforms / sizeof *platforms; p++)
    for (size_t h = 0; h < sizeof hwcaps / sizeof *hwcaps; h++)
      for (unsigned mask = 1; mask < 16; mask++) {
        const char *comp[4] = {"tls", platforms[p], "avx512_1", hwcaps[h]};
        char sub[160] = "";
        for (int i = 0; i < 4; i++)
          if (mask & (8u >> i)) {
            if (sub[0])
              strcat(sub, "/");
            strcat(sub, comp[i]);
          }
        int dup = 0;
        for (int i = 0; i < np && !dup; i++)
          dup = strcmp(planted[i], sub) == 0;
        if (!dup && np < 400)
          snprintf(planted[np++], sizeof planted[0], "%s", sub);
      }
  for (size_t l = 0; l < sizeof levels / sizeof *levels; l++)
    snprintf(planted[np++], sizeof planted[0], "glibc-hwcaps/%s", levels[l]);
  for (int i = 0; i < np; i++) {
    assert_true(strlen(dir) + strlen(planted[i]) + 32 < sizeof path);
    strcpy(path, dir);
    strcat(path, "/");
    strcat(path, planted[i]);
    for (char *q = path + strlen(dir) + 1; *q; q++)
      if (*q == '/') {
        *q = '\0';
        mkdir(path, 0755);
        *q = '/';
      }
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
    strcat(path, "/libdeps_helper.so");
    copy_file(HELPER, path);
  }
  snprintf(path, sizeof path, "%s/libdeps_helper.so", dir);
  copy_file(HELPER, path);
  unsetenv("EDGERT_DEPS_MARKER");
  assert_false(has_object("libdeps_helper.so", who, sizeof who));
  int rounds = 0;
  for (;;) {
    seen_t s = {0};
    assert_int_equal(edgert_module_plan_dependencies(top, NULL, record, &s), 0);
    int h = row_of(&s, "libdeps_helper.so");
    assert_int_equal(s.kind[h], EDGERT_DEP_UNLISTED);
    void *ld = dlopen(top, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(ld);
    assert_true(has_object("libdeps_helper.so", who, sizeof who));
    dlclose(ld);
    assert_false(has_object("libdeps_helper.so", who + PATH_MAX / 2, PATH_MAX / 2));
    char real[PATH_MAX];
    assert_non_null(realpath(who, real));
    if (strcmp(s.path[h], real) != 0)
      fail_msg("round %d: ld.so loads %s, edgert resolves %s", rounds, real, s.path[h]);
    rounds++;
    if (strcmp(real, path) == 0) /* the plain folder's copy: no subfolder left */
      break;
    assert_int_equal(unlink(real), 0);
    assert_true(rounds < np + 1);
  }
  /* Every machine searches tls/ (glibc < 2.37) or glibc-hwcaps/ (x86-64):
   * at least one round went through a subfolder, or the test proved nothing. */
  if (rounds < 2) {
    /* Only glibc >= 2.37 off x86-64 searches no subfolder at all; anywhere
     * else a single round means the planting or the comparison is broken. */
#if defined(__x86_64__)
    fail_msg("ld.so took the plain copy although glibc-hwcaps or tls/ subfolders were planted");
#else
    int major = 0, minor = 0;
    sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor);
    if (major == 2 && minor < 37)
      fail_msg("ld.so took the plain copy although tls/ subfolders were planted (glibc %d.%d)",
               major, minor);
    skip();
#endif
  }
}

static void *oom_setup_none(void) { return NULL; }
static int oom_load(void *st) {
  (void)st;
  edgert_dependency_t dep = {"libdeps_helper.so", oom_sha};
  edgert_load_options_t o = {.dependencies = &dep, .ndependencies = 1};
  edgert_module_t *m = NULL;
  int rc = edgert_module_load_ex(TOP, NULL, &o, &m);
  edgert_module_free(m);
  return rc;
}
static int oom_refuse(void *st) {
  (void)st;
  edgert_module_t *m = NULL;
  int rc = edgert_module_load(TOP, NULL, &m);
  edgert_module_free(m);
  return rc == EDGERT_EINTEGRITY ? 0 : rc;
}

static void every_allocation_failure_is_reported(void **state) {
  (void)state;
  sha_of(HELPER, oom_sha);
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t load = {"load with a dependency", oom_setup_none, oom_load, NULL,
                                 NULL, 0};
  edgert_test_oom_case_t refuse = {"refusing an unlisted dependency", oom_setup_none,
                                   oom_refuse, NULL, NULL, 0};
  edgert_test_oom_case_t planc = {"planning the dependencies", oom_setup_none, oom_plan, NULL,
                                  NULL, 0};
  assert_true(edgert_test_failalloc_sweep(&load) >= 10);
  assert_true(edgert_test_failalloc_sweep(&refuse) >= 5);
  assert_true(edgert_test_failalloc_sweep(&planc) >= 5);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_listed_dependency_loads_verified_and_goes_with_the_module),
      cmocka_unit_test(keys_may_be_file_names_or_paths),
      cmocka_unit_test(an_isolated_module_maps_its_listed_dependency_in_its_worker),
      cmocka_unit_test(an_isolated_module_with_an_unverified_dependency_is_refused),
      cmocka_unit_test(an_unlisted_dependency_is_refused_before_any_code_runs),
      cmocka_unit_test(a_wrong_hash_names_both),
      cmocka_unit_test(a_missing_dependency_is_an_io_error_naming_it),
      cmocka_unit_test(a_world_writable_folder_is_refused_unless_listed),
      cmocka_unit_test(a_dependency_whose_soname_differs_is_refused),
      cmocka_unit_test(malformed_dependency_options_are_refused),
      cmocka_unit_test(a_manifest_entry_lists_dependencies),
      cmocka_unit_test(the_closure_is_verified_through_every_level),
      cmocka_unit_test(the_plan_reports_what_a_load_does_with_each_dependency),
      cmocka_unit_test(the_plan_of_an_isolated_load_is_the_workers),
      cmocka_unit_test(a_dependency_is_found_in_the_subfolder_ld_so_takes),
      cmocka_unit_test(every_allocation_failure_is_reported),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
