/*
 * isolate.c: the parent side of process isolation (edgert/isolate.h,
 * docs/isolation.md): worker processes, their channels, calls, budgets,
 * shared regions.
 *
 * Invariants:
 * - An isolated module's image (loader.c) owns one edgert__iso_t: its
 *   options, the sealed memfd of the verified bytes (borrowed from the
 *   image) and `nslots` worker slots. A slot is used by one call at a time
 *   (`busy`, under iso->mu); everything else of a busy slot belongs to the
 *   calling thread, which is the only one that starts, calls, kills and
 *   reaps its worker. The image is released (edgert__iso_free: every
 *   worker SIGKILLed and reaped, channels unmapped, sockets closed) only
 *   when no call is in flight (the loader's mapping count).
 * - A worker is started on the slot's first call (posix_spawn: never fork
 *   in a multi-threaded host), reused for every later call, and after a
 *   death, a timeout or an interrupt it is killed, reaped at once (no
 *   zombie) and its slot emptied: the next call starts a new one.
 * - A worker's death is seen at once: its TID word in the channel is in its
 *   robust futex list (src/isolate_chan.h). A wait also wakes every 50 ms
 *   (interrupt check, deadline, and waitid as a last resort).
 * - fork(): the child forgets the parent's workers (unmaps, closes its own
 *   copies of the descriptors, never signals them) in a pthread_atfork
 *   child handler; its first call starts its own.
 * - Shared regions: a process-wide registry of memfd mappings; a region is
 *   sent to a worker (its memfd over the socket) the first time a call
 *   passes a pointer into it, and unmapped there before the next call
 *   after it was freed.
 */
#include "loader_internal.h"
#include "isolate_chan.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <wchar.h>

extern char **environ;

#define DATA_MIN ((size_t)256 << 10)
/* How long a call spins on its completion word before it sleeps on it: long
 * enough for a short kernel's round trip, short enough not to starve the
 * worker of a CPU on a busy machine. */
#define SPIN_PARENT_S 20e-6
#define LAT_RING 1024u
#define SHM_MAX ((size_t)1 << 40)

typedef struct {
  pid_t pid;   /* 0: no worker */
  pid_t owner; /* the process that started it */
  int sock;
  chan_hdr_t *hdr;
  unsigned char *data;
  size_t data_size;
  unsigned char *bound; /* per function index: bound in this worker */
  size_t nbound;
  uint64_t *shm;        /* region ids this worker has mapped */
  size_t nshm, cshm;
  uint64_t shm_gen;     /* shm_gen when its freed regions were last unmapped */
  uint32_t seq;
  int busy;
  int started; /* a worker was started on this slot before */
  unsigned nospin; /* calls left that wait without spinning first (adaptive:
                      a spin that did not see the answer costs a CPU the
                      worker may need on a busy machine) */
} slot_t;

struct edgert__iso_s {
  edgert_isolate_options_t opts;
  char *worker_path; /* owned copy of opts.worker_path, or NULL */
  int fd;            /* the module's sealed memfd (borrowed from the image) */
  const edgert__deps_t *deps; /* its verified dependencies (borrowed, idem) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  slot_t *slots;
  unsigned nslots;
  atomic_uint nfuncs; /* function indices handed out */
  unsigned long long calls, crashes, timeouts, respawns;
  double lat[LAT_RING];
  unsigned nlat, latpos;
  edgert__iso_t *next, *prev; /* every live one (all_mu), for fork */
};

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static edgert__iso_t *all_isos;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static _Thread_local edgert_interrupt_fn intr_fn;
static _Thread_local void *intr_ud;
static _Thread_local char denied_name[64];

/* The spawner: one long-lived thread of libedgert starts every worker.
 * PR_SET_PDEATHSIG fires when the worker's parent THREAD ends, so a worker
 * started by a short-lived host thread (a thread pool's) would be killed
 * with it, in the middle of another thread's call. Restarted in a fork
 * child (fork_child resets it). */
typedef struct {
  const char *prog;
  const posix_spawn_file_actions_t *fa;
  const posix_spawnattr_t *at;
  pid_t pid;
  int err;
  int done;
} spawn_req_t;

static pthread_mutex_t sp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sp_cv = PTHREAD_COND_INITIALIZER;
static spawn_req_t *sp_req;
static int sp_running;

static void *spawner_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&sp_mu);
  for (;;) {
    while (sp_req == NULL || sp_req->done)
      pthread_cond_wait(&sp_cv, &sp_mu);
    spawn_req_t *r = sp_req;
    char *argv[] = {(char *)"edgert-worker", NULL};
    r->err = posix_spawn(&r->pid, r->prog, r->fa, r->at, argv, environ);
    r->done = 1;
    pthread_cond_broadcast(&sp_cv);
  }
  return NULL;
}

static int spawn_worker(const char *prog, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *at, pid_t *pid) {
  pthread_mutex_lock(&sp_mu);
  if (!sp_running) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 << 10);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* host signals never land on it */
    pthread_t t;
    int e = pthread_create(&t, &a, spawner_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (e != 0) {
      pthread_mutex_unlock(&sp_mu);
      return e;
    }
    sp_running = 1;
  }
  while (sp_req != NULL) /* one request at a time */
    pthread_cond_wait(&sp_cv, &sp_mu);
  spawn_req_t r = {prog, fa, at, 0, 0, 0};
  sp_req = &r;
  pthread_cond_broadcast(&sp_cv);
  while (!r.done)
    pthread_cond_wait(&sp_cv, &sp_mu);
  sp_req = NULL;
  pthread_cond_broadcast(&sp_cv);
  pthread_mutex_unlock(&sp_mu);
  *pid = r.pid;
  return r.err;
}

/* "SIGABRT" for any signal the core names (edgert_signal_name), else
 * "signal N". */
static const char *sig_name(int signo, char *buf, size_t size) {
  const char *n = edgert_signal_name(signo);
  if (strcmp(n, "signal") != 0)
    return n;
  snprintf(buf, size, "signal %d", signo);
  return buf;
}


/* ---- shared regions ---------------------------------------------------------- */

typedef struct shm_s {
  uint64_t id;
  unsigned char *base;
  size_t size;
  int fd;
  struct shm_s *next;
} shm_t;

static pthread_mutex_t shm_mu = PTHREAD_MUTEX_INITIALIZER;
static shm_t *shms;
static uint64_t shm_next_id = 1;
/* +1 per edgert_isolate_shm_free (written under shm_mu, read without it):
 * a worker whose slot saw this value has no freed region mapped (ids are
 * never reused, so an id that is not in `shms` any more was freed), and a
 * thread's cached region (shm_cached) is still live. */
static _Atomic uint64_t shm_gen = 1;
/* The region this thread's last isolated call found a pointer in, with
 * shm_gen as it was then: while shm_gen has not moved, that region is
 * live and a pointer inside it is found without taking shm_mu. */
static _Thread_local struct {
  uint64_t gen;
  shm_t r;
} shm_cached;

/* ---- helpers --------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int ncpus(void) {
  static int n;
  if (n == 0) {
    long k = sysconf(_SC_NPROCESSORS_ONLN);
    n = k > 0 ? (int)k : 1;
  }
  return n;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

void edgert_isolate_set_interrupt(edgert_interrupt_fn fn, void *ud) {
  intr_fn = fn;
  intr_ud = ud;
}

static void slot_forget(slot_t *s) {
  if (s->hdr != NULL)
    munmap(s->hdr, EDGERT__CHAN_HDR_SIZE);
  if (s->data != NULL)
    munmap(s->data, s->data_size);
  if (s->sock >= 0)
    close(s->sock);
  s->hdr = NULL;
  s->data = NULL;
  s->data_size = 0;
  s->sock = -1;
  s->pid = 0;
  s->seq = 0;
  edgert__free(s->bound);
  s->bound = NULL;
  s->nbound = 0;
  edgert__free(s->shm);
  s->shm = NULL;
  s->nshm = s->cshm = 0;
  s->shm_gen = 0;
}

/* Kills (SIGKILL) and reaps the slot's worker; *status gets waitpid's
 * status (-1 when it could not be read: SIGCHLD ignored). */
static void slot_kill(slot_t *s, int *status) {
  int st = -1;
  if (s->pid > 0 && s->owner == getpid()) {
    kill(s->pid, SIGKILL);
    pid_t r;
    do
      r = waitpid(s->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    if (r != s->pid)
      st = -1;
  }
  if (status != NULL)
    *status = st;
  slot_forget(s);
}

/* ---- fork ------------------------------------------------------------------ */

static void fork_prepare(void) {
  pthread_mutex_lock(&sp_mu);
  pthread_mutex_lock(&all_mu);
  for (edgert__iso_t *i = all_isos; i != NULL; i = i->next)
    pthread_mutex_lock(&i->mu);
  pthread_mutex_lock(&shm_mu);
}

static void fork_parent(void) {
  pthread_mutex_unlock(&shm_mu);
  for (edgert__iso_t *i = all_isos; i != NULL; i = i->next)
    pthread_mutex_unlock(&i->mu);
  pthread_mutex_unlock(&all_mu);
  pthread_mutex_unlock(&sp_mu);
}

/* The child keeps none of the parent's workers: its copies of their
 * channels and sockets go, the workers are never signalled. Slots busy
 * with another thread's call in the parent are free here (that call never
 * returns in the child). */
static void fork_child(void) {
  pthread_mutex_unlock(&shm_mu);
  for (edgert__iso_t *i = all_isos; i != NULL; i = i->next) {
    for (unsigned k = 0; k < i->nslots; k++) {
      slot_t *s = &i->slots[k];
      s->pid = 0;
      slot_forget(s);
      s->busy = 0;
    }
    pthread_mutex_unlock(&i->mu);
    /* never pthread_cond_destroy here: it waits for the parent's waiters */
    pthread_cond_init(&i->cv, NULL);
  }
  pthread_mutex_unlock(&all_mu);
  /* the spawner thread is the parent's: the child starts its own */
  sp_running = 0;
  sp_req = NULL;
  pthread_cond_init(&sp_cv, NULL); /* the parent's spawner waited on it */
  pthread_mutex_unlock(&sp_mu);
}

static void atfork_register(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* ---- options ----------------------------------------------------------------- */

int edgert__iso_check_options(const edgert_isolate_options_t *o, unsigned flags,
                              const char *path) {
  if (isnan(o->timeout) || o->timeout < 0)
    return edgert__error(EDGERT_EINVAL,
                         "loading %s isolated: timeout must be a number of seconds >= 0 "
                         "(0: none), not %g",
                         path, o->timeout);
  if (o->workers > EDGERT_ISOLATE_MAX_WORKERS)
    return edgert__error(EDGERT_EINVAL,
                         "loading %s isolated: workers must be 1 to %u, not %u", path,
                         EDGERT_ISOLATE_MAX_WORKERS, o->workers);
  if (o->sandbox != EDGERT_SANDBOX_NONE && o->sandbox != EDGERT_SANDBOX_STRICT)
    return edgert__error(EDGERT_EINVAL,
                         "loading %s isolated: unknown sandbox %d (EDGERT_SANDBOX_NONE or "
                         "EDGERT_SANDBOX_STRICT)",
                         path, (int)o->sandbox);
  if (o->worker_path != NULL && o->worker_path[0] == '\0')
    return edgert__error(EDGERT_EINVAL, "loading %s isolated: worker_path is empty", path);
  if (flags & EDGERT_LOAD_ISOLATE_SYMBOLS)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "loading %s isolated: EDGERT_LOAD_ISOLATE_SYMBOLS does not apply "
                         "(an isolated module's symbols are always its worker's own); drop "
                         "one of the two",
                         path);
  return 0;
}

int edgert__iso_new(const edgert_isolate_options_t *o, int fd, const edgert__deps_t *deps,
                    edgert__iso_t **out) {
  pthread_once(&atfork_once, atfork_register);
  edgert__iso_t *iso = edgert__calloc(1, sizeof *iso);
  unsigned n = o->workers == 0 ? 1 : o->workers;
  slot_t *slots = edgert__calloc(n, sizeof *slots);
  char *wp = o->worker_path != NULL ? edgert__strdup(o->worker_path) : NULL;
  if (iso == NULL || slots == NULL || (o->worker_path != NULL && wp == NULL)) {
    edgert__free(iso);
    edgert__free(slots);
    edgert__free(wp);
    return edgert__error(EDGERT_ENOMEM, "isolated load: out of memory");
  }
  iso->opts = *o;
  iso->opts.workers = n;
  iso->worker_path = wp;
  iso->opts.worker_path = wp;
  iso->fd = fd;
  iso->deps = deps;
  iso->slots = slots;
  iso->nslots = n;
  for (unsigned k = 0; k < n; k++)
    slots[k].sock = -1;
  atomic_init(&iso->nfuncs, 0);
  pthread_mutex_init(&iso->mu, NULL);
  pthread_cond_init(&iso->cv, NULL);
  pthread_mutex_lock(&all_mu);
  iso->next = all_isos;
  iso->prev = NULL;
  if (all_isos != NULL)
    all_isos->prev = iso;
  all_isos = iso;
  pthread_mutex_unlock(&all_mu);
  *out = iso;
  return 0;
}

void edgert__iso_free(edgert__iso_t *iso) {
  if (iso == NULL)
    return;
  pthread_mutex_lock(&all_mu);
  if (iso->prev != NULL)
    iso->prev->next = iso->next;
  else
    all_isos = iso->next;
  if (iso->next != NULL)
    iso->next->prev = iso->prev;
  pthread_mutex_unlock(&all_mu);
  for (unsigned k = 0; k < iso->nslots; k++)
    slot_kill(&iso->slots[k], NULL);
  pthread_mutex_destroy(&iso->mu);
  pthread_cond_destroy(&iso->cv);
  edgert__free(iso->slots);
  edgert__free(iso->worker_path);
  edgert__free(iso);
}

unsigned edgert__iso_func_index(edgert__iso_t *iso) {
  return atomic_fetch_add(&iso->nfuncs, 1);
}

/* ---- binding ----------------------------------------------------------------- */

static int is_pointer(edgert_ctype_t c) {
  return c == EDGERT_CT_CHAR_P || c == EDGERT_CT_WCHAR_P || c == EDGERT_CT_VOID_P ||
         c == EDGERT_CT_POINTER || c == EDGERT_CT_FUNCPTR;
}

/* The first pointer field of struct `s` (nested structs searched), as
 * "Outer.inner.p" in `buf`, or NULL. */
static const char *pointer_field(const edgert_struct_t *s, char *buf, size_t size, int depth) {
  if (s == NULL || depth > 16)
    return NULL;
  size_t n = edgert_struct_nfields(s);
  for (size_t i = 0; i < n; i++) {
    const edgert_struct_field_t *f = edgert_struct_field(s, i);
    if (f == NULL)
      continue;
    if (is_pointer(f->type.code)) {
      snprintf(buf, size, "struct %s field '%s'", edgert_struct_name(s), f->name);
      return buf;
    }
    if (f->type.code == EDGERT_CT_STRUCT && pointer_field(f->type.layout, buf, size, depth + 1))
      return buf;
  }
  return NULL;
}

static int refuse_type(const edgert_contract_t *c, const edgert_abi_type_t *t,
                       const char *what) {
  char buf[256];
  if (t->code == EDGERT_CT_FUNCPTR)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "binding '%s' isolated: %s is a callback (CFUNCTYPE): a function "
                         "of this process cannot be called from the worker",
                         c->function_name, what);
  if (t->layout != NULL && pointer_field(t->layout, buf, sizeof buf, 0) != NULL)
    return edgert__error(EDGERT_EUNSUPPORTED,
                         "binding '%s' isolated: %s holds a pointer (%s): a pointer into "
                         "this process means nothing in the worker",
                         c->function_name, what, buf);
  return 0;
}

int edgert__iso_check_contract(const edgert_contract_t *c) {
  char what[32];
  for (unsigned i = 0; i < c->nargs; i++) {
    snprintf(what, sizeof what, "argument %u", i + 1);
    int rc = refuse_type(c, &c->args[i], what);
    if (rc != 0)
      return rc;
  }
  if (is_pointer(c->ret.code) && c->ret.code != EDGERT_CT_FUNCPTR)
    return 0; /* an address of the worker's, returned as a number */
  return refuse_type(c, &c->ret, "the return type");
}

/* ---- the worker program ------------------------------------------------------ */

static int worker_program(const edgert__iso_t *iso, char *out, size_t size) {
  const char *p = iso->worker_path;
  if (p == NULL)
    p = getenv("EDGERT_WORKER");
  if (p != NULL && p[0] != '\0') {
    if (strlen(p) >= size)
      return edgert__error(EDGERT_EIO, "the worker program path is too long");
    strcpy(out, p);
    return 0;
  }
  Dl_info info;
  if (!dladdr((void *)&edgert_isolate_call, &info) || info.dli_fname == NULL)
    return edgert__error(EDGERT_EIO, "cannot find the edgert-worker program: libedgert's own "
                                     "path is unknown; set EDGERT_WORKER");
  const char *slash = strrchr(info.dli_fname, '/');
  size_t dl = slash != NULL ? (size_t)(slash - info.dli_fname) : 1;
  const char *dir = slash != NULL ? info.dli_fname : ".";
  snprintf(out, size, "%.*s/edgert-worker", (int)dl, dir);
  if (access(out, X_OK) == 0)
    return 0;
  char alt[4096];
  snprintf(alt, sizeof alt, "%.*s/../libexec/edgert-worker", (int)dl, dir);
  if (access(alt, X_OK) == 0 && strlen(alt) < size)
    strcpy(out, alt);
  return 0;
}

static int spawn_failed(const char *what, const char *path, int e) {
  return edgert__error(EDGERT_EIO, "isolated call: cannot start the worker %s: %s: %s", path,
                       what, strerror(e));
}

/* Starts the slot's worker and waits for its handshake. */
static int slot_start(edgert__iso_t *iso, slot_t *s, const char *module_path, double start) {
  char prog[4096];
  int rc = worker_program(iso, prog, sizeof prog);
  if (rc != 0)
    return rc;
  if (access(prog, X_OK) != 0) {
    int e = errno;
    return edgert__error(EDGERT_EIO,
                         "isolated call: the worker program %s %s (%s); set EDGERT_WORKER or "
                         "edgert_isolate_options_t.worker_path to edgert-worker",
                         prog, e == ENOENT ? "does not exist" : "is not executable",
                         strerror(e));
  }
  int sv[2] = {-1, -1}, hfd = -1, dfd = -1;
  void *hdr = MAP_FAILED, *data = MAP_FAILED;
  size_t dsize = DATA_MIN;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return spawn_failed("socketpair", prog, errno);
  if (sv[1] <= EDGERT__CHAN_FD) { /* dup2 onto itself would keep close-on-exec */
    int d = fcntl(sv[1], F_DUPFD_CLOEXEC, EDGERT__CHAN_FD + 1);
    if (d < 0) {
      rc = spawn_failed("fcntl", prog, errno);
      goto fail;
    }
    close(sv[1]);
    sv[1] = d;
  }
  hfd = memfd_create("edgert-channel", MFD_CLOEXEC);
  dfd = memfd_create("edgert-channel-data", MFD_CLOEXEC);
  if (hfd < 0 || dfd < 0 || ftruncate(hfd, EDGERT__CHAN_HDR_SIZE) != 0 ||
      ftruncate(dfd, (off_t)dsize) != 0) {
    rc = spawn_failed("the channel's memfd", prog, errno);
    goto fail;
  }
  hdr = mmap(NULL, EDGERT__CHAN_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, hfd, 0);
  data = mmap(NULL, dsize, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
  if (hdr == MAP_FAILED || data == MAP_FAILED) {
    rc = spawn_failed("mapping the channel", prog, errno);
    goto fail;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_adddup2(&fa, sv[1], EDGERT__CHAN_FD);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  sigset_t none, def;
  sigemptyset(&none);
  sigfillset(&def);
  sigdelset(&def, SIGKILL);
  sigdelset(&def, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int e = spawn_worker(prog, &fa, &at, &pid);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(sv[1]);
  sv[1] = -1;
  if (e != 0) {
    rc = spawn_failed("posix_spawn", prog, e);
    goto fail;
  }
  s->pid = pid;
  s->owner = getpid();
  s->sock = sv[0];
  s->hdr = hdr;
  s->data = data;
  s->data_size = dsize;
  s->seq = 0;
  chan_init_t init;
  memset(&init, 0, sizeof init);
  init.magic = EDGERT__CHAN_MAGIC;
  init.version = EDGERT__CHAN_VERSION;
  init.data_size = dsize;
  init.memory_limit = iso->opts.memory_limit;
  init.sandbox = (uint32_t)iso->opts.sandbox;
  init.parent_pid = getpid();
  size_t ndeps = edgert__deps_listed(iso->deps, 0, NULL, NULL, NULL, NULL);
  init.ndeps = (uint32_t)ndeps;
  int fds[3] = {iso->fd, hfd, dfd};
  int sent = chan_send(sv[0], &init, sizeof init, fds, 3);
  close(hfd);
  close(dfd);
  hfd = dfd = -1;
  /* the verified dependencies, each with its sealed memfd (leaves first) */
  for (size_t i = 0; i < ndeps && sent == 0; i++) {
    chan_dep_t dep;
    memset(&dep, 0, sizeof dep);
    const char *soname = NULL, *path = NULL, *hex = NULL;
    int dfd1 = -1;
    edgert__deps_listed(iso->deps, i, &soname, &path, &hex, &dfd1);
    snprintf(dep.soname, sizeof dep.soname, "%s", soname);
    sent = chan_send(sv[0], &dep, sizeof dep, &dfd1, 1);
  }
  char reply[512];
  int got = -1;
  if (sent == 0) {
    /* the handshake: the worker maps the module (its constructors run
     * there) and answers; an interrupt check every 50 ms */
    for (;;) {
      struct pollfd p = {s->sock, POLLIN, 0};
      int r = poll(&p, 1, 50);
      if (r > 0) {
        got = chan_recv(s->sock, reply, sizeof reply, NULL, 0, NULL);
        break;
      }
      if (intr_fn != NULL && intr_fn(intr_ud) != 0) {
        slot_kill(s, NULL);
        return edgert__error(EDGERT_EINTERRUPTED,
                             "isolated call: interrupted while the worker was starting");
      }
      /* the call's timeout covers the start: a module constructor that
       * spins in the worker must not hang the call */
      if (iso->opts.timeout > 0 && now_s() - start >= iso->opts.timeout) {
        pid_t wpid = s->pid;
        slot_kill(s, NULL);
        return edgert__error(EDGERT_ETIMEOUT,
                             "isolated call into module %s exceeded its timeout of %g s while "
                             "the worker (pid %d) was still starting (mapping the module and "
                             "running its constructors): the worker was killed; the next call "
                             "starts a new one",
                             module_path, iso->opts.timeout, (int)wpid);
      }
    }
  }
  if (got != 0 || reply[0] != '\0') {
    int st;
    pid_t wpid = s->pid;
    char denied[80] = "";
    if (((chan_hdr_t *)hdr)->denied[0] != '\0')
      snprintf(denied, sizeof denied, " (at the denied system call '%.40s')",
               ((chan_hdr_t *)hdr)->denied);
    slot_kill(s, &st);
    reply[sizeof reply - 1] = '\0';
    char how[96] = "";
    if (st != -1 && WIFEXITED(st))
      snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
    else if (st != -1 && WIFSIGNALED(st))
    {
      char sb[32];
      snprintf(how, sizeof how, "was killed by %s", sig_name(WTERMSIG(st), sb, sizeof sb));
    }
    return edgert__error(EDGERT_EIO,
                         "isolated module %s: its worker %s (pid %d) did not start: %s%s%s%s",
                         module_path, prog, (int)wpid,
                         got == 0 ? reply : "it ended before answering",
                         how[0] ? "; it " : "", how, denied);
  }
  pthread_mutex_lock(&iso->mu);
  if (s->started)
    iso->respawns++;
  pthread_mutex_unlock(&iso->mu);
  s->started = 1;
  return 0;
fail:
  e = errno;
  if (sv[0] >= 0)
    close(sv[0]);
  if (sv[1] >= 0)
    close(sv[1]);
  if (hfd >= 0)
    close(hfd);
  if (dfd >= 0)
    close(dfd);
  if (hdr != MAP_FAILED)
    munmap(hdr, EDGERT__CHAN_HDR_SIZE);
  if (data != MAP_FAILED)
    munmap(data, dsize);
  errno = e;
  return rc;
}

/* ---- waiting ----------------------------------------------------------------- */

enum { W_DONE = 0, W_DIED, W_TIMEOUT, W_INTERRUPTED };

static int worker_gone(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD;
  return si.si_pid == pid;
}

static int wait_done(const edgert__iso_t *iso, slot_t *s, uint32_t seq, double start) {
  chan_hdr_t *h = s->hdr;
  double deadline = iso->opts.timeout > 0 ? start + iso->opts.timeout : 0;
  double next_check = 0;
  unsigned spins = 0;
  int spinning = s->nospin == 0 && ncpus() > 1;
  if (s->nospin > 0)
    s->nospin--;
  double start_spin = spinning ? now_s() : 0;
  for (;;) {
    if (atomic_load(&h->done) == seq)
      return W_DONE;
    uint32_t o = atomic_load(&h->own);
    if ((o & FUTEX_OWNER_DIED) || (o & FUTEX_TID_MASK) == 0)
      return W_DIED;
    if (spinning) {
      cpu_relax();
      if ((++spins & 31) != 0)
        continue;
      if (now_s() - start_spin < SPIN_PARENT_S)
        continue;
      spinning = 0;
      s->nospin = 16;
    }
    double now = now_s();
    if (deadline > 0 && now >= deadline)
      return W_TIMEOUT;
    if (now >= next_check) {
      if (next_check != 0 && worker_gone(s->pid))
        return W_DIED;
      next_check = now + 0.05;
      if (intr_fn != NULL && intr_fn(intr_ud) != 0)
        return W_INTERRUPTED;
    }
    if (!(o & FUTEX_WAITERS)) {
      if (!atomic_compare_exchange_strong(&h->own, &o, o | FUTEX_WAITERS))
        continue;
      o |= FUTEX_WAITERS;
    }
    if (atomic_load(&h->done) == seq)
      return W_DONE;
    double left = next_check - now;
    if (deadline > 0 && deadline - now < left)
      left = deadline - now;
    if (left < 0)
      left = 0;
    struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
    if (chan_futex(&h->own, FUTEX_WAIT, o, &ts) != 0 && errno == EINTR && intr_fn != NULL &&
        intr_fn(intr_ud) != 0)
      return W_INTERRUPTED;
  }
}

/* Posts the request in the slot's header and waits. */
static int post(const edgert__iso_t *iso, slot_t *s, uint32_t op, double start) {
  chan_hdr_t *h = s->hdr;
  h->op = op;
  uint32_t seq = ++s->seq;
  if (seq == 0)
    seq = ++s->seq;
  atomic_store(&h->req, seq);
  if (atomic_load(&h->sleeping))
    chan_futex(&h->req, FUTEX_WAKE, 1, NULL);
  return wait_done(iso, s, seq, start);
}

/* ---- calls --------------------------------------------------------------------- */

static slot_t *acquire(edgert__iso_t *iso) {
  pthread_mutex_lock(&iso->mu);
  for (;;) {
    for (unsigned k = 0; k < iso->nslots; k++)
      if (!iso->slots[k].busy) {
        iso->slots[k].busy = 1;
        pthread_mutex_unlock(&iso->mu);
        return &iso->slots[k];
      }
    pthread_cond_wait(&iso->cv, &iso->mu);
  }
}

static void release(edgert__iso_t *iso, slot_t *s, int counted, double lat_us, int outcome) {
  pthread_mutex_lock(&iso->mu);
  s->busy = 0;
  if (counted) {
    iso->calls++;
    if (outcome == W_DIED)
      iso->crashes++;
    else if (outcome == W_TIMEOUT)
      iso->timeouts++;
    else if (outcome == W_DONE) {
      iso->lat[iso->latpos] = lat_us;
      iso->latpos = (iso->latpos + 1) % LAT_RING;
      if (iso->nlat < LAT_RING)
        iso->nlat++;
    }
  }
  pthread_cond_signal(&iso->cv);
  pthread_mutex_unlock(&iso->mu);
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* Replaces the slot's data area by one of at least `need` bytes. */
static int grow_data(const edgert__iso_t *iso, slot_t *s, size_t need, double start) {
  size_t n = s->data_size;
  while (n < need)
    n *= 2;
  int fd = memfd_create("edgert-channel-data", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)n) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return edgert__error(EDGERT_ENOMEM, "isolated call: cannot make a %zu-byte channel: %s", n,
                         strerror(e));
  }
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    return edgert__error(EDGERT_ENOMEM, "isolated call: cannot map a %zu-byte channel: %s", n,
                         strerror(e));
  }
  char b = 0;
  int rc = chan_send(s->sock, &b, 1, &fd, 1);
  close(fd);
  s->hdr->data_size = n;
  if (rc != 0 || post(iso, s, CHAN_OP_DATA, start) != W_DONE || s->hdr->status != 0) {
    munmap(p, n);
    return -1; /* the caller reports the worker's state */
  }
  munmap(s->data, s->data_size);
  s->data = p;
  s->data_size = n;
  return 0;
}

/* Serializes a libffi type tree (pre-order records). */
typedef struct {
  uint16_t type, nelem;
  uint32_t size, align;
} rec_t;

static int put_type(const ffi_type *t, rec_t *recs, size_t cap, size_t *n, int depth) {
  if (*n >= cap || depth > 64)
    return -1;
  rec_t *r = &recs[(*n)++];
  r->type = t->type;
  r->size = (uint32_t)t->size;
  r->align = t->alignment;
  r->nelem = 0;
  if (t->type != FFI_TYPE_STRUCT)
    return 0;
  for (ffi_type **e = t->elements; *e != NULL; e++) {
    r->nelem++;
    if (put_type(*e, recs, cap, n, depth + 1) != 0)
      return -1;
  }
  return 0;
}

static int bind_in(const edgert__iso_t *iso, slot_t *s, edgert_func_t *fn, double start,
                   int *outcome) {
  const edgert_contract_t *c = &fn->contract;
  size_t cap = (s->data_size - 268) / sizeof(rec_t);
  rec_t *recs = (rec_t *)(void *)(s->data + 268);
  size_t n = 0;
  memset(s->data, 0, 256);
  snprintf((char *)s->data, 256, "%s", c->function_name);
  int bad = put_type(fn->cif.rtype, recs, cap, &n, 0);
  for (unsigned i = 0; i < c->nargs && bad == 0; i++)
    bad = put_type(fn->atypes[i], recs, cap, &n, 0);
  if (bad != 0)
    return edgert__error(EDGERT_ELIMIT, "binding '%s' in its worker: its types do not fit the "
                         "channel", c->function_name);
  uint32_t head[3] = {c->variadic ? 1u : 0u, c->nargs, (uint32_t)n};
  memcpy(s->data + 256, head, sizeof head);
  s->hdr->fn = fn->iso_index;
  *outcome = post(iso, s, CHAN_OP_BIND, start);
  if (*outcome != W_DONE)
    return 1;
  if (s->hdr->status != 0) {
    s->hdr->msg[sizeof s->hdr->msg - 1] = '\0';
    return edgert__error(EDGERT_ENOTFOUND, "binding '%s' in the worker of module %s: %s",
                         c->function_name, fn->module->path, s->hdr->msg);
  }
  if (fn->iso_index >= s->nbound) {
    size_t nb = fn->iso_index + 16;
    unsigned char *g = edgert__realloc(s->bound, nb);
    if (g == NULL)
      return edgert__error(EDGERT_ENOMEM, "binding '%s': out of memory", c->function_name);
    memset(g + s->nbound, 0, nb - s->nbound);
    s->bound = g;
    s->nbound = nb;
  }
  s->bound[fn->iso_index] = 1;
  return 0;
}

/* The shared region holding [p, p + n), or NULL (shm_mu held). */
static shm_t *shm_find(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  for (shm_t *r = shms; r != NULL; r = r->next) {
    uintptr_t b = (uintptr_t)r->base;
    if (a >= b && a - b <= r->size && n <= r->size - (a - b))
      return r;
  }
  return NULL;
}

static int slot_has_shm(const slot_t *s, uint64_t id) {
  for (size_t i = 0; i < s->nshm; i++)
    if (s->shm[i] == id)
      return 1;
  return 0;
}

/* Unmaps in the worker the regions freed since it last looked (W_DONE or a
 * worker state). One compare when nothing was freed. */
static int sync_freed(const edgert__iso_t *iso, slot_t *s, double start) {
  uint64_t gen = atomic_load_explicit(&shm_gen, memory_order_acquire);
  if (s->shm_gen == gen || s->nshm == 0) {
    s->shm_gen = gen;
    return W_DONE;
  }
  for (size_t i = 0; i < s->nshm;) {
    uint64_t id = s->shm[i];
    int live = 0;
    pthread_mutex_lock(&shm_mu);
    for (shm_t *r = shms; r != NULL && !live; r = r->next)
      live = r->id == id;
    pthread_mutex_unlock(&shm_mu);
    if (live) {
      i++;
      continue;
    }
    s->hdr->shm_id[0] = id;
    int w = post(iso, s, CHAN_OP_SHM_UNMAP, start);
    if (w != W_DONE)
      return w;
    s->shm[i] = s->shm[--s->nshm];
  }
  s->shm_gen = gen;
  return W_DONE;
}

/* Sends region r (its memfd) to the worker. W_DONE, a worker state, or -1
 * (message set). */
static int send_shm(const edgert__iso_t *iso, slot_t *s, uint64_t id, int fd, size_t size,
                    double start) {
  if (s->nshm == s->cshm) {
    size_t c = s->cshm ? s->cshm * 2 : 8;
    uint64_t *g = edgert__realloc(s->shm, c * sizeof *g);
    if (g == NULL)
      return edgert__error(EDGERT_ENOMEM, "isolated call: out of memory"), -1;
    s->shm = g;
    s->cshm = c;
  }
  char b = 0;
  if (chan_send(s->sock, &b, 1, &fd, 1) != 0)
    return W_DIED;
  s->hdr->shm_id[0] = id;
  s->hdr->data_size = size;
  int w = post(iso, s, CHAN_OP_SHM_MAP, start);
  if (w != W_DONE)
    return w;
  if (s->hdr->status != 0) {
    s->hdr->msg[sizeof s->hdr->msg - 1] = '\0';
    return edgert__error(EDGERT_EIO, "isolated call: the worker cannot map a shared region: %s",
                         s->hdr->msg), -1;
  }
  s->shm[s->nshm++] = id;
  return W_DONE;
}

static const char *fn_name(const edgert_func_t *fn) { return fn->contract.function_name; }

/* The outcome of a call whose worker did not answer: the worker is killed
 * and reaped, the slot emptied, the error reported. */
static int worker_failed(edgert__iso_t *iso, slot_t *s, edgert_func_t *fn, int outcome) {
  (void)iso;
  pid_t pid = s->pid;
  const char *denied = "";
  if (s->hdr != NULL && s->hdr->denied[0] != '\0') {
    memcpy(denied_name, s->hdr->denied, sizeof denied_name);
    denied_name[sizeof denied_name - 1] = '\0';
    denied = denied_name;
  }
  int st;
  slot_kill(s, &st);
  const char *mod = fn->module->path;
  if (outcome == W_TIMEOUT)
    return edgert__error(EDGERT_ETIMEOUT,
                         "isolated call of '%s' (module %s) exceeded its timeout of %g s: its "
                         "worker (pid %d) was killed; the next call starts a new one",
                         fn_name(fn), mod, iso->opts.timeout, (int)pid);
  if (outcome == W_INTERRUPTED)
    return edgert__error(EDGERT_EINTERRUPTED,
                         "isolated call of '%s' (module %s) interrupted: its worker (pid %d) "
                         "was killed",
                         fn_name(fn), mod, (int)pid);
  int signo = 0, status = -1;
  char how[160];
  if (st == -1) {
    snprintf(how, sizeof how, "died (its status could not be read: SIGCHLD is ignored?)");
  } else if (WIFEXITED(st)) {
    status = WEXITSTATUS(st);
    snprintf(how, sizeof how, "called exit(%d)", status);
  } else if (WIFSIGNALED(st)) {
    signo = WTERMSIG(st);
    char sb[32];
    snprintf(how, sizeof how, "was killed by %s", sig_name(signo, sb, sizeof sb));
  } else {
    snprintf(how, sizeof how, "died");
  }
  edgert__crash_isolated(signo, status, (int)pid, denied, fn_name(fn), mod);
  if (denied[0] != '\0')
    return edgert__error(EDGERT_ECRASH,
                         "isolated kernel '%s' (module %s) made a denied system call '%s' "
                         "(sandbox \"strict\"): its worker (pid %d) was ended by SIGSYS; this "
                         "process was not affected",
                         fn_name(fn), mod, denied, (int)pid);
  return edgert__error(EDGERT_ECRASH,
                       "isolated kernel '%s' (module %s) crashed: its worker (pid %d) %s; "
                       "this process was not affected, the next call starts a new worker",
                       fn_name(fn), mod, (int)pid, how);
}

int edgert__iso_call(edgert_func_t *fn, edgert_value_t *values, size_t nvalues,
                     const edgert_abi_type_t *extra, const edgert_arg_buffer_t *bufs,
                     void *ret) {
  edgert_module_t *m = fn->module;
  const edgert_contract_t *c = &fn->contract;
  edgert__map_t *mp = edgert__map_hold(m);
  if (mp == NULL)
    return edgert__error(EDGERT_EUNLOADED, "cannot call '%s': module %s is unloaded",
                         c->function_name, m->path);
  edgert__iso_t *iso = mp->image->iso;
  slot_t *s = acquire(iso);
  double start = now_s();
  int rc = 0, outcome = W_DONE, counted = 0;
  if (s->pid != 0) {
    uint32_t o = atomic_load(&s->hdr->own);
    if ((o & FUTEX_OWNER_DIED) || (o & FUTEX_TID_MASK) == 0)
      slot_kill(s, NULL); /* died while idle (a kill from outside): start anew */
  }
  if (s->pid == 0 && (rc = slot_start(iso, s, m->path, start)) != 0) {
    counted = rc == EDGERT_ETIMEOUT; /* a start that overran the timeout counts as one */
    if (counted)
      outcome = W_TIMEOUT;
    goto out;
  }
  counted = 1;
  /* freed shared regions first, then the function's binding */
  outcome = sync_freed(iso, s, start);
  if (outcome != W_DONE)
    goto dead;
  if (fn->iso_index >= s->nbound || !s->bound[fn->iso_index]) {
    rc = bind_in(iso, s, fn, start, &outcome);
    if (rc == 1)
      goto dead;
    if (rc != 0)
      goto out;
  }
  /* the data area: the result first, then buffers and struct arguments */
  size_t rsize = 16;
  if (c->ret.code == EDGERT_CT_STRUCT)
    rsize = edgert_struct_size(c->ret.layout) > 16 ? edgert_struct_size(c->ret.layout) : 16;
  size_t need = align_up(rsize, 64);
  size_t len[EDGERT_MAX_ARGS];
  shm_t reg[EDGERT_MAX_ARGS];
  uint8_t kind[EDGERT_MAX_ARGS];
  size_t offs[EDGERT_MAX_ARGS];
  for (size_t i = 0; i < nvalues; i++) {
    edgert_ctype_t code = i < c->nargs ? c->args[i].code : extra[i - c->nargs].code;
    kind[i] = CHAN_ARG_VALUE;
    len[i] = 0;
    if (code == EDGERT_CT_STRUCT) {
      kind[i] = CHAN_ARG_STRUCT;
      len[i] = edgert_struct_size(c->args[i].layout);
    } else if (is_pointer(code) && values[i].p != NULL) {
      size_t nb = bufs != NULL ? bufs[i].nbytes : 0;
      uintptr_t a = (uintptr_t)values[i].p, b = (uintptr_t)shm_cached.r.base;
      size_t want = nb ? nb : 1;
      shm_t *r = NULL;
      if (shm_cached.gen == atomic_load_explicit(&shm_gen, memory_order_acquire) &&
          a >= b && a - b <= shm_cached.r.size && want <= shm_cached.r.size - (a - b)) {
        reg[i] = shm_cached.r;
        r = &reg[i];
      } else {
        pthread_mutex_lock(&shm_mu);
        r = shm_find(values[i].p, want);
        if (r != NULL) {
          reg[i] = *r;
          shm_cached.r = *r;
          shm_cached.gen = atomic_load_explicit(&shm_gen, memory_order_relaxed);
        }
        pthread_mutex_unlock(&shm_mu);
      }
      if (r != NULL) {
        kind[i] = CHAN_ARG_SHM;
        continue;
      }
      kind[i] = CHAN_ARG_DATA;
      if (nb != 0 || (bufs != NULL && bufs[i].flags != 0)) /* flags: the size is known, 0 too */
        len[i] = nb;
      else if (code == EDGERT_CT_CHAR_P)
        len[i] = strlen(values[i].p) + 1;
      else if (code == EDGERT_CT_WCHAR_P)
        len[i] = (wcslen(values[i].p) + 1) * sizeof(wchar_t);
      else {
        rc = edgert__error(EDGERT_EINVAL,
                           "isolated call of '%s': argument %zu is a pointer to memory of "
                           "unknown size: pass its size (edgert_isolate_call) or use shared "
                           "memory (edgert_isolate_shm_alloc, a shared list)",
                           c->function_name, i + 1);
        counted = 0;
        goto out;
      }
    }
    need += align_up(len[i], 64);
  }
  if (need > s->data_size && grow_data(iso, s, need, start) != 0) {
    uint32_t o = atomic_load(&s->hdr->own);
    if ((o & FUTEX_OWNER_DIED) || (o & FUTEX_TID_MASK) == 0) {
      outcome = W_DIED;
      goto dead;
    }
    rc = edgert__error(EDGERT_ENOMEM, "isolated call of '%s': cannot grow the channel to %zu "
                       "bytes", c->function_name, need);
    goto out;
  }
  /* shared regions this worker has not mapped yet (each post reuses the
   * header, so the request is written after) */
  for (size_t i = 0; i < nvalues; i++)
    if (kind[i] == CHAN_ARG_SHM && !slot_has_shm(s, reg[i].id)) {
      int w = send_shm(iso, s, reg[i].id, reg[i].fd, reg[i].size, start);
      if (w == -1) {
        rc = EDGERT_EIO;
        goto out;
      }
      if (w != W_DONE) {
        outcome = w;
        goto dead;
      }
    }
  chan_hdr_t *h = s->hdr;
  size_t off = align_up(rsize, 64);
  for (size_t i = 0; i < nvalues; i++) {
    h->kind[i] = kind[i];
    if (i >= c->nargs)
      h->extra_type[i - c->nargs] = FFI_TYPE_POINTER;
    if (kind[i] == CHAN_ARG_VALUE) {
      memcpy(&h->v[i], &values[i], sizeof h->v[i]);
      if (i >= c->nargs) {
        edgert_abi_type_t p = edgert_abi_type_promote(&extra[i - c->nargs]);
        h->extra_type[i - c->nargs] = edgert__ffi_type_of(p.code)->type;
        if (extra[i - c->nargs].code == EDGERT_CT_FLOAT)
          h->v[i].d = values[i].f;
      }
      continue;
    }
    if (kind[i] == CHAN_ARG_SHM) {
      h->shm_id[i] = reg[i].id;
      h->v[i].u = (uint64_t)((unsigned char *)values[i].p - reg[i].base);
      continue;
    }
    offs[i] = off;
    h->v[i].u = off;
    unsigned flags = bufs != NULL ? bufs[i].flags : 0;
    if (kind[i] == CHAN_ARG_STRUCT || !(bufs != NULL && bufs[i].nbytes != 0) ||
        (flags & EDGERT_BUF_IN))
      memcpy(s->data + off, values[i].p, len[i]);
    else
      memset(s->data + off, 0, len[i]);
    off += align_up(len[i], 64);
  }
  h->fn = fn->iso_index;
  h->nargs = (uint32_t)nvalues;
  h->nextra = (uint32_t)(nvalues - c->nargs);
  h->use_errno = c->use_errno ? 1u : 0u;
  h->errno_in = edgert_get_errno();
  h->ret_off = 0;
  outcome = post(iso, s, CHAN_OP_CALL, start);
  if (outcome != W_DONE)
    goto dead;
  if (ret != NULL && c->ret.code != EDGERT_CT_VOID)
    memcpy(ret, s->data, rsize);
  if (c->use_errno)
    edgert_set_errno(h->errno_out);
  for (size_t i = 0; i < nvalues; i++)
    if (kind[i] == CHAN_ARG_DATA && bufs != NULL && bufs[i].nbytes != 0 &&
        (bufs[i].flags & EDGERT_BUF_OUT))
      memcpy(values[i].p, s->data + offs[i], len[i]);
  release(iso, s, 1, (now_s() - start) * 1e6, W_DONE);
  edgert__map_drop(mp);
  return 0;
dead:
  rc = worker_failed(iso, s, fn, outcome);
out:
  release(iso, s, counted, 0, outcome);
  edgert__map_drop(mp);
  return rc;
}

/* ---- public ------------------------------------------------------------------ */

int edgert_isolate_call(edgert_func_t *fn, edgert_value_t *values,
                        const edgert_arg_buffer_t *bufs, void *ret) {
  if (fn == NULL || (values == NULL && fn->nargs > 0))
    return edgert__error(EDGERT_EINVAL, "edgert_isolate_call: NULL function or values");
  if (!fn->iso)
    return edgert_func_call_values(fn, values, ret);
  if (fn->contract.variadic)
    return edgert__error(EDGERT_EINVAL, "edgert_isolate_call: '%s' is variadic: use "
                         "edgert_func_call_variadic", fn->contract.function_name);
  edgert_value_t none[1];
  return edgert__iso_call(fn, values ? values : none, fn->nargs, NULL, bufs, ret);
}

int edgert_isolate_options(const edgert_module_t *m, edgert_isolate_options_t *out) {
  if (m == NULL || m->iso_opts == NULL)
    return 0;
  if (out != NULL)
    *out = *m->iso_opts;
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int edgert_isolate_stats(const edgert_module_t *m, edgert_isolate_stats_t *out) {
  if (m == NULL || out == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_isolate_stats: module and out must not be NULL");
  edgert__map_t *mp = edgert__map_hold((edgert_module_t *)m);
  if (mp == NULL || mp->image->iso == NULL) {
    if (mp != NULL)
      edgert__map_drop(mp);
    if (mp == NULL && m->iso_opts != NULL) { /* unloaded: nothing running any more */
      memset(out, 0, sizeof *out);
      return 0;
    }
    return edgert__error(EDGERT_EINVAL, "edgert_isolate_stats: module %s is not isolated",
                         m->path);
  }
  edgert__iso_t *iso = mp->image->iso;
  double *lat = edgert__malloc(LAT_RING * sizeof *lat);
  pthread_mutex_lock(&iso->mu);
  memset(out, 0, sizeof *out);
  out->calls = iso->calls;
  out->crashes = iso->crashes;
  out->timeouts = iso->timeouts;
  out->respawns = iso->respawns;
  for (unsigned k = 0; k < iso->nslots; k++)
    out->workers_running += iso->slots[k].pid != 0;
  unsigned n = iso->nlat;
  if (lat != NULL)
    memcpy(lat, iso->lat, n * sizeof *lat);
  pthread_mutex_unlock(&iso->mu);
  edgert__map_drop(mp);
  if (lat == NULL)
    return edgert__error(EDGERT_ENOMEM, "edgert_isolate_stats: out of memory");
  if (n > 0) {
    qsort(lat, n, sizeof *lat, cmp_double);
    out->latency_p50_us = lat[(size_t)(0.50 * (n - 1))];
    out->latency_p90_us = lat[(size_t)(0.90 * (n - 1))];
    out->latency_p99_us = lat[(size_t)(0.99 * (n - 1))];
    out->latency_max_us = lat[n - 1];
  }
  edgert__free(lat);
  return 0;
}

/* ---- shared memory ------------------------------------------------------------ */

int edgert_isolate_shm_alloc(size_t nbytes, void **out) {
  if (out == NULL)
    return edgert__null_arg(__func__, "out");
  if (nbytes == 0)
    return edgert__error(EDGERT_EINVAL, "edgert_isolate_shm_alloc: nbytes must be > 0");
  if (nbytes > SHM_MAX)
    return edgert__error(EDGERT_ELIMIT,
                         "edgert_isolate_shm_alloc: %zu bytes is more than the limit of 2^40",
                         nbytes);
  pthread_once(&atfork_once, atfork_register);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = (nbytes + page - 1) & ~(page - 1);
  shm_t *r = edgert__calloc(1, sizeof *r);
  if (r == NULL)
    return edgert__error(EDGERT_ENOMEM, "edgert_isolate_shm_alloc: out of memory");
  r->fd = memfd_create("edgert-shared", MFD_CLOEXEC);
  if (r->fd < 0 || ftruncate(r->fd, (off_t)size) != 0) {
    int e = errno;
    if (r->fd >= 0)
      close(r->fd);
    edgert__free(r);
    errno = e;
    return edgert__error(EDGERT_EIO, "edgert_isolate_shm_alloc: memfd of %zu bytes: %s", size,
                         strerror(e));
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(r->fd);
    edgert__free(r);
    errno = e;
    return edgert__error(EDGERT_EIO, "edgert_isolate_shm_alloc: mapping %zu bytes: %s", size,
                         strerror(e));
  }
  r->base = p;
  r->size = size;
  pthread_mutex_lock(&shm_mu);
  r->id = shm_next_id++;
  r->next = shms;
  shms = r;
  pthread_mutex_unlock(&shm_mu);
  *out = p;
  return 0;
}

void edgert_isolate_shm_free(void *p) {
  if (p == NULL)
    return;
  pthread_mutex_lock(&shm_mu);
  shm_t **pp = &shms;
  while (*pp != NULL && (*pp)->base != p)
    pp = &(*pp)->next;
  shm_t *r = *pp;
  if (r != NULL) {
    *pp = r->next;
    atomic_fetch_add_explicit(&shm_gen, 1, memory_order_release);
  }
  pthread_mutex_unlock(&shm_mu);
  if (r != NULL) {
    munmap(r->base, r->size);
    close(r->fd);
    edgert__free(r);
  }
}

int edgert_isolate_shm_contains(const void *p, size_t nbytes) {
  if (p == NULL)
    return 0;
  pthread_mutex_lock(&shm_mu);
  int in = shm_find(p, nbytes ? nbytes : 1) != NULL;
  pthread_mutex_unlock(&shm_mu);
  return in;
}
