/*
 * deps.c: a module's verified dependency closure.
 *
 * Invariants:
 * - Nothing here maps an object or runs code before every dependency of the
 *   closure has been resolved and, where it must be, verified: the plan
 *   (edgert__deps_plan) reads only the sealed copies' dynamic sections
 *   (edgert__dyn_names), file headers and the linker's cache; a refusal
 *   leaves the process as it was.
 * - Resolution follows ld.so (glibc's _dl_map_object): a DT_NEEDED name
 *   with a '/' is a path; else the process's loaded objects (by name or
 *   DT_SONAME: dlopen RTLD_NOLOAD), then, when the needing object has no
 *   DT_RUNPATH, the DT_RPATH of that object and of each object that needed
 *   it up the closure, then LD_LIBRARY_PATH (not in secure mode), the
 *   object's own DT_RUNPATH, /etc/ld.so.cache and the default folders
 *   (dlinfo RTLD_DI_SERINFO of the main program: its DT_RPATH/DT_RUNPATH
 *   folders come last here, not first). $ORIGIN/${ORIGIN} expand
 *   to the real folder of the object whose path list it is (never
 *   /proc/self/fd), $LIB to the C library's folder below / or /usr, and
 *   $PLATFORM to AT_PLATFORM. A file of another class or machine is skipped
 *   as ld.so skips it. In each folder, the subfolders ld.so tries before
 *   it (glibc-hwcaps/<level>, the legacy hwcap ones: src/ldpath.c) are
 *   tried first, and the cache's glibc-hwcaps variants win over its plain
 *   entries. Not modelled: the main program's own DT_RPATH before
 *   LD_LIBRARY_PATH
 *   (searched after the cache instead, and counted with the default
 *   folders).
 * - What is left to ld.so: a dependency the process already has, and an
 *   unlisted one in a trusted system folder: its folder is a folder of the
 *   linker's cache or default path, and the file and every component of
 *   its real path are owned by root and not writable by group or others.
 *   Neither is descended into (the system's own libraries are the system's
 *   business). Everything else must be listed by the caller: read into its
 *   own sealed memfd and hashed by the loader's own code
 *   (edgert__read_verified), compared in constant time, its DT_SONAME equal
 *   to the DT_NEEDED name that found it (ld.so matches a later DT_NEEDED
 *   against loaded objects by DT_SONAME: any other name would send it to
 *   the disk), and descended into. At most MAX_DEPTH levels and MAX_OBJECTS
 *   objects; a cycle among verified dependencies is refused (each is mapped
 *   alone, leaves first, so a cycle would send ld.so to the disk).
 * - Mapping (edgert__deps_map, load lock held) goes leaves first through
 *   the loader's own edgert__map_sealed (the object returned must be the
 *   sealed memfd), and then the DT_NEEDED name must answer with exactly
 *   that object, before the module's dlopen and again after it.
 * - Mapped dependencies are shared by SONAME and SHA-256 in `vdeps` (load
 *   lock) and counted per module image; the last release dlclose's them.
 */
#include "ldpath.h"
#include "loader_internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 32
#define MAX_OBJECTS 256
#define CACHE_MAX ((size_t)64 << 20)
#define SEARCHED_MAX 1536 /* bytes of the "folders searched" list in messages */

/* ---- mapped dependencies (load lock) ---------------------------------- */

typedef struct vdep_s {
  char *soname;
  unsigned char sha[32];
  edgert__image_t img; /* handle, linkmap, fd */
  size_t refs;
  struct vdep_s *next;
} vdep_t;

static vdep_t *vdeps; /* load lock */

static vdep_t *vdep_find(const char *soname) {
  for (vdep_t *v = vdeps; v != NULL; v = v->next)
    if (strcmp(v->soname, soname) == 0)
      return v;
  return NULL;
}

static int fd_still_mapped(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  return info->dlpi_name != NULL && strcmp(info->dlpi_name, (const char *)arg) == 0;
}

static void vdep_release(vdep_t *v) {
  if (--v->refs > 0)
    return;
  for (vdep_t **p = &vdeps; *p; p = &(*p)->next)
    if (*p == v) {
      *p = v->next;
      break;
    }
  dlclose(v->img.handle);
  /* As for a module (image_release): an object left mapped keeps its fd. */
  char name[64];
  snprintf(name, sizeof name, "/proc/self/fd/%d", v->img.fd);
  if (!dl_iterate_phdr(fd_still_mapped, name))
    close(v->img.fd);
  edgert__free(v->soname);
  edgert__free(v);
}

/* ---- a plan ------------------------------------------------------------- */

typedef struct {
  char *needed;         /* the DT_NEEDED name (its DT_SONAME) */
  char *file;           /* its real path; NULL for a check-only entry */
  int fd;               /* the sealed memfd until mapped, else -1 */
  unsigned char sha[32];
  char sha_hex[65];
  vdep_t *held;         /* after edgert__deps_map */
} pdep_t;

struct edgert__deps_s {
  pdep_t *v; /* in load order, leaves first */
  size_t n;
};

void edgert__deps_release(edgert__deps_t *d) {
  if (d == NULL)
    return;
  for (size_t i = d->n; i-- > 0;) {
    pdep_t *p = &d->v[i];
    if (p->held != NULL)
      vdep_release(p->held);
    if (p->fd >= 0)
      close(p->fd);
    edgert__free(p->needed);
    edgert__free(p->file);
  }
  edgert__free(d->v);
  edgert__free(d);
}

edgert__deps_t *edgert__deps_share(const edgert__deps_t *d, int *rc) {
  *rc = 0;
  if (d == NULL)
    return NULL;
  edgert__deps_t *c = edgert__calloc(1, sizeof *c);
  pdep_t *v = d->n ? edgert__calloc(d->n, sizeof *v) : NULL;
  if (c == NULL || (d->n && v == NULL)) {
    edgert__free(c);
    edgert__free(v);
    *rc = edgert__error(EDGERT_ENOMEM, "out of memory for the dependencies");
    return NULL;
  }
  c->v = v;
  for (size_t i = 0; i < d->n; i++) {
    v[i].fd = -1;
    memcpy(v[i].sha, d->v[i].sha, sizeof v[i].sha);
    memcpy(v[i].sha_hex, d->v[i].sha_hex, sizeof v[i].sha_hex);
    v[i].needed = d->v[i].needed ? edgert__strdup(d->v[i].needed) : NULL;
    v[i].file = d->v[i].file ? edgert__strdup(d->v[i].file) : NULL;
    v[i].held = d->v[i].held;
    if (v[i].held != NULL)
      v[i].held->refs++;
    c->n = i + 1;
    if ((d->v[i].needed && !v[i].needed) || (d->v[i].file && !v[i].file)) {
      edgert__deps_release(c);
      *rc = edgert__error(EDGERT_ENOMEM, "out of memory for the dependencies");
      return NULL;
    }
  }
  return c;
}

static int plan_add(edgert__deps_t **dp, const char *top, pdep_t *p) {
  edgert__deps_t *d = *dp;
  if (d == NULL && (d = *dp = edgert__calloc(1, sizeof *d)) == NULL)
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", top);
  pdep_t *grown = edgert__realloc(d->v, (d->n + 1) * sizeof *grown);
  if (grown == NULL)
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", top);
  d->v = grown;
  d->v[d->n++] = *p;
  return 0;
}

/* ---- resolution ---------------------------------------------------------- */

typedef struct {
  const char *name;
  unsigned char sha[32];
  char *real; /* realpath of a name with a '/', else NULL */
} listed_t;

/* One object of the closure, for the DT_RPATH walk up the needing chain. */
typedef struct chain_s {
  const char *rpath, *runpath, *origin;
  const struct chain_s *up;
} chain_t;

typedef struct {
  const char *top;
  listed_t *listed;
  size_t nlisted;
  size_t limit;
  unsigned flags;
  edgert__deps_t *plan;
  char **seen; /* real paths met (verified, trusted or in progress) */
  unsigned char *active;
  size_t nseen;
  char *cache; /* /etc/ld.so.cache, read when first needed */
  size_t cachelen;
  int cache_read;
  char **sysdirs; /* real default and cache folders */
  size_t nsys;
  int sys_read;
  char lib[128], platform[64];
  char lastdir[PATH_MAX];
  char searched[SEARCHED_MAX];
  int searched_cut;
  const char *via; /* the step of the search that found the last file */
  edgert_dependency_visit_fn visit; /* report mode (edgert_module_plan_dependencies) */
  void *ud;
  int fresh; /* for a worker process (an isolated load): what this process has
                loaded counts for nothing, every listed dependency is read */
} ctx_t;

static int oom(ctx_t *c) { return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", c->top); }

/* Appends `dir` to the list of folders searched (messages only). */
static void note_searched(ctx_t *c, const char *dir) {
  size_t len = strlen(c->searched);
  if (c->searched_cut)
    return;
  int n = snprintf(c->searched + len, sizeof c->searched - len, "%s%s", len ? ", " : "", dir);
  if (n < 0 || (size_t)n >= sizeof c->searched - len) {
    c->searched[len] = '\0';
    c->searched_cut = 1;
  }
}

/* $ORIGIN, $LIB, $PLATFORM (bare or in braces) in `s` expanded into `out`.
 * 0, or -1 when the result does not fit (skipped, as ld.so skips a path
 * it cannot expand). An unknown $NAME is kept as written. */
static int expand(const ctx_t *c, const char *s, size_t len, const char *origin, char *out,
                  size_t n) {
  static const char *const names[] = {"ORIGIN", "LIB", "PLATFORM"};
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    const char *val = NULL;
    size_t skip = 0;
    if (s[i] == '$') {
      for (int k = 0; k < 3 && val == NULL; k++) {
        size_t kl = strlen(names[k]);
        const char *v = k == 0 ? origin : k == 1 ? c->lib : c->platform;
        if (i + 1 + kl <= len && strncmp(s + i + 1, names[k], kl) == 0 &&
            (i + 1 + kl == len || !(s[i + 1 + kl] == '_' || (s[i + 1 + kl] >= 'A' &&
                                                                 s[i + 1 + kl] <= 'Z') ||
                                    (s[i + 1 + kl] >= 'a' && s[i + 1 + kl] <= 'z') ||
                                    (s[i + 1 + kl] >= '0' && s[i + 1 + kl] <= '9')))) {
          val = v;
          skip = 1 + kl;
        } else if (i + 3 + kl <= len && s[i + 1] == '{' &&
                   strncmp(s + i + 2, names[k], kl) == 0 && s[i + 2 + kl] == '}') {
          val = v;
          skip = 3 + kl;
        }
      }
    }
    if (val != NULL) {
      size_t vl = strlen(val);
      if (vl == 0 || o + vl >= n) /* $LIB or $PLATFORM unknown here: skip the path */
        return -1;
      memcpy(out + o, val, vl);
      o += vl;
      i += skip;
    } else {
      if (o + 1 >= n)
        return -1;
      out[o++] = s[i++];
    }
  }
  out[o] = '\0';
  return 0;
}

/* The file `path` if it is an ELF shared object ld.so would take for this
 * process (class, byte order, machine): its realpath in *real. 1 found,
 * 0 not (or another machine's), or an EDGERT code (out of memory). */
static int candidate(ctx_t *c, const char *path, char **real) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return 0;
  struct stat st;
  unsigned char hdr[sizeof(Elf64_Ehdr)];
  ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, hdr, sizeof hdr, 0) : -1;
  close(fd);
  if (got < (ssize_t)EI_NIDENT)
    return 0;
  /* Only the identity ld.so checks before it goes on searching; a wrong
   * type or a malformed table is reported when the file is loaded. */
  if (memcmp(hdr, ELFMAG, SELFMAG) != 0 || hdr[EI_CLASS] != ELFCLASS64)
    return 0;
  if (got >= (ssize_t)sizeof(Elf64_Ehdr)) {
    int save = errno;
    int ok = edgert__check_elf(hdr, (size_t)got, (size_t)st.st_size, path) == 0;
    edgert_clear_error();
    errno = save;
    if (!ok)
      return 0;
  }
  char *r = realpath(path, NULL);
  if (r == NULL)
    return errno == ENOMEM ? oom(c) : 0;
  *real = edgert__strdup(r);
  free(r);
  return *real == NULL ? oom(c) : 1;
}

/* Tries each folder of the ':'-separated list `list` (expanded against
 * `origin`, NULL for none), and in each the subfolders ld.so tries before
 * it (glibc-hwcaps, legacy hwcaps: edgert__ld_subdirs): 1 with *real, 0,
 * or an EDGERT code. */
static int try_list(ctx_t *c, const char *list, const char *origin, const char *needed,
                    char **real) {
  char dir[PATH_MAX], file[PATH_MAX];
  size_t nsub;
  const char *const *sub = edgert__ld_subdirs(&nsub);
  for (const char *p = list;;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    int ok;
    if (len == 0) /* an empty entry is the current folder */
      ok = expand(c, ".", 1, origin ? origin : ".", dir, sizeof dir);
    else
      ok = expand(c, p, len, origin ? origin : ".", dir, sizeof dir);
    if (ok == 0) {
      note_searched(c, dir);
      for (size_t i = 0; i < nsub; i++) {
        int w = snprintf(file, sizeof file, "%s%s%s/%s", dir, sub[i][0] ? "/" : "", sub[i],
                         needed);
        if (w < 0 || (size_t)w >= sizeof file)
          continue;
        int rc = candidate(c, file, real);
        if (rc != 0)
          return rc;
      }
    }
    if (end == NULL)
      return 0;
    p = end + 1;
  }
}

static int read_cache(ctx_t *c) {
  if (c->cache_read)
    return 0;
  c->cache_read = 1;
  char *buf = NULL;
  size_t len = 0;
  int e = 0;
  int rc = edgert__read_file("/etc/ld.so.cache", "the dynamic linker's cache", CACHE_MAX,
                             EDGERT_ELIMIT, &buf, &len, &e);
  if (rc == EDGERT_ENOMEM)
    return oom(c);
  if (rc != 0) { /* no (readable) cache: ld.so goes on without it too */
    edgert_clear_error();
    return 0;
  }
  c->cache = buf;
  c->cachelen = len;
  return 0;
}

/* The cache entry for `needed` ld.so takes: the glibc-hwcaps variant of
 * the best level this CPU supports, else the plain entry (the first that
 * is a file ld.so would take for this process). */
typedef struct {
  ctx_t *c;
  const char *needed;
  char *best;    /* the best variant's real path so far */
  int best_rank; /* its rank; INT_MAX: none */
  char *plain;   /* the plain entry's real path */
  int rc;        /* an EDGERT code from candidate() */
} cache_find_t;

static int cache_match(const char *key, const char *value, int rank, void *ud) {
  cache_find_t *f = ud;
  if (strcmp(key, f->needed) != 0)
    return 0;
  if (rank >= 0 ? rank >= f->best_rank : f->plain != NULL || f->best != NULL)
    return 0;
  char *real = NULL;
  int rc = candidate(f->c, value, &real);
  if (rc < 0) {
    f->rc = rc;
    return 1;
  }
  if (rc == 0)
    return 0;
  if (rank >= 0) {
    edgert__free(f->best);
    f->best = real;
    f->best_rank = rank;
  } else {
    f->plain = real;
  }
  return 0;
}

/* Looks `needed` up in the cache: 1 with *real, 0, or an EDGERT code. */
static int cache_find(ctx_t *c, const char *needed, char **real) {
  if (c->cache == NULL)
    return 0;
  cache_find_t f = {c, needed, NULL, INT_MAX, NULL, 0};
  edgert__ldcache_each(c->cache, c->cachelen, cache_match, &f);
  if (f.rc != 0) {
    edgert__free(f.best);
    edgert__free(f.plain);
    return f.rc;
  }
  if (f.best != NULL) {
    edgert__free(f.plain);
    *real = f.best;
    return 1;
  }
  *real = f.plain;
  return f.plain != NULL;
}

static int add_sysdir(ctx_t *c, const char *dir) {
  char *r = realpath(dir, NULL);
  if (r == NULL)
    return errno == ENOMEM ? oom(c) : 0;
  for (size_t i = 0; i < c->nsys; i++)
    if (strcmp(c->sysdirs[i], r) == 0) {
      free(r);
      return 0;
    }
  char **grown = edgert__realloc(c->sysdirs, (c->nsys + 1) * sizeof *grown);
  char *copy = grown ? edgert__strdup(r) : NULL;
  free(r);
  if (grown != NULL)
    c->sysdirs = grown;
  if (copy == NULL)
    return oom(c);
  c->sysdirs[c->nsys++] = copy;
  return 0;
}

typedef struct {
  ctx_t *c;
  int rc;
} cache_dirs_t;

static int cache_dir(const char *key, const char *value, int rank, void *ud) {
  (void)key;
  (void)rank;
  cache_dirs_t *d = ud;
  ctx_t *c = d->c;
  const char *slash = strrchr(value, '/');
  if (slash == NULL || slash == value)
    return 0;
  char dir[PATH_MAX];
  size_t n = (size_t)(slash - value);
  if (n >= sizeof dir)
    return 0;
  memcpy(dir, value, n);
  dir[n] = '\0';
  /* Most entries share a few folders: realpath each folder once. */
  if (strcmp(c->lastdir, dir) == 0)
    return 0;
  memcpy(c->lastdir, dir, n + 1);
  d->rc = add_sysdir(c, dir);
  return d->rc != 0;
}

/* Is `dir` one of LD_LIBRARY_PATH's entries? */
static int in_env_path(const char *dir) {
  const char *env = getauxval(AT_SECURE) ? NULL : getenv("LD_LIBRARY_PATH");
  if (env == NULL)
    return 0;
  size_t dl = strlen(dir);
  for (const char *p = env;;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == dl && strncmp(p, dir, len) == 0)
      return 1;
    if (end == NULL)
      return 0;
    p = end + 1;
  }
}

/* The default folders (the main program's search path without
 * LD_LIBRARY_PATH) in *dirs (a new ':'-list) and, once, the system
 * folders: those and the cache's. */
static int default_dirs(ctx_t *c, char **dirs) {
  *dirs = NULL;
  void *h = dlopen(NULL, RTLD_LAZY);
  Dl_serinfo size, *si = NULL;
  int rc = 0, sized = h != NULL && dlinfo(h, RTLD_DI_SERINFOSIZE, &size) == 0;
  if (sized && (si = edgert__malloc(size.dls_size)) != NULL) {
    memcpy(si, &size, sizeof size);
    if (dlinfo(h, RTLD_DI_SERINFO, si) == 0) {
      size_t total = 1;
      for (unsigned i = 0; i < si->dls_cnt; i++)
        total += strlen(si->dls_serpath[i].dls_name) + 1;
      *dirs = edgert__malloc(total);
      if (*dirs == NULL) {
        rc = oom(c);
      } else {
        (*dirs)[0] = '\0';
        for (unsigned i = 0; i < si->dls_cnt; i++) {
          const char *dn = si->dls_serpath[i].dls_name;
          if (dn[0] == '\0' || in_env_path(dn))
            continue;
          if ((*dirs)[0])
            strcat(*dirs, ":");
          strcat(*dirs, dn);
          if (!c->sys_read && (rc = add_sysdir(c, dn)) != 0)
            break;
        }
      }
    }
  } else if (sized) {
    rc = oom(c);
  }
  dlerror();
  edgert__free(si);
  if (h != NULL)
    dlclose(h);
  if (rc == 0 && *dirs == NULL && (*dirs = edgert__strdup("/lib:/usr/lib")) == NULL)
    rc = oom(c);
  if (rc == 0 && !c->sys_read) {
    if (c->nsys == 0 && (rc = add_sysdir(c, "/lib")) == 0)
      rc = add_sysdir(c, "/usr/lib");
    if (rc == 0 && (rc = read_cache(c)) == 0 && c->cache != NULL) {
      cache_dirs_t d = {c, 0};
      edgert__ldcache_each(c->cache, c->cachelen, cache_dir, &d);
      rc = d.rc;
    }
    c->sys_read = rc == 0;
  }
  if (rc != 0) {
    edgert__free(*dirs);
    *dirs = NULL;
  }
  return rc;
}

/* Resolves `needed` for the object `me` as ld.so would: 1 with its real
 * path in *real, 0 not found (c->searched lists where), or an EDGERT code. */
static int resolve(ctx_t *c, const chain_t *me, const char *needed, char **real) {
  c->searched[0] = '\0';
  c->searched_cut = 0;
  int rc;
  if (strchr(needed, '/') != NULL) {
    char file[PATH_MAX];
    if (expand(c, needed, strlen(needed), me->origin, file, sizeof file) != 0)
      return 0;
    note_searched(c, file);
    c->via = "path";
    return candidate(c, file, real);
  }
  c->via = "DT_RPATH";
  if (me->runpath == NULL)
    for (const chain_t *ch = me; ch != NULL; ch = ch->up)
      if (ch->rpath != NULL && (rc = try_list(c, ch->rpath, ch->origin, needed, real)) != 0)
        return rc;
  c->via = "LD_LIBRARY_PATH";
  const char *env = getauxval(AT_SECURE) ? NULL : getenv("LD_LIBRARY_PATH");
  if (env != NULL && env[0] != '\0' && (rc = try_list(c, env, NULL, needed, real)) != 0)
    return rc;
  c->via = "DT_RUNPATH";
  if (me->runpath != NULL && (rc = try_list(c, me->runpath, me->origin, needed, real)) != 0)
    return rc;
  if ((rc = read_cache(c)) != 0)
    return rc;
  c->via = "ld.so.cache";
  if ((rc = cache_find(c, needed, real)) != 0)
    return rc;
  note_searched(c, "the ld.so cache");
  char *dirs = NULL;
  if ((rc = default_dirs(c, &dirs)) != 0)
    return rc;
  c->via = "default folder";
  rc = try_list(c, dirs, NULL, needed, real);
  edgert__free(dirs);
  return rc;
}

/* 1 if `file` (a real path) is in a trusted system folder, else 0 with the
 * reason in `why`; or an EDGERT code. */
static int trusted(ctx_t *c, const char *file, char *why, size_t n) {
  char *dirs = NULL;
  int rc = default_dirs(c, &dirs); /* fills the system folders once */
  edgert__free(dirs);
  if (rc != 0)
    return rc;
  char dir[PATH_MAX];
  const char *slash = strrchr(file, '/');
  size_t dl = slash == NULL ? 0 : (size_t)(slash - file);
  if (dl == 0 || dl >= sizeof dir) {
    snprintf(why, n, "its folder is not a system library folder");
    return 0;
  }
  memcpy(dir, file, dl);
  dir[dl] = '\0';
  /* A system folder, or a subfolder of one that ld.so searches in it
   * (glibc-hwcaps/<level>, the legacy hwcap ones). */
  int sys = 0;
  for (size_t i = 0; i < c->nsys && !sys; i++) {
    size_t sl = strlen(c->sysdirs[i]);
    sys = strcmp(c->sysdirs[i], dir) == 0 ||
          (strncmp(c->sysdirs[i], dir, sl) == 0 && dir[sl] == '/' &&
           edgert__ld_is_subdir(dir + sl + 1, strlen(dir + sl + 1)));
  }
  if (!sys) {
    snprintf(why, n, "its folder is not a system folder of the dynamic linker");
    return 0;
  }
  /* The file and each folder above it: root's, and nobody else may write. */
  char part[PATH_MAX];
  snprintf(part, sizeof part, "%s", file);
  for (;;) {
    struct stat st;
    if (lstat(part[0] ? part : "/", &st) != 0) {
      snprintf(why, n, "%.300s cannot be checked: %s", part[0] ? part : "/", strerror(errno));
      return 0;
    }
    if (st.st_uid != 0) {
      snprintf(why, n, "%.300s is owned by uid %u, not root", part[0] ? part : "/",
               (unsigned)st.st_uid);
      return 0;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      snprintf(why, n, "%.300s is writable by %s", part[0] ? part : "/",
               (st.st_mode & S_IWOTH) ? "others" : "its group");
      return 0;
    }
    char *s = strrchr(part, '/');
    if (s == NULL || part[0] == '\0')
      break;
    *s = '\0';
  }
  return 1;
}

/* The listed dependency `needed` found at `file` answers to, or NULL. */
static const listed_t *find_listed(const ctx_t *c, const char *needed, const char *file) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  for (size_t i = 0; i < c->nlisted; i++) {
    const listed_t *l = &c->listed[i];
    if (l->real != NULL ? strcmp(l->real, file) == 0
                        : strcmp(l->name, needed) == 0 || strcmp(l->name, base) == 0)
      return l;
  }
  return NULL;
}

/* The index of `file` in c->seen, or -1. */
static long seen_at(const ctx_t *c, const char *file) {
  for (size_t i = 0; i < c->nseen; i++)
    if (strcmp(c->seen[i], file) == 0)
      return (long)i;
  return -1;
}

/* Records `file` (taken over) as seen. */
static int see(ctx_t *c, char *file, int active) {
  char **grown = edgert__realloc(c->seen, (c->nseen + 1) * sizeof *grown);
  unsigned char *ga = grown ? edgert__realloc(c->active, c->nseen + 1) : NULL;
  if (grown != NULL)
    c->seen = grown;
  if (ga != NULL)
    c->active = ga;
  if (grown == NULL || ga == NULL) {
    edgert__free(file);
    return oom(c);
  }
  c->seen[c->nseen] = file;
  c->active[c->nseen] = (unsigned char)active;
  c->nseen++;
  return 0;
}

static int walk(ctx_t *c, int fd, const char *shown, const char *origin, const chain_t *up,
                int depth);

/* Report mode: one object of the closure to the caller's visitor. */
static int report(ctx_t *c, const char *needed, const char *who, const char *path,
                  const char *via, edgert_dep_kind_t kind, const char *sha_hex,
                  const char *reason, int depth) {
  edgert_dependency_report_t r = {needed, who, path, via, kind, sha_hex, reason, depth};
  return c->visit(&r, c->ud);
}

/* One DT_NEEDED entry `needed` of the object `me` (`who` in messages). */
static int one(ctx_t *c, const chain_t *me, const char *who, const char *needed, int depth) {
  char taken[256];
  const listed_t *l0 = NULL;
  if (!c->fresh && strchr(needed, '/') == NULL &&
      edgert__name_taken(needed, taken, sizeof taken)) {
    /* The process has it: ld.so will use that one. If the caller listed
     * it, a verified copy we mapped earlier must have the listed bytes. */
    for (size_t i = 0; i < c->nlisted && l0 == NULL; i++)
      if (c->listed[i].real == NULL && strcmp(c->listed[i].name, needed) == 0)
        l0 = &c->listed[i];
    if (c->visit != NULL)
      return report(c, needed, who, taken, "process", EDGERT_DEP_IN_PROCESS, NULL, NULL, depth);
    if (l0 == NULL)
      return 0;
    pdep_t p = {NULL, NULL, -1, {0}, "", NULL};
    memcpy(p.sha, l0->sha, 32);
    edgert__sha256_hex(p.sha, p.sha_hex);
    if ((p.needed = edgert__strdup(needed)) == NULL)
      return oom(c);
    int rc = plan_add(&c->plan, c->top, &p);
    if (rc != 0)
      edgert__free(p.needed);
    return rc;
  }
  char *file = NULL;
  int rc = resolve(c, me, needed, &file);
  if (rc < 0)
    return rc;
  if (rc == 0 && c->visit != NULL) {
    char searched[SEARCHED_MAX + 8];
    snprintf(searched, sizeof searched, "%s%s", c->searched[0] ? c->searched : "nothing",
             c->searched_cut ? ", ..." : "");
    return report(c, needed, who, NULL, NULL, EDGERT_DEP_NOT_FOUND, NULL, searched, depth);
  }
  if (rc == 0) {
    edgert__error(EDGERT_EIO,
                  "loading %s: its dependency %s (DT_NEEDED of %s) was not found; searched: "
                  "%s%s; nothing was loaded",
                  c->top, needed, who, c->searched[0] ? c->searched : "nothing",
                  c->searched_cut ? ", ..." : "");
    errno = ENOENT;
    return EDGERT_EIO;
  }
  long at = seen_at(c, file);
  if (at >= 0) {
    int cyc = c->active[at];
    edgert__free(file);
    if (cyc && c->visit == NULL)
      return edgert__error(EDGERT_EINTEGRITY,
                           "loading %s: its dependencies form a cycle through %s (needed by "
                           "%s); verified dependencies are mapped one at a time, leaves "
                           "first, so a cycle cannot be loaded verified; refused, nothing was "
                           "loaded",
                           c->top, c->seen[at], who);
    return 0;
  }
  const listed_t *l = find_listed(c, needed, file);
  const char *found_via = c->via;
  char why[512] = "";
  if (l == NULL) {
    rc = trusted(c, file, why, sizeof why);
    if (rc < 0) {
      edgert__free(file);
      return rc;
    }
    if (rc == 1 && c->visit != NULL) {
      int vr = report(c, needed, who, file, found_via, EDGERT_DEP_TRUSTED, NULL, NULL, depth);
      if (vr != 0) {
        edgert__free(file);
        return vr;
      }
    }
    if (rc == 1)
      return see(c, file, 0);
  }
  if (l == NULL && c->visit == NULL) {
    /* Refused: say what it is and how to list it. */
    int dfd = -1;
    size_t size = 0;
    unsigned char sha[32];
    char hex[65], q[256];
    rc = edgert__read_verified(file, c->limit, c->flags, &dfd, &size, sha);
    if (dfd >= 0)
      close(dfd);
    char *dir = edgert__dir_of(file);
    if (rc == 0 && dir == NULL)
      rc = oom(c);
    if (rc == 0) {
      edgert__sha256_hex(sha, hex);
      edgert__quote_path(file, q, sizeof q);
      /* The hashes and snippets come first after the names: a manifest
       * prefixes the message, and it must survive the message limit. */
      char via[300] = "";
      if (strcmp(who, c->top) != 0)
        snprintf(via, sizeof via, " (needed by %.250s)", who);
      rc = edgert__error(
          EDGERT_EINTEGRITY,
          "loading %s: dependency %s%s, file %s (in folder %s, SHA-256 %s), is not "
          "verified: it is not listed, and %s. Refused before any code ran. List it: "
          "dependencies={\"%s\": \"%s\"} (Python load), {\"path\": \"<path to %s>\", "
          "\"sha256\": \"%s\"} in the manifest module entry's \"dependencies\", or "
          "edgert_load_options_t.dependencies (C)",
          c->top, needed, via, q, dir, hex, why, needed, hex, needed, hex);
    }
    edgert__free(dir);
    edgert__free(file);
    return rc;
  }
  /* Listed (or reported): read, seal, hash exactly as a module, compare. */
  pdep_t p = {NULL, file, -1, {0}, "", NULL};
  edgert_dep_kind_t kind = l == NULL ? EDGERT_DEP_UNLISTED : EDGERT_DEP_LISTED;
  char want[65] = "";
  size_t size = 0;
  edgert__dyn_names_t dn;
  memset(&dn, 0, sizeof dn);
  char *origin = NULL;
  rc = edgert__read_verified(file, c->limit, c->flags, &p.fd, &size, p.sha);
  if (rc == 0) {
    edgert__sha256_hex(p.sha, p.sha_hex);
    if (l != NULL && CRYPTO_memcmp(p.sha, l->sha, 32) != 0) {
      edgert__sha256_hex(l->sha, want);
      kind = EDGERT_DEP_MISMATCH;
    }
    if (kind == EDGERT_DEP_MISMATCH && c->visit == NULL) {
      rc = edgert__error(EDGERT_EINTEGRITY,
                         "loading %s: its dependency %s (%s) failed its integrity check: "
                         "SHA-256 is %s, expected %s (listed as \"%s\"); refused before any "
                         "code ran",
                         c->top, needed, file, p.sha_hex, want, l->name);
    }
  }
  if (rc == 0)
    rc = edgert__dyn_names(p.fd, file, &dn);
  int bad_soname = rc == 0 && (dn.soname == NULL || strcmp(dn.soname, needed) != 0);
  if (bad_soname && kind == EDGERT_DEP_LISTED)
    kind = EDGERT_DEP_BAD_SONAME;
  if (rc == 0 && c->visit != NULL)
    rc = report(c, needed, who, file, found_via, kind, p.sha_hex,
                kind == EDGERT_DEP_UNLISTED   ? why
                : kind == EDGERT_DEP_MISMATCH ? want
                : kind == EDGERT_DEP_BAD_SONAME ? (dn.soname ? dn.soname : "")
                                               : NULL,
                depth);
  if (rc == 0 && c->visit == NULL && bad_soname)
    rc = edgert__error(EDGERT_EFORMAT,
                       "loading %s: its dependency %s (%s, verified) has %s%s%s, not %s: the "
                       "dynamic linker finds an already-loaded library for a DT_NEEDED name "
                       "only by its DT_SONAME, so it cannot use the verified copy and would "
                       "read the file again unverified; refused before any code ran (link "
                       "the dependency with -Wl,-soname,%s)",
                       c->top, needed, file, dn.soname ? "DT_SONAME \"" : "no DT_SONAME",
                       dn.soname ? dn.soname : "", dn.soname ? "\"" : "", needed,
                       strchr(needed, '/') ? "<its file name>, and link against it by name"
                                            : needed);
  if (rc == 0 && depth >= MAX_DEPTH)
    rc = edgert__error(EDGERT_ELIMIT,
                       "loading %s: its dependencies nest deeper than %d levels (at %s)",
                       c->top, MAX_DEPTH, file);
  if (rc == 0 && c->nseen >= MAX_OBJECTS)
    rc = edgert__error(EDGERT_ELIMIT, "loading %s: its dependency closure has more than %d "
                       "objects", c->top, MAX_OBJECTS);
  if (rc == 0 && (origin = edgert__dir_of(file)) == NULL)
    rc = oom(c);
  char *seen_copy = NULL;
  if (rc == 0 && (seen_copy = edgert__strdup(file)) == NULL)
    rc = oom(c);
  if (rc == 0 && (rc = see(c, seen_copy, 1)) == 0) {
    size_t mine = c->nseen - 1;
    rc = walk(c, p.fd, file, origin, me, depth + 1);
    c->active[mine] = 0;
  }
  if (rc == 0 && (p.needed = edgert__strdup(needed)) == NULL)
    rc = oom(c);
  if (rc == 0 && c->visit == NULL)
    rc = plan_add(&c->plan, c->top, &p);
  edgert__dyn_names_free(&dn);
  edgert__free(origin);
  if (rc != 0 || c->visit != NULL) {
    if (p.fd >= 0)
      close(p.fd);
    edgert__free(p.needed);
    edgert__free(p.file);
  }
  return rc;
}

/* The DT_NEEDED entries of the object whose sealed copy is `fd`, needed
 * by the chain `up` (NULL for the module itself). */
static int walk(ctx_t *c, int fd, const char *shown, const char *origin, const chain_t *up,
                int depth) {
  edgert__dyn_names_t d;
  int rc = edgert__dyn_names(fd, shown, &d);
  if (rc != 0)
    return rc;
  chain_t me = {d.rpath, d.runpath, origin, up};
  for (size_t i = 0; i < d.nneeded && rc == 0; i++)
    rc = one(c, &me, shown, d.needed[i], depth);
  edgert__dyn_names_free(&d);
  return rc;
}

/* $LIB: the C library's folder below / or /usr ("lib/x86_64-linux-gnu"). */
static int find_libc(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  const char *n = info->dlpi_name;
  const char *b = n ? strrchr(n, '/') : NULL;
  if (b == NULL || strncmp(b + 1, "libc.so", 7) != 0)
    return 0;
  const char *rel = strncmp(n, "/usr/", 5) == 0 ? n + 5 : n + 1;
  snprintf(arg, 128, "%.*s", (int)(b - rel), rel);
  return 1;
}

static int plan(const char *path, int fd, const edgert_load_options_t *opts, size_t limit,
                unsigned flags, edgert_dependency_visit_fn visit, void *ud,
                edgert__deps_t **out) {
  *out = NULL;
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.visit = visit;
  c.ud = ud;
  c.top = path;
  c.limit = limit;
  c.flags = flags;
  c.fresh = opts != NULL && opts->isolation != NULL; /* a load or its report */
  int rc = 0;
  size_t nl = opts != NULL ? opts->ndependencies : 0;
  if (nl > 0 && opts->dependencies == NULL)
    return edgert__error(EDGERT_EINVAL, "loading %s: %zu dependencies given but the list "
                         "is NULL", path, nl);
  if (nl > MAX_OBJECTS * 4)
    return edgert__error(EDGERT_EINVAL, "loading %s: %zu dependencies listed, more than "
                         "the limit of %d", path, nl, MAX_OBJECTS * 4);
  if (nl > 0 && (c.listed = edgert__calloc(nl, sizeof *c.listed)) == NULL)
    return oom(&c);
  for (size_t i = 0; i < nl && rc == 0; i++) {
    const edgert_dependency_t *dp = &opts->dependencies[i];
    char what[96];
    snprintf(what, sizeof what, "the SHA-256 of dependency %zu", i);
    if (dp->name == NULL || dp->name[0] == '\0' || dp->sha256_hex == NULL) {
      rc = edgert__error(EDGERT_EINVAL, "loading %s: dependency %zu has %s", path, i,
                         dp->sha256_hex == NULL ? "no SHA-256" : "no name");
      break;
    }
    c.listed[i].name = dp->name;
    if ((rc = edgert__parse_sha256(dp->sha256_hex, c.listed[i].sha, what)) != 0)
      break;
    if (strchr(dp->name, '/') != NULL) {
      char *r = realpath(dp->name, NULL);
      if (r == NULL && errno == ENOMEM) {
        rc = oom(&c);
        break;
      }
      /* A path that does not exist matches nothing (it cannot be found). */
      c.listed[i].real = edgert__strdup(r ? r : dp->name);
      free(r);
      if (c.listed[i].real == NULL)
        rc = oom(&c);
    }
    c.nlisted = i + 1;
  }
  unsigned long plat = getauxval(AT_PLATFORM);
  if (plat != 0)
    snprintf(c.platform, sizeof c.platform, "%s", (const char *)plat);
  dl_iterate_phdr(find_libc, c.lib);
  char *real = NULL, *origin = NULL;
  if (rc == 0) {
    char *r = realpath(path, NULL);
    if (r == NULL && errno == ENOMEM)
      rc = oom(&c);
    real = edgert__strdup(r ? r : path);
    free(r);
    if (rc == 0 && (real == NULL || (origin = edgert__dir_of(real)) == NULL))
      rc = oom(&c);
  }
  if (rc == 0) {
    rc = see(&c, real, 1); /* takes `real` over, even when it fails */
    real = NULL;
    if (rc == 0)
      rc = walk(&c, fd, path, origin, NULL, 0);
  }
  edgert__free(real);
  edgert__free(origin);
  for (size_t i = 0; i < c.nlisted; i++)
    edgert__free(c.listed[i].real);
  edgert__free(c.listed);
  for (size_t i = 0; i < c.nseen; i++)
    edgert__free(c.seen[i]);
  edgert__free(c.seen);
  edgert__free(c.active);
  for (size_t i = 0; i < c.nsys; i++)
    edgert__free(c.sysdirs[i]);
  edgert__free(c.sysdirs);
  edgert__free(c.cache);
  if (rc != 0) {
    edgert__deps_release(c.plan);
    return rc;
  }
  *out = c.plan;
  return 0;
}

int edgert__deps_plan(const char *path, int fd, const edgert_load_options_t *opts,
                      size_t limit, unsigned flags, edgert__deps_t **out) {
  return plan(path, fd, opts, limit, flags, NULL, NULL, out);
}

int edgert__deps_report(const char *path, int fd, const edgert_load_options_t *opts,
                        size_t limit, unsigned flags, edgert_dependency_visit_fn visit,
                        void *ud) {
  edgert__deps_t *d = NULL;
  int rc = plan(path, fd, opts, limit, flags, visit, ud, &d);
  edgert__deps_release(d); /* nothing is planned in report mode */
  return rc;
}

/* ---- mapping ------------------------------------------------------------- */

/* 1 if dlopen(name, RTLD_NOLOAD) answers with the object `lm`. */
static int answers_with(const char *name, void *lm, char *who, size_t n) {
  dlerror();
  void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
  if (h == NULL) {
    dlerror();
    snprintf(who, n, "nothing");
    return 0;
  }
  struct link_map *got = NULL;
  int same = dlinfo(h, RTLD_DI_LINKMAP, &got) == 0 && (void *)got == lm;
  snprintf(who, n, "%s", got != NULL && got->l_name && got->l_name[0] ? got->l_name
                                                                       : "another object");
  dlclose(h);
  return same;
}

int edgert__deps_map(edgert__deps_t *d, int deep) {
  if (d == NULL)
    return 0;
  char who[256];
  int rc = 0;
  for (size_t i = 0; i < d->n && rc == 0; i++) {
    pdep_t *p = &d->v[i];
    vdep_t *v = vdep_find(p->needed);
    if (v != NULL) { /* an earlier load mapped a verified one under this name */
      if (CRYPTO_memcmp(v->sha, p->sha, 32) != 0) {
        char have[65];
        edgert__sha256_hex(v->sha, have);
        rc = edgert__error(EDGERT_EINTEGRITY,
                           "dependency %s: the process already has a verified %s with "
                           "SHA-256 %s (loaded for another module), and the dynamic linker "
                           "would use it; this load lists SHA-256 %s; refused",
                           p->needed, p->needed, have, p->sha_hex);
        break;
      }
      v->refs++;
      p->held = v;
      continue;
    }
    if (p->file == NULL) /* listed, the process has it, not one of ours */
      continue;
    if (edgert__name_taken(p->needed, who, sizeof who)) {
      rc = edgert__error(EDGERT_EINTEGRITY,
                         "dependency %s (%s, verified): the process now has another object "
                         "answering to %s (%s), which the dynamic linker would use instead; "
                         "refused",
                         p->needed, p->file, p->needed, who);
      break;
    }
    v = edgert__calloc(1, sizeof *v);
    char *so = v ? edgert__strdup(p->needed) : NULL;
    if (so == NULL) {
      edgert__free(v);
      rc = edgert__error(EDGERT_ENOMEM, "loading dependency %s: out of memory", p->file);
      break;
    }
    rc = edgert__map_sealed(&v->img, p->fd, p->file, p->sha_hex, deep);
    if (rc == 0 && !answers_with(p->needed, v->img.linkmap, who, sizeof who)) {
      dlclose(v->img.handle);
      rc = edgert__error(EDGERT_EINTEGRITY,
                         "dependency %s (%s, verified): after mapping it, the name %s "
                         "answers with %s instead; refused",
                         p->needed, p->file, p->needed, who);
    }
    if (rc != 0) {
      edgert__free(so);
      edgert__free(v);
      break;
    }
    v->soname = so;
    memcpy(v->sha, p->sha, 32);
    v->img.fd = p->fd;
    p->fd = -1;
    v->refs = 1;
    v->next = vdeps;
    vdeps = v;
    p->held = v;
  }
  if (rc != 0)
    for (size_t i = d->n; i-- > 0;)
      if (d->v[i].held != NULL) {
        vdep_release(d->v[i].held);
        d->v[i].held = NULL;
      }
  return rc;
}

int edgert__deps_check(edgert__deps_t *d) {
  if (d == NULL)
    return 0;
  char who[256];
  for (size_t i = 0; i < d->n; i++) {
    pdep_t *p = &d->v[i];
    if (p->held != NULL && !answers_with(p->needed, p->held->img.linkmap, who, sizeof who))
      return edgert__error(EDGERT_EINTEGRITY,
                           "dependency %s (%s, verified): after the module was mapped, the "
                           "name %s answers with %s, not the verified copy; refused",
                           p->needed, p->file ? p->file : "mapped earlier", p->needed, who);
  }
  return 0;
}

/* ---- what a module's handle reports -------------------------------------- */

size_t edgert__deps_listed(const edgert__deps_t *d, size_t i, const char **name,
                           const char **path, const char **sha256_hex, int *fd) {
  size_t k = 0;
  if (d != NULL)
    for (size_t j = 0; j < d->n; j++) {
      const pdep_t *p = &d->v[j];
      /* Mapped here (held), or kept for an isolated module's workers (fd). */
      if (p->file == NULL || (p->held == NULL && p->fd < 0))
        continue; /* found in the process or a trusted folder: not verified here */
      if (k++ == i && name != NULL) {
        *name = p->needed;
        *path = p->file;
        *sha256_hex = p->sha_hex;
        if (fd != NULL)
          *fd = p->fd;
      }
    }
  return k;
}
