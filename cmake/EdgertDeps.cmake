# EdgertDeps.cmake: find libedgert's dependencies, and when one is missing stop
# with a message that names the package to install, not CMake's generic "Could
# not find a package configuration file".
#
# Every dependency is looked for QUIET; a miss goes through edgert_missing(),
# whose message names the Debian/Ubuntu and the Fedora package and `make deps`
# (which installs the Debian ones). tests/python/test_setup_errors.py
# configures with each one hidden and checks the message.

# Stops configuring: WHAT (what edgert needs it for) is missing; DEB and RPM
# are the packages that provide it on Debian/Ubuntu and on Fedora.
function(edgert_missing what deb rpm)
  set(where "")
  if(SKBUILD)
    # pip is building from source (no wheel fits this machine, or `pip install .`).
    set(where "\npip is building edgert from source (`pip install .`, an sdist, or no "
              "wheel for this machine), which needs the development package.")
  endif()
  message(FATAL_ERROR
    "edgert needs ${what}, which was not found.${where}\n"
    "Install it:\n"
    "  Debian/Ubuntu: sudo apt-get install ${deb}\n"
    "  Fedora:        sudo dnf install ${rpm}\n"
    "or, in an edgert checkout on Debian/Ubuntu, run `make deps` (installs every "
    "missing package).\n"
    "Installed somewhere else? Pass -DCMAKE_PREFIX_PATH=<prefix> (or set PKG_CONFIG_PATH).")
endfunction()

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  edgert_missing("pkg-config (to find libffi)" "pkg-config" "pkgconf-pkg-config")
endif()
pkg_check_modules(FFI QUIET IMPORTED_TARGET libffi)
if(NOT FFI_FOUND)
  edgert_missing("libffi (the loader's calls)" "libffi-dev" "libffi-devel")
endif()
# 1.1.1 is the first with Ed25519 through EVP_DigestSign/Verify (signed
# manifests, src/sign.c); Debian and Ubuntu ship 3.x.
find_package(OpenSSL 1.1.1 QUIET COMPONENTS Crypto)
if(NOT OpenSSL_FOUND OR NOT TARGET OpenSSL::Crypto)
  edgert_missing("OpenSSL's libcrypto >= 1.1.1 (SHA-256 of modules, Ed25519 signatures)"
                 "libssl-dev" "openssl-devel")
endif()
find_package(cJSON QUIET)
if(NOT cJSON_FOUND)
  edgert_missing("cJSON (manifests)" "libcjson-dev" "cjson-devel")
endif()
# Debian's cJSON config names the library but sets no imported target.
if(NOT TARGET cjson)
  message(FATAL_ERROR "cJSON's CMake package did not define the cjson target")
endif()
find_package(Threads REQUIRED)

# The CMocka suites only (EDGERT_BUILD_TESTS).
macro(edgert_find_cmocka)
  find_package(cmocka QUIET)
  if(NOT cmocka_FOUND)
    edgert_missing("CMocka (the C test suites; -DEDGERT_BUILD_TESTS=OFF builds without them)"
                   "libcmocka-dev" "libcmocka-devel")
  endif()
endmacro()

# The CPython extension only (EDGERT_BUILD_PYTHON): a first look without a
# version, so that missing headers get the message above; the version the
# extension needs is checked where CMakeLists.txt finds Python REQUIRED.
if(EDGERT_BUILD_PYTHON)
  find_package(Python QUIET COMPONENTS Interpreter Development.Module)
  if(NOT Python_FOUND)
    edgert_missing("Python's headers (for the extension; -DEDGERT_BUILD_PYTHON=OFF builds the C library alone)"
                   "python3-dev" "python3-devel")
  endif()
endif()
