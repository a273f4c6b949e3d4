# The CPython version matrix (included by the top Makefile).
#   make test-matrix   for each CPython of PYTHONS, one after the other: its
#                      test dependencies (PY_PACKAGES, pip for that
#                      interpreter), a build into build-pyX.Y (X.Yt, X.Yd
#                      for free-threaded and debug builds) with
#                      WERROR=$(WERROR) (the extension, fixtures, examples and
#                      bench peers for that Python) and the Python suite
#                      against it. The C suites do not depend on Python and
#                      run in `make test` only. Goes on past a failing
#                      version, prints a line per version with its time, and
#                      fails if any failed.
# PYTHONS: minor versions (3.12) or interpreter paths; by default each of
# MATRIX_VERSIONS that is installed (pyenv's newest patch release in
# $(PYENV_ROOT)/versions, else pythonX.Y on PATH). A version that PYTHONS
# names but that is not installed fails the run.

MATRIX_VERSIONS := 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv

# The interpreter for minor version $(1): pyenv's newest X.Y.N (a plain
# release: free-threaded "t" builds are not this matrix), else pythonX.Y on
# PATH, else nothing.
matrix_python = $(shell for d in $$(ls -d $(PYENV_ROOT)/versions/$(1).* 2>/dev/null \
  | grep -E '/$(subst .,\.,$(1))\.[0-9]+$$' | sort -V -r); do \
  [ -x $$d/bin/python$(1) ] && { echo $$d/bin/python$(1); exit 0; }; done; \
  command -v python$(1) 2>/dev/null)

PYTHONS ?= $(strip $(foreach v,$(MATRIX_VERSIONS),$(if $(call matrix_python,$(v)),$(v))))
# "3.12=/path/to/python3.12" for each entry of PYTHONS (a path stands for itself).
matrix_pairs = $(foreach p,$(PYTHONS),$(p)=$(if $(findstring /,$(p)),$(p),$(call matrix_python,$(p))))

.PHONY: test-matrix

test-matrix:
	@[ -n "$(PYTHONS)" ] || { echo "test-matrix: none of CPython $(MATRIX_VERSIONS) is installed (pyenv or PATH)"; exit 1; }
	@failed=""; summary=""; start=$$(date +%s); \
	for pair in $(matrix_pairs); do \
	  p=$${pair%%=*}; py=$${pair#*=}; \
	  if [ -z "$$py" ] || ! [ -x "$$py" ]; then \
	    echo "test-matrix: CPython $$p is not installed (pyenv: $(PYENV_ROOT)/versions/$$p.N, or python$$p on PATH)"; \
	    failed="$$failed $$p"; summary="$$summary\n  $$p  not installed"; continue; \
	  fi; \
	  ver=$$("$$py" -c 'import sys; print("%d.%d%s" % (*sys.version_info[:2], sys.abiflags))'); \
	  full=$$("$$py" -c 'import platform; print(platform.python_version())'); \
	  dir=build-py$$ver; \
	  if [ -f $$dir/CMakeCache.txt ] && ! grep -qx "Python_EXECUTABLE:[A-Z]*=$$py" $$dir/CMakeCache.txt; then \
	    echo "test-matrix: $$dir was configured for another interpreter; configuring afresh"; rm -rf $$dir; \
	  fi; \
	  echo "==== test-matrix: CPython $$full ($$py) -> $$dir"; \
	  t0=$$(date +%s); \
	  if $(MAKE) --no-print-directory build test-py BUILD=$$dir PYTHON="$$py" WERROR=$(WERROR) PY_MAIN_PACKAGES= \
	       PYTHONPATH=$(CURDIR)/$$dir/py; then r=passed; else r=FAILED; failed="$$failed $$p"; fi; \
	  summary="$$summary\n  $$full  $$r  $$(( $$(date +%s) - t0 )) s  ($$dir)"; \
	done; \
	printf "==== test-matrix (WERROR=$(WERROR)), $$(( $$(date +%s) - start )) s:$$summary\n"; \
	[ -z "$$failed" ] || { echo "test-matrix: failed on:$$failed"; exit 1; }
