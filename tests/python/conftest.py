"""Shared fixtures: where the built test kernels are, and what this machine
does that another does not (the suite also runs on AArch64 under qemu:
`make test-aarch64-py`)."""
import hashlib
import os
import pathlib
import platform

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

MACHINE = platform.machine()
# Integer division by zero traps (SIGFPE) on x86; AArch64's sdiv returns 0.
INTDIV_TRAPS = MACHINE in ("x86_64", "AMD64", "i386", "i686")
# The signal of __builtin_trap(): ud2 is SIGILL on x86, brk is SIGTRAP on AArch64.
TRAP_SIGNAL = "SIGTRAP" if MACHINE == "aarch64" else "SIGILL"
# A 64-bit machine this one is not: (its ELF e_machine, edgert's name for it).
FOREIGN_MACHINE = (62, "x86-64") if MACHINE == "aarch64" else (183, "AArch64")


if os.environ.get("EDGERT_TEST_EMULATOR"):
    # Emulated, every example takes many times longer than on hardware:
    # hypothesis's per-example deadline would time the emulator, not the code.
    from hypothesis import HealthCheck, settings
    settings.register_profile("emulated", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("emulated")


def target_cmd(*argv) -> list:
    """A command line that runs a program built for the machine under test:
    prefixed with EDGERT_TEST_EMULATOR (e.g. qemu-aarch64) where the suite
    runs emulated and the kernel cannot start such a program by itself."""
    return [*os.environ.get("EDGERT_TEST_EMULATOR", "").split(), *map(str, argv)]


def fixture_path(name: str) -> str:
    """Path of the built test library for tests/fixtures/NAME.c, which CMake
    builds as libNAME.so; `name` may be given with or without the "lib"."""
    d = os.environ.get("EDGERT_FIXTURE_DIR") or str(ROOT / "build" / "fixtures")
    stem = name if name.startswith("lib") else "lib" + name
    path = os.path.join(d, f"{stem}.so")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built: run `make build` first")
    return path


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("EDGERT_FIXTURE_DIR") or ROOT / "build" / "fixtures")


def rss_kib() -> int:
    """This process's resident set, KiB (for the memory-growth tests)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def sha(path) -> str:
    """The SHA-256 of a file, hex: what a dependency or manifest lists."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
