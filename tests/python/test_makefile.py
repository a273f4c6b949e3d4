"""The Makefile's set-up as `make test` runs it: the optional engines'
install does not fail it. (Not in test_dask.py, which skips itself where
distributed cannot run: free-threaded builds, which are also where PyPI
has no Ray, and the emulator.)"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def test_a_failed_optional_engine_install_does_not_fail_deps(tmp_path):
    """`make deps-py` (run by `make test`) installs the optional engines
    (PY_MAIN_PACKAGES: Ray) in a pip command of their own: where pip cannot
    install them it says so and goes on, and their tests skip (before, one
    pip command for everything failed `make test`). Tried here offline
    (PIP_NO_INDEX) with a version no index has, and nothing else to install."""
    if shutil.which("make") is None or not (ROOT / "Makefile").exists():
        pytest.skip("needs make and the source tree's Makefile")
    if importlib.util.find_spec("pip") is None:  # the AArch64 sysroot's Python under qemu
        pytest.skip(f"needs pip for {sys.executable}, which deps-py runs")
    # A make of its own (not the outer `make test`'s flags and variables),
    # without the sanitized runs' preloaded runtime: this tests the Makefile.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "LD_PRELOAD")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull)
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "deps-py", f"PYTHON={sys.executable}",
                          "PY_PACKAGES=", "PY_MAIN_PACKAGES=ray==0.0.0"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "deps-py: optional ray==0.0.0 not installed for Python " in out.stdout, out.stdout
    assert "the tests that need it are skipped" in out.stdout
    assert "No matching distribution found for ray==0.0.0" in out.stderr  # pip's own reason
