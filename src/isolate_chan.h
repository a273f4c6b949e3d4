/*
 * isolate_chan.h: the channel between libedgert (src/isolate.c, the parent)
 * and one edgert-worker process (src/worker/worker.c). Never installed.
 *
 * Two shared mappings per worker, both memfds mapped MAP_SHARED by both
 * processes (at different addresses: everything in them is an offset):
 * - the header (chan_hdr_t, one page): the wake words and one request;
 * - the data area: copied buffers, struct arguments and the result. It is
 *   replaced by a larger one (CHAN_OP_DATA) when a call needs more.
 * Plus the socket at fd EDGERT__CHAN_FD, which carries descriptors only
 * (SCM_RIGHTS: the module, the channel's memfds, shared regions), one
 * message per descriptor batch, always ahead of the request that uses it.
 *
 * Wake protocol (no lock, seq_cst atomics, FUTEX on the shared words):
 * - the parent writes the request, then stores req = seq + 1 and wakes the
 *   worker only if `sleeping` is set (the worker sets `sleeping`, then
 *   rereads req before FUTEX_WAIT: one of the two sees the other's store);
 * - `own` holds the worker's main-thread TID for its whole life. The worker
 *   registers `own` in its robust futex list, so when it dies for any reason
 *   (a signal, exit(), SIGKILL) the kernel sets FUTEX_OWNER_DIED in it and
 *   wakes a waiter: the parent notices a death at once, without polling;
 * - the worker stores done = req when the call is finished, then clears
 *   FUTEX_WAITERS in `own` and wakes the parent if it was set (the parent
 *   sets FUTEX_WAITERS, then rereads done before FUTEX_WAIT on `own`).
 */
#ifndef EDGERT_ISOLATE_CHAN_H
#define EDGERT_ISOLATE_CHAN_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EDGERT__CHAN_FD 3
#define EDGERT__CHAN_MAGIC 0x45524b57u /* "WKRE" */
#define EDGERT__CHAN_VERSION 2u
#define EDGERT__CHAN_HDR_SIZE 8192u
#define EDGERT__CHAN_MAXARGS 32 /* EDGERT_MAX_ARGS */

enum {
  CHAN_OP_CALL = 1,   /* call function `fn` with the request's arguments */
  CHAN_OP_BIND = 2,   /* bind function `fn`: name and types in the data area */
  CHAN_OP_DATA = 3,   /* a new data area: its memfd follows on the socket */
  CHAN_OP_SHM_MAP = 4,   /* shared region `shm_id[0]` (its memfd on the socket), data_size bytes */
  CHAN_OP_SHM_UNMAP = 5, /* forget shared region `shm_id[0]` */
};

/* Argument kinds of a call request. */
enum {
  CHAN_ARG_VALUE = 0,  /* v[i] is the value */
  CHAN_ARG_DATA = 1,   /* a pointer to data-area offset v[i].u */
  CHAN_ARG_SHM = 2,    /* a pointer to offset v[i].u of shared region shm_id[i] */
  CHAN_ARG_STRUCT = 3, /* a struct by value, its bytes at data-area offset v[i].u */
};

/* An argument slot, as edgert_value_t (16 bytes with long double). */
typedef union {
  int64_t i;
  uint64_t u;
  float f;
  double d;
  long double ld;
  void *p;
} chan_value_t;

typedef struct {
  /* wake words (see above) */
  _Atomic uint32_t req;
  _Atomic uint32_t sleeping;
  _Atomic uint32_t own;
  _Atomic uint32_t done;
  /* set once by the worker at start */
  uint32_t magic, version;
  int32_t worker_pid;
  /* the request */
  uint32_t op;
  uint32_t fn;        /* function index (CALL, BIND) */
  uint32_t nargs;     /* fixed arguments + variadic extras */
  uint32_t nextra;    /* variadic extras (their promoted libffi codes below) */
  uint32_t use_errno;
  int32_t errno_in, errno_out;
  uint32_t ret_off;   /* data-area offset of the result */
  uint64_t data_size; /* CHAN_OP_DATA, CHAN_OP_SHM_MAP: bytes */
  uint8_t kind[EDGERT__CHAN_MAXARGS];
  uint16_t extra_type[EDGERT__CHAN_MAXARGS];
  uint64_t shm_id[EDGERT__CHAN_MAXARGS];
  chan_value_t v[EDGERT__CHAN_MAXARGS];
  /* the answer: 0, or -1 with `msg` (BIND, DATA, SHM_MAP failures) */
  int32_t status;
  char msg[512];
  /* sandbox "strict": the system call the filter denied, written by the
   * worker's SIGSYS handler before it dies */
  char denied[64];
} chan_hdr_t;

_Static_assert(sizeof(chan_hdr_t) <= EDGERT__CHAN_HDR_SIZE, "channel header fits its page");

/* What the parent sends first, with the module's and channel's memfds. */
typedef struct {
  uint32_t magic, version;
  uint64_t data_size;
  uint64_t memory_limit; /* 0: none */
  uint32_t sandbox;      /* edgert_sandbox_t */
  int32_t parent_pid;
  uint32_t ndeps;        /* chan_dep_t messages that follow, leaves first */
  uint32_t pad;
} chan_init_t;

/* After the start message, one per verified dependency of the module that
 * the worker maps before it (its sealed memfd rides along): the name the
 * module's DT_NEEDED (and the dependency's DT_SONAME) gives it. */
#define EDGERT__CHAN_MAXDEPS 256
typedef struct {
  char soname[256];
} chan_dep_t;

static inline long chan_futex(_Atomic uint32_t *w, int op, uint32_t val,
                              const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

/* Sends `n` bytes at `buf` and `nfd` descriptors on socket `s`. 0 or -1. */
static inline int chan_send(int s, const void *buf, size_t n, const int *fds, int nfd) {
  struct iovec io = {(void *)buf, n};
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int) * 4)];
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  memset(&u, 0, sizeof u);
  mh.msg_iov = &io;
  mh.msg_iovlen = 1;
  if (nfd > 0) {
    mh.msg_control = u.b;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
  }
  for (;;) {
    ssize_t k = sendmsg(s, &mh, MSG_NOSIGNAL);
    if (k == (ssize_t)n)
      return 0;
    if (k < 0 && errno == EINTR)
      continue;
    return -1;
  }
}

/* Receives one message of exactly `n` bytes and up to `maxfd` descriptors
 * (close-on-exec) into fds; *nfd gets their number. 0, or -1 (errno; EPIPE
 * for an end of stream or a short message). */
static inline int chan_recv(int s, void *buf, size_t n, int *fds, int maxfd, int *nfd) {
  struct iovec io = {buf, n};
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int) * 4)];
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &io;
  mh.msg_iovlen = 1;
  mh.msg_control = u.b;
  mh.msg_controllen = sizeof u.b;
  ssize_t k;
  do
    k = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
  while (k < 0 && errno == EINTR);
  int got = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int m = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < m; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)i, sizeof fd);
        if (got < maxfd)
          fds[got++] = fd;
        else
          close(fd);
      }
    }
  if (nfd != NULL)
    *nfd = got;
  if (k != (ssize_t)n) {
    for (int i = 0; i < got; i++)
      close(fds[i]);
    if (nfd != NULL)
      *nfd = 0;
    if (k >= 0)
      errno = EPIPE;
    return -1;
  }
  return 0;
}

#endif /* EDGERT_ISOLATE_CHAN_H */
