/*
 * file.c: reading a small file whole, and naming paths in messages. One
 * reader for the manifest, the signature and key files and the version
 * state file: a regular file only, read to its end whatever its size said
 * (it may change under us), bounded by a limit the caller names.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* `s` in single quotes for a message, at most 200 bytes of it. */
const char *edgert__quote_path(const char *s, char *buf, size_t size) {
  snprintf(buf, size, "'%.200s'", s);
  return buf;
}

/*
 * Reads the whole regular file at `path` into a new buffer (NUL-terminated,
 * not counted in *len). `what` names the file in messages. A file larger
 * than `max` is `too_big_err`. ENOENT is returned as is in *errno_out (with
 * EDGERT_EIO) so callers can word a missing file their own way.
 */
int edgert__read_file(const char *path, const char *what, size_t max,
                    int too_big_err, char **out, size_t *len, int *errno_out) {
  char q[220];
  *errno_out = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *errno_out = errno;
    return edgert__error(EDGERT_EIO, "%s %s: %s", what,
                         edgert__quote_path(path, q, sizeof q), strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    *errno_out = EISDIR;
    return edgert__error(EDGERT_EIO, "%s %s: not a regular file", what,
                         edgert__quote_path(path, q, sizeof q));
  }
  size_t cap = (size_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
  size_t n = 0;
  char *buf = edgert__malloc(cap + 1);
  if (buf == NULL) {
    close(fd);
    return edgert__error(EDGERT_ENOMEM, "%s: out of memory", what);
  }
  /* Read to the end, whatever the size said: the file may change under us. */
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        edgert__free(buf);
        close(fd);
        return edgert__error(too_big_err,
                             "%s %s: larger than the limit of %zu bytes", what,
                             edgert__quote_path(path, q, sizeof q), max);
      }
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *nb = edgert__realloc(buf, ncap + 1);
      if (nb == NULL) {
        edgert__free(buf);
        close(fd);
        return edgert__error(EDGERT_ENOMEM, "%s: out of memory", what);
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      edgert__free(buf);
      close(fd);
      *errno_out = e;
      return edgert__error(EDGERT_EIO, "%s %s: %s", what,
                           edgert__quote_path(path, q, sizeof q), strerror(e));
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* The folder of `path` (a new string): everything before the last '/'. */
char *edgert__dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash == NULL ? edgert__strdup(".")
         : slash == path ? edgert__strdup("/")
                         : edgert__strndup(path, (size_t)(slash - path));
}

