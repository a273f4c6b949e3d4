/*
 * fuzz_module.c: the loader's reading of untrusted files
 * (edgert_module_load: file checks, ELF header and program header table
 * bounds, hashing into sealed memory).
 *
 * Input: the bytes of a would-be module, written to a scratch file. Every
 * load is given an expected SHA-256 of all zeros, which no input has, so no
 * fuzzed byte is ever mapped or run: the header checks and the hash
 * comparison are what is exercised. Invariants: the load never succeeds;
 * it fails with EDGERT_EFORMAT (with a message naming the file) when the
 * header is not an x86-64 ELF shared object with a sane program header
 * table, and otherwise with EDGERT_EINTEGRITY saying none of its code ran;
 * *out stays untouched; nothing leaks; the scratch file is what was read.
 */
#include "fuzz_common.h"

#include <fcntl.h>
#include <unistd.h>

#include "edgert.h"

static char scratch[128];

static void remove_scratch(void) { unlink(scratch); }

static const char *scratch_path(void) {
  if (scratch[0] == '\0') {
    snprintf(scratch, sizeof scratch, "/tmp/edgert-fuzz-module-%ld.so", (long)getpid());
    atexit(remove_scratch);
  }
  return scratch;
}

int edgert_fuzz_module(const uint8_t *data, size_t size) {
  const char *path = scratch_path();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  size_t off = 0;
  while (off < size) {
    ssize_t n = write(fd, data + off, size - off);
    FUZZ_CHECK(n > 0);
    off += (size_t)n;
  }
  close(fd);

  static const char zeros[] =
      "0000000000000000000000000000000000000000000000000000000000000000";
  edgert_module_t *m = (edgert_module_t *)&m;
  edgert_clear_error();
  int rc = edgert_module_load(path, zeros, &m);
  FUZZ_CHECK(rc != 0);
  FUZZ_CHECK(m == (edgert_module_t *)&m);
  FUZZ_CHECK(edgert_last_error()[0] != '\0');
  FUZZ_CHECK(strstr(edgert_last_error(), path) != NULL);
  if (size == 0) {
    FUZZ_CHECK(rc == EDGERT_EFORMAT);
  } else if (size < 4 || memcmp(data, "\x7f" "ELF", 4) != 0) {
    FUZZ_CHECK(rc == EDGERT_EFORMAT);
    FUZZ_CHECK(strstr(edgert_last_error(), "no ELF magic") != NULL);
  } else {
    FUZZ_CHECK(rc == EDGERT_EFORMAT || rc == EDGERT_EINTEGRITY);
    if (rc == EDGERT_EINTEGRITY)
      FUZZ_CHECK(strstr(edgert_last_error(), "none of its code ran") != NULL);
  }
  /* A size limit below the file's size is refused before anything is read. */
  if (size > 1) {
    edgert_load_options_t o = {.max_size = size - 1};
    m = (edgert_module_t *)&m;
    FUZZ_CHECK(edgert_module_load_ex(path, zeros, &o, &m) == EDGERT_ELIMIT);
    FUZZ_CHECK(m == (edgert_module_t *)&m);
  }
  return 0;
}

#ifndef EDGERT_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return edgert_fuzz_module(data, size);
}
#endif
