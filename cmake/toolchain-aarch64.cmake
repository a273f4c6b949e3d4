# Cross-building edgert for AArch64 (arm64) Linux on a Debian/Ubuntu host:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
# `make test-aarch64` installs what this needs and runs the C suites under qemu.
#
# What it relies on (Debian multiarch, no separate sysroot):
#   - the cross compiler gcc-aarch64-linux-gnu (aarch64-linux-gnu-gcc), whose
#     own search paths include /usr/include/aarch64-linux-gnu and
#     /usr/lib/aarch64-linux-gnu;
#   - the arm64 -dev packages (dpkg --add-architecture arm64, then
#     libffi-dev:arm64 libssl-dev:arm64 libcjson-dev:arm64 libcmocka-dev:arm64),
#     which install beside the host's own under /usr/lib/aarch64-linux-gnu;
#   - qemu-user's qemu-aarch64 to run what was built (ctest and
#     try_run go through CMAKE_CROSSCOMPILING_EMULATOR). The arm64 libc
#     (libc6:arm64, pulled in by the -dev packages) puts the dynamic linker at
#     /lib/ld-linux-aarch64.so.1, so qemu needs no -L prefix.
# The host's own libraries (/usr/lib/x86_64-linux-gnu) are kept out of every
# find_* search, so a missing arm64 package fails at configure time instead of
# linking the x86-64 one.
# Overridable: EDGERT_AARCH64_TRIPLE (the cross tools' prefix) and
# EDGERT_AARCH64_EMULATOR (a program, or a ;-list with its arguments).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED EDGERT_AARCH64_TRIPLE)
  set(EDGERT_AARCH64_TRIPLE aarch64-linux-gnu)
endif()
set(CMAKE_C_COMPILER ${EDGERT_AARCH64_TRIPLE}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${EDGERT_AARCH64_TRIPLE})

if(NOT DEFINED EDGERT_AARCH64_EMULATOR)
  find_program(EDGERT_AARCH64_EMULATOR NAMES qemu-aarch64 qemu-aarch64-static)
endif()
if(EDGERT_AARCH64_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${EDGERT_AARCH64_EMULATOR})
endif()

# pkg-config (libffi) reads the arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${EDGERT_AARCH64_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Programs (cmake, python for build steps) come from the host; libraries,
# headers and CMake packages never do.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
if(CMAKE_HOST_SYSTEM_PROCESSOR)
  list(APPEND CMAKE_IGNORE_PATH
    /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu
    /lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu
    /usr/include/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu)
endif()
