# AArch64 (arm64) correctness runs under qemu-user (included by the top Makefile).
#   make deps-aarch64      the cross compiler, qemu-user and the arm64 -dev packages
#                          (dpkg --add-architecture arm64; apt-get); nothing when present
#   make build-aarch64     cross-build the core, fixtures, C suites and examples
#                          (cmake/toolchain-aarch64.cmake) into $(AARCH64_BUILD)
#   make test-aarch64      the C suites (ctest) under qemu-aarch64
#   make test-aarch64-py   the Python suite under Debian's arm64 CPython, emulated:
#                          its packages are downloaded and unpacked into
#                          $(AARCH64_CACHE), never installed; the extension is
#                          cross-built against its headers into $(AARCH64_PY_BUILD)
#   make clean-aarch64     remove both build trees and the download cache
# No binfmt_misc is needed (containers rarely have it): ctest runs each suite
# through CMAKE_CROSSCOMPILING_EMULATOR, a suite or test that starts a program
# built for arm64 puts EDGERT_TEST_EMULATOR in front, and the emulated
# interpreter's sys.executable is a script that starts it under qemu, so the
# tests' child interpreters (sys.executable) are emulated too.
# Timings under emulation mean nothing about AArch64 hardware: these targets
# check correctness only (see bench/RESULTS.md).

AARCH64_BUILD    ?= build-aarch64
AARCH64_PY_BUILD ?= build-aarch64-py
AARCH64_CACHE    ?= $(CURDIR)/.cache/aarch64
AARCH64_TRIPLE   := aarch64-linux-gnu
AARCH64_TOOLCHAIN := $(CURDIR)/cmake/toolchain-aarch64.cmake
AARCH64_EMULATOR ?= qemu-aarch64
# libc6-dev-arm64-cross is only a Recommends of the cross compiler, which is
# installed without its recommends (qemu-user's would bring binfmt files).
AARCH64_DEBS := gcc-$(AARCH64_TRIPLE) libc6-dev-arm64-cross qemu-user libc6:arm64 \
  libffi-dev:arm64 libssl-dev:arm64 libcjson-dev:arm64 libcmocka-dev:arm64 libseccomp-dev:arm64

# The emulated interpreter: Debian's arm64 CPython and the shared libraries its
# standard modules and numpy's wheel need beyond what AARCH64_DEBS brings.
AARCH64_PY      ?= 3.11
AARCH64_PY_DEBS := python$(AARCH64_PY)-minimal libpython$(AARCH64_PY)-minimal \
  libpython$(AARCH64_PY)-stdlib libpython$(AARCH64_PY)-dev libexpat1 zlib1g libbz2-1.0 \
  liblzma5 libuuid1 libcrypt1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libstdc++6
AARCH64_ROOT    := $(AARCH64_CACHE)/python$(AARCH64_PY)
AARCH64_PYEXE   := $(AARCH64_ROOT)/usr/bin/python3
AARCH64_SITE    := $(AARCH64_ROOT)/usr/lib/python3/dist-packages
# The suite's third-party packages, as arm64 wheels (numpy ships no
# manylinux2014 wheel for aarch64 any more: manylinux_2_28 too, glibc 2.36 here).
AARCH64_PY_WHEELS := pytest hypothesis numpy mypy
AARCH64_WHEEL_TAGS := --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
  --implementation cp --python-version $(AARCH64_PY) --abi cp$(subst .,,$(AARCH64_PY)) \
  --only-binary=:all:
# Python tests left out under emulation (pytest -k): none.
AARCH64_PY_K ?=

AARCH64_PKG_CONFIG_LIBDIR := /usr/lib/$(AARCH64_TRIPLE)/pkgconfig:/usr/share/pkgconfig
# What the Python suite needs to build and run arm64 programs itself
# (tests/python/test_c_host.py): CMake reads CMAKE_TOOLCHAIN_FILE from the
# environment, the test reads CC, pkg-config reads PKG_CONFIG_LIBDIR.
AARCH64_PY_ENV := PYTHONPATH=$(CURDIR)/$(AARCH64_PY_BUILD)/py \
  EDGERT_FIXTURE_DIR=$(CURDIR)/$(AARCH64_PY_BUILD)/fixtures \
  EDGERT_BUILD_DIR=$(CURDIR)/$(AARCH64_PY_BUILD) \
  EDGERT_TEST_EMULATOR=$(AARCH64_EMULATOR) \
  CC=$(AARCH64_TRIPLE)-gcc CMAKE_TOOLCHAIN_FILE=$(AARCH64_TOOLCHAIN) \
  PKG_CONFIG_LIBDIR=$(AARCH64_PKG_CONFIG_LIBDIR) PKG_CONFIG_PATH=

.PHONY: deps-aarch64 build-aarch64 test-aarch64 python-aarch64 build-aarch64-py \
        test-aarch64-py clean-aarch64

SUDO_IF_NEEDED = $$( [ "$$(id -u)" = 0 ] || echo sudo )

# Like install_missing_debs, with apt's output in a log shown only on failure.
deps-aarch64:
	@dpkg --print-foreign-architectures | grep -qx arm64 || { \
	  echo "aarch64: adding the arm64 architecture to dpkg"; \
	  $(SUDO_IF_NEEDED) dpkg --add-architecture arm64; }
	@missing=""; for p in $(AARCH64_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  mkdir -p $(AARCH64_CACHE); log=$(AARCH64_CACHE)/apt.log; \
	  echo "aarch64: installing Debian packages:$$missing (log: $$log)"; \
	  { $(SUDO_IF_NEEDED) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO_IF_NEEDED) apt-get -o DPkg::Lock::Timeout=600 \
	      install -y -qq --no-install-recommends $$missing; } > $$log 2>&1 \
	  || { tail -40 $$log; echo "aarch64: installing$$missing failed"; exit 1; }; \
	fi

# ---- C: core, fixtures, C suites, examples -----------------------------------
$(AARCH64_BUILD)/CMakeCache.txt:
	cmake -S . -B $(AARCH64_BUILD) -DCMAKE_TOOLCHAIN_FILE=$(AARCH64_TOOLCHAIN) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGERT_WERROR=$(WERROR) \
	  -DEDGERT_BUILD_PYTHON=OFF -DEDGERT_BUILD_BENCH=OFF \
	  -DEDGERT_AARCH64_EMULATOR=$$(command -v $(AARCH64_EMULATOR)) || { rm -f $@; exit 1; }

build-aarch64: deps-aarch64 $(AARCH64_BUILD)/CMakeCache.txt
	cmake --build $(AARCH64_BUILD) -j $(JOBS)

# ulimit -c 0: qemu writes a core file of its own for every child that dies
# of a signal on purpose (test_guard), into the working directory.
test-aarch64: build-aarch64
	cd $(AARCH64_BUILD) && ulimit -c 0 && ctest --output-on-failure -j $(JOBS)

# ---- Python: Debian's arm64 CPython, unpacked, not installed -----------------
# $(AARCH64_PYEXE) is a script that runs python$(AARCH64_PY) under qemu with
# argv[0] set to the script (qemu -0), so sys.executable names the script and
# CPython finds its prefix beside it. QEMU_LD_PREFIX makes the unpacked tree
# the emulated root where it has a file (the interpreter's libraries), the
# host's arm64 multiarch libraries (libc6:arm64 and the rest) everywhere else.
$(AARCH64_ROOT)/.unpacked: | deps-aarch64
	@rm -rf $(AARCH64_ROOT) && mkdir -p $(AARCH64_CACHE)/debs $(AARCH64_ROOT)
	@cd $(AARCH64_CACHE)/debs && debs="$(addsuffix :arm64,$(AARCH64_PY_DEBS))" && \
	  get() { apt-get -qq -o APT::Sandbox::User=root download $$debs > ../apt-download.log 2>&1; } && \
	  { get || { $(SUDO_IF_NEEDED) apt-get -o DPkg::Lock::Timeout=600 update -qq && get; } \
	    || { cat ../apt-download.log; exit 1; }; }
	@echo "aarch64: unpacking Debian's arm64 CPython $(AARCH64_PY) into $(AARCH64_ROOT)"
	@for d in $(AARCH64_CACHE)/debs/*_arm64.deb; do dpkg-deb -x $$d $(AARCH64_ROOT) || exit 1; done
	@printf '%s\n' '#!/bin/sh' \
	  '# Written by mk/aarch64.mk: the arm64 CPython beside this script, under qemu.' \
	  'here=$$(cd "$$(dirname "$$0")" && pwd)' \
	  'QEMU_LD_PREFIX="$${here%/usr/bin}" exec $${EDGERT_TEST_EMULATOR:-$(AARCH64_EMULATOR)} \' \
	  '  -0 "$$here/$$(basename "$$0")" "$$here/python$(AARCH64_PY)" "$$@"' > $(AARCH64_PYEXE)
	@chmod +x $(AARCH64_PYEXE)
	@touch $@

# pip downloads into $(AARCH64_CACHE)/wheels (kept: a later run works offline),
# then installs from there only.
$(AARCH64_SITE)/.installed: $(AARCH64_ROOT)/.unpacked
	@echo "aarch64: arm64 wheels of $(AARCH64_PY_WHEELS) into $(AARCH64_SITE)"
	@$(PYTHON) -m pip download -q --disable-pip-version-check -d $(AARCH64_CACHE)/wheels \
	  $(AARCH64_WHEEL_TAGS) $(AARCH64_PY_WHEELS) > $(AARCH64_CACHE)/pip.log 2>&1 \
	  || { grep -v '^WARNING: Location' $(AARCH64_CACHE)/pip.log | tail -20; \
	       echo "aarch64: pip download failed; installing from the cached wheels"; }
	@$(PYTHON) -m pip install -q --disable-pip-version-check --no-index \
	  --find-links $(AARCH64_CACHE)/wheels --target $(AARCH64_SITE) --upgrade \
	  $(AARCH64_WHEEL_TAGS) $(AARCH64_PY_WHEELS) 2>&1 | grep -v "Running pip as the 'root' user" || true
	@$(AARCH64_PYEXE) -c "import pytest, hypothesis, numpy" \
	  || { echo "aarch64: the emulated interpreter cannot import its test packages"; exit 1; }
	@touch $@

python-aarch64: $(AARCH64_SITE)/.installed

# FindPython runs the emulated interpreter (a host script) for its version and
# paths; it does not ask a cross interpreter for its SOABI (policy CMP0190 is
# OLD under cmake_minimum_required 3.20), so the extension is _edgert.so,
# which CPython imports as well. Debian's pyconfig.h includes
# <aarch64-linux-gnu/python3.X/pyconfig.h>: the unpacked usr/include goes on
# the include path.
$(AARCH64_PY_BUILD)/CMakeCache.txt: | python-aarch64
	cmake -S . -B $(AARCH64_PY_BUILD) -DCMAKE_TOOLCHAIN_FILE=$(AARCH64_TOOLCHAIN) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGERT_WERROR=$(WERROR) \
	  -DEDGERT_AARCH64_EMULATOR=$$(command -v $(AARCH64_EMULATOR)) \
	  -DPython_EXECUTABLE=$(AARCH64_PYEXE) \
	  -DPython_INCLUDE_DIR=$(AARCH64_ROOT)/usr/include/python$(AARCH64_PY) \
	  "-DCMAKE_C_FLAGS=-isystem $(AARCH64_ROOT)/usr/include" || { rm -f $@; exit 1; }

build-aarch64-py: deps-aarch64 python-aarch64 $(AARCH64_PY_BUILD)/CMakeCache.txt
	cmake --build $(AARCH64_PY_BUILD) -j $(JOBS)

test-aarch64-py: build-aarch64-py
	ulimit -c 0 && $(AARCH64_PY_ENV) $(AARCH64_PYEXE) -m pytest -q -p no:cacheprovider \
	  $(if $(AARCH64_PY_K),-k '$(AARCH64_PY_K)') tests/python

clean-aarch64:
	rm -rf $(AARCH64_BUILD) $(AARCH64_PY_BUILD) $(AARCH64_CACHE)
