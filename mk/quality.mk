# Long-running quality targets (included by the top Makefile).
#   make deps-quality   install clang, libclang-rt and valgrind when missing (apt-get);
#                       deps-valgrind and deps-fuzz install each half
#   make test-sanitize  C suites (leak detection on) and the Python suite on an
#                       ASan+UBSan build in $(ASAN_BUILD)
#   make test-valgrind  the C suites under valgrind memcheck (plain build in $(VALGRIND_BUILD))
#   make test-tsan      the C suites under ThreadSanitizer (build-tsan)
#   make fuzz           each libFuzzer harness for FUZZ_SECONDS on a copy of its seed corpus
#   make soak           tools/soak.py: a mixed workload for SOAK_SECONDS, RSS checked
# Figures these produce are collected in docs/reliability.md.

ASAN_BUILD     ?= build-asan
VALGRIND_BUILD ?= build-valgrind
FUZZ_BUILD     ?= build-fuzz
FUZZ_SECONDS   ?= 60
SOAK_SECONDS   ?= 120
# Suites left out of the valgrind run (grep -E regex): test_guard overflows
# its stack on purpose, which valgrind cannot contain. The other deliberate
# faults (test_nexus, loader kernels) are suppressed in mk/valgrind.supp.
VALGRIND_EXCLUDE ?= ^test_guard$$
# C suites left out under ASan+UBSan (ctest -E regex): none. The kernels
# that fault on purpose (test_guard.c, test_nexus.c, guard_crashy.c,
# nexus_kernels.c, loader_risky.c, examples/pipeline/kernels.c) are marked
# __attribute__((no_sanitize("address", "undefined"))), so the real hardware
# fault happens and the guard contains it instead of UBSan stopping at the
# NULL access or the division by zero (it cannot recover) or ASan reporting
# the access first. A new deliberately faulting kernel needs the same mark.
ASAN_EXCLUDE   ?=
# Python tests left out under ASan+UBSan (pytest -k): RSS-based leak checks
# (*does_not_leak), which ASan's quarantine of freed memory defeats (the C
# suites cover leaks with LeakSanitizer instead).
ASAN_PY_K ?= not does_not_leak

ASAN_RT  := $(shell gcc -print-file-name=libasan.so 2>/dev/null)
UBSAN_RT := $(shell gcc -print-file-name=libubsan.so 2>/dev/null)
# handle_segv/sigbus/sigfpe/sigill=0: ASan leaves those signals alone, so a
# fault outside a guarded call is handed by the guard to SIG_DFL and kills
# the process with the signal, as test_guard's forked children check (ASan's
# own handler would report and exit(1) instead). use_sigaltstack=0: ASan does
# not give every thread an alternate signal stack of its own, so the guard
# allocates its own as it does in production (test_guard checks that path,
# its allocation failure included).
SAN_SIGNALS := handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0
SAN_ENV_C := EDGERT_SANITIZED=1 \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:$(SAN_SIGNALS):use_sigaltstack=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/mk/lsan.supp:print_suppressions=0
SAN_ENV_PY := EDGERT_SANITIZED=1 \
  LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)" \
  ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=64:$(SAN_SIGNALS) \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  PYTHONPATH=$(CURDIR)/$(ASAN_BUILD)/py \
  EDGERT_FIXTURE_DIR=$(CURDIR)/$(ASAN_BUILD)/fixtures \
  EDGERT_BUILD_DIR=$(CURDIR)/$(ASAN_BUILD)

.PHONY: deps-quality deps-valgrind deps-fuzz test-tsan test-sanitize test-sanitize-c test-sanitize-py \
        build-asan test-valgrind build-fuzz fuzz fuzz-regress soak

# install_missing_debs comes from the top Makefile.

deps-quality: deps-valgrind deps-fuzz

deps-valgrind:
	$(call install_missing_debs,valgrind)

deps-fuzz:
	$(call install_missing_debs,clang libclang-rt-14-dev)

# ---- sanitizers --------------------------------------------------------------
$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DEDGERT_WERROR=$(WERROR) -DEDGERT_SANITIZE=ON -DEDGERT_BUILD_BENCH=OFF \
	  -DPython_EXECUTABLE=$$(command -v $(PYTHON))

build-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-sanitize: test-sanitize-c test-sanitize-py

test-sanitize-c: build-asan
	cd $(ASAN_BUILD) && $(SAN_ENV_C) ctest --output-on-failure -j $(JOBS) -E '$(ASAN_EXCLUDE)'

# The interpreter is not sanitized: the ASan and UBSan runtimes are preloaded
# so the instrumented libedgert and extension can load into it. Leak detection
# is off here (CPython keeps its arenas to exit); the C suites cover leaks.
test-sanitize-py: build-asan
	$(SAN_ENV_PY) $(PYTHON) -m pytest -q -p no:cacheprovider \
	  $(if $(ASAN_PY_K),-k '$(ASAN_PY_K)') tests/python

# ---- valgrind ---------------------------------------------------------------
$(VALGRIND_BUILD)/CMakeCache.txt:
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEDGERT_WERROR=$(WERROR) -DEDGERT_BUILD_PYTHON=OFF -DEDGERT_BUILD_BENCH=OFF \
	  -DEDGERT_BUILD_EXAMPLES=OFF

VALGRIND := valgrind -q --error-exitcode=1 --suppressions=$(CURDIR)/mk/valgrind.supp --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --track-origins=yes

test-valgrind: deps deps-valgrind $(VALGRIND_BUILD)/CMakeCache.txt
	cmake --build $(VALGRIND_BUILD) -j $(JOBS)
	@cd $(VALGRIND_BUILD) && find . -maxdepth 1 -type f -perm -u+x -name 'test_*' -printf '%f\n' | sort | grep -Ev '$(VALGRIND_EXCLUDE)' > valgrind-suites.txt; \
	pass=0; fail=0; failed=""; start=$$(date +%s); \
	for t in $$(cat valgrind-suites.txt); do \
	  if EDGERT_VALGRIND=1 $(VALGRIND) --log-file=$$t.valgrind.log ./$$t > $$t.valgrind.out 2>&1; then \
	    pass=$$((pass+1)); echo "valgrind $$t: clean"; \
	  else \
	    fail=$$((fail+1)); failed="$$failed $$t"; echo "valgrind $$t: FAILED"; \
	    cat $$t.valgrind.out $$t.valgrind.log | tail -60; \
	  fi; \
	done; \
	echo "valgrind took $$(( $$(date +%s) - start )) s$${failed:+; failed:$$failed}"; \
	echo "valgrind: $$pass passed, $$fail failed"; \
	test $$fail = 0

# ---- ThreadSanitizer ----------------------------------------------------------
# The C suites (the threaded stress cases included) built with -fsanitize=thread.
# test_guard is left out: TSan defers signals and instruments the deliberate
# faults, which breaks the containment tests' premises (not a race).
TSAN_BUILD   ?= build-tsan
TSAN_EXCLUDE ?= ^test_guard$$

$(TSAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEDGERT_WERROR=$(WERROR) -DEDGERT_BUILD_PYTHON=OFF -DEDGERT_BUILD_BENCH=OFF \
	  -DEDGERT_BUILD_EXAMPLES=OFF \
	  "-DCMAKE_C_FLAGS=-fsanitize=thread -fno-omit-frame-pointer" \
	  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread

test-tsan: deps $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && EDGERT_SANITIZED=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) -E '$(TSAN_EXCLUDE)'

# ---- fuzzing ----------------------------------------------------------------
$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEDGERT_FUZZ=ON -DEDGERT_BUILD_PYTHON=OFF -DEDGERT_BUILD_TESTS=OFF \
	  -DEDGERT_BUILD_BENCH=OFF -DEDGERT_BUILD_EXAMPLES=OFF -DEDGERT_WERROR=OFF

build-fuzz: deps deps-fuzz $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: build-fuzz
	$(PYTHON) tests/fuzz/run_fuzz.py --build $(FUZZ_BUILD) --seconds $(FUZZ_SECONDS) \
	  $(if $(FUZZ_HARNESSES),--only $(FUZZ_HARNESSES))

# Replays every committed regression input through the libFuzzer builds.
fuzz-regress: build-fuzz
	$(PYTHON) tests/fuzz/run_fuzz.py --build $(FUZZ_BUILD) --regress-only

# ---- soak -------------------------------------------------------------------
soak: build
	PYTHONPATH=$(CURDIR)/$(BUILD)/py EDGERT_FIXTURE_DIR=$(CURDIR)/$(BUILD)/fixtures \
	  $(PYTHON) tools/soak.py --seconds $(SOAK_SECONDS)
