/*
 * fixture_path.h: the path of a fixture library of the build, NAME.so or
 * libNAME.so (CMake adds its prefix to some targets). Header only, for the
 * suites that load the same fixture.
 */
#ifndef EDGERT_TEST_FIXTURE_PATH_H
#define EDGERT_TEST_FIXTURE_PATH_H

#include <unistd.h>

#ifndef EDGERT_FIXTURE_DIR
#error "EDGERT_FIXTURE_DIR must be defined by the build"
#endif

/* The guard's crashing kernels (tests/fixtures/guard_crashy.c). */
static inline const char *crashy_path(void) {
  static const char *const candidates[] = {EDGERT_FIXTURE_DIR "/guard_crashy.so",
                                           EDGERT_FIXTURE_DIR "/libguard_crashy.so"};
  for (size_t i = 0; i < 2; i++)
    if (access(candidates[i], R_OK) == 0)
      return candidates[i];
  return candidates[0];
}

#endif
