/* test_loader_isolate.c: symbol interposition on a verified module
 * (EDGERT_LOAD_ISOLATE_SYMBOLS) and the report of a module's interposable
 * internal calls (edgert_interposable_calls), malformed files included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

/* run() of loader_interpose: 101 with its own helper(), 766 with the evil one. */
static int run_of(edgert_module_t *m) {
  edgert_contract_t c;
  edgert_func_t *fn = NULL;
  int r[4] = {0};
  assert_int_equal(edgert_contract_init(&c, "run", NULL, 0, "c_int", NULL, 1), 0);
  assert_int_equal(edgert_module_bind(m, &c, &fn), 0);
  assert_int_equal(edgert_func_call(fn, NULL, r), 0);
  return r[0];
}

static int sanitizer_runtime(void) {
  return dlsym(RTLD_DEFAULT, "__asan_init") != NULL || dlsym(RTLD_DEFAULT, "__tsan_init") != NULL;
}

/* In a child (the RTLD_GLOBAL library would stay in this process): exit 0
 * when every expectation holds, else the number of the one that failed. */
static int interposition_child(void) {
  void *evil = dlopen(FX("loader_interpose_evil"), RTLD_NOW | RTLD_GLOBAL);
  if (evil == NULL)
    return 10;
  edgert_module_t *plain = NULL, *isolated = NULL;
  if (edgert_module_load(FX("loader_interpose"), NULL, &plain) != 0)
    return 11;
  /* The ELF rule: the global scope comes first, even for the module's own
   * call to its own exported helper(). */
  if (run_of(plain) != 766)
    return 12;
  edgert_load_options_t o = {.flags = EDGERT_LOAD_ISOLATE_SYMBOLS};
  int rc = edgert_module_load_ex(FX("loader_interpose"), NULL, &o, &isolated);
  if (sanitizer_runtime()) {
    /* ASan's and TSan's dlopen end the process on RTLD_DEEPBIND: refused
     * before, with a message that says so. */
    if (rc != EDGERT_EUNSUPPORTED || strstr(edgert_last_error(), "RTLD_DEEPBIND") == NULL ||
        strstr(edgert_last_error(), "Sanitizer") == NULL)
      return 13;
    edgert_module_free(plain);
    return 0;
  }
  if (rc != 0)
    return 14;
  if (run_of(isolated) != 101) /* its own helper, whatever the global scope has */
    return 15;
  if (run_of(plain) != 766) /* same bytes, other binding: a mapping of their own */
    return 16;
  edgert_module_free(isolated);
  edgert_module_free(plain);
  return 0;
}

static void isolated_symbols_keep_internal_calls_inside_the_module(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(interposition_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void unknown_load_flags_are_refused(void **state) {
  (void)state;
  edgert_module_t *m = NULL;
  edgert_load_options_t o = {.flags = 0x4u};
  assert_int_equal(edgert_module_load_ex(FX("loader_v1"), NULL, &o, &m), EDGERT_EINVAL);
  assert_null(m);
  assert_non_null(strstr(edgert_last_error(), "unknown flags 0x4"));
}

/* ---- edgert_interposable_calls ------------------------------------------- */

typedef struct {
  char names[16][64];
  unsigned how[16];
  int n;
} found_t;

static int collect(void *ud, const char *name, unsigned how) {
  found_t *f = ud;
  if (f->n < 16) {
    snprintf(f->names[f->n], sizeof f->names[0], "%s", name);
    f->how[f->n] = how;
  }
  f->n++;
  return 0;
}

static void interposable_calls_name_the_exported_callees(void **state) {
  (void)state;
  found_t f = {0};
  assert_int_equal(edgert_interposable_calls(FX("loader_interpose"), collect, &f), 0);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.names[0], "helper");
  assert_true(f.how[0] & EDGERT_INTERPOSE_CALL);
  /* -fvisibility=hidden: nothing to take over. */
  memset(&f, 0, sizeof f);
  assert_int_equal(edgert_interposable_calls(FX("loader_interpose_hidden"), collect, &f), 0);
  assert_int_equal(f.n, 0);
  /* Kernels that call nothing of their own: nothing either (an ASan build
   * adds its exported ODR indicators of the module's globals, which the
   * module does reach through its GOT: reported, rightly). */
  memset(&f, 0, sizeof f);
  assert_int_equal(edgert_interposable_calls(FX("loader_kernels"), collect, &f), 0);
  for (int i = 0; i < f.n && i < 16; i++)
    assert_true(strncmp(f.names[i], "__odr_asan", 10) == 0);
}

static int stop_at_first(void *ud, const char *name, unsigned how) {
  (void)name;
  (void)how;
  ++*(int *)ud;
  return 7;
}

static void interposable_calls_stop_when_the_callback_says(void **state) {
  (void)state;
  int calls = 0;
  assert_int_equal(edgert_interposable_calls(FX("loader_interpose"), stop_at_first, &calls), 7);
  assert_int_equal(calls, 1);
  assert_int_equal(edgert_interposable_calls(NULL, collect, &calls), EDGERT_EINVAL);
  assert_int_equal(edgert_interposable_calls(FX("loader_interpose"), NULL, NULL), EDGERT_EINVAL);
}

static char tmpfile_path[64];

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

static int scan_bytes(const unsigned char *b, size_t n, found_t *f) {
  int fd = open(tmpfile_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  close(fd);
  memset(f, 0, sizeof *f);
  return edgert_interposable_calls(tmpfile_path, collect, f);
}

/* The file's dynamic entry with tag `tag`, or NULL. */
static Elf64_Dyn *dyn_entry(unsigned char *b, Elf64_Sxword tag) {
  Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
  Elf64_Phdr *ph = (Elf64_Phdr *)(b + eh->e_phoff);
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      for (Elf64_Dyn *d = (Elf64_Dyn *)(b + ph[i].p_offset); d->d_tag != DT_NULL; d++)
        if (d->d_tag == tag)
          return d;
  return NULL;
}

static void expect_format_error(const unsigned char *b, size_t n, const char *what) {
  found_t f;
  int rc = scan_bytes(b, n, &f);
  if (rc != EDGERT_EFORMAT)
    fail_msg("expected EDGERT_EFORMAT for %s, got %d (%s)", what, rc, edgert_last_error());
  assert_non_null(strstr(edgert_last_error(), tmpfile_path));
}

static void interposable_calls_refuse_malformed_modules(void **state) {
  (void)state;
  snprintf(tmpfile_path, sizeof tmpfile_path, "/tmp/edgert_interpose_%d.so", (int)getpid());
  unsigned char *orig;
  size_t n = slurp(FX("loader_interpose"), &orig);
  unsigned char *b = malloc(n);
  assert_non_null(b);
  found_t f;
  /* Not ELF, truncated. */
  expect_format_error((const unsigned char *)"not an ELF file", 15, "text");
  expect_format_error(orig, 40, "a truncated header");
  /* The PLT relocation table pointed outside the file's segments. */
  memcpy(b, orig, n);
  dyn_entry(b, DT_JMPREL)->d_un.d_ptr = 0x7fffffff0000ull;
  expect_format_error(b, n, "DT_JMPREL outside");
  assert_non_null(strstr(edgert_last_error(), "PLT relocation table"));
  /* A size that is not a whole number of entries. */
  memcpy(b, orig, n);
  dyn_entry(b, DT_PLTRELSZ)->d_un.d_val += 3;
  expect_format_error(b, n, "DT_PLTRELSZ");
  /* The string table larger than the file. */
  memcpy(b, orig, n);
  dyn_entry(b, DT_STRSZ)->d_un.d_val = 1ull << 40;
  expect_format_error(b, n, "DT_STRSZ");
  /* A relocation naming a symbol far beyond the symbol table. */
  memcpy(b, orig, n);
  Elf64_Dyn *jr = dyn_entry(b, DT_JMPREL);
  assert_non_null(jr);
  /* In this small module the PLT table's address is its file offset. */
  assert_true(jr->d_un.d_ptr + sizeof(Elf64_Rela) <= n);
  Elf64_Rela *r = (Elf64_Rela *)(b + jr->d_un.d_ptr);
  r->r_info = ELF64_R_INFO(0xffffffu, ELF64_R_TYPE(r->r_info));
  expect_format_error(b, n, "a symbol index");
  assert_non_null(strstr(edgert_last_error(), "beyond the symbol table"));
  /* No dynamic section at all. */
  memcpy(b, orig, n);
  Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
  Elf64_Phdr *ph = (Elf64_Phdr *)(b + eh->e_phoff);
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      ph[i].p_type = PT_NULL;
  expect_format_error(b, n, "no PT_DYNAMIC");
  assert_non_null(strstr(edgert_last_error(), "no dynamic section"));
  /* Single-byte corruption anywhere: an answer or a refusal, never a crash
   * or a read outside the file's buffers (ASan checks the latter). */
  srand(12345);
  int answered = 0, refused = 0;
  for (int i = 0; i < 3000; i++) {
    memcpy(b, orig, n);
    size_t at = (size_t)rand() % (i % 2 ? 0x1000 : n); /* the headers, half the time */
    b[at] = (unsigned char)rand();
    int rc = scan_bytes(b, n, &f);
    if (rc == 0)
      answered++;
    else if (rc == EDGERT_EFORMAT)
      refused++;
    else
      fail_msg("byte %zu corrupted: unexpected %d (%s)", at, rc, edgert_last_error());
  }
  print_message("3000 corrupted copies: %d answered, %d refused as malformed\n", answered,
                refused);
  /* Not a regular file. */
  assert_int_equal(edgert_interposable_calls("/tmp", collect, &f), EDGERT_EIO);
  assert_int_equal(edgert_interposable_calls("/nonexistent/x.so", collect, &f), EDGERT_EIO);
  unlink(tmpfile_path);
  free(b);
  free(orig);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(isolated_symbols_keep_internal_calls_inside_the_module),
      cmocka_unit_test(unknown_load_flags_are_refused),
      cmocka_unit_test(interposable_calls_name_the_exported_callees),
      cmocka_unit_test(interposable_calls_stop_when_the_callback_says),
      cmocka_unit_test(interposable_calls_refuse_malformed_modules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
