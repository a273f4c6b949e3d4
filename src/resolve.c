/*
 * resolve.c: the front of a load. What the user passed becomes a path, and
 * "the process already has this library" is decided here.
 *
 * Invariants:
 * - A load argument with a '/' is a path and is used as given. One without
 *   is a library name, searched as the dynamic linker searches a name
 *   dlopen'ed by the main program: the folders of LD_LIBRARY_PATH (ignored
 *   in a set-user-ID process, as ld.so does; empty entries are skipped, so
 *   the current folder is never searched by accident), then the linker's
 *   cache /etc/ld.so.cache (read by src/ldpath.c: entries for this
 *   machine's ABI, a glibc-hwcaps variant of a supported level before the
 *   plain entry), then the folders ld.so reports for the main
 *   program (dlinfo RTLD_DI_SERINFO: its run path and the system folders).
 *   A candidate that is an ELF file for another machine or class is
 *   skipped, as ld.so skips it; a linker script stops the search with an
 *   error naming the library it stands for.
 * - A name with no ".so" in it is a short name, as ctypes.util.find_library
 *   takes it: "z" is "libz.so.<N>" (the highest version found first in the
 *   order above), or "libz.so" when no versioned file exists.
 * - Nothing here maps or runs a file: candidates are read (64 bytes of
 *   header) and closed. The loader then reads, hashes and checks the path
 *   chosen like any other.
 * - The process's instance of a file is the object of the dynamic linker's
 *   list whose name stats to the file's device and inode; only objects
 *   whose ELF and program headers in memory equal the file's first bytes
 *   are stat'ed, so a load pays no system call per loaded object. It is
 *   taken with dlopen(RTLD_NOLOAD) of its own name: one reference, given
 *   back by the one dlclose of the image. Nothing below the process's own
 *   reference count is ever closed.
 */
#include "resolve.h"

#include "ldpath.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define LD_CACHE "/etc/ld.so.cache"

/* The ELF machine of this process's objects. */
#if defined(__x86_64__) && !defined(__ILP32__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_MACHINE EM_S390
#else
#define HOST_MACHINE EM_NONE /* unknown: the class check alone decides */
#endif

/* ---- candidates ------------------------------------------------------------ */

enum { CAND_NONE, CAND_ELF, CAND_SCRIPT };

/* What the file at `path` is: an ELF file for this machine, a linker
 * script, or neither (missing, unreadable, another machine: skipped). */
static int candidate(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return CAND_NONE;
  struct stat st;
  unsigned char h[sizeof(ElfW(Ehdr))];
  ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, h, sizeof h) : -1;
  close(fd);
  if (n < 4)
    return CAND_NONE;
  if (memcmp(h, ELFMAG, SELFMAG) != 0)
    return CAND_SCRIPT; /* checked for real by the loader; stops the search */
  if ((size_t)n < sizeof h || h[EI_CLASS] != ELFCLASS64)
    return CAND_NONE;
  const ElfW(Ehdr) *e = (const ElfW(Ehdr) *)h;
  if (HOST_MACHINE != EM_NONE && e->e_machine != HOST_MACHINE)
    return CAND_NONE;
  return CAND_ELF;
}

/* "lib<short>.so.<version>" or "lib<short>.so": the version's start (""
 * for none), or NULL if `file` is not of that form. */
static const char *short_match(const char *file, const char *shortname) {
  size_t k = strlen(shortname);
  if (strncmp(file, "lib", 3) != 0 || strncmp(file + 3, shortname, k) != 0 ||
      strncmp(file + 3 + k, ".so", 3) != 0)
    return NULL;
  const char *v = file + 6 + k;
  if (*v == '\0')
    return v;
  if (*v != '.' || v[1] < '0' || v[1] > '9')
    return NULL;
  return v + 1;
}

/* Better of two short-name matches: any version beats none, then the
 * higher version (strverscmp: 1.10 > 1.9). */
static int better(const char *v, const char *than) {
  if (than == NULL)
    return 1;
  if ((*v == '\0') != (*than == '\0'))
    return *than == '\0';
  return strverscmp(v, than) > 0;
}

typedef struct {
  const char *name;  /* what the user passed */
  int shortname;     /* "z" rather than "libz.so.1" */
  char found[PATH_MAX];
  int kind;          /* CAND_* of found */
} search_t;

/* Looks in one folder (for an exact name, in the subfolders ld.so tries
 * first too). 1 if found (s->found, s->kind), else 0. */
static int in_folder(search_t *s, const char *dir) {
  if (dir[0] == '\0')
    return 0;
  char path[PATH_MAX];
  if (!s->shortname) {
    /* ld.so tries the folder's glibc-hwcaps and legacy hwcap subfolders
     * first (ldpath.h). */
    size_t nsub;
    const char *const *sub = edgert__ld_subdirs(&nsub);
    for (size_t i = 0; i < nsub; i++) {
      int w = snprintf(path, sizeof path, "%s%s%s/%s", dir, sub[i][0] ? "/" : "", sub[i],
                       s->name);
      if (w < 0 || (size_t)w >= sizeof path)
        continue;
      int k = candidate(path);
      if (k == CAND_NONE)
        continue;
      snprintf(s->found, sizeof s->found, "%s", path);
      s->kind = k;
      return 1;
    }
    return 0;
  }
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  char best[256] = "";
  const char *bestv = NULL;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *v = short_match(de->d_name, s->name);
    if (v == NULL || strlen(de->d_name) >= sizeof best ||
        (bestv != NULL && !better(v, bestv)))
      continue;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
      continue;
    if (candidate(path) == CAND_NONE)
      continue;
    snprintf(best, sizeof best, "%s", de->d_name);
    bestv = best + (v - de->d_name);
  }
  closedir(d);
  if (bestv == NULL)
    return 0;
  if ((size_t)snprintf(s->found, sizeof s->found, "%s/%s", dir, best) >= sizeof s->found)
    return 0;
  s->kind = candidate(s->found);
  return 1;
}

/* ---- the linker's cache ------------------------------------------------------ */

/* What the cache gives for the search: an exact name takes the glibc-hwcaps
 * variant of the best supported level, else the plain entry (as ld.so);
 * a short name takes the highest version among plain entries (as
 * ctypes.util.find_library). */
typedef struct {
  search_t *s;
  int best_rank;   /* exact name: the rank found, INT_MAX none; short: unused */
  char best[256];  /* short name: the key of the best match */
  const char *bestv;
  int hit;
} cache_search_t;

static int cache_visit(const char *key, const char *value, int rank, void *ud) {
  cache_search_t *cs = ud;
  search_t *s = cs->s;
  if (strlen(value) >= sizeof s->found)
    return 0;
  if (!s->shortname) {
    if (strcmp(key, s->name) != 0)
      return 0;
    int r = rank < 0 ? INT_MAX - 1 : rank; /* a plain entry: below every variant */
    if (r >= cs->best_rank || candidate(value) == CAND_NONE)
      return 0;
    snprintf(s->found, sizeof s->found, "%s", value);
    cs->best_rank = r;
    cs->hit = 1;
    return 0;
  }
  if (rank >= 0)
    return 0;
  const char *v = short_match(key, s->name);
  if (v == NULL || strlen(key) >= sizeof cs->best ||
      (cs->bestv != NULL && !better(v, cs->bestv)) || candidate(value) == CAND_NONE)
    return 0;
  snprintf(cs->best, sizeof cs->best, "%s", key);
  cs->bestv = cs->best + (v - key);
  snprintf(s->found, sizeof s->found, "%s", value);
  cs->hit = 1;
  return 0;
}

/* Searches the cache. 1 if found (s->found), else 0 (no cache, a malformed
 * one, or no entry: the folders are searched next either way). */
static int in_cache(search_t *s) {
  int fd = open(LD_CACHE, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
      (uint64_t)st.st_size > ((uint64_t)1 << 30)) {
    close(fd);
    return 0;
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED)
    return 0;
  cache_search_t cs = {s, INT_MAX, "", NULL, 0};
  edgert__ldcache_each(map, size, cache_visit, &cs);
  munmap(map, size);
  if (cs.hit)
    s->kind = candidate(s->found);
  return cs.hit;
}

/* ---- the folders -------------------------------------------------------------- */

/* The folders ld.so searches for a name the main program dlopens
 * (LD_LIBRARY_PATH as it was at start-up, the main program's run path, the
 * system folders), ':'-joined, edgert__malloc'ed; NULL if out of memory. */
static char *default_folders(void) {
  void *self = dlopen(NULL, RTLD_LAZY);
  Dl_serinfo size, *info = NULL;
  char *out = NULL;
  int answered = 0; /* dlinfo gave the list (then only memory can fail) */
  if (self != NULL && dlinfo(self, RTLD_DI_SERINFOSIZE, &size) == 0) {
    answered = 1;
    if ((info = edgert__malloc(size.dls_size)) != NULL) {
      memcpy(info, &size, sizeof size);
      if (dlinfo(self, RTLD_DI_SERINFOSIZE, info) != 0 ||
          dlinfo(self, RTLD_DI_SERINFO, info) != 0) {
        answered = 0;
      } else {
        size_t len = 1;
        for (unsigned i = 0; i < info->dls_cnt; i++)
          len += strlen(info->dls_serpath[i].dls_name) + 1;
        if ((out = edgert__malloc(len)) != NULL) {
          out[0] = '\0';
          for (unsigned i = 0; i < info->dls_cnt; i++) {
            if (i)
              strcat(out, ":");
            strcat(out, info->dls_serpath[i].dls_name);
          }
        }
      }
    }
  }
  edgert__free(info);
  if (self != NULL)
    dlclose(self);
  dlerror();
  if (!answered) /* no dlinfo: glibc's own defaults */
    out = edgert__strdup("/lib64:/usr/lib64:/lib:/usr/lib");
  return out;
}

/* Searches the ':'-separated (or ';') folders of `list`. */
static int in_list(search_t *s, const char *list) {
  char dir[PATH_MAX];
  for (const char *p = list; p != NULL && *p;) {
    size_t n = strcspn(p, ":;");
    if (n > 0 && n < sizeof dir) {
      memcpy(dir, p, n);
      dir[n] = '\0';
      if (in_folder(s, dir))
        return 1;
    }
    p += n;
    if (*p)
      p++;
  }
  return 0;
}

/* A name has ".so" followed by its end or a '.': "libz.so.1", "x.so". */
static int has_so(const char *name) {
  for (const char *p = strstr(name, ".so"); p != NULL; p = strstr(p + 1, ".so"))
    if (p[3] == '\0' || p[3] == '.')
      return 1;
  return 0;
}

int edgert__resolve_load_path(const char *arg, char **out) {
  if (strchr(arg, '/') != NULL) {
    *out = edgert__strdup(arg);
    return *out != NULL ? 0 : edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", arg);
  }
  search_t *s = edgert__calloc(1, sizeof *s);
  char *folders = default_folders();
  if (s == NULL || folders == NULL) {
    edgert__free(s);
    edgert__free(folders);
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", arg);
  }
  s->name = arg;
  s->shortname = !has_so(arg);
  const char *llp = secure_getenv("LD_LIBRARY_PATH");
  int rc = 0;
  if (in_list(s, llp) || in_cache(s) || in_list(s, folders)) {
    if (s->kind == CAND_SCRIPT) {
      /* The loader's ELF check names what the script stands for. */
      unsigned char head[4096];
      int fd = open(s->found, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      ssize_t n = fd >= 0 ? read(fd, head, sizeof head) : -1;
      if (fd >= 0)
        close(fd);
      rc = edgert__linker_script_error(
          edgert__error(EDGERT_EFORMAT, "%s (found as %s) is not ELF, not a shared object",
                        arg, s->found),
          s->found, head, n > 0 ? (size_t)n : 0);
    } else if ((*out = edgert__strdup(s->found)) == NULL) {
      rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", arg);
    }
  } else {
    struct stat st;
    int here = stat(arg, &st) == 0;
    char wanted[480];
    if (s->shortname)
      snprintf(wanted, sizeof wanted, " (as lib%.200s.so.<N> or lib%.200s.so)", arg, arg);
    else
      wanted[0] = '\0';
    rc = edgert__error(EDGERT_EIO,
                       "no library named %s%s in LD_LIBRARY_PATH (%s), the dynamic linker's "
                       "cache (" LD_CACHE ") or the folders it searches (%s)%s",
                       arg, wanted, llp != NULL && llp[0] ? llp : "not set", folders,
                       here ? "; a name without '/' is searched for as the dynamic linker "
                              "does: write ./NAME for the file in the current folder"
                            : "");
    errno = ENOENT;
  }
  edgert__free(folders);
  edgert__free(s);
  if (rc == EDGERT_EIO)
    errno = ENOENT;
  return rc;
}

/* ---- linker scripts ------------------------------------------------------------ */

/* The first shared object a GROUP ( ... ) or INPUT ( ... ) command lists:
 * its path into `lib` (empty if none). 1 if `b` reads as a linker script. */
static int script_library(const unsigned char *b, size_t avail, char *lib, size_t n) {
  lib[0] = '\0';
  if (avail == 0 || memchr(b, '\0', avail) != NULL)
    return 0; /* not text */
  char text[4097];
  size_t len = avail < sizeof text - 1 ? avail : sizeof text - 1;
  memcpy(text, b, len);
  text[len] = '\0';
  char *cmd = NULL;
  for (char *p = text; (p = strpbrk(p, "GI")) != NULL; p++)
    if ((strncmp(p, "GROUP", 5) == 0 || strncmp(p, "INPUT", 5) == 0) &&
        (p == text || strchr(" \t\r\n;", p[-1]) != NULL)) {
      char *q = p + 5;
      q += strspn(q, " \t\r\n");
      if (*q == '(') {
        cmd = q + 1;
        break;
      }
    }
  if (cmd == NULL)
    return 0;
  char *save = NULL;
  for (char *tok = strtok_r(cmd, " \t\r\n,()", &save); tok != NULL;
       tok = strtok_r(NULL, " \t\r\n,()", &save))
    if (strcmp(tok, "AS_NEEDED") != 0 && has_so(tok)) {
      snprintf(lib, n, "%s", tok);
      break;
    }
  return 1;
}

int edgert__linker_script_error(int rc, const char *path, const unsigned char *b,
                                size_t avail) {
  char lib[PATH_MAX];
  if (!script_library(b, avail, lib, sizeof lib))
    return rc;
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (lib[0] == '\0')
    return edgert__error(EDGERT_EFORMAT,
                         "%s is a linker script (text for the static linker), not a shared "
                         "object: load the library it names instead",
                         path);
  const char *libbase = strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib;
  return edgert__error(EDGERT_EFORMAT,
                       "%s is a linker script, not a shared object (%s is text for the static "
                       "linker); load %s (%s)",
                       base, path, libbase, lib);
}

/* ---- the process's own libraries ------------------------------------------------ */

typedef struct {
  dev_t dev;
  ino_t ino;
  const unsigned char *head;
  size_t nhead;
  int found;
  ElfW(Addr) addr;
  char name[PATH_MAX];
} instance_t;

/* dl_iterate_phdr callback: the object whose file is (dev, ino). Its first
 * bytes in memory (the PT_LOAD at file offset 0 maps the ELF header and,
 * in practice, the program headers) must equal the file's before a stat
 * of its name is paid. */
static int find_instance(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  instance_t *s = arg;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
    return 0; /* the main program, or the vDSO */
  if (s->head != NULL) {
    const ElfW(Ehdr) *fh = (const ElfW(Ehdr) *)(const void *)s->head;
    size_t want = (size_t)fh->e_phoff + (size_t)fh->e_phnum * fh->e_phentsize;
    if (fh->e_phoff > s->nhead || want > s->nhead)
      want = sizeof(ElfW(Ehdr));
    const void *mem = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
      const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
      if (ph->p_type == PT_LOAD && ph->p_offset == 0 && (ph->p_flags & PF_R) &&
          ph->p_filesz >= want) {
        mem = (const void *)(info->dlpi_addr + ph->p_vaddr);
        break;
      }
    }
    if (mem == NULL || memcmp(mem, s->head, want) != 0)
      return 0;
  }
  struct stat st;
  if (stat(info->dlpi_name, &st) != 0 || st.st_dev != s->dev || st.st_ino != s->ino ||
      strlen(info->dlpi_name) >= sizeof s->name)
    return 0;
  memcpy(s->name, info->dlpi_name, strlen(info->dlpi_name) + 1);
  s->addr = info->dlpi_addr;
  s->found = 1;
  return 1;
}

int edgert__process_instance(dev_t dev, ino_t ino, const unsigned char *head, size_t nhead,
                             void **handle, void **linkmap) {
  instance_t *s = edgert__malloc(sizeof *s);
  if (s == NULL)
    return edgert__error(EDGERT_ENOMEM, "looking for the process's own instance: out of memory");
  s->dev = dev;
  s->ino = ino;
  s->head = head != NULL && nhead >= sizeof(ElfW(Ehdr)) ? head : NULL;
  s->nhead = nhead;
  s->found = 0;
  dl_iterate_phdr(find_instance, s);
  int found = 0;
  if (s->found) {
    /* Outside the walk: dlopen takes the dynamic linker's locks. */
    void *h = dlopen(s->name, RTLD_LAZY | RTLD_NOLOAD);
    struct link_map *lm = NULL;
    if (h != NULL && dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL &&
        lm->l_addr == s->addr) {
      *handle = h;
      *linkmap = lm;
      found = 1;
    } else if (h != NULL) {
      dlclose(h);
    }
    dlerror();
  }
  edgert__free(s);
  return found;
}

static int family_name(const char *base) {
  static const char *const fam[] = {"libc", "libm", "libmvec", "libpthread", "libdl",
                                    "librt", "libresolv", "libutil", "libanl"};
  if (strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld64.so.", 8) == 0 ||
      strncmp(base, "ld-2.", 5) == 0 || strncmp(base, "ld.so.", 6) == 0)
    return 1;
  for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
    size_t k = strlen(fam[i]);
    /* libc.so.6, and the older libc-2.31.so */
    if (strncmp(base, fam[i], k) == 0 &&
        (strncmp(base + k, ".so.", 4) == 0 || strncmp(base + k, "-2.", 3) == 0))
      return 1;
  }
  return 0;
}

int edgert__libc_family(const char *path) {
  const char *slash = strrchr(path, '/');
  if (family_name(slash ? slash + 1 : path))
    return 1;
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode))
    return 0; /* its own name is the file's name */
  char *real = realpath(path, NULL); /* libc's malloc: freed with free() */
  if (real == NULL)
    return 0;
  slash = strrchr(real, '/');
  int r = family_name(slash ? slash + 1 : real);
  free(real);
  return r;
}

int edgert__libc_family_open(dev_t dev, ino_t ino, const char *path, void **handle,
                             void **linkmap) {
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char who[PATH_MAX] = "";
  void *h = dlopen(base, RTLD_LAZY | RTLD_NOLOAD);
  if (h != NULL) {
    struct link_map *lm = NULL;
    snprintf(who, sizeof who, "%s",
             dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL && lm->l_name != NULL
                 ? lm->l_name
                 : "another file");
    dlclose(h);
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s: the process already has %s from %s, and a second copy "
                         "of a C library (libc's family) in one process breaks it (two "
                         "heaps, two sets of locks); load %s instead",
                         path, base, who, who);
  }
  dlerror();
  h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    return edgert__error(EDGERT_EFORMAT, "the dynamic linker refused %s: %s", path,
                         why ? why : "unknown reason");
  }
  void *h2 = NULL, *lm = NULL;
  int rc = edgert__process_instance(dev, ino, NULL, 0, &h2, &lm);
  if (rc == 1) {
    dlclose(h); /* h2 holds the same object */
    *handle = h2;
    *linkmap = lm;
    return 0;
  }
  dlclose(h);
  if (rc < 0)
    return rc;
  return edgert__error(EDGERT_EINTEGRITY,
                       "loading %s: dlopen returned an object that does not map the file "
                       "whose SHA-256 was checked (it was replaced meanwhile?); refused",
                       path);
}

/* ---- public ---------------------------------------------------------------------- */

int edgert_find_library(const char *name, char *out, size_t size) {
  EDGERT__RETURN_IF_NULL(name, EDGERT_EINVAL);
  EDGERT__RETURN_IF_NULL(out, EDGERT_EINVAL);
  if (name[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_find_library: the name is empty");
  char *p = NULL;
  int rc = edgert__resolve_load_path(name, &p);
  if (rc != 0)
    return rc;
  size_t n = strlen(p);
  if (n >= size) {
    rc = edgert__error(EDGERT_ELIMIT, "edgert_find_library: %s needs %zu bytes, the buffer has %zu",
                       p, n + 1, size);
  } else {
    memcpy(out, p, n + 1);
  }
  edgert__free(p);
  return rc;
}
