# Free-threaded CPython (included by the top Makefile).
#   make python-freethreaded  build CPython $(FT_SERIES)t (configure --disable-gil) from
#                             Debian's python$(FT_SERIES) source package into $(FT_PREFIX);
#                             reused when present (delete the folder to rebuild);
#                             2 to 5 min on 2 cores, the suite 1 to 2 min more
#   make test-freethreaded    build the extension against it in $(FT_BUILD) and run the whole
#                             Python suite there with the GIL off (test_free_threading.py
#                             asserts that importing edgert leaves it off, and stresses
#                             containers, kernels and nexus swaps from several threads)
# Only PyPI and Debian's archive are reachable, and bookworm has no python3.13: the source
# package comes from $(FT_SUITE), fetched with apt-get through a private configuration
# (its own sources file and lists under $(FT_CACHE)/apt; the machine's apt setup is not
# touched, and the archive's signature is checked against the machine's Debian keyring).
# Only the upstream tarball in it is used (Debian's patches are not applied).

FT_CACHE   ?= $(CURDIR)/.cache
FT_SERIES  := 3.13
FT_SUITE   ?= trixie
FT_PREFIX  ?= $(FT_CACHE)/python$(FT_SERIES)t
FT_PYTHON  := $(FT_PREFIX)/bin/python$(FT_SERIES)t
# Written last, once CPython and the suite's packages are installed: an
# interrupted build leaves no stamp and is redone from scratch.
FT_STAMP   := $(FT_PREFIX)/.edgert-complete
FT_BUILD   ?= build-freethreaded
FT_JOBS    ?= $(JOBS)
# What CPython's build needs for the modules the suite uses (ssl, zlib, ctypes,
# bz2/lzma, sqlite3 for hypothesis' example database, uuid).
FT_DEB_PACKAGES := build-essential xz-utils libssl-dev zlib1g-dev libffi-dev libbz2-dev \
  liblzma-dev libsqlite3-dev uuid-dev
# What the Python suite imports. Wheels only: PyPI has cp313t wheels of numpy, and
# pure-Python ones of the rest, but the newest hypothesis and mypy releases add
# Rust parts with no cp313t wheel whose sdists would need crates.io (unreachable),
# so pip settles on the newest releases that have a wheel here. scikit-build-core
# is for the test that builds the package with pip.
FT_PY_PACKAGES := pytest hypothesis numpy mypy scikit-build-core
FT_PIP := $(FT_PYTHON) -m pip install -q --only-binary=:all: --root-user-action=ignore

FT_APT_DIR := $(FT_CACHE)/apt
FT_APT := apt-get -q -o Dir::Etc::SourceList=$(FT_APT_DIR)/none.list \
  -o Dir::Etc::SourceParts=$(FT_APT_DIR)/sources.list.d \
  -o Dir::State::Lists=$(FT_APT_DIR)/lists -o Dir::Cache=$(FT_APT_DIR)/cache \
  -o APT::Sandbox::User=root

FT_ENV := PYTHONPATH=$(CURDIR)/$(FT_BUILD)/py \
  EDGERT_FIXTURE_DIR=$(CURDIR)/$(FT_BUILD)/fixtures \
  EDGERT_BUILD_DIR=$(CURDIR)/$(FT_BUILD) \
  EDGERT_EXPECT_FREE_THREADED=1

.PHONY: deps-freethreaded python-freethreaded build-freethreaded test-freethreaded

deps-freethreaded:
	$(call install_missing_debs,$(DEB_PACKAGES) $(FT_DEB_PACKAGES))

python-freethreaded: $(FT_STAMP)

# Built in $(FT_CACHE)/src (removed afterwards) and installed into $(FT_PREFIX).
$(FT_STAMP):
	@$(MAKE) --no-print-directory deps-freethreaded
	@set -e; start=$$(date +%s); \
	rm -rf $(FT_CACHE)/src $(FT_PREFIX); \
	mkdir -p $(FT_APT_DIR)/sources.list.d $(FT_APT_DIR)/lists/partial \
	  $(FT_APT_DIR)/cache/archives/partial $(FT_CACHE)/src; \
	: > $(FT_APT_DIR)/none.list; \
	printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' \
	  'Suites: $(FT_SUITE)' 'Components: main' \
	  'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
	  > $(FT_APT_DIR)/sources.list.d/$(FT_SUITE)-src.sources; \
	$(FT_APT) update; \
	cd $(FT_CACHE)/src && $(FT_APT) source --download-only python$(FT_SERIES); \
	tar -xJf python$(FT_SERIES)_*.orig.tar.xz; \
	cd Python-$(FT_SERIES).*/ && \
	./configure -q --prefix=$(FT_PREFIX) --disable-gil --with-ensurepip=install \
	  --disable-test-modules > ../configure.log && \
	$(MAKE) -s -j $(FT_JOBS) > ../make.log 2>&1 || { tail -40 ../make.log; exit 1; }; \
	$(MAKE) -s install > ../install.log 2>&1 || { tail -40 ../install.log; exit 1; }; \
	$(FT_PIP) $(FT_PY_PACKAGES); \
	rm -rf $(FT_CACHE)/src; \
	touch $(FT_STAMP); \
	echo "python-freethreaded: $$($(FT_PYTHON) -VV) built in $$(( $$(date +%s) - start )) s"

$(FT_BUILD)/CMakeCache.txt: | $(FT_STAMP)
	cmake -S . -B $(FT_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEDGERT_WERROR=$(WERROR) -DEDGERT_BUILD_BENCH=OFF \
	  -DPython_EXECUTABLE=$(FT_PYTHON)

build-freethreaded: deps-freethreaded $(FT_BUILD)/CMakeCache.txt
	@$(FT_PYTHON) tools/missing_py.py $(FT_PY_PACKAGES) | xargs -r $(FT_PIP)
	cmake --build $(FT_BUILD) -j $(JOBS)

test-freethreaded: build-freethreaded
	@start=$$(date +%s); \
	$(FT_ENV) $(FT_PYTHON) -m pytest -q -p no:cacheprovider tests/python; rc=$$?; \
	echo "test-freethreaded: the suite took $$(( $$(date +%s) - start )) s"; exit $$rc
