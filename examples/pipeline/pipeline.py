"""The example pipeline (`make demo`): a day of sensor readings goes through
compiled kernels the way a production pipeline would use edgert.

1. Ship: write a manifest with the kernel module's SHA-256 and ABI contracts.
2. Load: verify the module against the manifest before any of its code runs;
   a tampered copy is refused.
3. Hold the data in typed containers (values inline in C) and hand their
   storage to kernels without copying.
4. Dispatch through a Nexus: compiled kernel when the arguments fit its
   contract, the Python reference otherwise, counted.
5. Survive a kernel that crashes: the segfault becomes an error and the
   reference answers.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pathlib
import random
import shutil
import sys
import tempfile

import edgert
from edgert import (ABIContract, CompiledModeFailure, ExplicitFallback, IntegrityError,
                    Nexus, TypedDict, TypedList)

HERE = pathlib.Path(__file__).resolve().parent
BUILD = pathlib.Path(os.environ.get("EDGERT_BUILD_DIR", HERE.parents[1] / "build"))
KERNELS = BUILD / "examples" / "pipeline" / "libpipeline_kernels.so"

c_double_p = ctypes.POINTER(ctypes.c_double)
CONTRACTS = [
    ABIContract("mean_f64", [c_double_p, ctypes.c_size_t], ctypes.c_double),
    ABIContract("scale_f64", [c_double_p, ctypes.c_size_t, ctypes.c_double], None),
    ABIContract("risky_kernel", [ctypes.c_double], ctypes.c_double),
]


def mean_reference(x, n: int) -> float:
    return sum(x[i] for i in range(n)) / n if n else 0.0


def risky_reference(x: float) -> float:
    return x * 2.0 + 1.0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="  log %(name)s %(levelname)s: %(message)s")
    if not KERNELS.exists():
        print(f"{KERNELS} is not built: run `make demo`", file=sys.stderr)
        return 1
    work = pathlib.Path(tempfile.mkdtemp(prefix="edgert-demo-"))
    try:
        module = work / "libpipeline_kernels.so"
        shutil.copy(KERNELS, module)

        print("1. ship: manifest with the module's SHA-256 and contracts")
        doc = edgert.write_manifest(work / "manifest.json", {module.name: CONTRACTS})
        print(f"   {module.name}: sha256 {doc['modules'][0]['sha256'][:16]}..., "
              f"{len(CONTRACTS)} contracts")

        print("2. load: verified before any code runs")
        tampered = work / "tampered"
        tampered.mkdir()
        data = bytearray(module.read_bytes())
        data[-1] ^= 0xFF
        (tampered / module.name).write_bytes(bytes(data))
        shutil.copy(work / "manifest.json", tampered / "manifest.json")
        try:
            edgert.load_manifest(tampered / "manifest.json")
            print("   tampered copy LOADED: this must not happen")
            return 1
        except IntegrityError as exc:
            print(f"   tampered copy refused: {exc}")
        modules = edgert.load_manifest(work / "manifest.json")
        loader = modules[module.name]
        print(f"   loaded {module.name}, sha256 verified: {loader.verify_signature(loader.sha256)}")

        print("3. typed containers: readings stored inline, handed over without copying")
        rng = random.Random(7)
        readings = TypedDict(str, float)  # sensor -> mean reading
        series = TypedList(float)
        series.extend(rng.gauss(20.0, 2.0) for _ in range(100_000))
        print(f"   {len(series)} readings, {memoryview(series).nbytes} bytes inline "
              f"(format {memoryview(series).format!r})")

        print("4. dispatch through the nexus")
        nexus = Nexus()
        mean = nexus.register("mean", loader.function("mean_f64"), mean_reference)
        for sensor in ("north", "south", "east"):
            readings[sensor] = mean(series, len(series))
        # A plain list does not fit POINTER(c_double): the reference answers.
        readings["manual"] = mean([1.0, 2.0, 3.0], 3)
        loader.call("scale_f64", series, len(series), 0.5)  # in place, zero-copy
        readings["scaled"] = mean(series, len(series))
        for k, v in readings.items():
            print(f"   {k:>7}: {v:.4f}")

        print("5. a kernel that crashes")
        risky = loader.function("risky_kernel")
        print(f"   risky_kernel(3.14) = {ExplicitFallback.run_with_guard(risky, risky_reference, 3.14)}")
        try:
            ExplicitFallback.run_with_guard(risky, risky_reference, -1.0)
        except CompiledModeFailure as exc:
            print(f"   contained: {exc.__cause__!r}")
        guarded = nexus.register("risky", risky, risky_reference, max_failures=1)
        print(f"   under the nexus the reference answers: risky(-2.0) = {guarded(-2.0)}")

        print()
        print(nexus.report())
        modules.unload()
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
