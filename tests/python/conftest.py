"""Shared fixtures: where the built test kernels are."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
