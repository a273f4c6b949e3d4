/*
 * loader.c: verified loading, the SHA-256 registry and symbol lookup.
 *
 * Invariants:
 * - A file is read exactly once, chunk by chunk into a private buffer; each
 *   chunk is hashed and written to a fresh memfd from that buffer, the memfd
 *   is sealed (no write, grow, shrink, further seals) before the digest is
 *   compared, and dlopen maps that memfd through /proc/self/fd/N. So the
 *   bytes hashed are the bytes mapped, and nothing done to the file
 *   afterwards changes them. No dlopen happens before the ELF checks and the
 *   digest comparison have passed: no code of a refused file runs.
 * - The memfd stays open as long as its mapping, so glibc never sees a
 *   different object under a /proc/self/fd/N name it remembers.
 * - The registry holds at most one image per SHA-256; handles of the same
 *   bytes share it; an image is dlclose'd when its last handle is released
 *   (see loader_internal.h for the handle's in-flight count). The registry
 *   lock is recursive because dlopen/dlclose run module constructors and
 *   destructors, which may come back into the loader.
 * - A symbol is handed out only if it is defined in the module's own object
 *   (its link map), never one reached through the module's dependencies.
 */
#include "loader_internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

#if defined(__x86_64__)
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
#error "edgert's loader does not know this machine's ELF e_machine"
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_DATA ELFDATA2LSB
#else
#define HOST_DATA ELFDATA2MSB
#endif

/* ---- registry ------------------------------------------------------------ */

static pthread_mutex_t registry_lock;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static edgert__image_t *registry;

static void registry_init(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&registry_lock, &a);
  pthread_mutexattr_destroy(&a);
}

static void registry_enter(void) {
  pthread_once(&registry_once, registry_init);
  pthread_mutex_lock(&registry_lock);
}

static void registry_leave(void) { pthread_mutex_unlock(&registry_lock); }

static int still_mapped(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  return info->dlpi_name != NULL && strcmp(info->dlpi_name, (const char *)arg) == 0;
}

static void image_release(edgert__image_t *img) {
  registry_enter();
  if (--img->refs == 0) {
    for (edgert__image_t **p = &registry; *p; p = &(*p)->next)
      if (*p == img) {
        *p = img->next;
        break;
      }
    dlclose(img->handle);
    /* dlclose may leave the object mapped (RTLD_NODELETE, or C++
     * STB_GNU_UNIQUE symbols make it so). glibc would then answer a later
     * dlopen of the same /proc/self/fd/N name with this object, whatever
     * that fd holds by then: keep the fd open (and its number taken) for as
     * long as the object stays. */
    char name[64];
    snprintf(name, sizeof name, "/proc/self/fd/%d", img->fd);
    if (!dl_iterate_phdr(still_mapped, name))
      close(img->fd);
    edgert__free(img);
  }
  registry_leave();
}

void edgert__module_last_out(edgert_module_t *m) {
  if (!atomic_exchange(&m->closed, 1))
    image_release(m->image);
}

/* ---- hex ----------------------------------------------------------------- */

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *d, char *out) {
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hexdig[d[i] >> 4];
    out[2 * i + 1] = hexdig[d[i] & 15];
  }
  out[64] = '\0';
}

/* Branch-free value of one hex digit, or a value with bit 8 set. */
static unsigned hexval(unsigned char c) {
  unsigned d = (unsigned)c - '0', l = ((unsigned)c | 0x20) - 'a';
  unsigned is_d = d < 10; /* comparisons compile to flag moves, no branches */
  unsigned is_l = l < 6;
  return (is_d * d) | (is_l * (l + 10)) | ((1 - (is_d | is_l)) << 8);
}

/* Parses 64 hex digits. 0, or EDGERT_EINVAL naming what is wrong. */
static int parse_hex(const char *hex, unsigned char out[32], const char *what) {
  size_t n = strnlen(hex, 65);
  if (n != 64)
    return edgert__error(EDGERT_EINVAL,
                         "%s must be 64 hex digits (a SHA-256), got %s%zu characters",
                         what, n > 64 ? "more than " : "", n > 64 ? (size_t)64 : n);
  unsigned bad = 0;
  for (int i = 0; i < 32; i++) {
    unsigned hi = hexval((unsigned char)hex[2 * i]);
    unsigned lo = hexval((unsigned char)hex[2 * i + 1]);
    bad |= (hi | lo) & 0x100;
    out[i] = (unsigned char)((hi << 4) | (lo & 15));
  }
  if (bad) {
    for (int i = 0; i < 64; i++)
      if (hexval((unsigned char)hex[i]) & 0x100)
        return edgert__error(EDGERT_EINVAL,
                             "%s must be 64 hex digits (a SHA-256): character "
                             "%d is not a hex digit",
                             what, i + 1);
  }
  return 0;
}

/* ---- reading the file into sealed memory ---------------------------------- */

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  return "not a regular file";
}

static const char *machine_name(unsigned m) {
  switch (m) {
  case EM_386:
    return "x86 (32-bit)";
  case EM_X86_64:
    return "x86-64";
  case EM_AARCH64:
    return "AArch64";
  case EM_ARM:
    return "ARM (32-bit)";
  case EM_RISCV:
    return "RISC-V";
  case EM_PPC64:
    return "PowerPC64";
  case EM_PPC:
    return "PowerPC";
  case EM_S390:
    return "s390";
  case EM_MIPS:
    return "MIPS";
  default:
    return "another machine";
  }
}

/* Checks the ELF header (and program header table bounds) of the bytes. */
/* Checks the ELF header of a file of `size` bytes whose first `avail`
 * bytes are at `b` (the program header table's bounds against `size`). */
static int check_elf(const unsigned char *b, size_t avail, size_t size, const char *path) {
  if (avail < 4 || memcmp(b, ELFMAG, SELFMAG) != 0)
    return edgert__error(EDGERT_EFORMAT, "%s is not an ELF file (no ELF magic)", path);
  if (avail < EI_NIDENT)
    return edgert__error(EDGERT_EFORMAT, "%s is a truncated ELF file", path);
  if (b[EI_CLASS] != ELFCLASS64)
    return edgert__error(EDGERT_EFORMAT,
                         "%s is a %s ELF file; this machine loads 64-bit shared objects",
                         path, b[EI_CLASS] == ELFCLASS32 ? "32-bit" : "malformed (bad class)");
  if (b[EI_DATA] != HOST_DATA)
    return edgert__error(EDGERT_EFORMAT,
                         "%s is an ELF file of the wrong byte order for this machine",
                         path);
  if (b[EI_VERSION] != EV_CURRENT)
    return edgert__error(EDGERT_EFORMAT, "%s has an unknown ELF version %u",
                         path, b[EI_VERSION]);
  if (avail < sizeof(Elf64_Ehdr))
    return edgert__error(EDGERT_EFORMAT, "%s is a truncated ELF file (%zu bytes)",
                         path, size);
  Elf64_Ehdr eh;
  memcpy(&eh, b, sizeof eh);
  if (eh.e_type != ET_DYN) {
    const char *t = eh.e_type == ET_EXEC  ? "an executable (ET_EXEC)"
                    : eh.e_type == ET_REL ? "a relocatable object (ET_REL)"
                    : eh.e_type == ET_CORE ? "a core dump (ET_CORE)"
                                          : "of an unknown ELF type";
    return edgert__error(EDGERT_EFORMAT, "%s is %s, not a shared object (ET_DYN)",
                         path, t);
  }
  if (eh.e_machine != HOST_MACHINE)
    return edgert__error(EDGERT_EFORMAT,
                         "%s is built for %s (e_machine %u); this machine is %s",
                         path, machine_name(eh.e_machine), (unsigned)eh.e_machine,
                         machine_name(HOST_MACHINE));
  if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
      eh.e_phoff > size ||
      (size - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
    return edgert__error(EDGERT_EFORMAT,
                         "%s has a malformed or truncated program header table",
                         path);
  return 0;
}

/* An executable, sealable fd for `size` bytes. *sealable = 0 for the
 * tmpfile fallback. -1 with a message (and code in *err) on failure. */
static int exec_fd(const char *path, unsigned flags, int *sealable, int *err) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  char name[200];
  snprintf(name, sizeof name, "edgert:%s", base);
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) /* a kernel before 6.3: no MFD_EXEC, memfds are executable */
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd >= 0) {
    *sealable = 1;
    return fd;
  }
  int e = errno;
  if ((e == EACCES || e == EPERM) && (flags & EDGERT_LOAD_ALLOW_TMPFILE)) {
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
      dir = "/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0700);
    if (fd >= 0) {
      *sealable = 0;
      return fd;
    }
    *err = edgert__error(EDGERT_EIO, "loading %s: no executable memfd and no "
                         "O_TMPFILE file in %s: %s", path, dir, strerror(errno));
    return -1;
  }
  if (e == EACCES || e == EPERM) {
    *err = edgert__error(EDGERT_EUNSUPPORTED,
                         "loading %s: this kernel forbids executable memfds "
                         "(vm.memfd_noexec=2); set EDGERT_LOAD_ALLOW_TMPFILE to "
                         "load through an unsealed tmpfile instead",
                         path);
    return -1;
  }
  *err = edgert__error(e == ENOMEM ? EDGERT_ENOMEM : EDGERT_EIO,
                       "loading %s: memfd_create failed: %s", path, strerror(e));
  return -1;
}

/* write(2) all of it. 0 or -1 with errno. */
static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Bytes per step of the read-hash-write pipeline: small enough that the
 * chunk is still in cache when it is hashed and written (hashing what was
 * just read runs at SHA-256's full speed; hashing 50 MB back from memory
 * afterwards ran at about half of it). */
#define CHUNK ((size_t)256 * 1024)
/* Chunks in flight when a copier thread overlaps reading and writing with
 * the hashing, and the file size from which it is worth a thread. */
#define SLOTS 4
#define THREADED_FROM ((size_t)4 << 20)

typedef struct {
  int src, dst;
  size_t size;
  const char *path;
  unsigned char *bufs; /* SLOTS * CHUNK */
  size_t lens[SLOTS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t nread;   /* chunks read (copier) */
  size_t nhashed; /* chunks hashed (hasher) */
  int stop;       /* the hasher gave up */
  int rc;         /* the copier's error, with its message in msg */
  char msg[512];
} copier_t;

/* Reads a full chunk (or the rest of the file). 0, or an EDGERT code with
 * the message in `msg`/this thread's error. */
static int read_chunk(int src, unsigned char *buf, size_t want, size_t done, size_t size,
                      const char *path) {
  size_t have = 0;
  while (have < want) {
    ssize_t n = read(src, buf + have, want - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      edgert__error(EDGERT_EIO, "reading %s failed: %s", path, strerror(e));
      errno = e;
      return EDGERT_EIO;
    }
    if (n == 0) {
      edgert__error(EDGERT_EIO, "%s shrank while it was being read (%zu of %zu bytes)", path,
                    done + have, size);
      errno = EIO;
      return EDGERT_EIO;
    }
    have += (size_t)n;
  }
  return 0;
}

static int write_failed(const char *path) {
  int e = errno;
  return edgert__error(e == ENOSPC || e == ENOMEM ? EDGERT_ENOMEM : EDGERT_EIO,
                       "loading %s: copying into memory failed: %s", path, strerror(e));
}

/* The copier thread: reads chunk i (from 1 on) into slot i % SLOTS once the
 * hasher is done with the chunk that used it, hands it over, writes it. */
static void *copier_main(void *arg) {
  copier_t *c = arg;
  size_t nchunks = (c->size + CHUNK - 1) / CHUNK;
  for (size_t i = 1; i < nchunks; i++) {
    pthread_mutex_lock(&c->mu);
    while (c->nhashed + SLOTS <= i && !c->stop)
      pthread_cond_wait(&c->cv, &c->mu);
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    if (stop)
      break;
    unsigned char *buf = c->bufs + (i % SLOTS) * CHUNK;
    size_t want = c->size - i * CHUNK < CHUNK ? c->size - i * CHUNK : CHUNK;
    int rc = read_chunk(c->src, buf, want, i * CHUNK, c->size, c->path);
    if (rc == 0) {
      c->lens[i % SLOTS] = want;
      pthread_mutex_lock(&c->mu);
      c->nread = i + 1;
      pthread_cond_broadcast(&c->cv);
      pthread_mutex_unlock(&c->mu);
      if (write_all(c->dst, buf, want) < 0)
        rc = write_failed(c->path);
    }
    if (rc != 0) {
      pthread_mutex_lock(&c->mu);
      c->rc = rc;
      snprintf(c->msg, sizeof c->msg, "%s", edgert_last_error());
      pthread_cond_broadcast(&c->cv);
      pthread_mutex_unlock(&c->mu);
      break;
    }
  }
  return NULL;
}

/* Hashes chunks 1.. as the copier reads them. 0 or the copier's error. */
static int hash_threaded(copier_t *c, EVP_MD_CTX *ctx) {
  size_t nchunks = (c->size + CHUNK - 1) / CHUNK;
  int rc = 0;
  for (size_t i = 1; i < nchunks; i++) {
    pthread_mutex_lock(&c->mu);
    while (c->nread <= i && c->rc == 0)
      pthread_cond_wait(&c->cv, &c->mu);
    rc = c->nread <= i ? c->rc : 0;
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
      break;
    EVP_DigestUpdate(ctx, c->bufs + (i % SLOTS) * CHUNK, c->lens[i % SLOTS]);
    pthread_mutex_lock(&c->mu);
    c->nhashed = i + 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return rc;
}

/*
 * Reads `path` once, chunk by chunk, into a private buffer; each chunk is
 * hashed and written to a fresh executable memfd from that same buffer, so
 * the digest covers exactly the bytes the memfd receives (for big files a
 * copier thread reads and writes while this thread hashes). The memfd is
 * then sealed against writing, growing and shrinking. The first chunk's ELF
 * header is checked before anything else is read. On success *fd_out,
 * *size_out and sha are set; no code of the file has run either way.
 */
static int read_verified(const char *path, size_t limit, unsigned flags,
                         int *fd_out, size_t *size_out, unsigned char sha[32]) {
  int src = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (src < 0) {
    int e = errno;
    edgert__error(EDGERT_EIO, "cannot open module %s: %s", path, strerror(e));
    errno = e;
    return EDGERT_EIO;
  }
  struct stat st;
  if (fstat(src, &st) < 0) {
    int e = errno;
    close(src);
    edgert__error(EDGERT_EIO, "cannot stat module %s: %s", path, strerror(e));
    errno = e;
    return EDGERT_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    close(src);
    edgert__error(EDGERT_EIO, "%s is %s, not a regular file", path, file_kind(st.st_mode));
    errno = S_ISDIR(st.st_mode) ? EISDIR : ENODEV;
    return EDGERT_EIO;
  }
  size_t size = (size_t)st.st_size;
  if (size == 0) {
    close(src);
    return edgert__error(EDGERT_EFORMAT, "%s is empty, not a shared object", path);
  }
  if (size > limit) {
    close(src);
    return edgert__error(EDGERT_ELIMIT,
                         "%s is %zu bytes, more than the module size limit of %zu bytes",
                         path, size, limit);
  }
  int threaded = size >= THREADED_FROM;
  unsigned char *buf = edgert__malloc(threaded ? SLOTS * CHUNK : (size < CHUNK ? size : CHUNK));
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    edgert__free(buf);
    EVP_MD_CTX_free(ctx);
    close(src);
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
  }
  int err = 0, sealable = 0, fd = -1, rc = 0;
  /* The first chunk, here: its header decides whether to go on. */
  size_t first = size < CHUNK ? size : CHUNK;
  if ((rc = read_chunk(src, buf, first, 0, size, path)) != 0)
    goto out;
  if ((rc = check_elf(buf, first, size, path)) != 0)
    goto out;
  if ((fd = exec_fd(path, flags, &sealable, &err)) < 0) {
    rc = err;
    goto out;
  }
  EVP_DigestUpdate(ctx, buf, first);
  if (write_all(fd, buf, first) < 0) {
    rc = write_failed(path);
    goto out;
  }
  copier_t c;
  pthread_t th;
  if (threaded) {
    memset(&c, 0, sizeof c);
    c.src = src;
    c.dst = fd;
    c.size = size;
    c.path = path;
    c.bufs = buf;
    c.nread = c.nhashed = 1;
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    if (pthread_create(&th, NULL, copier_main, &c) != 0) {
      pthread_mutex_destroy(&c.mu);
      pthread_cond_destroy(&c.cv);
      threaded = 0; /* no thread: do it all here */
    } else {
      rc = hash_threaded(&c, ctx);
      pthread_mutex_lock(&c.mu);
      c.stop = 1;
      pthread_cond_broadcast(&c.cv);
      pthread_mutex_unlock(&c.mu);
      pthread_join(th, NULL);
      if (rc == 0 && c.rc != 0)
        rc = c.rc;
      if (rc != 0) {
        edgert__error(rc, "%s", c.msg);
        errno = EIO; /* the copier's errno was its own thread's */
      }
      pthread_mutex_destroy(&c.mu);
      pthread_cond_destroy(&c.cv);
      if (rc != 0)
        goto out;
    }
  }
  if (!threaded) {
    for (size_t done = first; done < size;) {
      size_t want = size - done < CHUNK ? size - done : CHUNK;
      if ((rc = read_chunk(src, buf, want, done, size, path)) != 0)
        goto out;
      EVP_DigestUpdate(ctx, buf, want);
      if (write_all(fd, buf, want) < 0) {
        rc = write_failed(path);
        goto out;
      }
      done += want;
    }
  }
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, sha, &len) != 1 || len != 32) {
    rc = edgert__error(EDGERT_ENOMEM, "loading %s: OpenSSL's SHA-256 failed", path);
    goto out;
  }
  if (sealable &&
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    rc = edgert__error(EDGERT_EIO, "loading %s: sealing the in-memory copy failed: %s", path,
                       strerror(e));
  }
out:
  edgert__free(buf);
  EVP_MD_CTX_free(ctx);
  close(src);
  if (rc != 0) {
    if (fd >= 0)
      close(fd);
    return rc;
  }
  *fd_out = fd;
  *size_out = size;
  return 0;
}

/* ---- the mapping's executable ranges ----------------------------------------- */

typedef struct {
  const struct link_map *lm;
  edgert__image_t *img;
} exec_scan_t;

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  exec_scan_t *s = arg;
  if (info->dlpi_addr != s->lm->l_addr || info->dlpi_name == NULL || s->lm->l_name == NULL ||
      strcmp(info->dlpi_name, s->lm->l_name) != 0)
    return 0;
  for (int i = 0; i < info->dlpi_phnum && s->img->nexec < 8; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      s->img->exec_lo[s->img->nexec] = info->dlpi_addr + ph->p_vaddr;
      s->img->exec_hi[s->img->nexec] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
      s->img->nexec++;
    }
  }
  return 1;
}

static int in_exec(const edgert__image_t *img, const void *a) {
  uintptr_t p = (uintptr_t)a;
  for (int i = 0; i < img->nexec; i++)
    if (p >= img->exec_lo[i] && p < img->exec_hi[i])
      return 1;
  return 0;
}

/* ---- load / unload -------------------------------------------------------- */

int edgert_module_load_ex(const char *path, const char *expected_sha256_hex,
                          const edgert_load_options_t *opts, edgert_module_t **out) {
  if (path == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_load: path and out must not be NULL");
  if (path[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_module_load: the path is empty");
  size_t limit = EDGERT_MODULE_MAX_SIZE_DEFAULT;
  unsigned flags = 0;
  if (opts != NULL) {
    if (opts->max_size != 0)
      limit = opts->max_size;
    flags = opts->flags;
    if (flags & ~EDGERT_LOAD_ALLOW_TMPFILE)
      return edgert__error(EDGERT_EINVAL, "edgert_module_load: unknown flags 0x%x",
                           flags & ~EDGERT_LOAD_ALLOW_TMPFILE);
  }
  unsigned char expected[32];
  if (expected_sha256_hex != NULL) {
    int rc = parse_hex(expected_sha256_hex, expected, "the expected SHA-256");
    if (rc != 0)
      return rc;
  }
  edgert_module_t *m = edgert__calloc(1, sizeof *m);
  char *p = edgert__strdup(path);
  edgert__image_t *fresh = edgert__calloc(1, sizeof *fresh);
  if (m == NULL || p == NULL || fresh == NULL) {
    edgert__free(m);
    edgert__free(p);
    edgert__free(fresh);
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
  }
  int fd = -1;
  int rc = read_verified(path, limit, flags, &fd, &m->size, m->sha);
  if (rc == 0 && expected_sha256_hex != NULL && CRYPTO_memcmp(m->sha, expected, 32) != 0) {
    char got[65];
    to_hex(m->sha, got);
    rc = edgert__error(EDGERT_EINTEGRITY,
                       "%s failed its integrity check: SHA-256 is %s, expected %s; "
                       "none of its code ran",
                       path, got, expected_sha256_hex);
  }
  if (rc != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    edgert__free(m);
    edgert__free(p);
    edgert__free(fresh);
    errno = e;
    return rc;
  }
  to_hex(m->sha, m->sha_hex);

  registry_enter();
  edgert__image_t *img = registry;
  while (img != NULL && memcmp(img->sha, m->sha, 32) != 0)
    img = img->next;
  if (img != NULL) {
    img->refs++;
    atomic_store(&img->quarantined, 0);
    close(fd);
    edgert__free(fresh);
  } else {
    char name[64];
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    dlerror();
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
      const char *why = dlerror();
      rc = edgert__error(EDGERT_EFORMAT,
                         "the dynamic linker refused %s (verified, SHA-256 %s): %s%s",
                         path, m->sha_hex, why ? why : "unknown reason",
                         access("/proc/self/fd", F_OK) != 0 ? " (/proc is not mounted)" : "");
    } else {
      void *lm = NULL;
      if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) {
        dlclose(h);
        h = NULL;
        rc = edgert__error(EDGERT_EFORMAT, "loading %s: no link map for the loaded object", path);
      }
      fresh->linkmap = lm;
      if (h != NULL) {
        exec_scan_t scan = {lm, fresh};
        dl_iterate_phdr(scan_object, &scan);
      }
    }
    if (rc != 0) {
      registry_leave();
      close(fd);
      edgert__free(m);
      edgert__free(p);
      edgert__free(fresh);
      return rc;
    }
    img = fresh;
    memcpy(img->sha, m->sha, 32);
    img->fd = fd;
    img->handle = h;
    img->refs = 1;
    atomic_init(&img->quarantined, 0);
    img->next = registry;
    registry = img;
  }
  registry_leave();

  m->image = img;
  m->path = p;
  atomic_init(&m->state, 0);
  atomic_init(&m->active, 1);
  atomic_init(&m->closed, 0);
  pthread_mutex_init(&m->lock, NULL);
  *out = m;
  return 0;
}

int edgert_module_load(const char *path, const char *expected_sha256_hex,
                       edgert_module_t **out) {
  return edgert_module_load_ex(path, expected_sha256_hex, NULL, out);
}

void edgert_module_unload(edgert_module_t *m) {
  if (m == NULL)
    return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&m->state, &expected, 1))
    return;
  if (atomic_fetch_sub(&m->active, 1) == 1)
    edgert__module_last_out(m);
}

int edgert_module_unloaded(const edgert_module_t *m) {
  return m != NULL && atomic_load(&((edgert_module_t *)m)->state) != 0;
}

void edgert_module_free(edgert_module_t *m) {
  if (m == NULL)
    return;
  edgert_module_unload(m);
  edgert_func_t *f = m->funcs;
  while (f != NULL) {
    edgert_func_t *next = f->next;
    edgert__free(f);
    f = next;
  }
  pthread_mutex_destroy(&m->lock);
  edgert__free(m->path);
  edgert__free(m);
}

/* ---- accessors ------------------------------------------------------------ */

const char *edgert_module_path(const edgert_module_t *m) { return m ? m->path : NULL; }
const char *edgert_module_sha256(const edgert_module_t *m) { return m ? m->sha_hex : NULL; }
size_t edgert_module_size(const edgert_module_t *m) { return m ? m->size : 0; }

int edgert_module_verify(const edgert_module_t *m, const char *hex) {
  if (m == NULL || hex == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_verify: module and hash must not be NULL");
  unsigned char want[32];
  int rc = parse_hex(hex, want, "the SHA-256 to verify");
  if (rc != 0)
    return rc;
  return CRYPTO_memcmp(want, m->sha, 32) == 0;
}

int edgert_module_quarantined(const edgert_module_t *m) {
  if (m == NULL)
    return 0;
  edgert_module_t *mm = (edgert_module_t *)m;
  /* Hold the image while looking at it: an unload may be releasing it. */
  atomic_fetch_add(&mm->active, 1);
  int q = atomic_load(&mm->state) == 0 && atomic_load(&mm->image->quarantined);
  if (atomic_fetch_sub(&mm->active, 1) == 1)
    edgert__module_last_out(mm);
  return q;
}

/* ---- symbols -------------------------------------------------------------- */

/* Looks `name` up in the module's own object. want_func: STT_FUNC only. */
static int lookup(edgert_module_t *m, const char *name, int want_func, void **out) {
  if (m == NULL || name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "symbol lookup: NULL argument");
  if (name[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "symbol lookup: empty symbol name");
  atomic_fetch_add(&m->active, 1);
  int rc = 0;
  if (atomic_load(&m->state) != 0) {
    rc = edgert__error(EDGERT_EUNLOADED, "cannot look up '%s': module %s is unloaded",
                       name, m->path);
    goto done;
  }
  edgert__image_t *img = m->image;
  dlerror();
  void *a = dlsym(img->handle, name);
  if (a == NULL) {
    rc = edgert__error(EDGERT_ENOTFOUND, "symbol '%s' is not defined in module %s",
                       name, m->path);
    goto done;
  }
  Dl_info info;
  void *lm = NULL;
  if (!dladdr1(a, &info, &lm, RTLD_DL_LINKMAP) || lm != img->linkmap) {
    rc = edgert__error(EDGERT_ENOTFOUND,
                       "symbol '%s' is not defined in module %s (it resolves to %s, "
                       "a dependency or another object; only symbols the module "
                       "defines itself are available)",
                       name, m->path,
                       (lm != NULL && info.dli_fname && info.dli_fname[0]) ? info.dli_fname
                                                                         : "outside it");
    goto done;
  }
  /* The symbol's type: from its dynamic symbol entry when dladdr finds
   * it at exactly this address; an IFUNC (libm's cos) resolves to an
   * implementation with no dynamic entry, and then the address decides:
   * code lives in an executable segment of the module. */
  const ElfW(Sym) *sym = NULL;
  int exact = dladdr1(a, &info, (void **)&sym, RTLD_DL_SYMENT) && sym != NULL &&
              info.dli_saddr == a;
  unsigned type = exact ? ELF64_ST_TYPE(sym->st_info) : STT_NOTYPE;
  if (want_func && (type == STT_OBJECT || type == STT_TLS || type == STT_COMMON ||
                    !in_exec(img, a))) {
    rc = edgert__error(EDGERT_ENOTFOUND, "'%s' in module %s is %s, not a function", name,
                       m->path,
                       type == STT_OBJECT || !in_exec(img, a) ? "a data object"
                                                              : "not a function symbol");
    goto done;
  }
  if (!want_func && type == STT_TLS) {
    rc = edgert__error(EDGERT_ENOTFOUND, "'%s' in module %s is thread-local", name, m->path);
    goto done;
  }
  *out = a;
done:
  if (atomic_fetch_sub(&m->active, 1) == 1)
    edgert__module_last_out(m);
  return rc;
}

int edgert_module_address_of(edgert_module_t *m, const char *name, void **out) {
  return lookup(m, name, 0, out);
}

int edgert_module_bind(edgert_module_t *m, const edgert_contract_t *c, edgert_func_t **out) {
  if (m == NULL || c == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_bind: module and contract must not be NULL");
  if (c->nargs > EDGERT_MAX_ARGS || memchr(c->function_name, '\0', sizeof c->function_name) == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_bind: malformed contract");
  void *addr = NULL;
  int rc = lookup(m, c->function_name, 1, &addr);
  if (rc != 0)
    return rc;
  edgert_func_t *fn = edgert__calloc(1, sizeof *fn);
  if (fn == NULL)
    return edgert__error(EDGERT_ENOMEM, "binding '%s': out of memory", c->function_name);
  fn->module = m;
  fn->addr = addr;
  fn->contract = *c;
  fn->nargs = c->nargs;
  rc = edgert__func_prepare(fn);
  if (rc != 0) {
    edgert__free(fn);
    return rc;
  }
  pthread_mutex_lock(&m->lock);
  for (edgert_func_t *f = m->funcs; f != NULL; f = f->next)
    if (!f->replaced && strcmp(f->contract.function_name, c->function_name) == 0)
      f->replaced = 1;
  fn->next = m->funcs;
  m->funcs = fn;
  pthread_mutex_unlock(&m->lock);
  if (out != NULL)
    *out = fn;
  return 0;
}

edgert_func_t *edgert_module_function(edgert_module_t *m, const char *name) {
  if (m == NULL || name == NULL)
    return NULL;
  edgert_func_t *found = NULL;
  pthread_mutex_lock(&m->lock);
  for (edgert_func_t *f = m->funcs; f != NULL; f = f->next)
    if (!f->replaced && strcmp(f->contract.function_name, name) == 0) {
      found = f;
      break;
    }
  pthread_mutex_unlock(&m->lock);
  return found;
}

const char *edgert_func_name(const edgert_func_t *fn) {
  return fn ? fn->contract.function_name : NULL;
}
const edgert_contract_t *edgert_func_contract(const edgert_func_t *fn) {
  return fn ? &fn->contract : NULL;
}
edgert_module_t *edgert_func_module(const edgert_func_t *fn) { return fn ? fn->module : NULL; }
void *edgert_func_address(const edgert_func_t *fn) { return fn ? fn->addr : NULL; }
int edgert_func_is_fast(const edgert_func_t *fn) { return fn != NULL && fn->tramp != NULL; }
