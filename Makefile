# edgert: `make demo` and `make test` do all set-up on a fresh machine.
#   make deps        install missing Debian and PyPI packages (apt-get, pip)
#   make build       configure and build libedgert, the extension, fixtures
#   make demo        deps + build + the example pipeline
#   make test        deps + build + CMocka suites (ctest) + pytest + install check
#   make bench       deps + build + benchmarks against the peers (bench/)
# Variables: BUILD (build dir, default build), WERROR (ON), SANITIZE (OFF).

BUILD    ?= build
WERROR   ?= ON
SANITIZE ?= OFF
PYTHON   ?= python3
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

DEB_PACKAGES := cmake pkg-config gcc libffi-dev libssl-dev openssl libcjson-dev libcmocka-dev libseccomp-dev
PY_PACKAGES  := pytest hypothesis numpy cffi scikit-build-core mypy dask[distributed]
# Optional engines, only for the interpreter `make test` uses (the version
# matrix leaves them out: a Ray install is large and its tests start a
# cluster). Installed by a pip command of their own, whose failure (PyPI has
# no build for this Python) is reported and passed over: the tests that need
# them are skipped, saying so. Dask, which the suite needs, is in PY_PACKAGES.
PY_MAIN_PACKAGES ?= ray
# Peers only the benchmarks compare against: installed by `make bench` where
# PyPI has a build for this Python; their rows are left out otherwise.
BENCH_PY_PACKAGES := numba

export PYTHONPATH := $(CURDIR)/$(BUILD)/py$(if $(PYTHONPATH),:$(PYTHONPATH))
export EDGERT_FIXTURE_DIR := $(CURDIR)/$(BUILD)/fixtures
export EDGERT_BUILD_DIR := $(CURDIR)/$(BUILD)

.PHONY: all deps deps-deb deps-py build demo test test-c test-py test-install bench clean

all: build

deps: deps-deb deps-py

# Installs the Debian packages in $(1) that are missing (apt-get, as root or
# through sudo). mk/*.mk use it too.
define install_missing_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps-deb:
	$(call install_missing_debs,$(DEB_PACKAGES))

deps-py:
	@$(PYTHON) tools/missing_py.py $(PY_PACKAGES) | xargs -r $(PYTHON) -m pip install -q
	@missing=$$($(PYTHON) tools/missing_py.py $(PY_MAIN_PACKAGES)); \
	if [ -n "$$missing" ] && ! $(PYTHON) -m pip install -q $$missing; then \
	  echo "deps-py: optional" $$missing "not installed for $$($(PYTHON) -V 2>&1)" \
	    "(see pip's error above); the tests that need it are skipped"; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEDGERT_WERROR=$(WERROR) -DEDGERT_SANITIZE=$(SANITIZE) \
	  -DPython_EXECUTABLE=$$(command -v $(PYTHON))

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(PYTHON) examples/pipeline/pipeline.py

test: build test-c test-py test-install

test-c:
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-py:
	$(PYTHON) -m pytest -q tests/python

# `pip install .` from this checkout gives a working package in a fresh venv.
test-install:
	$(PYTHON) tests/install_check.py

bench: build
	@$(PYTHON) tools/missing_py.py $(BENCH_PY_PACKAGES) | xargs -r $(PYTHON) -m pip install -q \
	  || echo "bench: $(BENCH_PY_PACKAGES) not installable here; their rows are skipped"
	$(PYTHON) bench/run.py

clean:
	rm -rf $(BUILD)

# Long-running quality targets (sanitizers, fuzzing, soak) and wheels: mk/*.mk.
-include mk/*.mk
