/*
 * edgert-worker: runs the functions of one isolated module for one parent
 * (libedgert's src/isolate.c), one call at a time (docs/isolation.md).
 *
 * Invariants:
 * - Started by posix_spawn with the channel socket at fd EDGERT__CHAN_FD,
 *   stdin and stdout on /dev/null and stderr inherited. Before it reads
 *   anything it asks to die with its parent (PR_SET_PDEATHSIG, then checks
 *   that the parent is still the one that started it), drops the ability to
 *   gain privileges (PR_SET_NO_NEW_PRIVS) and closes every other descriptor.
 * - The module is the parent's sealed, verified memfd, received over the
 *   socket and mapped with dlopen("/proc/self/fd/N"): no file is read here.
 *   Only functions the module defines are bound (the symbol's object must
 *   be the module).
 * - Calls use libffi with the parent's own type descriptions (sizes and
 *   alignments included), so arguments and results have the same bytes as
 *   an in-process call; pointer arguments are translated to this process's
 *   mappings of the data area or of a shared region.
 * - The worker's main thread TID is in the channel's `own` word, which is
 *   in its robust futex list: whatever ends it, the kernel marks the word
 *   (FUTEX_OWNER_DIED) and wakes the parent (src/isolate_chan.h).
 * - A kernel's misbehaviour ends this process only: default signal actions
 *   for faults, and (sandbox "strict") a seccomp filter whose denials raise
 *   SIGSYS, handled here by writing the system call's name into the channel
 *   and dying by SIGSYS.
 */
#define _GNU_SOURCE
#include "../isolate_chan.h"

#include <dirent.h>
#include <dlfcn.h>
#include <ffi.h>
#include <link.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>

#ifdef EDGERT_HAVE_SECCOMP
#include <seccomp.h>
#endif

#ifndef FUTEX_WAITERS
#define FUTEX_WAITERS 0x80000000
#endif

typedef struct {
  int bound;
  void *addr;
  ffi_cif cif;
  ffi_type *ret;
  ffi_type *atypes[EDGERT__CHAN_MAXARGS];
  unsigned nfixed;
  int variadic;
} fnrec_t;

typedef struct {
  uint64_t id;
  void *base;
  size_t size;
} region_t;

static chan_hdr_t *hdr;
static unsigned char *data;
static size_t data_size;
static void *module;
static fnrec_t *fns;
static size_t nfns;
static region_t *regions;
static size_t nregions, cregions;

/* Before the handshake: the reason goes back to the parent on the socket. */
static void die(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  (void)chan_send(EDGERT__CHAN_FD, msg, sizeof msg, NULL, 0);
  _exit(127);
}

static void close_others(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, EDGERT__CHAN_FD + 1, ~0u, 0) == 0)
    return;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) {
    for (int fd = EDGERT__CHAN_FD + 1; fd < 65536; fd++)
      close(fd);
    return;
  }
  int dfd = dirfd(d);
  int fds[4096], n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 4096) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd > EDGERT__CHAN_FD && fd != dfd)
      fds[n++] = fd;
  }
  closedir(d);
  for (int i = 0; i < n; i++)
    close(fds[i]);
}

/* ---- types ----------------------------------------------------------------- */

typedef struct {
  uint16_t type, nelem;
  uint32_t size, align;
} rec_t;

static ffi_type *scalar(uint16_t t) {
  switch (t) {
  case FFI_TYPE_VOID: return &ffi_type_void;
  case FFI_TYPE_UINT8: return &ffi_type_uint8;
  case FFI_TYPE_SINT8: return &ffi_type_sint8;
  case FFI_TYPE_UINT16: return &ffi_type_uint16;
  case FFI_TYPE_SINT16: return &ffi_type_sint16;
  case FFI_TYPE_UINT32: return &ffi_type_uint32;
  case FFI_TYPE_SINT32: return &ffi_type_sint32;
  case FFI_TYPE_INT: return &ffi_type_sint;
  case FFI_TYPE_UINT64: return &ffi_type_uint64;
  case FFI_TYPE_SINT64: return &ffi_type_sint64;
  case FFI_TYPE_FLOAT: return &ffi_type_float;
  case FFI_TYPE_DOUBLE: return &ffi_type_double;
#if FFI_TYPE_LONGDOUBLE != FFI_TYPE_DOUBLE
  case FFI_TYPE_LONGDOUBLE: return &ffi_type_longdouble;
#endif
  case FFI_TYPE_POINTER: return &ffi_type_pointer;
  default: return NULL;
  }
}

/* One type tree from recs[*i..n) (pre-order). NULL on a malformed tree. */
static ffi_type *build(const rec_t *recs, size_t n, size_t *i, int depth) {
  if (*i >= n || depth > 64)
    return NULL;
  rec_t r = recs[(*i)++];
  if (r.type != FFI_TYPE_STRUCT)
    return scalar(r.type);
  ffi_type *t = calloc(1, sizeof *t);
  ffi_type **el = calloc((size_t)r.nelem + 1, sizeof *el);
  if (t == NULL || el == NULL)
    return NULL;
  for (unsigned k = 0; k < r.nelem; k++)
    if ((el[k] = build(recs, n, i, depth + 1)) == NULL)
      return NULL;
  t->type = FFI_TYPE_STRUCT;
  t->size = r.size;
  t->alignment = (unsigned short)r.align;
  t->elements = el;
  return t;
}

/* CHAN_OP_BIND: data holds the name (NUL-terminated, first 256 bytes),
 * then at 256: variadic, nfixed, nrec, then nrec records: the result's
 * tree and each argument's. Type trees are never freed (a worker binds
 * each function once). */
static int op_bind(void) {
  uint32_t k = hdr->fn;
  if (k >= 65536)
    return snprintf(hdr->msg, sizeof hdr->msg, "function index %u out of range", k), -1;
  if (k >= nfns) {
    size_t n = k + 16;
    fnrec_t *g = realloc(fns, n * sizeof *g);
    if (g == NULL)
      return snprintf(hdr->msg, sizeof hdr->msg, "out of memory"), -1;
    memset(g + nfns, 0, (n - nfns) * sizeof *g);
    fns = g;
    nfns = n;
  }
  fnrec_t *f = &fns[k];
  char name[256];
  memcpy(name, data, sizeof name);
  name[255] = '\0';
  uint32_t head[3];
  memcpy(head, data + 256, sizeof head);
  size_t nrec = head[2];
  if (head[1] > EDGERT__CHAN_MAXARGS || nrec > (data_size - 268) / sizeof(rec_t))
    return snprintf(hdr->msg, sizeof hdr->msg, "malformed bind request"), -1;
  const rec_t *recs = (const rec_t *)(data + 268);
  size_t i = 0;
  f->ret = build(recs, nrec, &i, 0);
  for (unsigned a = 0; a < head[1]; a++)
    f->atypes[a] = build(recs, nrec, &i, 0);
  for (unsigned a = 0; a < head[1]; a++)
    if (f->atypes[a] == NULL)
      f->ret = NULL;
  if (f->ret == NULL)
    return snprintf(hdr->msg, sizeof hdr->msg, "'%s': malformed or unknown types", name), -1;
  f->nfixed = head[1];
  f->variadic = head[0] != 0;
  dlerror();
  void *a = dlsym(module, name);
  Dl_info info;
  void *lm = NULL;
  if (a == NULL || !dladdr1(a, &info, &lm, RTLD_DL_LINKMAP) || lm == NULL) {
    const char *e = dlerror();
    return snprintf(hdr->msg, sizeof hdr->msg, "'%s' is not defined in the module%s%s", name,
                    e ? ": " : "", e ? e : ""), -1;
  }
  struct link_map *own = NULL;
  if (dlinfo(module, RTLD_DI_LINKMAP, &own) != 0 || lm != own)
    return snprintf(hdr->msg, sizeof hdr->msg, "'%s' resolves outside the module", name), -1;
  ffi_status st = f->variadic ? ffi_prep_cif_var(&f->cif, FFI_DEFAULT_ABI, f->nfixed, f->nfixed,
                                                 f->ret, f->atypes)
                              : ffi_prep_cif(&f->cif, FFI_DEFAULT_ABI, f->nfixed, f->ret,
                                             f->atypes);
  if (st != FFI_OK)
    return snprintf(hdr->msg, sizeof hdr->msg, "'%s': libffi refused the signature", name), -1;
  f->addr = a;
  f->bound = 1;
  return 0;
}

static region_t *find_region(uint64_t id) {
  for (size_t i = 0; i < nregions; i++)
    if (regions[i].id == id)
      return &regions[i];
  return NULL;
}

static void op_call(void) {
  uint32_t k = hdr->fn;
  if (k >= nfns || !fns[k].bound || hdr->nargs > EDGERT__CHAN_MAXARGS) {
    /* the parent binds before it calls: a protocol error ends the worker */
    raise(SIGKILL);
  }
  fnrec_t *f = &fns[k];
  void *av[EDGERT__CHAN_MAXARGS];
  chan_value_t v[EDGERT__CHAN_MAXARGS];
  unsigned n = hdr->nargs;
  for (unsigned i = 0; i < n; i++) {
    v[i] = hdr->v[i];
    av[i] = &v[i];
    switch (hdr->kind[i]) {
    case CHAN_ARG_DATA:
      v[i].p = data + v[i].u;
      break;
    case CHAN_ARG_STRUCT:
      av[i] = data + v[i].u;
      break;
    case CHAN_ARG_SHM: {
      region_t *r = find_region(hdr->shm_id[i]);
      if (r == NULL)
        raise(SIGKILL);
      v[i].p = (unsigned char *)r->base + v[i].u;
      break;
    }
    default:
      break;
    }
  }
  void *ret = data + hdr->ret_off;
  ffi_cif *cif = &f->cif;
  ffi_cif vcif;
  ffi_type *vt[EDGERT__CHAN_MAXARGS];
  if (f->variadic && n != f->nfixed) {
    for (unsigned i = 0; i < n; i++)
      vt[i] = i < f->nfixed ? f->atypes[i] : scalar(hdr->extra_type[i - f->nfixed]);
    for (unsigned i = f->nfixed; i < n; i++)
      if (vt[i] == NULL)
        raise(SIGKILL);
    if (ffi_prep_cif_var(&vcif, FFI_DEFAULT_ABI, f->nfixed, n, f->ret, vt) != FFI_OK)
      raise(SIGKILL);
    cif = &vcif;
  }
  if (hdr->use_errno) {
    errno = hdr->errno_in;
    ffi_call(cif, FFI_FN(f->addr), ret, av);
    hdr->errno_out = errno;
  } else {
    ffi_call(cif, FFI_FN(f->addr), ret, av);
  }
}

static int recv_one_fd(int *fd) {
  char b;
  int n = 0;
  if (chan_recv(EDGERT__CHAN_FD, &b, 1, fd, 1, &n) != 0 || n != 1)
    return -1;
  return 0;
}

static int op_data(void) {
  int fd;
  if (recv_one_fd(&fd) != 0)
    return snprintf(hdr->msg, sizeof hdr->msg, "no descriptor for the data area"), -1;
  size_t n = (size_t)hdr->data_size;
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return snprintf(hdr->msg, sizeof hdr->msg, "mapping %zu bytes: %s", n, strerror(errno)), -1;
  munmap(data, data_size);
  data = p;
  data_size = n;
  return 0;
}

static int op_shm_map(void) {
  int fd;
  if (recv_one_fd(&fd) != 0)
    return snprintf(hdr->msg, sizeof hdr->msg, "no descriptor for the shared region"), -1;
  size_t n = (size_t)hdr->data_size;
  if (nregions == cregions) {
    size_t c = cregions ? cregions * 2 : 16;
    region_t *g = realloc(regions, c * sizeof *g);
    if (g == NULL) {
      close(fd);
      return snprintf(hdr->msg, sizeof hdr->msg, "out of memory"), -1;
    }
    regions = g;
    cregions = c;
  }
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return snprintf(hdr->msg, sizeof hdr->msg, "mapping %zu bytes: %s", n, strerror(errno)), -1;
  regions[nregions].id = hdr->shm_id[0];
  regions[nregions].base = p;
  regions[nregions].size = n;
  nregions++;
  return 0;
}

static void op_shm_unmap(void) {
  region_t *r = find_region(hdr->shm_id[0]);
  if (r == NULL)
    return;
  munmap(r->base, r->size);
  *r = regions[--nregions];
}

/* ---- sandbox ----------------------------------------------------------- */

#ifdef EDGERT_HAVE_SECCOMP
/* System call names, resolved before the filter is installed: the SIGSYS
 * handler must not allocate (the kernel may have been inside malloc). */
#define NAMES 1024
static char names[NAMES][32];

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  int nr = si->si_syscall;
  if (nr >= 0 && nr < NAMES && names[nr][0] != '\0')
    memcpy(hdr->denied, names[nr], sizeof names[nr]);
  else
    snprintf(hdr->denied, sizeof hdr->denied, "syscall %d", nr);
  signal(sig, SIG_DFL);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGSYS);
  sigprocmask(SIG_UNBLOCK, &s, NULL);
  raise(SIGSYS);
  _exit(128 + SIGSYS);
}

/* The allow-list of sandbox "strict" (docs/isolation.md); everything else
 * traps (SIGSYS). NULL, or what failed. */
static const char *install_filter(void) {
  for (int i = 0; i < NAMES; i++) {
    char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
    if (n != NULL) {
      snprintf(names[i], sizeof names[i], "%s", n);
      free(n);
    }
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (ctx == NULL)
    return "seccomp_init";
  static const char *const allowed[] = {
      /* memory */
      "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "membarrier",
      /* futexes, threads (clone below), scheduling */
      "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq",
      "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler", "getcpu",
      "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
      /* clocks and sleeping */
      "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
      /* signals (kill and tgkill: this process only, below) */
      "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigtimedwait",
      "restart_syscall",
      /* files already open, or opened read-only (openat below) */
      "read", "pread64", "readv", "preadv", "lseek", "close", "fstat", "newfstatat", "statx",
      "stat", "lstat", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
      "getdents64", "fcntl", "getcwd", "uname", "sysinfo", "getrandom", "getrusage",
      "times", "prlimit64", "getrlimit",
      /* the end */
      "exit", "exit_group",
  };
  int rc = 0;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(allowed[i]);
    if (nr != __NR_SCMP_ERROR)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
  }
  /* writes: stdout (/dev/null) and stderr only */
  for (int fd = 1; fd <= 2 && rc == 0; fd++) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, SCMP_A0(SCMP_CMP_EQ, fd));
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(writev), 1, SCMP_A0(SCMP_CMP_EQ, fd));
  }
  /* the channel's socket: descriptors in (data area, shared regions), the
   * handshake out */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1,
                          SCMP_A0(SCMP_CMP_EQ, EDGERT__CHAN_FD));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendmsg), 1,
                          SCMP_A0(SCMP_CMP_EQ, EDGERT__CHAN_FD));
  /* opening read-only: no write access, no creation, no truncation */
  const scmp_datum_t wmask = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE;
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, wmask, 0));
#ifdef __NR_open
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, wmask, 0));
#endif
  /* threads, never processes: clone with CLONE_THREAD; clone3 says ENOSYS
   * (its flags are behind a pointer), so glibc falls back to clone */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  /* signals to itself only (raise, abort) */
  pid_t self = getpid();
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                          SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
  if (rc == 0)
    rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc == 0 ? NULL : strerror(-rc);
}
#endif

static void sandbox_strict(void) {
#ifdef EDGERT_HAVE_SECCOMP
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, NULL) != 0)
    die("cannot install the SIGSYS handler: %s", strerror(errno));
  const char *why = install_filter();
  if (why != NULL)
    die("cannot install the seccomp filter: %s", why);
#else
  die("sandbox \"strict\" is not available: edgert-worker was built without libseccomp");
#endif
}

/* The module's verified dependencies, leaves first, each from its sealed
 * memfd: mapped before the module, so that the dynamic linker, which finds
 * an object already loaded by its DT_SONAME, uses them for the module's
 * DT_NEEDED names instead of searching for files. Each must then answer to
 * its name (as the parent checks for an in-process load). */
static void map_dependencies(uint32_t n) {
  if (n > EDGERT__CHAN_MAXDEPS)
    die("edgert-worker: %u dependencies announced, more than %d", n, EDGERT__CHAN_MAXDEPS);
  for (uint32_t i = 0; i < n; i++) {
    chan_dep_t dep;
    int fd = -1, nfd = 0;
    if (chan_recv(EDGERT__CHAN_FD, &dep, sizeof dep, &fd, 1, &nfd) != 0 || nfd != 1)
      die("edgert-worker: dependency %u of %u did not arrive", i + 1, n);
    dep.soname[sizeof dep.soname - 1] = '\0';
    char name[64];
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
      die("edgert-worker: the verified dependency %s cannot be mapped: %s", dep.soname,
          dlerror());
    void *by_name = dlopen(dep.soname, RTLD_NOW | RTLD_NOLOAD);
    if (by_name != h) {
      struct link_map *lm = NULL;
      const char *who = by_name == NULL ? "nothing"
                        : dlinfo(by_name, RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL &&
                                  lm->l_name != NULL && lm->l_name[0] != '\0'
                            ? lm->l_name
                            : "another object";
      die("edgert-worker: after mapping the verified dependency %s, the name answers with "
          "%s (the worker program already has an object of that DT_SONAME); refused: leave "
          "it unlisted if it is a system library, or load the module in-process",
          dep.soname, who);
    }
    dlclose(by_name); /* the reference RTLD_NOLOAD took; h stays for the worker's life */
  }
}

/* ---- main ---------------------------------------------------------------- */

int main(void) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    _exit(126);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    _exit(126);
  close_others();
  chan_init_t init;
  int fds[4], nfd = 0;
  if (chan_recv(EDGERT__CHAN_FD, &init, sizeof init, fds, 4, &nfd) != 0 || nfd != 3 ||
      init.magic != EDGERT__CHAN_MAGIC || init.version != EDGERT__CHAN_VERSION)
    die("edgert-worker: no valid start message on fd %d (it is started by libedgert)",
        EDGERT__CHAN_FD);
  if (getppid() != init.parent_pid)
    _exit(126); /* the parent is gone already */
  /* Fault signals end this process with their default action (a parent
   * may have spawned us with some ignored or blocked). */
  static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS,
                               SIGPIPE, SIGTERM, SIGINT};
  sigset_t all;
  sigemptyset(&all);
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
    signal(faults[i], SIG_DFL);
  sigprocmask(SIG_SETMASK, &all, NULL);
  hdr = mmap(NULL, EDGERT__CHAN_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
  data_size = (size_t)init.data_size;
  data = mmap(NULL, data_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[2], 0);
  close(fds[1]);
  close(fds[2]);
  if (hdr == MAP_FAILED || data == MAP_FAILED)
    die("edgert-worker: cannot map the channel: %s", strerror(errno));
  mallopt(M_ARENA_MAX, 1);
  char name[64];
  map_dependencies(init.ndeps);
  snprintf(name, sizeof name, "/proc/self/fd/%d", fds[0]);
  module = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (module == NULL)
    die("edgert-worker: the module cannot be mapped: %s", dlerror());
  if (init.memory_limit != 0) {
    struct rlimit rl = {(rlim_t)init.memory_limit, (rlim_t)init.memory_limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      die("edgert-worker: cannot set the memory limit: %s", strerror(errno));
  }
  pid_t tid = (pid_t)syscall(SYS_gettid);
  static struct robust_list entry;
  static struct robust_list_head head;
  head.list.next = &entry;
  entry.next = &head.list;
  head.futex_offset = (long)((char *)&hdr->own - (char *)&entry);
  head.list_op_pending = NULL;
  atomic_store(&hdr->own, (uint32_t)tid);
  if (syscall(SYS_set_robust_list, &head, sizeof head) != 0)
    die("edgert-worker: set_robust_list failed: %s", strerror(errno));
  hdr->worker_pid = (int32_t)getpid();
  uint32_t seen = atomic_load(&hdr->req);
  if (init.sandbox == 1)
    sandbox_strict();
  char ok[512] = "";
  if (chan_send(EDGERT__CHAN_FD, ok, sizeof ok, NULL, 0) != 0)
    _exit(126);
  unsigned nospin = 0;
  int multi_cpu = sysconf(_SC_NPROCESSORS_ONLN) > 1;
  for (;;) {
    uint32_t r;
    unsigned spins = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int spinning = nospin == 0 && multi_cpu;
    if (nospin > 0)
      nospin--;
    while ((r = atomic_load(&hdr->req)) == seen) {
      /* spin up to ~50 us for the next call, then sleep on the word; after
       * a spin that saw nothing, the next 16 waits sleep at once */
      int more = spinning && (++spins & 31) != 0;
      if (spinning && !more) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        more = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 50000;
      }
      if (more) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield");
#endif
        continue;
      }
      if (spinning)
        nospin = 16;
      spinning = 0;
      atomic_store(&hdr->sleeping, 1);
      if (atomic_load(&hdr->req) == seen)
        chan_futex(&hdr->req, FUTEX_WAIT, seen, NULL);
      atomic_store(&hdr->sleeping, 0);
      spins = 0;
      clock_gettime(CLOCK_MONOTONIC, &t0);
    }
    seen = r;
    hdr->status = 0;
    switch (hdr->op) {
    case CHAN_OP_CALL:
      op_call();
      break;
    case CHAN_OP_BIND:
      hdr->status = op_bind();
      break;
    case CHAN_OP_DATA:
      hdr->status = op_data();
      break;
    case CHAN_OP_SHM_MAP:
      hdr->status = op_shm_map();
      break;
    case CHAN_OP_SHM_UNMAP:
      op_shm_unmap();
      break;
    default:
      raise(SIGKILL);
    }
    atomic_store(&hdr->done, r);
    uint32_t o = atomic_load(&hdr->own);
    if (o & FUTEX_WAITERS) {
      atomic_store(&hdr->own, (uint32_t)tid);
      chan_futex(&hdr->own, FUTEX_WAKE, 1, NULL);
    }
  }
}
