/*
 * ldpath.c: the parts of glibc's library search that do not depend on the
 * name searched: the subfolders tried in each search folder, and the
 * reading of /etc/ld.so.cache (ldpath.h).
 *
 * Invariants:
 * - The subfolder list is the one `ld.so --help` prints for this process
 *   (and LD_DEBUG=libs shows per folder), in the same order:
 *   * glibc 2.33 and later: glibc-hwcaps/<level> for each level this CPU
 *     supports, best first. x86-64 has x86-64-v4, -v3 and -v2 (the psABI
 *     levels, which __builtin_cpu_supports checks as ld.so does: the
 *     instructions and the OS's support for their registers); AArch64 and
 *     the others have none in the glibc releases this was built for.
 *   * before glibc 2.37 (which removed them): the legacy hwcap subfolders,
 *     every non-empty combination of the components "tls", the platform
 *     and the important hwcap names, the components in that order and the
 *     combinations counted down with "tls" as the highest bit
 *     (tls/P/H, tls/P, tls/H, tls, P/H, P, H). The platform is AT_PLATFORM,
 *     except on Intel x86-64 CPUs where glibc names it itself ("xeon_phi"
 *     with AVX512ER+PF, else "haswell" with the x86-64-v3 instructions);
 *     the hwcap names are "avx512_1" (Intel, AVX512CD+BW+DQ+VL without ER)
 *     and "x86_64" on x86-64, "atomics" (HWCAP_ATOMICS) on AArch64.
 *   * last, "": the folder itself.
 *   What is not modelled: GLIBC_TUNABLES glibc.cpu.hwcaps and
 *   glibc.cpu.hwcap_mask, LD_HWCAP_MASK, ld.so's --glibc-hwcaps-prepend
 *   and -mask (a process started with them searches differently).
 *   tests/c/test_deps.c checks the list against the process's own ld.so.
 * - The cache is untrusted input: every offset and string is checked to
 *   lie in the buffer before use. Only entries of this machine's default
 *   ABI are reported (ldconfig's flags), as ld.so takes only those; a
 *   glibc-hwcaps variant (DL_CACHE_HWCAP_EXTENSION, whose low word indexes
 *   the cache's glibc-hwcaps section of subfolder names) is reported with
 *   the rank of its level when the CPU supports it and not at all
 *   otherwise; entries with legacy hwcap bits are not reported (ldconfig
 *   has not written them since glibc 2.33).
 */
#include "ldpath.h"

#include <elf.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

/* ---- subfolders ------------------------------------------------------------ */

#define MAX_SUBDIRS 40
#define SUBDIR_LEN 64

static char sub_store[MAX_SUBDIRS][SUBDIR_LEN];
static const char *sub_list[MAX_SUBDIRS];
static size_t nsub, nhwcaps; /* the first nhwcaps are glibc-hwcaps/<level> */
static pthread_once_t sub_once = PTHREAD_ONCE_INIT;

static int glibc_at_least(int major, int minor) {
  const char *v = gnu_get_libc_version();
  char *end = NULL;
  long ma = strtol(v, &end, 10), mi = 0;
  if (end != NULL && *end == '.')
    mi = strtol(end + 1, NULL, 10);
  return ma > major || (ma == major && mi >= minor);
}

static void add_sub(const char *s) {
  for (size_t i = 0; i < nsub; i++)
    if (strcmp(sub_list[i], s) == 0)
      return; /* ld.so tries a repeated one twice; once is the same answer */
  if (nsub == MAX_SUBDIRS || strlen(s) >= SUBDIR_LEN)
    return;
  snprintf(sub_store[nsub], SUBDIR_LEN, "%s", s);
  sub_list[nsub] = sub_store[nsub];
  nsub++;
}

static void compute_subdirs(void) {
  if (glibc_at_least(2, 33)) {
#if defined(__x86_64__) && !defined(__ILP32__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
      add_sub("glibc-hwcaps/x86-64-v4");
    if (__builtin_cpu_supports("x86-64-v3"))
      add_sub("glibc-hwcaps/x86-64-v3");
    if (__builtin_cpu_supports("x86-64-v2"))
      add_sub("glibc-hwcaps/x86-64-v2");
#endif
    nhwcaps = nsub;
  }
  if (!glibc_at_least(2, 37)) {
    const char *comp[4];
    size_t k = 0;
    comp[k++] = "tls";
    const char *platform = (const char *)getauxval(AT_PLATFORM);
#if defined(__x86_64__) && !defined(__ILP32__)
    int avx512_1 = 0;
    if (__builtin_cpu_is("intel")) {
      int phi = 0;
      if (__builtin_cpu_supports("avx512cd")) {
        if (__builtin_cpu_supports("avx512er")) {
          if (__builtin_cpu_supports("avx512pf")) {
            platform = "xeon_phi";
            phi = 1;
          }
        } else if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512vl")) {
          avx512_1 = 1;
        }
      }
      if (!phi && __builtin_cpu_supports("x86-64-v3"))
        platform = "haswell";
    }
    if (platform != NULL && platform[0] != '\0')
      comp[k++] = platform;
    if (avx512_1)
      comp[k++] = "avx512_1";
    comp[k++] = "x86_64";
#else
    if (platform != NULL && platform[0] != '\0')
      comp[k++] = platform;
#if defined(__aarch64__) && defined(HWCAP_ATOMICS)
    if (getauxval(AT_HWCAP) & HWCAP_ATOMICS)
      comp[k++] = "atomics";
#endif
#endif
    for (unsigned mask = (1u << k) - 1; mask >= 1; mask--) {
      char path[SUBDIR_LEN];
      size_t used = 0;
      path[0] = '\0';
      for (size_t i = 0; i < k; i++) {
        if (!(mask & (1u << (k - 1 - i))))
          continue;
        int w = snprintf(path + used, sizeof path - used, "%s%s", used ? "/" : "", comp[i]);
        if (w < 0 || (size_t)w >= sizeof path - used) {
          path[0] = '\0';
          break;
        }
        used += (size_t)w;
      }
      if (path[0] != '\0')
        add_sub(path);
    }
  }
  add_sub("");
}

const char *const *edgert__ld_subdirs(size_t *n) {
  pthread_once(&sub_once, compute_subdirs);
  *n = nsub;
  return sub_list;
}

int edgert__ld_is_subdir(const char *sub, size_t len) {
  size_t n;
  const char *const *list = edgert__ld_subdirs(&n);
  for (size_t i = 0; i < n; i++)
    if (list[i][0] != '\0' && strlen(list[i]) == len && memcmp(list[i], sub, len) == 0)
      return 1;
  return 0;
}

/* The rank of glibc-hwcaps level `name` among the supported ones, or -1. */
static int hwcaps_rank(const char *name) {
  size_t n;
  const char *const *list = edgert__ld_subdirs(&n);
  for (size_t i = 0; i < nhwcaps; i++)
    if (strcmp(list[i] + sizeof "glibc-hwcaps/" - 1, name) == 0)
      return (int)i;
  return -1;
}

/* ---- the cache ---------------------------------------------------------------- */

/* glibc's cache flags for this machine's default ABI (sysdeps/generic/
 * ldconfig.h: FLAG_ELF_LIBC6 | the machine's FLAG_*_LIB64). */
#if defined(__x86_64__) && !defined(__ILP32__)
#define CACHE_ABI 0x0303
#elif defined(__aarch64__)
#define CACHE_ABI 0x0a03
#elif defined(__riscv) && __riscv_xlen == 64
#define CACHE_ABI 0x1003 /* lp64d */
#elif defined(__powerpc64__)
#define CACHE_ABI 0x0503
#elif defined(__s390x__)
#define CACHE_ABI 0x0403
#else
#define CACHE_ABI (-1) /* unknown: the callers' ELF header checks alone decide */
#endif

#define NEW_MAGIC "glibc-ld.so.cache1.1"
#define OLD_MAGIC "ld.so-1.7.0"
#define NEW_HEADER 48 /* magic+version 20, nlibs 4, len_strings 4, flags 4, ext 4, unused 12 */
#define NEW_ENTRY 24  /* flags 4, key 4, value 4, osversion 4, hwcap 8 */
#define OLD_ENTRY 12  /* flags 4, key 4, value 4 */
#define EXT_MAGIC 0xeaa42174u
#define EXT_TAG_HWCAPS 1u
#define HWCAP_EXTENSION_HI 0x40000000u /* DL_CACHE_HWCAP_EXTENSION (1 << 62), high word */

static uint32_t u32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static const char *cstr(const char *base, size_t size, uint32_t off) {
  if (off >= size || memchr(base + off, '\0', size - off) == NULL)
    return NULL;
  return base + off;
}

/* The glibc-hwcaps section: its array of name offsets and their count, or
 * a count of 0. */
static void hwcaps_section(const char *c, size_t size, const char **names, uint32_t *count) {
  *names = NULL;
  *count = 0;
  uint32_t ext = u32(c + 32);
  if (ext == 0 || ext % 4 != 0 || (uint64_t)ext + 8 > size || u32(c + ext) != EXT_MAGIC)
    return;
  uint32_t nsec = u32(c + ext + 4);
  if (nsec > (size - ext - 8) / 16)
    return;
  for (uint32_t i = 0; i < nsec; i++) {
    const char *s = c + ext + 8 + (size_t)i * 16;
    uint32_t tag = u32(s), off = u32(s + 8), len = u32(s + 12);
    if (tag != EXT_TAG_HWCAPS)
      continue;
    if (off % 4 != 0 || (uint64_t)off + len > size)
      return;
    *names = c + off;
    *count = len / 4;
    return;
  }
}

int edgert__ldcache_each(const char *buf, size_t len, edgert__ldcache_fn fn, void *ud) {
  const char *c = buf;
  size_t size = len;
  if (size >= sizeof OLD_MAGIC - 1 && memcmp(c, OLD_MAGIC, sizeof OLD_MAGIC - 1) == 0) {
    /* The old format first: magic (11, padded to 12), nlibs, entries; the
     * new one follows, 8-byte aligned. Its offsets count from it. */
    if (size < 16)
      return 0;
    uint64_t after = 16 + (uint64_t)u32(c + 12) * OLD_ENTRY;
    after = (after + 7) & ~(uint64_t)7;
    if (after + NEW_HEADER > size)
      return 0;
    c += after;
    size -= (size_t)after;
  }
  if (size < NEW_HEADER || memcmp(c, NEW_MAGIC, sizeof NEW_MAGIC - 1) != 0)
    return 0;
  uint32_t nlibs = u32(c + 20);
  if (nlibs > (size - NEW_HEADER) / NEW_ENTRY)
    return 0;
  const char *names;
  uint32_t nnames;
  hwcaps_section(c, size, &names, &nnames);
  for (uint32_t i = 0; i < nlibs; i++) {
    const char *e = c + NEW_HEADER + (size_t)i * NEW_ENTRY;
    int32_t flags;
    memcpy(&flags, e, 4);
    uint64_t hwcap;
    memcpy(&hwcap, e + 16, 8);
    if (CACHE_ABI != -1 && flags != CACHE_ABI)
      continue;
    int rank = -1;
    if ((uint32_t)(hwcap >> 32) == HWCAP_EXTENSION_HI) {
      uint32_t idx = (uint32_t)hwcap;
      const char *level = idx < nnames ? cstr(c, size, u32(names + (size_t)idx * 4)) : NULL;
      if (level == NULL || (rank = hwcaps_rank(level)) < 0)
        continue; /* malformed, or a level this CPU does not support */
    } else if (hwcap != 0) {
      continue;
    }
    const char *key = cstr(c, size, u32(e + 4));
    const char *value = cstr(c, size, u32(e + 8));
    if (key == NULL || value == NULL)
      continue;
    int rc = fn(key, value, rank, ud);
    if (rc != 0)
      return rc;
  }
  return 0;
}
