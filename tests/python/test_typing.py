"""The package is typed: its stubs are consistent (mypy), and typical user
code type-checks against them, while a wrong use is caught."""
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]

USER_CODE = textwrap.dedent('''\
    import ctypes
    import edgert
    from pyv_edge_agent.module_host.fallback import ExplicitFallback

    abi = edgert.ABIContract("f", [ctypes.c_double], ctypes.c_double)
    d: dict = abi.to_dict()
    loader = edgert.ModuleLoader()
    td = edgert.TypedDict(int, float)
    td[1] = 2.0
    tl = edgert.TypedList(float)
    tl.append(1.0)
    n: int = len(tl)
    nx = edgert.Nexus()
    ok: bool = loader.verify_signature("0" * 64)
    ''')


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *args],
                          capture_output=True, text=True, cwd=ROOT / "python", timeout=300)


def test_stubs_are_consistent():
    r = mypy("-p", "edgert", "-p", "pyv_edge_agent")
    assert r.returncode == 0, r.stdout + r.stderr


def test_user_code_type_checks_and_mistakes_are_caught(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(USER_CODE)
    r = mypy(str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text(USER_CODE + 'ok2: int = loader.verify_signature("0" * 64) + "x"\n')
    r = mypy(str(bad))
    assert r.returncode == 1 and "bad.py:15" in r.stdout, r.stdout + r.stderr
