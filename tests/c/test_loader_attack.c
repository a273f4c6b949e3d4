/* test_loader_attack.c: a local attacker (another process of the same user,
 * or a library loaded earlier) against verified loading: patching the
 * loader's memfd before its seal, and a crafted DT_SONAME that answers for
 * the memfd's /proc/self/fd/N name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

#define GENUINE 0x600DC0DEu
#define PATCHED 0x0BADC0DEu

static int call_int(edgert_module_t *m, const char *name, int *out) {
  edgert_contract_t c;
  edgert_func_t *fn = NULL;
  int r[4] = {0};
  int rc = edgert_contract_init(&c, name, NULL, 0, "c_int", NULL, 1);
  if (rc == 0)
    rc = edgert_module_bind(m, &c, &fn);
  if (rc == 0)
    rc = edgert_func_call(fn, NULL, r);
  *out = r[0];
  return rc;
}

/* The SHA-256 of a file (64 hex digits) through an unverified load. */
static void sha_of(const char *path, char out[65]) {
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(path, NULL, &m), 0);
  memcpy(out, edgert_module_sha256(m), 65);
  edgert_module_free(m);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Offset of the 4 bytes `v` (little-endian) in the file; they must occur
 * exactly once. */
static long find_u32(const char *path, uint32_t v) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  long at = -1, hits = 0, pos = 0;
  unsigned char w[4] = {0};
  int c;
  while ((c = fgetc(f)) != EOF) {
    memmove(w, w + 1, 3);
    w[3] = (unsigned char)c;
    pos++;
    if (pos >= 4 && (uint32_t)(w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24) == v) {
      at = pos - 4;
      hits++;
    }
  }
  fclose(f);
  assert_int_equal(hits, 1);
  return at;
}

/* ---- the unsealed window --------------------------------------------------- */

/*
 * The attacker: a second process of the same user. It scans
 * /proc/<target>/fd for the loader's memfd of libloader_tamper.so, opens it
 * read-write, waits until the copy has passed the code, and writes PATCHED
 * over the code's immediate (mode 'w'), or maps it writable and shared and
 * holds the mapping for a second (mode 'm'). Exit 0: its write went in, or
 * it got the mapping (before the seal); 1: refused (sealed); 2: it never
 * found the memfd.
 */
static int attacker(pid_t target, long off, int ready, int mode) {
  char dir[64], link[512];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)target);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0)
    return 3;
  DIR *d = fdopendir(dfd);
  if (d == NULL)
    return 3;
  (void)!write(ready, "r", 1);
  int fd = -1;
  double deadline = now() + 20.0; /* a bound on the loop, not a test condition */
  while (fd < 0 && now() < deadline) {
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      ssize_t n = readlinkat(dfd, e->d_name, link, sizeof link - 1);
      if (n <= 0)
        continue;
      link[n] = '\0';
      if (strstr(link, "memfd:edgert:libloader_tamper.so") == NULL)
        continue;
      fd = openat(dfd, e->d_name, O_RDWR);
      if (fd >= 0)
        break;
    }
  }
  if (fd < 0)
    return 2;
  if (mode == 'm') {
    void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w == MAP_FAILED)
      return 1;
    sleep(1);
    return 0;
  }
  struct stat st;
  while (fstat(fd, &st) == 0 && st.st_size < off + 4 && now() < deadline) {
  }
  uint32_t patch = PATCHED;
  return pwrite(fd, &patch, 4, off) == 4 ? 0 : 1;
}

/* Forks the attacker against this process (`mode` as attacker() takes it)
 * and returns once it is in position, watching for the memfd. */
static pid_t start_attacker(long off, char mode) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t parent = getpid(), pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    _exit(attacker(parent, off, p[1], mode));
  }
  close(p[1]);
  char r;
  assert_int_equal(read(p[0], &r, 1), 1);
  close(p[0]);
  return pid;
}

static void a_patch_before_the_seal_never_runs_under_the_genuine_hash(void **state) {
  (void)state;
  const char *path = FX("loader_tamper");
  long off = find_u32(path, GENUINE);
  char genuine[65];
  sha_of(path, genuine);
  int wins = 0, refused = 0, clean = 0, tampered_hash = 0;
  enum { ATTEMPTS = 6 };
  for (int i = 0; i < ATTEMPTS; i++) {
    pid_t pid = start_attacker(off, 'w');
    /* Every other attempt gives the expected hash: with it a tampered copy
     * is refused; without it, it may load, but then under its own hash. */
    int expect = i % 2 == 0;
    edgert_module_t *m = NULL;
    int rc = edgert_module_load(path, expect ? genuine : NULL, &m);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    wins += WEXITSTATUS(status) == 0;
    if (rc != 0) {
      assert_int_equal(rc, EDGERT_EINTEGRITY);
      refused++;
      continue;
    }
    int got = 0;
    assert_int_equal(call_int(m, "tamper_probe", &got), 0);
    if ((uint32_t)got == GENUINE) {
      assert_string_equal(edgert_module_sha256(m), genuine);
      clean++;
    } else {
      /* Patched bytes run only under the digest of the patched bytes. */
      assert_int_equal((uint32_t)got, PATCHED);
      assert_false(expect);
      assert_string_not_equal(edgert_module_sha256(m), genuine);
      assert_int_equal(edgert_module_verify(m, genuine), 0);
      tampered_hash++;
    }
    edgert_module_free(m);
  }
  /* Whatever happened above, the genuine file still loads as itself. */
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(path, genuine, &m), 0);
  int got = 0;
  assert_int_equal(call_int(m, "tamper_probe", &got), 0);
  assert_int_equal((uint32_t)got, GENUINE);
  edgert_module_free(m);
  print_message("unsealed window: %d attempts, attacker's write went in %d times; "
                "refused %d, genuine %d, patched under its own hash %d\n",
                ATTEMPTS, wins, refused, clean, tampered_hash);
}

/* The other way in: map the memfd writable and shared before the seal. The
 * seal then fails, and the load is refused as tampering. Attacker mode
 * 'm': map, hold the mapping for a second, exit 0 if it got one. */
static void a_writable_mapping_before_the_seal_is_refused(void **state) {
  (void)state;
  const char *path = FX("loader_tamper");
  long off = find_u32(path, GENUINE);
  char genuine[65];
  sha_of(path, genuine);
  int mapped = 0, refused = 0;
  enum { ATTEMPTS = 4 };
  for (int i = 0; i < ATTEMPTS; i++) {
    pid_t pid = start_attacker(off, 'm');
    edgert_module_t *m = NULL;
    int rc = edgert_module_load(path, genuine, &m);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    mapped += WEXITSTATUS(status) == 0;
    if (rc != 0) {
      assert_int_equal(rc, EDGERT_EINTEGRITY);
      refused++;
      continue;
    }
    int got = 0;
    assert_int_equal(call_int(m, "tamper_probe", &got), 0);
    assert_int_equal((uint32_t)got, GENUINE);
    edgert_module_free(m);
  }
  print_message("writable mapping: %d attempts, attacker mapped the copy %d times; "
                "refused %d\n", ATTEMPTS, mapped, refused);
}

/* ---- the last moment before the seal ---------------------------------------- */

/*
 * The attacker above has to win a race, which a busy machine decides. This
 * one always writes in the last moment: the test program's own fcntl() is
 * the one libedgert calls (an exported definition of the executable comes
 * first in the dynamic linker's lookup), and when armed it flips one byte of the memfd
 * just before forwarding F_ADD_SEALS to the C library. The bytes were read,
 * hashed and written by then (and, for a file of 4 MiB or more with a
 * second CPU, tagged from the private copy that was hashed): the load must
 * not report the genuine digest for them.
 */
static long flip_at = -1; /* armed: the offset to flip before the seal */
static int flips;         /* seals that came with a flip */

/* Default visibility: the build hides symbols unless told, and a hidden
 * definition is not exported for libedgert to bind to. */
__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...) {
  static int (*real)(int, int, ...);
  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "fcntl");
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long); /* every command used here takes an int, a long or a pointer */
  va_end(ap);
  if (cmd == F_ADD_SEALS && flip_at >= 0) {
    unsigned char b = 0;
    if (pread(fd, &b, 1, flip_at) == 1) {
      b ^= 0x5a;
      if (pwrite(fd, &b, 1, flip_at) == 1)
        flips++;
    }
  }
  return real(fd, cmd, arg);
}

static void a_write_just_before_the_seal_never_loads_under_the_genuine_hash(void **state) {
  (void)state;
  const char *path = FX("loader_tamper");
  char genuine[65];
  sha_of(path, genuine);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  cpu_set_t cpus;
  int pipelined = st.st_size >= (4 << 20) &&
                  (sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) > 1);
  /* In the read-only padding (.rodata): the first chunk (hashed and tagged
   * before the copier starts), one in the middle and the last one. */
  long tamper_value = find_u32(path, GENUINE);
  const long at[] = {0x2100, st.st_size / 2, st.st_size - 0x3000 > 0x2100 ? st.st_size - 0x3000 : 0x2200};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    assert_true(at[k] < tamper_value - 8 || at[k] > tamper_value + 8);
    for (int expect = 0; expect < 2; expect++) {
      flips = 0;
      flip_at = at[k];
      edgert_module_t *m = NULL;
      int rc = edgert_module_load(path, expect ? genuine : NULL, &m);
      flip_at = -1;
      assert_int_equal(flips, 1);
      if (rc != 0) {
        assert_int_equal(rc, EDGERT_EINTEGRITY);
        if (pipelined)
          assert_non_null(strstr(edgert_last_error(), "before it was sealed"));
        continue;
      }
      /* Hashed after the seal (one CPU): loaded, but only under the digest
       * of the bytes as sealed. */
      assert_false(pipelined);
      assert_false(expect);
      assert_string_not_equal(edgert_module_sha256(m), genuine);
      edgert_module_free(m);
    }
  }
  /* Unarmed, the same file loads as itself. */
  edgert_module_t *m = NULL;
  assert_int_equal(edgert_module_load(path, genuine, &m), 0);
  edgert_module_free(m);
}

/* ---- a crafted DT_SONAME --------------------------------------------------- */

#define SONAME_FD 200

/* Makes the lowest free descriptor `lowest` (taking all below it); returns
 * how many were taken into `held`. */
static int hold_below(int lowest, int *held, int cap) {
  int n = 0;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (fd >= lowest || n == cap) {
      close(fd);
      return n;
    }
    held[n++] = fd;
  }
}

/* Loads loader_v1 (version() is 42) with the lowest free descriptors at
 * SONAME_FD - k for k = 0..3, so that one of the loads gets a memfd whose
 * /proc/self/fd/N name the evil object answers to. Each load must either be
 * refused with EDGERT_EINTEGRITY naming `culprit`, or run the verified
 * code. Returns the number of refusals. */
static int loads_near_the_crafted_name(const char *culprit) {
  char genuine[65];
  sha_of(FX("loader_v1"), genuine);
  int refusals = 0;
  for (int k = 0; k < 4; k++) {
    int held[256];
    int n = hold_below(SONAME_FD - k, held, 256);
    edgert_module_t *m = NULL;
    int rc = edgert_module_load(FX("loader_v1"), genuine, &m);
    for (int i = 0; i < n; i++)
      close(held[i]);
    if (rc != 0) {
      assert_int_equal(rc, EDGERT_EINTEGRITY);
      assert_non_null(strstr(edgert_last_error(), culprit));
      assert_non_null(strstr(edgert_last_error(), "/proc/self/fd/200"));
      refusals++;
      continue;
    }
    int v = 0;
    assert_int_equal(call_int(m, "version", &v), 0);
    assert_int_equal(v, 42); /* never the evil object's 666 */
    edgert_module_free(m);
  }
  return refusals;
}

static void a_library_whose_soname_is_the_memfd_name_is_refused(void **state) {
  (void)state;
  int probe = open("/dev/null", O_RDONLY);
  close(probe);
  if (probe >= SONAME_FD - 3 || fcntl(SONAME_FD, F_GETFD) != -1)
    skip(); /* the test process already uses descriptors up there */
  /* As ctypes.CDLL would: an unverified library, loaded first. */
  void *evil = dlopen(FX("loader_soname_evil"), RTLD_NOW | RTLD_LOCAL);
  assert_non_null(evil);
  assert_int_equal(loads_near_the_crafted_name("libloader_soname_evil.so"), 1);
  dlclose(evil);
}

static void a_library_loaded_under_the_memfd_name_is_refused(void **state) {
  (void)state;
  int probe = open("/dev/null", O_RDONLY);
  close(probe);
  if (probe >= SONAME_FD - 3 || fcntl(SONAME_FD, F_GETFD) != -1)
    skip();
  /* dlopen of another file through the very name the loader uses: glibc
   * then knows that object as "/proc/self/fd/200", long after the fd is
   * closed. (loader_v2's version() is 1337, not 42.) */
  int fd = open(FX("loader_v2"), O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, SONAME_FD), SONAME_FD);
  close(fd);
  void *other = dlopen("/proc/self/fd/200", RTLD_NOW | RTLD_LOCAL);
  assert_non_null(other);
  close(SONAME_FD);
  assert_int_equal(loads_near_the_crafted_name("/proc/self/fd/200"), 1);
  dlclose(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_patch_before_the_seal_never_runs_under_the_genuine_hash),
      cmocka_unit_test(a_writable_mapping_before_the_seal_is_refused),
      cmocka_unit_test(a_write_just_before_the_seal_never_loads_under_the_genuine_hash),
      cmocka_unit_test(a_library_whose_soname_is_the_memfd_name_is_refused),
      cmocka_unit_test(a_library_loaded_under_the_memfd_name_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
