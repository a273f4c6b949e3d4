"""Shared fixtures: where the built test kernels are."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fixture_path(name: str) -> str:
    """Path of the built test library lib`name`.so (tests/fixtures/`name`.c)."""
    d = os.environ.get("EDGERT_FIXTURE_DIR") or str(ROOT / "build" / "fixtures")
    path = os.path.join(d, f"{name}.so")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built: run `make build` first")
    return path


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("EDGERT_FIXTURE_DIR") or ROOT / "build" / "fixtures")
