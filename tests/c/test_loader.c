/* test_loader.c: verified loading, the registry, refusals, symbols, unload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgert.h"
#include "helpers/failalloc.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

static char tmpdir[256];

static int make_tmpdir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/edgert_test_loader_XXXXXX");
  return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *out, const char *name) {
  snprintf(out, PATH_MAX, "%s/%s", tmpdir, name);
}

/* Reads a whole file (malloc'ed) into *out; returns its size. */
static size_t slurp(const char *path, unsigned char **out) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  *out = malloc((size_t)n);
  assert_non_null(*out);
  assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return (size_t)n;
}

static void spit(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, n), (ssize_t)n);
  close(fd);
}

static void copy_file(const char *from, const char *to) {
  unsigned char *b;
  size_t n = slurp(from, &b);
  spit(to, b, n);
  free(b);
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static edgert_func_t *bind_sig(edgert_module_t *m, const char *name, const char *ret,
                               size_t n, ...) {
  const char *args[EDGERT_MAX_ARGS];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++)
    args[i] = va_arg(ap, const char *);
  va_end(ap);
  edgert_contract_t c;
  assert_int_equal(edgert_contract_init(&c, name, args, n, ret, NULL, 1), 0);
  edgert_func_t *fn = NULL;
  int rc = edgert_module_bind(m, &c, &fn);
  if (rc != 0)
    fail_msg("binding %s: %s", name, edgert_last_error());
  return fn;
}

static int version_of(edgert_module_t *m) {
  edgert_func_t *fn = bind_sig(m, "version", "c_int", 0);
  int ret[4] = {0};
  assert_int_equal(edgert_func_call(fn, NULL, ret), 0);
  return ret[0];
}

/* ---- verification ----------------------------------------------------------- */

static void loads_and_reports_its_sha256(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &m), 0);
  const char *hex = edgert_module_sha256(m);
  assert_int_equal(strlen(hex), 64);
  assert_string_equal(edgert_module_path(m), FX("loader_kernels"));
  assert_true(edgert_module_size(m) > 0);
  assert_int_equal(edgert_module_verify(m, hex), 1);
  char upper[65];
  for (int i = 0; i < 65; i++)
    upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
  assert_int_equal(edgert_module_verify(m, upper), 1); /* either case */
  char other[65];
  memcpy(other, hex, 65);
  other[63] = other[63] == '0' ? '1' : '0';
  assert_int_equal(edgert_module_verify(m, other), 0);
  /* The matching expected hash loads; a different one is refused. */
  edgert_module_t *m2 = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), hex, &m2), 0);
  edgert_module_t *m3 = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), other, &m3), EDGERT_EINTEGRITY);
  assert_null(m3);
  assert_non_null(strstr(edgert_last_error(), "integrity"));
  assert_non_null(strstr(edgert_last_error(), other));
  edgert_module_free(m2);
  edgert_module_free(m);
}

static void malformed_hashes_are_refused_before_reading(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  const char *bad[] = {
      "",
      "abc",
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",   /* 63 */
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", /* 65 */
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",  /* g */
      " 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",  /* space */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    /* A path that does not exist: the hash is checked first. */
    assert_int_equal(edgert_module_load("/nonexistent/x.so", bad[i], &m), EDGERT_EINVAL);
    assert_non_null(strstr(edgert_last_error(), "64 hex digits"));
  }
  assert_int_equal(edgert_module_load("/nonexistent/x.so",
                                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
                                      &m),
                   EDGERT_EINVAL);
  assert_non_null(strstr(edgert_last_error(), "character 64"));
  edgert_module_t *k = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &k), 0);
  assert_int_equal(edgert_module_verify(k, "xyz"), EDGERT_EINVAL);
  assert_int_equal(edgert_module_verify(k, bad[4]), EDGERT_EINVAL);
  edgert_module_free(k);
  assert_int_equal(edgert_module_load(NULL, NULL, &m), EDGERT_EINVAL);
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, NULL), EDGERT_EINVAL);
}

/* A tampered module is refused and none of its code (its constructor) runs. */
static void tampered_module_runs_no_code(void **state) {
  (void)state;
  char copy[PATH_MAX], marker[PATH_MAX];
  tmp_path(copy, "marker_copy.so");
  tmp_path(marker, "marker_ran");
  copy_file(FX("loader_marker"), copy);
  unsetenv("EDGERT_LOADER_MARKER");
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(copy, NULL, &m), 0);
  char good[65];
  memcpy(good, edgert_module_sha256(m), 65);
  edgert_module_free(m); /* last handle: the image is dlclose'd */

  /* Tamper with one byte near the end (section headers: still loadable). */
  unsigned char *b;
  size_t n = slurp(copy, &b);
  b[n - 1] ^= 0xff;
  spit(copy, b, n);
  free(b);
  setenv("EDGERT_LOADER_MARKER", marker, 1);
  unlink(marker);
  m = NULL;
  assert_int_equal(edgert_module_load(copy, good, &m), EDGERT_EINTEGRITY);
  assert_null(m);
  assert_false(file_exists(marker));
  assert_non_null(strstr(edgert_last_error(), "none of its code ran"));

  /* Control: the untampered bytes with the same hash do run the constructor. */
  copy_file(FX("loader_marker"), copy);
  assert_int_equal(edgert_module_load(copy, good, &m), 0);
  assert_true(file_exists(marker));
  edgert_module_free(m);
  unsetenv("EDGERT_LOADER_MARKER");
}

/* Rewriting or swapping the file after the load changes nothing that runs. */
static void file_changes_after_load_change_nothing(void **state) {
  (void)state;
  char path[PATH_MAX], other[PATH_MAX];
  tmp_path(path, "version.so");
  tmp_path(other, "version_v2.so");
  copy_file(FX("loader_v1"), path);
  edgert_module_t *m1 = NULL;
  assert_int_equal(edgert_module_load(path, NULL, &m1), 0);
  assert_int_equal(version_of(m1), 42);
  char sha1[65];
  memcpy(sha1, edgert_module_sha256(m1), 65);

  /* In-place rewrite of the same inode with other bytes. */
  unsigned char *b;
  size_t n = slurp(FX("loader_v2"), &b);
  int fd = open(path, O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  close(fd);
  free(b);
  assert_int_equal(version_of(m1), 42);

  /* Swap by rename. */
  copy_file(FX("loader_v2"), other);
  assert_int_equal(rename(other, path), 0);
  assert_int_equal(version_of(m1), 42);

  /* Loading the same path again gets the new bytes, never the old module. */
  edgert_module_t *m2 = NULL;
  assert_int_equal(edgert_module_load(path, NULL, &m2), 0);
  assert_string_not_equal(edgert_module_sha256(m2), sha1);
  assert_int_equal(version_of(m2), 1337);
  assert_int_equal(version_of(m1), 42);
  /* And expecting the old hash from the new bytes is an integrity error. */
  edgert_module_t *m3 = NULL;
  assert_int_equal(edgert_module_load(path, sha1, &m3), EDGERT_EINTEGRITY);
  edgert_module_free(m2);
  edgert_module_free(m1);
}

/* A module dlclose cannot unload keeps its /proc/self/fd/N name in glibc:
 * another module loaded later must never be answered with it. */
static void a_module_that_stays_mapped_never_answers_for_another(void **state) {
  (void)state;
  for (int round = 0; round < 3; round++) {
    edgert_module_t *a = NULL, *b = NULL;
    assert_int_equal(edgert_module_load(FX("loader_nodelete"), NULL, &a), 0);
    edgert_func_t *va = bind_sig(a, "nodelete_version", "c_int", 0);
    int r[4];
    assert_int_equal(edgert_func_call(va, NULL, r), 0);
    assert_int_equal(r[0], 1);
    edgert_module_free(a); /* stays mapped: NODELETE */
    assert_int_equal(edgert_module_load(FX("loader_nodelete2"), NULL, &b), 0);
    edgert_func_t *vb = bind_sig(b, "nodelete_version", "c_int", 0);
    assert_int_equal(edgert_func_call(vb, NULL, r), 0);
    assert_int_equal(r[0], 2);
    edgert_module_free(b);
  }
}

static void same_bytes_share_one_mapping(void **state) {
  (void)state;
  char copy[PATH_MAX];
  tmp_path(copy, "kernels_copy.so");
  copy_file(FX("loader_kernels"), copy);
  edgert_module_t *a = NULL, *b = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &a), 0);
  assert_int_equal(edgert_module_load(copy, NULL, &b), 0); /* other path, same bytes */
  assert_ptr_not_equal(a, b);
  assert_string_equal(edgert_module_sha256(a), edgert_module_sha256(b));
  void *pa = NULL, *pb = NULL;
  assert_int_equal(edgert_module_address_of(a, "loader_counter", &pa), 0);
  assert_int_equal(edgert_module_address_of(b, "loader_counter", &pb), 0);
  assert_ptr_equal(pa, pb); /* loaded once */
  /* Unloading one handle leaves the other working. */
  edgert_module_unload(a);
  assert_int_equal(edgert_module_address_of(a, "loader_counter", &pa), EDGERT_EUNLOADED);
  edgert_func_t *inc = bind_sig(b, "inc", "c_int64", 1, "c_int64");
  int64_t x = 41, r[2];
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(inc, args, r), 0);
  assert_int_equal(r[0], 42);
  edgert_module_free(a);
  edgert_module_free(b);
}

/* The process-wide lookup by content: a handle on loaded bytes by their
 * SHA-256, with the file gone; nothing when those bytes are not loaded. */
static void open_loaded_finds_loaded_bytes_by_hash_only(void **state) {
  (void)state;
  char copy[PATH_MAX];
  tmp_path(copy, "kernels_by_hash.so");
  copy_file(FX("loader_kernels"), copy);
  edgert_module_t *a = NULL, *b = NULL;
  assert_int_equal(edgert_module_load(copy, NULL, &a), 0);
  char sha[65];
  strcpy(sha, edgert_module_sha256(a));
  assert_int_equal(unlink(copy), 0);
  assert_int_equal(edgert_module_open_loaded(sha, "by-hash", NULL, &b), 0);
  assert_string_equal(edgert_module_path(b), "by-hash");
  assert_string_equal(edgert_module_sha256(b), sha);
  assert_int_equal(edgert_module_size(b), edgert_module_size(a));
  assert_int_equal(edgert_module_symbols_isolated(b), 0);
  void *pa = NULL, *pb = NULL;
  assert_int_equal(edgert_module_address_of(a, "loader_counter", &pa), 0);
  assert_int_equal(edgert_module_address_of(b, "loader_counter", &pb), 0);
  assert_ptr_equal(pa, pb); /* the same mapping */
  edgert_module_free(a);    /* b keeps it */
  edgert_func_t *inc = bind_sig(b, "inc", "c_int64", 1, "c_int64");
  int64_t x = 1, r[2];
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(inc, args, r), 0);
  assert_int_equal(r[0], 2);
  /* In the other binding mode these bytes are not loaded. */
  edgert_load_options_t iso = {.flags = EDGERT_LOAD_ISOLATE_SYMBOLS};
  edgert_module_t *c = NULL;
  assert_int_equal(edgert_module_open_loaded(sha, "x", &iso, &c), EDGERT_ENOTFOUND);
  assert_null(c);
  edgert_module_free(b);
  /* Once every handle is gone, nothing answers for the hash. */
  assert_int_equal(edgert_module_open_loaded(sha, "x", NULL, &c), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), sha));
  assert_null(c);
  assert_int_equal(edgert_module_open_loaded("00", "x", NULL, &c), EDGERT_EINVAL);
  assert_int_equal(edgert_module_open_loaded(NULL, "x", NULL, &c), EDGERT_EINVAL);
  assert_int_equal(edgert_module_open_loaded(sha, "", NULL, &c), EDGERT_EINVAL);
  edgert_load_options_t bad = {.flags = 0x80u};
  assert_int_equal(edgert_module_open_loaded(sha, "x", &bad, &c), EDGERT_EINVAL);
  assert_null(c);
}

/* ---- refusals ------------------------------------------------------------------- */

static void expect_refusal(const char *path, const edgert_load_options_t *o, int code,
                           const char *words) {
  edgert_module_t *m = NULL;
  int rc = edgert_module_load_ex(path, NULL, o, &m);
  if (rc != code)
    fail_msg("%s: expected %s, got %s (%s)", path, edgert_err_name(code), edgert_err_name(rc),
             edgert_last_error());
  assert_null(m);
  if (strstr(edgert_last_error(), words) == NULL)
    fail_msg("%s: message \"%s\" does not say \"%s\"", path, edgert_last_error(), words);
}

static void not_regular_files_are_refused(void **state) {
  (void)state;
  char fifo[PATH_MAX];
  tmp_path(fifo, "a_fifo");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  expect_refusal(tmpdir, NULL, EDGERT_EIO, "a directory");
  assert_int_equal(errno, EISDIR);
  expect_refusal(fifo, NULL, EDGERT_EIO, "a FIFO"); /* and does not block */
  expect_refusal("/dev/null", NULL, EDGERT_EIO, "a character device");
  expect_refusal("/nonexistent/lib.so", NULL, EDGERT_EIO, "cannot open");
  assert_int_equal(errno, ENOENT);
}

static void empty_oversized_and_non_elf_are_refused(void **state) {
  (void)state;
  char p[PATH_MAX];
  tmp_path(p, "empty.so");
  spit(p, "", 0);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "empty");
  tmp_path(p, "text.so");
  spit(p, "#!/bin/sh\necho hi\n", 18);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "not an ELF file");
  tmp_path(p, "short.so");
  spit(p, "\177ELF\2", 5);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "truncated");
  edgert_load_options_t small = {.max_size = 1024};
  expect_refusal(FX("loader_kernels"), &small, EDGERT_ELIMIT, "size limit of 1024 bytes");
  edgert_load_options_t badflags = {.flags = 0x80};
  expect_refusal(FX("loader_kernels"), &badflags, EDGERT_EINVAL, "unknown flags");
}

/* Copies the kernels fixture with its ELF header changed by `edit`. */
static void crafted(const char *name, void (*edit)(unsigned char *b), char *out) {
  unsigned char *b;
  size_t n = slurp(FX("loader_kernels"), &b);
  edit(b);
  tmp_path(out, name);
  spit(out, b, n);
  free(b);
}

static void as_32bit(unsigned char *b) { b[EI_CLASS] = ELFCLASS32; }
static void as_big_endian(unsigned char *b) { b[EI_DATA] = ELFDATA2MSB; }
/* A 64-bit machine that is not this one: AArch64 on x86-64, else x86-64. */
#if defined(__x86_64__)
#define FOREIGN_MACHINE EM_AARCH64
#define FOREIGN_MACHINE_NAME "AArch64"
#else
#define FOREIGN_MACHINE EM_X86_64
#define FOREIGN_MACHINE_NAME "x86-64"
#endif
static void as_foreign_machine(unsigned char *b) {
  Elf64_Half mach = FOREIGN_MACHINE;
  memcpy(b + offsetof(Elf64_Ehdr, e_machine), &mach, sizeof mach);
}
static void as_x86_32(unsigned char *b) {
  Elf64_Half mach = EM_386;
  memcpy(b + offsetof(Elf64_Ehdr, e_machine), &mach, sizeof mach);
}
static void as_executable(unsigned char *b) {
  Elf64_Half t = ET_EXEC;
  memcpy(b + offsetof(Elf64_Ehdr, e_type), &t, sizeof t);
}
static void as_relocatable(unsigned char *b) {
  Elf64_Half t = ET_REL;
  memcpy(b + offsetof(Elf64_Ehdr, e_type), &t, sizeof t);
}
static void with_bad_phoff(unsigned char *b) {
  Elf64_Off off = (Elf64_Off)1 << 40;
  memcpy(b + offsetof(Elf64_Ehdr, e_phoff), &off, sizeof off);
}

static void wrong_elf_files_are_refused(void **state) {
  (void)state;
  char p[PATH_MAX];
  crafted("elf32.so", as_32bit, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "32-bit");
  crafted("elfbe.so", as_big_endian, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "byte order");
  crafted("elfforeign.so", as_foreign_machine, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "built for " FOREIGN_MACHINE_NAME);
  crafted("elf386.so", as_x86_32, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "x86 (32-bit)");
  crafted("elfexec.so", as_executable, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "an executable (ET_EXEC)");
  crafted("elfrel.so", as_relocatable, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "ET_REL");
  crafted("elfph.so", with_bad_phoff, p);
  expect_refusal(p, NULL, EDGERT_EFORMAT, "program header");
}

/* Where executable memfds are forbidden (vm.memfd_noexec=2 makes
 * memfd_create fail with EACCES; a seccomp filter does the same here, in a
 * child process), loading is refused unless the caller opts into the tmpfile
 * fallback, which then loads and calls normally. */
static int noexec_child(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    return 10;
  edgert_module_t *m = NULL;
  if (edgert_module_load(FX("loader_v2"), NULL, &m) != EDGERT_EUNSUPPORTED ||
      strstr(edgert_last_error(), "vm.memfd_noexec") == NULL)
    return 11;
  edgert_load_options_t o = {.flags = EDGERT_LOAD_ALLOW_TMPFILE};
  if (edgert_module_load_ex(FX("loader_v2"), NULL, &o, &m) != 0)
    return 12;
  edgert_contract_t c;
  edgert_func_t *fn = NULL;
  int r[4] = {0};
  if (edgert_contract_init(&c, "version", NULL, 0, "c_int", NULL, 1) != 0 ||
      edgert_module_bind(m, &c, &fn) != 0 || edgert_func_call(fn, NULL, r) != 0 || r[0] != 1337)
    return 13;
  edgert_module_free(m);
  return 0;
}

static void noexec_memfds_need_the_tmpfile_opt_in(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(noexec_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  const char *emu = getenv("EDGERT_TEST_EMULATOR");
  if (WEXITSTATUS(status) == 10 && emu != NULL && *emu != '\0') {
    /* qemu-user refuses PR_SET_SECCOMP (a filter would apply to the
     * emulator's own host system calls): this case needs a real CPU. */
    print_message("skipped under %s: it cannot install a seccomp filter\n", emu);
    skip();
  }
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- symbols -------------------------------------------------------------------- */

static void only_the_modules_own_symbols_bind(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &m), 0);
  edgert_contract_t c;
  const char *one_str[] = {"c_char_p"};
  assert_int_equal(edgert_contract_init(&c, "system", one_str, 1, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), "'system'"));
  assert_non_null(strstr(edgert_last_error(), "libc"));
  void *p = NULL;
  assert_int_equal(edgert_module_address_of(m, "system", &p), EDGERT_ENOTFOUND);
  assert_int_equal(edgert_module_address_of(m, "malloc", &p), EDGERT_ENOTFOUND);

  assert_int_equal(edgert_contract_init(&c, "no_such_kernel", NULL, 0, NULL, NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), "'no_such_kernel'"));
  assert_non_null(strstr(edgert_last_error(), "loader_kernels"));

  /* A data symbol: address_of yes, bind no. */
  assert_int_equal(edgert_module_address_of(m, "loader_counter", &p), 0);
  assert_int_equal(*(int *)p, 7);
  assert_int_equal(edgert_module_address_of(m, "loader_table", &p), 0);
  assert_true(((const double *)p)[2] == 3.5);
  assert_int_equal(edgert_contract_init(&c, "loader_counter", NULL, 0, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_ENOTFOUND);
  assert_non_null(strstr(edgert_last_error(), "data object"));
  /* Functions have addresses too, and they match the bound function's. */
  edgert_func_t *add = bind_sig(m, "add", "c_double", 2, "c_double", "c_double");
  assert_int_equal(edgert_module_address_of(m, "add", &p), 0);
  assert_ptr_equal(p, edgert_func_address(add));
  assert_string_equal(edgert_func_name(add), "add");
  assert_ptr_equal(edgert_func_module(add), m);
  assert_int_equal(edgert_func_contract(add)->nargs, 2);
  assert_ptr_equal(edgert_module_function(m, "add"), add);
  assert_null(edgert_module_function(m, "inc"));
  /* Rebinding replaces the lookup; the old function stays valid. */
  edgert_func_t *add2 = bind_sig(m, "add", "c_double", 2, "c_double", "c_double");
  assert_ptr_equal(edgert_module_function(m, "add"), add2);
  double x = 1, y = 2, r[2];
  void *args[] = {&x, &y};
  assert_int_equal(edgert_func_call(add, args, r), 0);
  assert_true(r[0] == 3.0);
  assert_int_equal(edgert_module_address_of(m, "", &p), EDGERT_EINVAL);
  edgert_module_free(m);
}

static void a_library_the_process_has_binds_to_its_instance(void **state) {
  (void)state;
  /* libm, opened by the system linker first: the process has it. */
  void *sys = dlopen("libm.so.6", RTLD_NOW);
  assert_non_null(sys);
  double (*sys_cos)(double) = (double (*)(double))dlsym(sys, "cos");
  assert_non_null(sys_cos);
  Dl_info info;
  assert_true(dladdr((void *)sys_cos, &info) != 0);
  char real[PATH_MAX];
  assert_non_null(realpath(info.dli_fname, real));
  edgert_module_t *m = NULL;
  if (edgert_module_load(real, NULL, &m) != 0)
    fail_msg("loading %s: %s", real, edgert_last_error());
  edgert_func_t *c = bind_sig(m, "cos", "c_double", 1, "c_double");
  /* No private copy: the process's libm (docs/loader.md, #12). */
  assert_ptr_equal(edgert_func_address(c), (void *)sys_cos);
  assert_int_equal(edgert_module_shared_with_process(m), 1);
  double x = 0.0, r[2];
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(c, args, r), 0);
  assert_true(r[0] == 1.0);
  x = 3.141592653589793;
  assert_int_equal(edgert_func_call(c, args, r), 0);
  assert_true(r[0] == sys_cos(3.141592653589793));
  edgert_module_free(m);
  dlclose(sys);
}

/* ---- unload, quarantine ------------------------------------------------------------ */

static void unloaded_modules_refuse_calls(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &m), 0);
  edgert_func_t *add = bind_sig(m, "add", "c_double", 2, "c_double", "c_double");
  assert_int_equal(edgert_module_unloaded(m), 0);
  edgert_module_unload(m);
  edgert_module_unload(m); /* idempotent */
  assert_int_equal(edgert_module_unloaded(m), 1);
  double x = 1, y = 2, r[2];
  void *args[] = {&x, &y};
  assert_int_equal(edgert_func_call(add, args, r), EDGERT_EUNLOADED);
  assert_non_null(strstr(edgert_last_error(), "'add'"));
  assert_non_null(strstr(edgert_last_error(), "unloaded"));
  edgert_value_t v[2] = {{.d = 1}, {.d = 2}};
  assert_int_equal(edgert_func_call_values(add, v, r), EDGERT_EUNLOADED);
  assert_int_equal(edgert_func_call_serialized(add, v, r), EDGERT_EUNLOADED);
  edgert_contract_t c = *edgert_func_contract(add);
  assert_int_equal(edgert_module_bind(m, &c, NULL), EDGERT_EUNLOADED);
  assert_int_equal(edgert_module_verify(m, edgert_module_sha256(m)), 1);
  assert_int_equal(edgert_module_quarantined(m), 0);
  edgert_module_free(m);
  edgert_module_free(NULL);
  edgert_module_unload(NULL);
}

static void a_crash_quarantines_until_reloaded(void **state) {
  (void)state;
  /* The crash is on purpose: skip where the guard is off, and under
   * valgrind (which reports the contained fault as an invalid read). */
  const char *pre = getenv("LD_PRELOAD");
  if (!edgert_guard_enabled() || (pre != NULL && strstr(pre, "vgpreload") != NULL))
    skip();
  assert_int_equal(edgert_guard_install(), 0); /* in front of cmocka's handlers */
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_risky"), NULL, &m), 0);
  edgert_func_t *k = bind_sig(m, "risky_kernel", "c_double", 1, "c_double");
  double x = 3.0, r[2];
  void *args[] = {&x};
  assert_int_equal(edgert_func_call(k, args, r), 0);
  assert_true(r[0] == 7.0);
  x = -1.0;
  int rc = edgert_func_call(k, args, r);
  if (rc != EDGERT_ECRASH) {
    edgert_module_free(m);
    skip(); /* the crash guard is off in this environment (EDGERT_CRASH_GUARD=0) */
  }
  assert_int_equal(edgert_module_quarantined(m), 1);
  x = 3.0;
  assert_int_equal(edgert_func_call(k, args, r), EDGERT_EQUARANTINED);
  assert_non_null(strstr(edgert_last_error(), "'risky_kernel'"));
  assert_non_null(strstr(edgert_last_error(), "loader_risky"));
  /* Loading the same bytes again neither lifts it (the crashed copy stays
   * quarantined for its handles) nor is refused by it (a fresh copy). */
  edgert_module_t *again = NULL;
  assert_int_equal(edgert_module_load(FX("loader_risky"), NULL, &again), 0);
  assert_int_equal(edgert_module_quarantined(m), 1);
  assert_int_equal(edgert_module_quarantined(again), 0);
  assert_int_equal(edgert_func_call(k, args, r), EDGERT_EQUARANTINED);
  edgert_func_t *k2 = bind_sig(again, "risky_kernel", "c_double", 1, "c_double");
  assert_int_equal(edgert_func_call(k2, args, r), 0);
  assert_true(r[0] == 7.0);
  /* A reload gives the crashed handle a fresh copy: out of quarantine. */
  assert_int_equal(edgert_module_reload(m, NULL, NULL), 0);
  assert_int_equal(edgert_module_quarantined(m), 0);
  assert_int_equal(edgert_func_call(k, args, r), 0);
  assert_true(r[0] == 7.0);
  edgert_module_free(again);
  edgert_module_free(m);
}

/* ---- threads ---------------------------------------------------------------------- */

typedef struct {
  edgert_func_t *fn;
  long ok, unloaded, wrong;
} worker_t;

static void *call_until_unloaded(void *arg) {
  worker_t *w = arg;
  for (long i = 0; i < 2000000; i++) {
    edgert_value_t v[2] = {{.d = (double)i}, {.d = 0.5}};
    double r[2];
    int rc = edgert_func_call_values(w->fn, v, r);
    if (rc == 0) {
      w->ok++;
      if (r[0] != (double)i + 0.5)
        w->wrong++;
    } else if (rc == EDGERT_EUNLOADED) {
      w->unloaded++;
      break;
    } else {
      w->wrong++;
    }
  }
  return NULL;
}

static void calls_racing_an_unload_never_crash(void **state) {
  (void)state;
  for (int round = 0; round < 5; round++) {
    edgert_module_t *m = NULL;
    assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &m), 0);
    edgert_func_t *fn = bind_sig(m, "slow_add", "c_double", 2, "c_double", "c_double");
    worker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
      w[i] = (worker_t){fn, 0, 0, 0};
      assert_int_equal(pthread_create(&t[i], NULL, call_until_unloaded, &w[i]), 0);
    }
    usleep(20000 + round * 5000);
    edgert_module_unload(m); /* while calls run: the mapping goes with the last one */
    long ok = 0;
    for (int i = 0; i < 4; i++) {
      pthread_join(t[i], NULL);
      assert_int_equal(w[i].wrong, 0);
      assert_int_equal(w[i].unloaded, 1);
      ok += w[i].ok;
    }
    assert_true(ok > 0);
    edgert_module_free(m);
  }
}

/* ---- out of memory ------------------------------------------------------------------ */

static void *oom_setup_none(void) { return NULL; }
static int oom_load(void *st) {
  edgert_module_t **slot = st;
  (void)slot;
  edgert_module_t *m = NULL;
  int rc = edgert_module_load(FX("loader_kernels"), NULL, &m);
  edgert_module_free(m);
  return rc;
}

static void *oom_setup_module(void) {
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(FX("loader_kernels"), NULL, &m), 0);
  return m;
}
static int oom_bind(void *st) {
  edgert_contract_t c;
  const char *a[] = {"c_double", "c_double"};
  assert_int_equal(edgert_contract_init(&c, "add", a, 2, "c_double", NULL, 1), 0);
  return edgert_module_bind(st, &c, NULL);
}
static void oom_bind_unchanged(void *st) { assert_null(edgert_module_function(st, "add")); }
static void oom_free_module(void *st) { edgert_module_free(st); }

static void every_allocation_failure_is_reported(void **state) {
  (void)state;
  assert_int_equal(edgert_test_failalloc_install(), 0);
  edgert_test_oom_case_t load = {"edgert_module_load", oom_setup_none, oom_load, NULL, NULL, 0};
  edgert_test_oom_case_t bind = {"edgert_module_bind", oom_setup_module, oom_bind,
                                 oom_bind_unchanged, oom_free_module, 0};
  assert_true(edgert_test_failalloc_sweep(&load) >= 3);
  assert_true(edgert_test_failalloc_sweep(&bind) >= 1);
  edgert_test_failalloc_uninstall();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(loads_and_reports_its_sha256),
      cmocka_unit_test(malformed_hashes_are_refused_before_reading),
      cmocka_unit_test(tampered_module_runs_no_code),
      cmocka_unit_test(file_changes_after_load_change_nothing),
      cmocka_unit_test(same_bytes_share_one_mapping),
      cmocka_unit_test(open_loaded_finds_loaded_bytes_by_hash_only),
      cmocka_unit_test(a_module_that_stays_mapped_never_answers_for_another),
      cmocka_unit_test(not_regular_files_are_refused),
      cmocka_unit_test(empty_oversized_and_non_elf_are_refused),
      cmocka_unit_test(wrong_elf_files_are_refused),
      cmocka_unit_test(noexec_memfds_need_the_tmpfile_opt_in),
      cmocka_unit_test(only_the_modules_own_symbols_bind),
      cmocka_unit_test(a_library_the_process_has_binds_to_its_instance),
      cmocka_unit_test(unloaded_modules_refuse_calls),
      cmocka_unit_test(a_crash_quarantines_until_reloaded),
      cmocka_unit_test(calls_racing_an_unload_never_crash),
      cmocka_unit_test(every_allocation_failure_is_reported),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
