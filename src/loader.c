/*
 * loader.c: verified loading, the SHA-256 registry and symbol lookup.
 *
 * Invariants:
 * - A file is copied exactly once into a fresh memfd, the memfd is sealed
 *   (no write, grow, shrink, further seals), and the digest is that of the
 *   sealed contents, the very object dlopen maps through /proc/self/fd/N:
 *   hashed after the seal through a read-only mapping (small files), or
 *   hashed while copied and then proven equal to the sealed contents by
 *   per-chunk Poly1305 tags recomputed from them (large files, copier_t).
 *   So a writer that opened the memfd before the seal (another process of
 *   the same user can, through /proc/<pid>/fd/N) changes the digest or gets
 *   the load refused, never only what runs; after the seal nobody can write
 *   it. No dlopen happens before the ELF checks and the digest comparison
 *   have passed: no code of a refused file runs.
 * - Before dlopen, the name /proc/self/fd/N must not already answer for a
 *   loaded object (glibc matches a dlopen name against every loaded
 *   object's name and DT_SONAME); after it, the object returned must map
 *   the sealed memfd (its device and inode in /proc/self/maps) and no other
 *   file. Anything else is EDGERT_EINTEGRITY naming the object returned.
 * - The memfd stays open as long as its mapping, so glibc never sees a
 *   different object under a /proc/self/fd/N name it remembers.
 * - The registry holds at most one image per (SHA-256, symbol binding mode);
 *   handles of the same bytes and mode share it; an image is dlclose'd when
 *   its last handle is released (see loader_internal.h for the handle's
 *   in-flight count).
 * - Two locks. `load_lock` (recursive) serialises this file's dlopen and
 *   dlclose calls, so two loads of the same bytes map them once; it is held
 *   across module constructors and destructors, which may come back into
 *   the loader. `registry_lock` (plain) guards the image list, the image
 *   reference counts and the list of live handles, and is never held while
 *   foreign code runs. fork(): see edgert__loader_fork_prepare.
 * - A symbol is handed out only if it is defined in the module's own object
 *   (its link map), never one reached through the module's dependencies.
 */
#include "loader_internal.h"
#include "resolve.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
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

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static edgert__image_t *registry;  /* registry_lock */
static edgert_module_t *handles;   /* every handle not yet freed; registry_lock */
static pthread_mutex_t load_lock;  /* recursive; see the invariants */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

int edgert__not_a_function(const char *name, const char *path, int data) {
  return edgert__error(EDGERT_ENOTFOUND,
                       "'%s' in module %s is %s, not a function: bind the name of a function "
                       "(STT_FUNC); for a data object use edgert_module_address_of",
                       name, path,
                       data ? "a data object" : "a symbol of another type (thread-local, "
                                                "common or untyped)");
}

/* Adds m to `handles` (registry lock held). */
static void handles_push(edgert_module_t *m) {
  m->hnext = handles;
  m->hprev = NULL;
  if (handles != NULL)
    handles->hprev = m;
  handles = m;
}

static void make_load_lock(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&load_lock, &a);
  pthread_mutexattr_destroy(&a);
}

static void load_lock_init(void) {
  make_load_lock();
  edgert__fork_init();
}

static void load_enter(void) {
  pthread_once(&load_once, load_lock_init);
  pthread_mutex_lock(&load_lock);
}

static void load_leave(void) { pthread_mutex_unlock(&load_lock); }

static void registry_enter(void) { pthread_mutex_lock(&registry_lock); }
static void registry_leave(void) { pthread_mutex_unlock(&registry_lock); }

/* How long a fork waits for a load or unload in progress on another thread
 * (see edgert__loader_fork_prepare). */
#define FORK_WAIT_NS 1000000000L

static int fork_took_load_lock; /* prepare got load_lock (forking thread only) */

/*
 * fork.c's handlers. prepare waits, for at most FORK_WAIT_NS, for a dlopen
 * or dlclose of ours in progress on another thread: glibc resets its loader
 * lock in the child, but not the state a dlopen or dlclose leaves while it
 * maps, relocates or unmaps, and the child's next dlopen would then stop
 * on an assertion of ld.so. The wait is bounded because the thread holding
 * load_lock may be running a constructor that waits for this very fork (a
 * constructor calling pthread_atfork waits for glibc's fork-handler lock,
 * held now); constructors and destructors run while glibc's state is
 * consistent, so after the wait the fork goes on and the child, with the
 * lock reset, works. Then the registry lock and every handle's lock, which
 * are never held while foreign code runs; released in the parent and in
 * the child.
 */
void edgert__loader_fork_prepare(void) {
  pthread_once(&load_once, load_lock_init);
  /* A try-lock loop on the monotonic clock (a timed lock would follow the
   * wall clock, and ThreadSanitizer does not see pthread_mutex_clocklock). */
  struct timespec now, until, pause = {0, 200000};
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += FORK_WAIT_NS / 1000000000L;
  int r;
  while ((r = pthread_mutex_trylock(&load_lock)) == EBUSY) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > until.tv_sec || (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
      break;
    nanosleep(&pause, NULL);
  }
  fork_took_load_lock = r == 0;
  registry_enter();
  for (edgert_module_t *m = handles; m != NULL; m = m->hnext)
    pthread_mutex_lock(&m->lock);
}

void edgert__loader_fork_parent(void) {
  for (edgert_module_t *m = handles; m != NULL; m = m->hnext)
    pthread_mutex_unlock(&m->lock);
  registry_leave();
  if (fork_took_load_lock)
    load_leave();
}

void edgert__loader_fork_child(void) {
  /* Plain mutexes this thread took in prepare: it owns them here too. */
  for (edgert_module_t *m = handles; m != NULL; m = m->hnext)
    pthread_mutex_unlock(&m->lock);
  registry_leave();
  /* load_lock is recursive, and glibc refuses its unlock here: the
   * thread's id changed in the child (the unlock still tells the
   * sanitizers it was released). If another thread held it, that thread
   * is not in the child. Either way: a fresh lock. A fork from inside a
   * constructor (this thread held it before prepare) then sees its own
   * unlock after the constructor fail, harmlessly. */
  if (fork_took_load_lock)
    (void)pthread_mutex_unlock(&load_lock);
  make_load_lock();
}

static int still_mapped(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  return info->dlpi_name != NULL && strcmp(info->dlpi_name, (const char *)arg) == 0;
}

static void image_release(edgert__image_t *img) {
  registry_enter();
  int last = --img->refs == 0;
  if (last)
    for (edgert__image_t **p = &registry; *p; p = &(*p)->next)
      if (*p == img) {
        *p = img->next;
        break;
      }
  registry_leave();
  if (!last)
    return;
  if (img->iso != NULL) { /* isolated: never mapped here; its workers end now */
    edgert__iso_free(img->iso);
    load_enter();
    edgert__deps_release(img->deps); /* its dependencies' memfds */
    load_leave();
    close(img->fd);
    edgert__free(img);
    return;
  }
  /* Out of the registry: no load finds it any more. dlclose runs the
   * module's destructors (foreign code) under load_lock only, so a fork
   * waits for it (see edgert__loader_fork_prepare). */
  load_enter();
  dlclose(img->handle);
  if (img->fd < 0) { /* the process's own instance: only our reference is given back */
    load_leave();
    edgert__free(img);
    return;
  }
  /* dlclose may leave the object mapped (RTLD_NODELETE, or C++
   * STB_GNU_UNIQUE symbols make it so). glibc would then answer a later
   * dlopen of the same /proc/self/fd/N name with this object, whatever
   * that fd holds by then: keep the fd open (and its number taken) for as
   * long as the object stays. */
  char name[64];
  snprintf(name, sizeof name, "/proc/self/fd/%d", img->fd);
  if (!dl_iterate_phdr(still_mapped, name))
    close(img->fd);
  /* Its verified dependencies go after it (ld.so holds them while the
   * module is mapped; these are our own references). */
  edgert__deps_release(img->deps);
  load_leave();
  edgert__free(img);
}

void edgert__map_last_out(edgert__map_t *mp) {
  if (!atomic_exchange(&mp->closed, 1))
    image_release(mp->image);
}

/* ---- pins: custom types whose callbacks live in a module ------------------ */

/* The address `a` lies in one of img's executable ranges. */
static int in_exec(const edgert__image_t *img, const void *a);

int edgert__image_pin(const void *addr, void **pin) {
  *pin = NULL;
  if (addr == NULL)
    return 0;
  registry_enter();
  for (edgert__image_t *img = registry; img != NULL; img = img->next)
    if (in_exec(img, addr)) {
      img->refs++;
      *pin = img;
      break;
    }
  registry_leave();
  return *pin != NULL;
}

void edgert__image_unpin(void *pin) {
  if (pin != NULL)
    image_release(pin);
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

/* Characters (UTF-8 code points: every byte that does not continue a
 * sequence) in `s`, counting at most `cap` + 1 of them; *bytes gets the
 * bytes read. A message counts characters, as the user typed them: 64
 * non-ASCII characters are "64 characters", not "more than 64". */
static size_t count_chars(const char *s, size_t cap, size_t *bytes) {
  size_t n = 0, i = 0;
  for (; s[i] != '\0'; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80 && ++n > cap)
      break;
  *bytes = i;
  return n;
}

/* Parses 64 hex digits. 0, or EDGERT_EINVAL naming what is wrong. */
static int parse_hex(const char *hex, unsigned char out[32], const char *what) {
  size_t nbytes, n = count_chars(hex, 64, &nbytes);
  if (n != 64 || nbytes != 64)
    return edgert__error(EDGERT_EINVAL,
                         "%s must be 64 hex digits (a SHA-256), got %s%zu characters%s",
                         what, n > 64 ? "more than " : "", n > 64 ? (size_t)64 : n,
                         n == nbytes ? "" : " (not all ASCII)");
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

int edgert__check_elf(const unsigned char *b, size_t avail, size_t size, const char *path) {
  return check_elf(b, avail, size, path);
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

/* Bytes per read/write/pread when the kernel cannot copy for us. */
#define CHUNK ((size_t)256 * 1024)
/* Bytes per sendfile call (it copies at most about 2 GiB at a time). */
#define SENDFILE_MAX ((size_t)1 << 30)

static int shrank(const char *path, size_t done, size_t size) {
  edgert__error(EDGERT_EIO, "%s shrank while it was being read (%zu of %zu bytes)", path, done,
                size);
  errno = EIO;
  return EDGERT_EIO;
}

static int copy_failed(const char *path, int e) {
  edgert__error(e == ENOSPC || e == ENOMEM ? EDGERT_ENOMEM : EDGERT_EIO,
                "loading %s: copying it into memory failed: %s", path, strerror(e));
  errno = e;
  return e == ENOSPC || e == ENOMEM ? EDGERT_ENOMEM : EDGERT_EIO;
}

/* Copies bytes [done, size) of `src` to `dst` (whose file offset is
 * `done`) through a private buffer. 0 or an EDGERT code, message set. */
static int copy_buffered(int src, int dst, size_t done, size_t size, const char *path) {
  unsigned char *buf = edgert__malloc(size - done < CHUNK ? size - done : CHUNK);
  if (buf == NULL)
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
  int rc = 0;
  while (rc == 0 && done < size) {
    size_t want = size - done < CHUNK ? size - done : CHUNK;
    ssize_t n = pread(src, buf, want, (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      rc = edgert__error(EDGERT_EIO, "reading %s failed: %s", path, strerror(e));
      errno = e;
      break;
    }
    if (n == 0) {
      rc = shrank(path, done, size);
      break;
    }
    for (size_t w = 0; rc == 0 && w < (size_t)n;) {
      ssize_t k = write(dst, buf + w, (size_t)n - w);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        rc = copy_failed(path, k < 0 ? errno : EIO);
      else
        w += (size_t)k;
    }
    done += (size_t)n;
  }
  edgert__free(buf);
  return rc;
}

/* Copies the first `size` bytes of `src` into the empty `dst`: sendfile (the
 * kernel copies page cache to memfd, no buffer of ours), or a buffer where
 * sendfile does not apply. 0 or an EDGERT code with the message set. */
static int copy_into(int src, int dst, size_t size, const char *path) {
  off_t off = 0;
  size_t done = 0;
  while (done < size) {
    size_t want = size - done < SENDFILE_MAX ? size - done : SENDFILE_MAX;
    ssize_t n = sendfile(dst, src, &off, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
      return copy_buffered(src, dst, done, size, path);
    if (n < 0)
      return copy_failed(path, errno);
    if (n == 0)
      return shrank(path, done, size);
    done += (size_t)n;
  }
  return 0;
}

/* OpenSSL's SHA-256 and Poly1305, fetched once: a fetch takes OpenSSL's
 * method-store lock, which a fork() from another thread could leave held
 * in the child. */
static _Atomic(EVP_MD *) sha256_md;
static _Atomic(EVP_MAC *) poly1305_mac;

static const EVP_MD *sha256(void) {
  EVP_MD *md = atomic_load(&sha256_md);
  if (md == NULL) {
    EVP_MD *fresh = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (fresh == NULL)
      return NULL;
    if (atomic_compare_exchange_strong(&sha256_md, &md, fresh))
      md = fresh;
    else
      EVP_MD_free(fresh); /* another thread won; md is its fetch */
  }
  return md;
}

static EVP_MAC *poly1305(void) {
  EVP_MAC *mac = atomic_load(&poly1305_mac);
  if (mac == NULL) {
    EVP_MAC *fresh = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    if (fresh == NULL)
      return NULL;
    if (atomic_compare_exchange_strong(&poly1305_mac, &mac, fresh))
      mac = fresh;
    else
      EVP_MAC_free(fresh);
  }
  return mac;
}

/* Seals `fd` against writing, growing, shrinking and further seals, and
 * checks that it holds `size` bytes. 0 or an EDGERT code, message set. */
static int seal(int fd, size_t size, const char *path) {
  /* EBUSY: a writable shared mapping (not ours: an attacker's), or pages
   * the kernel still holds a passing reference to (memfd_wait_for_pins
   * gives up after ~150 ms; seen on a loaded CI machine sealing a 30 MiB
   * copy). The second kind goes away, so try again before refusing; a
   * writable mapping stays, and is refused. */
  int rc, tries = 0;
  while ((rc = fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                          F_SEAL_SEAL)) < 0 &&
         (errno == EINTR || (errno == EBUSY && ++tries < 4)))
    if (errno == EBUSY)
      nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  if (rc < 0) {
    int e = errno;
    if (e == EBUSY)
      return edgert__error(EDGERT_EINTEGRITY,
                           "loading %s: its in-memory copy cannot be sealed: another process "
                           "maps it writable (opened through /proc/%d/fd/%d), or holds its "
                           "pages, through %d attempts: refused, none of its code ran",
                           path, (int)getpid(), fd, tries);
    edgert__error(EDGERT_EIO, "loading %s: sealing the in-memory copy failed: %s", path,
                  strerror(e));
    errno = e;
    return EDGERT_EIO;
  }
  /* Sealed: its size can no longer change. It must be what was copied. */
  struct stat ms;
  if (fstat(fd, &ms) != 0) {
    int e = errno;
    edgert__error(EDGERT_EIO, "loading %s: cannot stat its in-memory copy: %s", path,
                  strerror(e));
    errno = e;
    return EDGERT_EIO;
  }
  if ((size_t)ms.st_size != size)
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s: its in-memory copy is %lld bytes instead of %zu: another "
                         "process changed it while it was written; refused, none of its code "
                         "ran",
                         path, (long long)ms.st_size, size);
  return 0;
}

static int digest_failed(const char *path) {
  return edgert__error(EDGERT_ENOMEM, "loading %s: OpenSSL's SHA-256 failed (out of memory?)",
                       path);
}

/* SHA-256 of the `size` bytes of `fd` (copied, sealed when `sealed`), after
 * the loader's ELF checks on these very bytes. Sealed: through a read-only
 * mapping (nobody can shrink it, so the mapping cannot fault); else through
 * pread into a buffer. */
static int hash_fd(int fd, size_t size, int sealed, const char *path, unsigned char sha[32]) {
  const EVP_MD *md = sha256();
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (md == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    return digest_failed(path);
  }
  int rc = 0;
  void *map = sealed ? mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)
                     : MAP_FAILED;
  if (map != MAP_FAILED) {
    rc = check_elf(map, size, size, path);
    if (rc == 0)
      EVP_DigestUpdate(ctx, map, size);
    munmap(map, size);
  } else {
    unsigned char *buf = edgert__malloc(size < CHUNK ? size : CHUNK);
    if (buf == NULL)
      rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
    for (size_t done = 0; rc == 0 && done < size;) {
      size_t want = size - done < CHUNK ? size - done : CHUNK;
      ssize_t n = pread(fd, buf, want, (off_t)done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        int e = n < 0 ? errno : EIO;
        rc = edgert__error(EDGERT_EIO, "loading %s: reading back its in-memory copy "
                           "failed: %s", path, n < 0 ? strerror(e) : "it shrank");
        errno = e;
        break;
      }
      if (done == 0)
        rc = check_elf(buf, (size_t)n, size, path);
      if (rc == 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
      done += (size_t)n;
    }
    edgert__free(buf);
  }
  unsigned int len = 0;
  if (rc == 0 && (EVP_DigestFinal_ex(ctx, sha, &len) != 1 || len != 32))
    rc = digest_failed(path);
  EVP_MD_CTX_free(ctx);
  return rc;
}

/* ---- the pipelined copy for large files ---------------------------------- */

/* Chunks in flight, and the file size from which a copier thread pays
 * (given a second CPU, see read_verified). */
#define SLOTS 4
#define THREADED_FROM ((size_t)4 << 20)
#define TAG 16 /* bytes of a Poly1305 tag */

/*
 * Large files: a copier thread reads each chunk into a private slot and
 * writes it to the memfd, while the calling thread hashes the slots with
 * SHA-256 (each chunk is hashed while still in cache: SHA-256 runs at full
 * speed and the copy costs no time of its own). Each chunk also gets a
 * Poly1305 tag under a key drawn for this load, computed from the same
 * private slot by whichever thread takes it first (`claimed`): the hasher
 * when it is waiting for the copier, the copier when it is ahead, so the two
 * share that work as their speeds allow. Then the copier seals the memfd,
 * and both threads recompute the tag of every chunk from the sealed memfd
 * (see check_chunks): equal tags mean the sealed bytes are the bytes
 * hashed. A writer that changed the memfd before the seal would have to
 * match a 130-bit polynomial hash under a key it never sees (forgery
 * probability below 2^-70 for a 1 GiB module); after the seal nobody can
 * write. So the digest covers exactly the bytes mapped, at the speed of
 * SHA-256 plus a pass of Poly1305 (about 10 GB/s) over the sealed copy split
 * over both threads.
 */
typedef struct {
  int src, dst;
  size_t size, nchunks;
  const char *path;
  EVP_MAC *mac;
  unsigned char key[32];
  unsigned char *bufs;   /* SLOTS * CHUNK */
  unsigned char *tags;   /* nchunks * TAG: the tags of the bytes hashed and written */
  atomic_uchar *claimed; /* nchunks: chunk i's tag is taken by one of the threads */
  size_t lens[SLOTS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t nread;   /* chunks read (copier) */
  size_t nhashed; /* chunks hashed, and tagged if the hasher took the tag (hasher) */
  int stop;       /* the hasher gave up */
  int sealed;     /* the copier sealed the memfd */
  int rc;         /* the copier's error, with its message in msg */
  char msg[512];
  atomic_size_t next_check; /* how many chunks were claimed for checking */
  atomic_int mismatch;      /* a chunk's sealed bytes differ from its tag */
} copier_t;

/* Reads a full chunk (or the rest of the file) at offset `done`. 0, or an
 * EDGERT code with this thread's message set. */
static int read_chunk(int src, unsigned char *buf, size_t want, size_t done, size_t size,
                      const char *path) {
  size_t have = 0;
  while (have < want) {
    ssize_t n = pread(src, buf + have, want - have, (off_t)(done + have));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      edgert__error(EDGERT_EIO, "reading %s failed: %s", path, strerror(e));
      errno = e;
      return EDGERT_EIO;
    }
    if (n == 0)
      return shrank(path, done + have, size);
    have += (size_t)n;
  }
  return 0;
}

/* The Poly1305 tag of n bytes under c->key. 0 or -1. */
static int chunk_tag(copier_t *c, EVP_MAC_CTX *ctx, const unsigned char *p, size_t n,
                     unsigned char out[TAG]) {
  size_t len = 0;
  if (EVP_MAC_init(ctx, c->key, sizeof c->key, NULL) != 1 || EVP_MAC_update(ctx, p, n) != 1 ||
      EVP_MAC_final(ctx, out, &len, TAG) != 1 || len != TAG)
    return -1;
  return 0;
}

/* Writes a slot to the memfd. 0 or an EDGERT code, message set. */
static int write_slot(int dst, const unsigned char *p, size_t n, const char *path) {
  while (n > 0) {
    ssize_t k = write(dst, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return copy_failed(path, k < 0 ? errno : EIO);
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* 1 if chunk i's tag is the calling thread's to compute (it took it), 0 if
 * the other thread took it. */
static int take_tag(copier_t *c, size_t i) { return atomic_exchange(&c->claimed[i], 1) == 0; }

/* Checks claimed chunks of the sealed memfd against their tags until none
 * is left (both threads run this after the seal), through a read-only
 * mapping of this thread's own: each chunk's pages are mapped in one call
 * (MADV_POPULATE_READ, Linux 5.14+; older kernels fault them in as they are
 * read), and each thread unmaps only what it read, in parallel with the
 * other. A chunk is checked only once its tag is final, which it is once
 * the hasher has passed it (the copier may start while the hasher is still
 * on the last chunks). 0 (also when the hasher gave up), or an EDGERT code
 * with this thread's message set. */
static int check_chunks(copier_t *c, EVP_MAC_CTX *ctx) {
  void *m = mmap(NULL, c->size, PROT_READ, MAP_SHARED, c->dst, 0);
  if (m == MAP_FAILED)
    return edgert__error(EDGERT_ENOMEM, "loading %s: cannot map its sealed in-memory copy: %s",
                         c->path, strerror(errno));
  const unsigned char *map = m;
  unsigned char tag[TAG];
  size_t hashed = 0;
  int rc = 0;
  for (;;) {
    size_t i = atomic_fetch_add(&c->next_check, 1);
    if (i >= c->nchunks || atomic_load(&c->mismatch))
      break;
    if (i >= hashed) {
      pthread_mutex_lock(&c->mu);
      while (c->nhashed <= i && !c->stop)
        pthread_cond_wait(&c->cv, &c->mu);
      hashed = c->nhashed;
      pthread_mutex_unlock(&c->mu);
      if (hashed <= i)
        break; /* the hasher gave up: its error decides */
    }
    size_t n = c->size - i * CHUNK < CHUNK ? c->size - i * CHUNK : CHUNK;
#ifdef MADV_POPULATE_READ
    (void)madvise((void *)(map + i * CHUNK), n, MADV_POPULATE_READ);
#endif
    if (chunk_tag(c, ctx, map + i * CHUNK, n, tag) != 0) {
      rc = edgert__error(EDGERT_ENOMEM, "loading %s: OpenSSL's Poly1305 failed", c->path);
      break;
    }
    if (CRYPTO_memcmp(tag, c->tags + i * TAG, TAG) != 0)
      atomic_store(&c->mismatch, 1);
  }
  munmap(m, c->size);
  return rc;
}

static void copier_fail(copier_t *c, int rc) {
  pthread_mutex_lock(&c->mu);
  c->rc = rc;
  snprintf(c->msg, sizeof c->msg, "%s", edgert_last_error());
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* The copier thread: chunks 1.. (read into slot i % SLOTS once the hasher
 * is done with the chunk that used it, hand over, write, then the chunk's
 * tag unless the hasher took it), then the seal, then its share of the
 * checks. */
static void *copier_main(void *arg) {
  copier_t *c = arg;
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(c->mac);
  if (ctx == NULL) {
    copier_fail(c, edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", c->path));
    return NULL;
  }
  for (size_t i = 1; i < c->nchunks; i++) {
    pthread_mutex_lock(&c->mu);
    while (c->nhashed + SLOTS <= i && !c->stop)
      pthread_cond_wait(&c->cv, &c->mu);
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    if (stop)
      goto out;
    unsigned char *buf = c->bufs + (i % SLOTS) * CHUNK;
    size_t want = c->size - i * CHUNK < CHUNK ? c->size - i * CHUNK : CHUNK;
    int rc = read_chunk(c->src, buf, want, i * CHUNK, c->size, c->path);
    if (rc == 0) {
      c->lens[i % SLOTS] = want;
      pthread_mutex_lock(&c->mu);
      c->nread = i + 1;
      pthread_cond_broadcast(&c->cv);
      pthread_mutex_unlock(&c->mu);
      /* The slot stays as read until both threads are done with it: the
       * hasher publishes nhashed past i only after its own tag of it, and
       * this thread tags it (if still untaken) before reading the next. */
      rc = write_slot(c->dst, buf, want, c->path);
      if (rc == 0 && take_tag(c, i) && chunk_tag(c, ctx, buf, want, c->tags + i * TAG) != 0)
        rc = edgert__error(EDGERT_ENOMEM, "loading %s: OpenSSL's Poly1305 failed", c->path);
    }
    if (rc != 0) {
      copier_fail(c, rc);
      goto out;
    }
  }
  /* Everything written (and every tag taken by this thread computed): seal,
   * then check what was sealed. */
  int rc = seal(c->dst, c->size, c->path);
  if (rc != 0) {
    copier_fail(c, rc);
    goto out;
  }
  pthread_mutex_lock(&c->mu);
  c->sealed = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if ((rc = check_chunks(c, ctx)) != 0)
    copier_fail(c, rc);
out:
  EVP_MAC_CTX_free(ctx);
  return NULL;
}

/* The calling thread's part: tags (unless the copier took them) and hashes
 * chunks 1.. as the copier reads them, then checks chunks once the copier
 * has sealed. 0 or an EDGERT code (the copier's, or its own with the
 * message set). */
static int hash_threaded(copier_t *c, EVP_MD_CTX *sha, EVP_MAC_CTX *mctx) {
  int rc = 0;
  for (size_t i = 1; i < c->nchunks; i++) {
    pthread_mutex_lock(&c->mu);
    while (c->nread <= i && c->rc == 0)
      pthread_cond_wait(&c->cv, &c->mu);
    rc = c->nread <= i ? c->rc : 0;
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
      return rc;
    const unsigned char *p = c->bufs + (i % SLOTS) * CHUNK;
    size_t n = c->lens[i % SLOTS];
    if (take_tag(c, i) && chunk_tag(c, mctx, p, n, c->tags + i * TAG) != 0)
      return edgert__error(EDGERT_ENOMEM, "loading %s: OpenSSL's Poly1305 failed", c->path);
    EVP_DigestUpdate(sha, p, n);
    pthread_mutex_lock(&c->mu);
    c->nhashed = i + 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_lock(&c->mu);
  while (!c->sealed && c->rc == 0)
    pthread_cond_wait(&c->cv, &c->mu);
  rc = c->rc;
  pthread_mutex_unlock(&c->mu);
  if (rc != 0)
    return rc;
  return check_chunks(c, mctx);
}

/*
 * The pipelined load of a file of `size` >= THREADED_FROM bytes whose first
 * chunk is in `bufs` (checked; SLOTS * CHUNK bytes). 0 with sha set; 1
 * when it cannot run here (no Poly1305, no random key yet) and nothing was
 * written yet; or an EDGERT code with the message set.
 */
static int copy_threaded(int src, int fd, size_t size, const char *path,
                         unsigned char *bufs, unsigned char sha[32]) {
  copier_t c;
  memset(&c, 0, sizeof c);
  c.mac = poly1305();
  const EVP_MD *md = sha256();
  if (c.mac == NULL || md == NULL ||
      getrandom(c.key, sizeof c.key, GRND_NONBLOCK) != (ssize_t)sizeof c.key)
    return 1;
  c.src = src;
  c.dst = fd;
  c.size = size;
  c.nchunks = (size + CHUNK - 1) / CHUNK;
  c.path = path;
  c.bufs = bufs;
  c.nread = c.nhashed = 1;
  atomic_init(&c.next_check, 0);
  atomic_init(&c.mismatch, 0);
  c.tags = edgert__malloc(c.nchunks * TAG);
  c.claimed = edgert__malloc(c.nchunks * sizeof *c.claimed);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_MAC_CTX *mctx = EVP_MAC_CTX_new(c.mac);
  int rc = 0;
  if (c.tags == NULL || c.claimed == NULL || ctx == NULL || mctx == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
    goto done;
  }
  for (size_t i = 0; i < c.nchunks; i++)
    atomic_init(&c.claimed[i], i == 0);
  if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || chunk_tag(&c, mctx, bufs, CHUNK, c.tags) != 0) {
    rc = digest_failed(path);
    goto done;
  }
  EVP_DigestUpdate(ctx, bufs, CHUNK);
  if ((rc = write_slot(fd, bufs, CHUNK, path)) != 0)
    goto done;
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  pthread_t th;
  if (pthread_create(&th, NULL, copier_main, &c) != 0) {
    rc = edgert__error(EDGERT_ENOMEM, "loading %s: cannot start the copier thread", path);
  } else {
    rc = hash_threaded(&c, ctx, mctx);
    pthread_mutex_lock(&c.mu);
    c.stop = 1;
    pthread_cond_broadcast(&c.cv);
    pthread_mutex_unlock(&c.mu);
    pthread_join(th, NULL);
    if (rc == 0 && c.rc != 0)
      rc = c.rc;
    if (rc != 0 && rc == c.rc) { /* the copier's error: its message, here */
      edgert__error(rc, "%s", c.msg);
      errno = EIO; /* the copier's errno was its own thread's */
    }
  }
  pthread_mutex_destroy(&c.mu);
  pthread_cond_destroy(&c.cv);
  unsigned int len = 0;
  if (rc == 0 && atomic_load(&c.mismatch))
    rc = edgert__error(EDGERT_EINTEGRITY,
                       "loading %s: its in-memory copy was changed by another process before "
                       "it was sealed (the sealed bytes are not the bytes hashed); refused, "
                       "none of its code ran",
                       path);
  if (rc == 0 && (EVP_DigestFinal_ex(ctx, sha, &len) != 1 || len != 32))
    rc = digest_failed(path);
done:
  OPENSSL_cleanse(c.key, sizeof c.key);
  EVP_MAC_CTX_free(mctx);
  EVP_MD_CTX_free(ctx);
  edgert__free(c.claimed);
  edgert__free(c.tags);
  return rc;
}

/*
 * Copies `path` once into a fresh executable memfd, seals it against
 * writing, growing and shrinking, and sets `sha` to the SHA-256 of the
 * sealed contents: hashed after the seal, or (large files) hashed while
 * copied and proven equal to the sealed contents afterwards (see
 * copier_t). Whoever wrote to the memfd before the seal, the digest covers
 * exactly what dlopen will map. The file's ELF header is checked before the
 * copy (to refuse what is not a module without copying it) and holds for
 * the sealed bytes. On success *fd_out, *size_out and sha are set; no code
 * of the file has run either way.
 */
static int read_verified(const char *path, size_t limit, unsigned flags,
                         int *fd_out, size_t *size_out, unsigned char sha[32],
                         struct stat *src_st) {
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
  *src_st = st;
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
  /* The pipeline pays only with a second CPU to run on: alone, its copier
   * and the tag checks are pure extra work. */
  cpu_set_t cpus;
  int threaded = size >= THREADED_FROM &&
                 (sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) > 1);
  size_t first = size < CHUNK ? size : CHUNK;
  unsigned char *buf = edgert__malloc(threaded ? SLOTS * CHUNK : first);
  if (buf == NULL) {
    close(src);
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
  }
  int err = 0, sealable = 0, fd = -1, rc = 0;
  /* The first chunk: its header decides whether to go on. */
  if ((rc = read_chunk(src, buf, first, 0, size, path)) != 0)
    goto out;
  if ((rc = check_elf(buf, first, size, path)) != 0) {
    rc = edgert__linker_script_error(rc, path, buf, first);
    goto out;
  }
  if ((fd = exec_fd(path, flags, &sealable, &err)) < 0) {
    rc = err;
    goto out;
  }
  if (threaded && sealable) {
    rc = copy_threaded(src, fd, size, path, buf, sha);
    if (rc <= 0)
      goto out;
    rc = 0; /* cannot pipeline here: copy, seal, then hash */
  }
  if ((rc = copy_into(src, fd, size, path)) != 0)
    goto out;
  if (sealable && (rc = seal(fd, size, path)) != 0)
    goto out;
  rc = hash_fd(fd, size, sealable, path, sha);
out:
  edgert__free(buf);
  close(src);
  if (rc != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    errno = e;
    return rc;
  }
  *fd_out = fd;
  *size_out = size;
  return 0;
}

/* ---- identity: the object dlopen returned is the sealed memfd ------------- */

#define MAX_SEGS 16

/* The PT_LOAD segments of one loaded object, found by dl_iterate_phdr. */
typedef struct {
  const struct link_map *lm;
  int found, n, overflow;
  uintptr_t lo[MAX_SEGS], hi[MAX_SEGS];
  unsigned char file[MAX_SEGS]; /* has bytes from the file (p_filesz > 0) */
  unsigned char exec[MAX_SEGS];
  unsigned char ours[MAX_SEGS]; /* seen mapping the sealed memfd */
} segs_t;

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  segs_t *s = arg;
  if (info->dlpi_addr != s->lm->l_addr || info->dlpi_name == NULL || s->lm->l_name == NULL ||
      strcmp(info->dlpi_name, s->lm->l_name) != 0)
    return 0;
  s->found = 1;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
      continue;
    if (s->n == MAX_SEGS) {
      s->overflow = 1;
      break;
    }
    s->lo[s->n] = info->dlpi_addr + ph->p_vaddr;
    s->hi[s->n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    s->file[s->n] = ph->p_filesz > 0;
    s->exec[s->n] = (ph->p_flags & PF_X) != 0;
    s->ours[s->n] = 0;
    s->n++;
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

/* /proc/self/maps, whole and NUL-terminated (edgert__malloc'ed) in *out.
 * 0 or an EDGERT code with the message set. */
static int read_maps(const char *path, char **out) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return edgert__error(EDGERT_EIO, "loading %s: cannot read /proc/self/maps to check "
                         "the object dlopen returned: %s", path, strerror(e));
  }
  size_t cap = 64 * 1024, len = 0;
  char *buf = edgert__malloc(cap);
  int rc = buf == NULL ? edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path) : 0;
  while (rc == 0) {
    if (cap - len < 4096) {
      char *grown = cap > ((size_t)1 << 30) ? NULL : edgert__realloc(buf, cap * 2);
      if (grown == NULL) {
        rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
        break;
      }
      buf = grown;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      rc = edgert__error(EDGERT_EIO, "loading %s: reading /proc/self/maps failed: %s", path,
                         strerror(e));
      break;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  if (rc != 0) {
    edgert__free(buf);
    return rc;
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

/* One line of /proc/self/maps: "lo-hi perms offset major:minor inode  path".
 * Returns the start of the next line; *ok = 0 if the line did not parse. */
static const char *maps_line(const char *l, uintptr_t *lo, uintptr_t *hi, unsigned *maj,
                             unsigned *min, unsigned long long *ino, const char **name,
                             size_t *namelen, int *ok) {
  const char *eol = strchr(l, '\n');
  if (eol == NULL)
    eol = l + strlen(l);
  char *e;
  *ok = 0;
  *lo = (uintptr_t)strtoull(l, &e, 16);
  if (*e != '-')
    goto next;
  *hi = (uintptr_t)strtoull(e + 1, &e, 16);
  if (*e != ' ')
    goto next;
  e = strchr(e + 1, ' '); /* after the permissions */
  if (e == NULL || e > eol)
    goto next;
  strtoull(e + 1, &e, 16); /* the offset */
  if (*e != ' ')
    goto next;
  *maj = (unsigned)strtoul(e + 1, &e, 16);
  if (*e != ':')
    goto next;
  *min = (unsigned)strtoul(e + 1, &e, 16);
  if (*e != ' ')
    goto next;
  *ino = strtoull(e + 1, &e, 10);
  if (e > eol)
    goto next;
  while (e < eol && *e == ' ')
    e++;
  *name = e;
  *namelen = (size_t)(eol - e);
  *ok = 1;
next:
  return *eol ? eol + 1 : eol;
}

/* One mapping of the process (a line of /proc/self/maps) against the
 * segments `s` of the object being checked: marks the segments it backs
 * with the memfd (device `dev`, inode `mino`), or names it in `foreign` (the
 * first one) when it maps another file into one of them. */
static void identity_vma(segs_t *s, uintptr_t lo, uintptr_t hi, unsigned maj, unsigned min,
                         unsigned long long ino, const char *fname, size_t flen, dev_t dev,
                         ino_t mino, char *foreign, size_t fsize) {
  if (ino == 0) /* anonymous: .bss */
    return;
  int same = maj == major(dev) && min == minor(dev) && ino == (unsigned long long)mino;
  for (int i = 0; i < s->n; i++) {
    if (!(lo < s->hi[i] && s->lo[i] < hi))
      continue;
    if (same)
      s->ours[i] = 1;
    else if (foreign[0] == '\0')
      snprintf(foreign, fsize, "%.*s", (int)(flen < 200 ? flen : 200),
               flen ? fname : "an unnamed file");
  }
}

/* The PROCMAP_QUERY ioctl of /proc/<pid>/maps (Linux 6.11+, uapi
 * linux/fs.h; spelled out here for older headers): the mappings at or after
 * an address, one at a time, without formatting the whole file. */
typedef struct {
  uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
      vma_offset, inode;
  uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
  uint64_t vma_name_addr, build_id_addr;
} procmap_query_t;
#define PROCMAP_QUERY_IOCTL _IOWR('f', 17, procmap_query_t)
#define PROCMAP_COVERING_OR_NEXT 0x10

/* identity_vma for every mapping that meets [lo, hi), through
 * PROCMAP_QUERY: 1 done, 0 when the kernel cannot answer (older kernel,
 * a name longer than the buffer), so the caller reads the text instead. */
static int identity_query(segs_t *s, uintptr_t lo, uintptr_t hi, dev_t dev, ino_t mino,
                          char *foreign, size_t fsize) {
  int mfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (mfd < 0)
    return 0;
  char name[4096] = "";
  int ok = 1;
  for (uintptr_t at = lo; at < hi;) {
    procmap_query_t q;
    memset(&q, 0, sizeof q);
    q.size = sizeof q;
    q.query_flags = PROCMAP_COVERING_OR_NEXT;
    q.query_addr = at;
    q.vma_name_addr = (uint64_t)(uintptr_t)name;
    q.vma_name_size = sizeof name;
    if (ioctl(mfd, PROCMAP_QUERY_IOCTL, &q) != 0) {
      ok = errno == ENOENT; /* no mapping at or after `at`: done */
      break;
    }
    if (q.vma_start >= hi)
      break;
    if (q.vma_end <= at || q.vma_name_size > sizeof name) { /* not an answer to trust */
      ok = 0;
      break;
    }
    size_t flen = q.vma_name_size ? q.vma_name_size - 1 : 0; /* the size counts the NUL */
    identity_vma(s, (uintptr_t)q.vma_start, (uintptr_t)q.vma_end, q.dev_major, q.dev_minor,
                 (unsigned long long)q.inode, name, flen, dev, mino, foreign, fsize);
    at = (uintptr_t)q.vma_end;
  }
  close(mfd);
  return ok;
}

/* The object dlopen returned (lm, its segments in s) must map the sealed
 * memfd `fd` and no other file: every segment with file bytes is backed by
 * the memfd's device and inode, and nothing in the segments' ranges maps
 * another file (anonymous pages, such as .bss, are allowed). The mappings
 * are asked for with PROCMAP_QUERY, only those in the segments' range (the
 * text of /proc/self/maps costs about 1 us per line, 0.24 ms in a Python
 * process with numpy); the text is read where the kernel has no such
 * query. */
static int check_identity(segs_t *s, const struct link_map *lm, int fd, const char *path,
                          const char *sha_hex, const char *name) {
  const char *who = lm->l_name != NULL && lm->l_name[0] ? lm->l_name : "the main program";
  if (!s->found || s->n == 0 || s->overflow)
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s (verified, SHA-256 %s): dlopen(\"%s\") returned %s, "
                         "whose segments %s; refused",
                         path, sha_hex, name, who,
                         s->overflow ? "are too many to check" : "cannot be found");
  struct stat fs;
  if (fstat(fd, &fs) != 0) {
    int e = errno;
    return edgert__error(EDGERT_EIO, "loading %s: cannot stat its in-memory copy: %s", path,
                         strerror(e));
  }
  uintptr_t lo = s->lo[0], hi = s->hi[0];
  for (int i = 1; i < s->n; i++) {
    lo = s->lo[i] < lo ? s->lo[i] : lo;
    hi = s->hi[i] > hi ? s->hi[i] : hi;
  }
  char foreign[256] = "";
  if (!identity_query(s, lo, hi, fs.st_dev, fs.st_ino, foreign, sizeof foreign)) {
    for (int i = 0; i < s->n; i++) /* start over from the text */
      s->ours[i] = 0;
    foreign[0] = '\0';
    char *maps = NULL;
    int rc = read_maps(path, &maps);
    if (rc != 0)
      return rc;
    for (const char *l = maps; *l;) {
      uintptr_t vlo = 0, vhi = 0;
      unsigned maj = 0, min = 0;
      unsigned long long ino = 0;
      const char *fname = NULL;
      size_t flen = 0;
      int ok;
      l = maps_line(l, &vlo, &vhi, &maj, &min, &ino, &fname, &flen, &ok);
      if (ok) /* a line we do not read is skipped, as an anonymous one */
        identity_vma(s, vlo, vhi, maj, min, ino, fname, flen, fs.st_dev, fs.st_ino, foreign,
                     sizeof foreign);
    }
    edgert__free(maps);
  }
  int missing = 0;
  for (int i = 0; i < s->n; i++)
    missing |= s->file[i] && !s->ours[i];
  if (foreign[0] != '\0' || missing)
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s (verified, SHA-256 %s): dlopen(\"%s\") returned %s, "
                         "which %s%s instead of the verified in-memory copy; refused",
                         path, sha_hex, name, who, foreign[0] ? "maps " : "does not map",
                         foreign[0] ? foreign : " it");
  return 0;
}

/* The object glibc already has under `name` (its own name or DT_SONAME):
 * 1 and its path in `who`, or 0. Maps nothing (RTLD_NOLOAD). */
static int name_taken(const char *name, char *who, size_t n) {
  dlerror();
  void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
  if (h == NULL) {
    dlerror();
    return 0;
  }
  struct link_map *lm = NULL;
  snprintf(who, n, "%s",
           dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL && lm->l_name != NULL &&
                   lm->l_name[0]
               ? lm->l_name
               : "an object of the process");
  dlclose(h);
  return 1;
}

/* Sanitizer runtimes whose dlopen interceptor ends the process on
 * RTLD_DEEPBIND (google/sanitizers#611): the name of the one present. */
static const char *deepbind_refused_by(void) {
  static const char *const rt[][2] = {{"__asan_init", "AddressSanitizer"},
                                      {"__hwasan_init", "HWAddressSanitizer"},
                                      {"__tsan_init", "ThreadSanitizer"},
                                      {"__msan_init", "MemorySanitizer"}};
  for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++)
    if (dlsym(RTLD_DEFAULT, rt[i][0]) != NULL)
      return rt[i][1];
  dlerror();
  return NULL;
}


/* Records the object `h` / `lm` dlopen gave for `img`: its handle, link
 * map, load bias and executable segments (from the scan `s`). */
static void set_image(edgert__image_t *img, void *h, struct link_map *lm, const segs_t *s) {
  img->handle = h;
  img->linkmap = lm;
  img->bias = (uintptr_t)lm->l_addr;
  img->nexec = 0;
  for (int i = 0; i < s->n && img->nexec < 8; i++)
    if (s->exec[i]) {
      img->exec_lo[img->nexec] = s->lo[i];
      img->exec_hi[img->nexec] = s->hi[i];
      img->nexec++;
    }
}

/* dlopen's the sealed memfd `fd` into `img` (handle, link map, executable
 * ranges) after making sure its name answers for nothing else, and checks
 * that what dlopen returned is that memfd. Runs the module's constructors.
 * Called with load_lock held. */
static int map_image(edgert__image_t *img, int fd, const char *path, const char *sha_hex,
                     int deep) {
  char name[64], who[256];
  snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
  if (name_taken(name, who, sizeof who))
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s (verified, SHA-256 %s): the dynamic linker already has "
                         "an object answering to %s: %s (loaded earlier under that name or "
                         "with that DT_SONAME), which dlopen would return instead of the "
                         "verified copy; refused, none of the module's code ran",
                         path, sha_hex, name, who);
  dlerror();
  void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL | (deep ? RTLD_DEEPBIND : 0));
  if (h == NULL) {
    const char *why = dlerror();
    return edgert__error(EDGERT_EFORMAT,
                         "the dynamic linker refused %s (verified, SHA-256 %s): %s%s", path,
                         sha_hex, why ? why : "unknown reason",
                         access("/proc/self/fd", F_OK) != 0 ? " (/proc is not mounted)" : "");
  }
  struct link_map *lm = NULL;
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) {
    dlclose(h);
    return edgert__error(EDGERT_EFORMAT, "loading %s: no link map for the loaded object", path);
  }
  segs_t s;
  memset(&s, 0, sizeof s);
  s.lm = lm;
  dl_iterate_phdr(scan_object, &s);
  int rc = check_identity(&s, lm, fd, path, sha_hex, name);
  if (rc != 0) {
    dlclose(h); /* drops the reference this dlopen took, whatever it was */
    return rc;
  }
  set_image(img, h, lm, &s);
  return 0;
}

/* Binds `img` to the process's own instance of the file `st` at `path`:
 * the object the process already maps from it, or, for the C library's
 * family, the one the system's dlopen maps (see resolve.c). No private
 * copy, and the memfd is not mapped. 1 if bound, 0 if the process has no
 * instance of this file (map the verified copy), or an EDGERT code. Called
 * with load_lock held, after the on-disk file's hash was checked. */
static int bind_process_image(edgert__image_t *img, const struct stat *st, int fd,
                              const char *path) {
  void *h = NULL, *lm = NULL;
  unsigned char head[4096];
  ssize_t n = pread(fd, head, sizeof head, 0); /* the verified bytes' first page */
  int rc = edgert__process_instance(st->st_dev, st->st_ino, head, n > 0 ? (size_t)n : 0, &h,
                                    &lm);
  if (rc == 0 && edgert__libc_family(path)) {
    rc = edgert__libc_family_open(st->st_dev, st->st_ino, path, &h, &lm);
    if (rc == 0)
      rc = 1;
  }
  if (rc <= 0)
    return rc;
  segs_t s;
  memset(&s, 0, sizeof s);
  s.lm = lm;
  dl_iterate_phdr(scan_object, &s);
  if (!s.found || s.n == 0 || s.overflow) {
    dlclose(h);
    return edgert__error(EDGERT_EINTEGRITY,
                         "loading %s: the process's instance of it has segments that %s; "
                         "refused",
                         path, s.overflow ? "are too many to check" : "cannot be found");
  }
  set_image(img, h, (struct link_map *)lm, &s);
  img->shared = 1;
  return 1;
}

/* The steps above, for deps.c: a dependency is read, sealed, hashed and
 * mapped by the very code that does it for a module. */
int edgert__read_verified(const char *path, size_t limit, unsigned flags, int *fd_out,
                          size_t *size_out, unsigned char sha[32]) {
  struct stat st;
  return read_verified(path, limit, flags, fd_out, size_out, sha, &st);
}
int edgert__map_sealed(edgert__image_t *img, int fd, const char *path, const char *sha_hex,
                       int deep) {
  return map_image(img, fd, path, sha_hex, deep);
}
int edgert__parse_sha256(const char *hex, unsigned char out[32], const char *what) {
  return parse_hex(hex, out, what);
}
void edgert__sha256_hex(const unsigned char d[32], char out[65]) { to_hex(d, out); }
int edgert__name_taken(const char *name, char *who, size_t n) { return name_taken(name, who, n); }

/* ---- load / unload -------------------------------------------------------- */

/* The registry's image of these bytes in this binding mode, with one more
 * reference, or NULL. A quarantined copy (a call on it crashed: its state
 * may be corrupt) is never shared: a new load of the same bytes maps a
 * fresh copy and leaves the crashed one's quarantine to its own handles
 * (they get out of it with edgert_module_reload). The newest copy comes
 * first in the list. */
static edgert__image_t *find_and_ref(const unsigned char sha[32], int deep) {
  registry_enter();
  edgert__image_t *img = registry;
  while (img != NULL &&
         (memcmp(img->sha, sha, 32) != 0 || (img->deepbind != deep && !img->shared) ||
          atomic_load(&img->quarantined)))
    img = img->next;
  if (img != NULL)
    img->refs++;
  registry_leave();
  return img;
}

/* A new mapping record for `img` (whose reference it takes over). */
static edgert__map_t *map_new(edgert__image_t *img, unsigned long generation) {
  edgert__map_t *mp = edgert__calloc(1, sizeof *mp);
  if (mp == NULL)
    return NULL;
  mp->image = img;
  mp->bias = img->bias;
  atomic_init(&mp->active, 1);
  atomic_init(&mp->retired, 0);
  atomic_init(&mp->closed, 0);
  mp->generation = generation;
  return mp;
}

#define KNOWN_FLAGS (EDGERT_LOAD_ALLOW_TMPFILE | EDGERT_LOAD_ISOLATE_SYMBOLS)

/* The size limit and flags of `opts` (NULL: the defaults); EDGERT_EINVAL
 * naming `fn` for flags it does not know. */
static int read_options(const edgert_load_options_t *opts, const char *fn, size_t *limit,
                        unsigned *flags) {
  *limit = EDGERT_MODULE_MAX_SIZE_DEFAULT;
  *flags = 0;
  if (opts == NULL)
    return 0;
  if (opts->max_size != 0)
    *limit = opts->max_size;
  *flags = opts->flags;
  if (*flags & ~KNOWN_FLAGS)
    return edgert__error(EDGERT_EINVAL, "%s: unknown flags 0x%x", fn, *flags & ~KNOWN_FLAGS);
  return 0;
}

/* The report of what a load would do with each dependency: the same read
 * of the module (a sealed copy, so the dynamic section read is the bytes
 * hashed) and the same resolution, under the load lock as a load. */
int edgert_module_plan_dependencies(const char *path, const edgert_load_options_t *opts,
                                    edgert_dependency_visit_fn visit, void *userdata) {
  if (path == NULL || visit == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_module_plan_dependencies: path and visit must not be NULL");
  if (path[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_module_plan_dependencies: the path is empty");
  size_t limit;
  unsigned flags;
  int orc = read_options(opts, "edgert_module_plan_dependencies", &limit, &flags);
  if (orc != 0)
    return orc;
  char *p = NULL;
  int rc = edgert__resolve_load_path(path, &p);
  if (rc != 0)
    return rc;
  int fd = -1;
  size_t size = 0;
  unsigned char sha[32];
  struct stat st;
  rc = read_verified(p, limit, flags, &fd, &size, sha, &st);
  if (rc == 0) {
    load_enter();
    rc = edgert__deps_report(p, fd, opts, limit, flags, visit, userdata);
    load_leave();
    close(fd);
  }
  edgert__free(p);
  return rc;
}

/* The rest of an isolated load (edgert/isolate.h): the verified sealed copy
 * `fd` is kept, never mapped in this process and never entered in the
 * registry (so no in-process load or edgert_module_open_loaded shares it);
 * its workers map it, after the verified copies of its listed dependencies
 * (`deps`, planned as for a fresh process, kept with the image). Takes
 * over (and on failure frees) every argument; the handle is linked as any
 * other. */
static int load_isolated(edgert_module_t *m, edgert__image_t *img, edgert__map_t *mp, int fd,
                         edgert__deps_t *deps, const edgert_isolate_options_t *o,
                         edgert_module_t **out) {
  int rc = 0;
  edgert_isolate_options_t *copy = edgert__calloc(1, sizeof *copy);
  char *wp = NULL;
  if (copy == NULL)
    rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", m->path);
  if (rc == 0) {
    *copy = *o;
    if (copy->workers == 0)
      copy->workers = 1;
    if (o->worker_path != NULL && (wp = edgert__strdup(o->worker_path)) == NULL)
      rc = edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", m->path);
    copy->worker_path = wp;
  }
  if (rc == 0)
    rc = edgert__iso_new(o, fd, deps, &img->iso);
  if (rc != 0) {
    load_enter();
    edgert__deps_release(deps); /* nothing of it was mapped */
    load_leave();
    close(fd);
    edgert__free(copy);
    edgert__free(wp);
    pthread_mutex_destroy(&m->lock);
    edgert__free(m->path);
    edgert__free(m);
    edgert__free(img);
    edgert__free(mp);
    return rc;
  }
  memcpy(img->sha, m->sha, 32);
  img->fd = fd;
  img->deps = deps;
  img->refs = 1;
  atomic_init(&img->quarantined, 0);
  m->iso_opts = copy;
  mp->image = img;
  mp->bias = 0;
  atomic_init(&mp->active, 1);
  atomic_init(&mp->retired, 0);
  atomic_init(&mp->closed, 0);
  mp->generation = 1;
  atomic_init(&m->cur, mp);
  registry_enter();
  handles_push(m);
  registry_leave();
  *out = m;
  return 0;
}

int edgert_module_load_ex(const char *path, const char *expected_sha256_hex,
                          const edgert_load_options_t *opts, edgert_module_t **out) {
  if (path == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_load: path and out must not be NULL");
  if (path[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_module_load: the path is empty");
  size_t limit;
  unsigned flags;
  int orc = read_options(opts, "edgert_module_load", &limit, &flags);
  if (orc != 0)
    return orc;
  const edgert_isolate_options_t *iso_o = opts != NULL ? opts->isolation : NULL;
  if (iso_o != NULL && (orc = edgert__iso_check_options(iso_o, flags, path)) != 0)
    return orc;
  int deep = (flags & EDGERT_LOAD_ISOLATE_SYMBOLS) != 0;
  if (deep) {
    const char *san = deepbind_refused_by();
    if (san != NULL)
      return edgert__error(EDGERT_EUNSUPPORTED,
                           "loading %s with isolated symbols: that needs RTLD_DEEPBIND, which "
                           "the %s runtime in this process refuses (it would end the "
                           "process); load without isolate_symbols, or build the module with "
                           "-fvisibility=hidden or -Wl,-Bsymbolic instead",
                           path, san);
  }
  unsigned char expected[32];
  if (expected_sha256_hex != NULL) {
    int rc = parse_hex(expected_sha256_hex, expected, "the expected SHA-256");
    if (rc != 0)
      return rc;
  }
  /* A name without '/' becomes the path it resolves to; from here on
   * `path` is that path, and the handle reports it. */
  char *p = NULL;
  int rrc = edgert__resolve_load_path(path, &p);
  if (rrc != 0)
    return rrc;
  edgert_module_t *m = edgert__calloc(1, sizeof *m);
  edgert__image_t *fresh = edgert__calloc(1, sizeof *fresh);
  edgert__map_t *mp = edgert__calloc(1, sizeof *mp);
  if (m == NULL || fresh == NULL || mp == NULL) {
    edgert__free(m);
    edgert__free(p);
    edgert__free(fresh);
    edgert__free(mp);
    return edgert__error(EDGERT_ENOMEM, "loading %s: out of memory", path);
  }
  path = p;
  int fd = -1;
  struct stat src_st;
  int rc = read_verified(path, limit, flags, &fd, &m->size, m->sha, &src_st);
  if (rc == 0 && expected_sha256_hex != NULL && CRYPTO_memcmp(m->sha, expected, 32) != 0) {
    char got[65];
    to_hex(m->sha, got);
    rc = edgert__error(EDGERT_EINTEGRITY,
                       "%s failed its integrity check: SHA-256 is %s, expected %s; "
                       "none of its code ran",
                       path, got, expected_sha256_hex);
  }
  /* Its dependencies, resolved from the sealed copy and verified (or
   * refused) before anything is mapped. Under load_lock: the resolution
   * asks the dynamic linker (dlopen RTLD_NOLOAD, dl_iterate_phdr), which a
   * fork must not interrupt (see edgert__loader_fork_prepare). */
  edgert__deps_t *deps = NULL;
  if (rc == 0) {
    load_enter();
    rc = edgert__deps_plan(path, fd, opts, limit, flags, &deps);
    load_leave();
  }
  if (rc != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    edgert__free(m);
    edgert__free(p);
    edgert__free(fresh);
    edgert__free(mp);
    errno = e;
    return rc;
  }
  to_hex(m->sha, m->sha_hex);
  m->path = p;
  m->flags = flags;
  m->max_size = limit;
  atomic_init(&m->state, 0);
  atomic_init(&m->crashed_generation, 0);
  pthread_mutex_init(&m->lock, NULL);
  if (iso_o != NULL)
    return load_isolated(m, fresh, mp, fd, deps, iso_o, out);

  /* Bytes already mapped (in the same binding mode) are shared; else they
   * are mapped under load_lock, after a second look (another thread may
   * have mapped them meanwhile). */
  edgert__image_t *img = find_and_ref(m->sha, deep);
  int locked = img == NULL;
  if (locked) {
    load_enter();
    img = find_and_ref(m->sha, deep);
  }
  int mapped_now = img == NULL;
  if (!mapped_now) {
    close(fd);
    edgert__free(fresh);
    edgert__deps_release(deps); /* nothing of it was mapped */
  } else {
    rc = bind_process_image(fresh, &src_st, fd, path);
    if (rc == 1) {
      close(fd); /* the process's instance is used, not the copy; ld.so
                    loaded its dependencies with it */
      fd = -1;
      edgert__deps_release(deps);
      deps = NULL;
      rc = 0;
    } else if (rc == 0 && (rc = edgert__deps_map(deps, deep)) == 0) {
      rc = map_image(fresh, fd, path, m->sha_hex, deep);
      if (rc == 0 && (rc = edgert__deps_check(deps)) != 0)
        dlclose(fresh->handle);
    }
    if (rc != 0) {
      edgert__deps_release(deps);
      load_leave();
      close(fd);
      pthread_mutex_destroy(&m->lock);
      edgert__free(m);
      edgert__free(p);
      edgert__free(fresh);
      edgert__free(mp);
      return rc;
    }
    img = fresh;
    memcpy(img->sha, m->sha, 32);
    img->fd = fd;
    img->deps = deps;
    img->deepbind = deep;
    img->refs = 1;
    atomic_init(&img->quarantined, 0);
  }
  mp->image = img;
  mp->bias = img->bias;
  atomic_init(&mp->active, 1);
  atomic_init(&mp->retired, 0);
  atomic_init(&mp->closed, 0);
  mp->generation = 1;
  atomic_init(&m->cur, mp);
  m->shared = img->shared;
  registry_enter();
  if (mapped_now) {
    img->next = registry;
    registry = img;
  }
  handles_push(m);
  registry_leave();
  if (locked)
    load_leave();
  *out = m;
  return 0;
}

int edgert_module_load(const char *path, const char *expected_sha256_hex,
                       edgert_module_t **out) {
  return edgert_module_load_ex(path, expected_sha256_hex, NULL, out);
}

/* The bound functions of m sit at the same offsets in `img` (the same bytes,
 * so always, unless an IFUNC resolver chose differently this time).
 * Called with m->lock held. 0 or EDGERT_EINTEGRITY naming the function. */
static int same_offsets(edgert_module_t *m, const edgert__image_t *img, const char *path) {
  for (edgert_func_t *f = m->funcs; f != NULL; f = f->next) {
    dlerror();
    void *a = dlsym(img->handle, f->contract.function_name);
    if (a == NULL || (uintptr_t)a - img->bias != f->off)
      return edgert__error(EDGERT_EINTEGRITY,
                           "reloading %s: '%s' resolves to another place in the fresh copy "
                           "than in the first one; refused, the module keeps its mapping",
                           path, f->contract.function_name);
  }
  return 0;
}

int edgert_module_reload(edgert_module_t *m, const char *path, unsigned long *generation) {
  if (m != NULL && m->iso_opts != NULL)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "module %s is isolated: its workers are started anew after every "
                         "crash, so there is nothing to reload; load it again for new bytes",
                         m->path);
  if (m == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_reload: m must not be NULL");
  if (path == NULL)
    path = m->path;
  if (path[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_module_reload: the path is empty");
  if (atomic_load(&m->state) != 0)
    return edgert__error(EDGERT_EUNLOADED, "cannot reload module %s: it is unloaded", m->path);
  if (m->shared)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "cannot reload module %s: it is the process's own instance "
                         "(shared_with_process), which is never copied",
                         m->path);
  int deep = (m->flags & EDGERT_LOAD_ISOLATE_SYMBOLS) != 0;
  edgert__image_t *fresh = edgert__calloc(1, sizeof *fresh);
  if (fresh == NULL)
    return edgert__error(EDGERT_ENOMEM, "reloading %s: out of memory", path);
  /* The same seal-then-hash path as a load, against the module's identity:
   * a reload never changes what the handle's SHA-256 says it runs. */
  int fd = -1;
  size_t size = 0;
  unsigned char sha[32];
  struct stat src_st;
  int rc = read_verified(path, m->max_size, m->flags, &fd, &size, sha, &src_st);
  if (rc == 0 && CRYPTO_memcmp(sha, m->sha, 32) != 0) {
    char got[65];
    to_hex(sha, got);
    rc = edgert__error(EDGERT_EINTEGRITY,
                       "reloading %s: its SHA-256 is %s, but the module's identity is %s; "
                       "none of its code ran, the module keeps its mapping",
                       path, got, m->sha_hex);
  }
  if (rc != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    edgert__free(fresh);
    errno = e;
    return rc;
  }
  /* Always a fresh copy, never a shared one: the point of a reload is a
   * mapping with state of its own (the old one may have crashed). */
  load_enter();
  /* The fresh copy needs the dependencies the first one had mapped for it
   * (ld.so finds them by soname): it takes its own reference on them. */
  fresh->deps = edgert__deps_share(atomic_load(&m->cur)->image->deps, &rc);
  if (rc == 0) {
    rc = map_image(fresh, fd, path, m->sha_hex, deep);
    if (rc != 0)
      edgert__deps_release(fresh->deps);
  }
  if (rc != 0) {
    load_leave();
    close(fd);
    edgert__free(fresh);
    return rc;
  }
  memcpy(fresh->sha, m->sha, 32);
  fresh->fd = fd;
  fresh->deepbind = deep;
  fresh->refs = 1;
  atomic_init(&fresh->quarantined, 0);
  registry_enter();
  fresh->next = registry;
  registry = fresh;
  registry_leave();
  load_leave();

  pthread_mutex_lock(&m->lock);
  edgert__map_t *old = atomic_load(&m->cur);
  edgert__map_t *mp = NULL;
  if (atomic_load(&m->state) != 0)
    rc = edgert__error(EDGERT_EUNLOADED, "cannot reload module %s: it was unloaded meanwhile",
                       m->path);
  else if ((rc = same_offsets(m, fresh, path)) == 0 &&
           (mp = map_new(fresh, old->generation + 1)) == NULL)
    rc = edgert__error(EDGERT_ENOMEM, "reloading %s: out of memory", path);
  if (rc != 0) {
    pthread_mutex_unlock(&m->lock);
    image_release(fresh);
    return rc;
  }
  /* Publish the fresh mapping before retiring the old one: a call that
   * finds the old one retired rereads `cur` and gets this one. Calls that
   * counted themselves on the old one finish there; the last out of it
   * releases it. */
  mp->older = old;
  atomic_store(&m->cur, mp);
  atomic_store(&old->retired, 1);
  unsigned long gen = mp->generation;
  pthread_mutex_unlock(&m->lock);
  edgert__map_drop(old);
  if (generation != NULL)
    *generation = gen;
  return 0;
}

unsigned long edgert_module_generation(const edgert_module_t *m) {
  EDGERT__RETURN_IF_NULL(m, 0);
  return atomic_load(&((edgert_module_t *)m)->cur)->generation;
}

int edgert_module_stats(const edgert_module_t *m, edgert_module_stats_t *out) {
  if (m == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_stats: m and out must not be NULL");
  edgert_module_t *mm = (edgert_module_t *)m;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&mm->lock);
  edgert__map_t *cur = atomic_load(&mm->cur);
  out->generation = cur->generation;
  for (edgert__map_t *mp = cur; mp != NULL; mp = mp->older) {
    if (atomic_load(&mp->closed))
      continue;
    long a = atomic_load(&mp->active);
    out->live_mappings++;
    out->calls_in_flight += (size_t)(a > 0 ? a : 0) - (atomic_load(&mp->retired) ? 0 : 1);
    if (mp != cur)
      out->old_calls_in_flight += (size_t)(a > 0 ? a : 0);
  }
  pthread_mutex_unlock(&mm->lock);
  out->crashed_generation = atomic_load(&mm->crashed_generation);
  out->quarantined = edgert_module_quarantined(m);
  out->unloaded = atomic_load(&mm->state) != 0;
  return 0;
}

/* A new handle on the registry's image of `sha256_hex` (mapped in the mode
 * `opts` asks for), without reading any file. Unlike a load it does not
 * clear the image's quarantine: nothing was verified again. */
int edgert_module_open_loaded(const char *sha256_hex, const char *name,
                              const edgert_load_options_t *opts, edgert_module_t **out) {
  if (sha256_hex == NULL || name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_module_open_loaded: hash, name and out must not be NULL");
  if (name[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "edgert_module_open_loaded: the name is empty");
  size_t limit;
  unsigned flags;
  int orc = read_options(opts, "edgert_module_open_loaded", &limit, &flags);
  if (orc != 0)
    return orc;
  (void)limit; /* nothing is read: the size limit does not apply */
  if (opts != NULL && opts->isolation != NULL)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "edgert_module_open_loaded: finds in-process mappings only; an "
                         "isolated module is loaded from its file (edgert_module_load_ex)");
  int deep = (flags & EDGERT_LOAD_ISOLATE_SYMBOLS) != 0;
  unsigned char sha[32];
  int rc = parse_hex(sha256_hex, sha, "the SHA-256 to look up");
  if (rc != 0)
    return rc;
  edgert_module_t *m = edgert__calloc(1, sizeof *m);
  char *p = edgert__strdup(name);
  if (m == NULL || p == NULL) {
    edgert__free(m);
    edgert__free(p);
    return edgert__error(EDGERT_ENOMEM, "opening loaded module %s: out of memory", name);
  }
  registry_enter();
  /* A copy that never crashed first (the registry lists the newest first);
   * else a quarantined one, whose calls are refused until a reload from a
   * file maps a fresh copy: without a file nothing fresh can be made. */
  edgert__image_t *img = NULL;
  for (int pass = 0; pass < 2 && img == NULL; pass++)
    for (edgert__image_t *i = registry; i != NULL; i = i->next)
      if (memcmp(i->sha, sha, 32) == 0 && (i->deepbind == deep || i->shared) &&
          (pass == 1 || !atomic_load(&i->quarantined))) {
        img = i;
        break;
      }
  edgert__map_t *mp = img != NULL ? map_new(img, 1) : NULL;
  if (img == NULL || mp == NULL) {
    registry_leave();
    edgert__free(m);
    edgert__free(p);
    if (img != NULL)
      return edgert__error(EDGERT_ENOMEM, "opening loaded module %s: out of memory", name);
    char hex[65];
    to_hex(sha, hex);
    return edgert__error(EDGERT_ENOTFOUND,
                         "no module with SHA-256 %s is loaded in this process%s", hex,
                         deep ? " with isolated symbols" : "");
  }
  img->refs++; /* the mapping record's */
  memcpy(m->sha, sha, 32);
  to_hex(sha, m->sha_hex);
  m->path = p;
  m->flags = flags;
  m->max_size = EDGERT_MODULE_MAX_SIZE_DEFAULT;
  m->shared = img->shared;
  /* Every handle of these bytes has the same size: the bytes'. */
  for (edgert_module_t *h = handles; h != NULL; h = h->hnext)
    if (memcmp(h->sha, sha, 32) == 0) {
      m->size = h->size;
      m->max_size = h->max_size;
      break;
    }
  atomic_init(&m->state, 0);
  atomic_init(&m->crashed_generation, 0);
  atomic_init(&m->cur, mp);
  pthread_mutex_init(&m->lock, NULL);
  handles_push(m);
  registry_leave();
  *out = m;
  return 0;
}

void edgert_module_unload(edgert_module_t *m) {
  if (m == NULL)
    return;
  /* Under the handle's lock, so that a reload in progress either retires
   * its fresh mapping itself or finds the handle unloaded. */
  pthread_mutex_lock(&m->lock);
  int expected = 0;
  if (!atomic_compare_exchange_strong(&m->state, &expected, 1)) {
    pthread_mutex_unlock(&m->lock);
    return;
  }
  edgert__map_t *mp = atomic_load(&m->cur);
  atomic_store(&mp->retired, 1);
  pthread_mutex_unlock(&m->lock);
  edgert__map_drop(mp); /* outside the lock: dlclose runs destructors */
}

int edgert_module_unloaded(const edgert_module_t *m) {
  return m != NULL && atomic_load(&((edgert_module_t *)m)->state) != 0;
}

void edgert_module_free(edgert_module_t *m) {
  if (m == NULL)
    return;
  edgert_module_unload(m);
  registry_enter();
  if (m->hprev != NULL)
    m->hprev->hnext = m->hnext;
  else
    handles = m->hnext;
  if (m->hnext != NULL)
    m->hnext->hprev = m->hprev;
  registry_leave();
  edgert_func_t *f = m->funcs;
  while (f != NULL) {
    edgert_func_t *next = f->next;
    edgert__func_release(f);
    edgert__free(f);
    f = next;
  }
  edgert__map_t *mp = atomic_load(&m->cur);
  while (mp != NULL) {
    edgert__map_t *older = mp->older;
    edgert__free(mp);
    mp = older;
  }
  pthread_mutex_destroy(&m->lock);
  if (m->iso_opts != NULL) {
    edgert__free((char *)m->iso_opts->worker_path);
    edgert__free(m->iso_opts);
  }
  edgert__free(m->path);
  edgert__free(m);
}

/* ---- accessors ------------------------------------------------------------ */

const char *edgert_module_path(const edgert_module_t *m) { return m ? m->path : NULL; }
const char *edgert_module_sha256(const edgert_module_t *m) { return m ? m->sha_hex : NULL; }
size_t edgert_module_size(const edgert_module_t *m) { return m ? m->size : 0; }
int edgert_module_shared_with_process(const edgert_module_t *m) {
  return m != NULL && m->shared;
}
size_t edgert_module_dependency_count(const edgert_module_t *m) {
  if (m == NULL)
    return 0;
  edgert__map_t *mp = edgert__map_hold((edgert_module_t *)m);
  if (mp == NULL)
    return 0;
  size_t n = edgert__deps_listed(mp->image->deps, 0, NULL, NULL, NULL, NULL);
  edgert__map_drop(mp);
  return n;
}

int edgert_module_dependency(const edgert_module_t *m, size_t i, const char **name,
                             const char **path, const char **sha256_hex) {
  if (m == NULL || name == NULL || path == NULL || sha256_hex == NULL)
    return edgert__error(EDGERT_EINVAL,
                         "edgert_module_dependency: m, name, path and sha256_hex must not be "
                         "NULL");
  edgert__map_t *mp = edgert__map_hold((edgert_module_t *)m);
  if (mp == NULL)
    return edgert__error(EDGERT_EUNLOADED, "module %s is unloaded", m->path);
  size_t n = edgert__deps_listed(mp->image->deps, i, name, path, sha256_hex, NULL);
  edgert__map_drop(mp);
  if (i >= n)
    return edgert__error(EDGERT_ENOTFOUND, "module %s has %zu verified dependencies, not %zu",
                         m->path, n, i + 1);
  return 0;
}

int edgert_module_symbols_isolated(const edgert_module_t *m) {
  return m != NULL && (m->flags & EDGERT_LOAD_ISOLATE_SYMBOLS) != 0;
}

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
  /* Hold the mapping while looking at it: an unload may be releasing it. */
  edgert__map_t *mp = edgert__map_hold(mm);
  if (mp == NULL)
    return 0;
  int q = atomic_load(&mp->image->quarantined) != 0;
  edgert__map_drop(mp);
  return q;
}

/* ---- symbols -------------------------------------------------------------- */

/* Looks `name` up in the module's own object. want_func: STT_FUNC only. */
static int lookup(edgert_module_t *m, const char *name, int want_func, void **out,
                  uintptr_t *bias) {
  if (m == NULL || name == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "symbol lookup: NULL argument");
  if (name[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "symbol lookup: empty symbol name");
  if (m->iso_opts != NULL)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "'%s': module %s is isolated: its code is mapped only in its worker "
                         "processes, so its symbols have no address here",
                         name, m->path);
  edgert__map_t *mp = edgert__map_hold(m);
  if (mp == NULL)
    return edgert__error(EDGERT_EUNLOADED, "cannot look up '%s': module %s is unloaded",
                         name, m->path);
  int rc = 0;
  edgert__image_t *img = mp->image;
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
    rc = edgert__not_a_function(name, m->path, type == STT_OBJECT || !in_exec(img, a));
    goto done;
  }
  if (!want_func && type == STT_TLS) {
    rc = edgert__error(EDGERT_ENOTFOUND, "'%s' in module %s is thread-local", name, m->path);
    goto done;
  }
  *out = a;
  if (bias != NULL)
    *bias = img->bias;
done:
  edgert__map_drop(mp);
  return rc;
}

int edgert_module_address_of(edgert_module_t *m, const char *name, void **out) {
  return lookup(m, name, 0, out, NULL);
}

static void add_func(edgert_module_t *m, edgert_func_t *fn) {
  pthread_mutex_lock(&m->lock);
  for (edgert_func_t *f = m->funcs; f != NULL; f = f->next)
    if (!f->replaced && strcmp(f->contract.function_name, fn->contract.function_name) == 0)
      f->replaced = 1;
  fn->next = m->funcs;
  m->funcs = fn;
  pthread_mutex_unlock(&m->lock);
}

/* An isolated module's bind: the function must be one the verified bytes
 * define (their dynamic symbol table, read from the sealed copy: nothing is
 * mapped here), and its contract must be able to travel to a worker. The
 * worker resolves it again when it first calls it. */
static int bind_isolated(edgert_module_t *m, const edgert_contract_t *c, edgert_func_t **out) {
  int rc = edgert__iso_check_contract(c);
  if (rc != 0)
    return rc;
  edgert__map_t *mp = edgert__map_hold(m);
  if (mp == NULL)
    return edgert__error(EDGERT_EUNLOADED, "cannot bind '%s': module %s is unloaded",
                         c->function_name, m->path);
  uint64_t value = 0;
  rc = edgert__dyn_find_func(mp->image->fd, m->path, c->function_name, &value);
  if (rc == 0)
    rc = edgert__error(EDGERT_ENOTFOUND, "symbol '%s' is not defined in module %s",
                       c->function_name, m->path);
  edgert_func_t *fn = NULL;
  if (rc == 1 && (fn = edgert__calloc(1, sizeof *fn)) == NULL)
    rc = edgert__error(EDGERT_ENOMEM, "binding '%s': out of memory", c->function_name);
  if (rc == 1) {
    fn->module = m;
    fn->addr = NULL;
    fn->off = (uintptr_t)value;
    fn->contract = *c;
    fn->nargs = c->nargs;
    rc = edgert__func_prepare(fn);
    if (rc == 0) {
      fn->iso = 1;
      fn->iso_index = edgert__iso_func_index(mp->image->iso);
    } else {
      edgert__func_release(fn);
      edgert__free(fn);
      fn = NULL;
    }
  }
  edgert__map_drop(mp);
  if (rc != 0)
    return rc;
  add_func(m, fn);
  if (out != NULL)
    *out = fn;
  return 0;
}

int edgert_module_bind(edgert_module_t *m, const edgert_contract_t *c, edgert_func_t **out) {
  if (m == NULL || c == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_bind: module and contract must not be NULL");
  if (c->nargs > EDGERT_MAX_ARGS || memchr(c->function_name, '\0', sizeof c->function_name) == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_module_bind: malformed contract");
  if (m->iso_opts != NULL)
    return bind_isolated(m, c, out);
  void *addr = NULL;
  uintptr_t bias = 0;
  int rc = lookup(m, c->function_name, 1, &addr, &bias);
  if (rc != 0)
    return rc;
  edgert_func_t *fn = edgert__calloc(1, sizeof *fn);
  if (fn == NULL)
    return edgert__error(EDGERT_ENOMEM, "binding '%s': out of memory", c->function_name);
  fn->module = m;
  fn->addr = addr;
  fn->off = (uintptr_t)addr - bias;
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
void *edgert_func_address(const edgert_func_t *fn) {
  if (fn == NULL || fn->iso)
    return NULL;
  /* In the current mapping (records outlive reloads: no count needed to read it). */
  return (void *)(atomic_load(&fn->module->cur)->bias + fn->off);
}
int edgert_func_is_fast(const edgert_func_t *fn) {
  return fn != NULL && !fn->iso && edgert__func_trampolined(fn);
}
