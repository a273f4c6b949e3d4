# The C extension behind the package. Its public names are re-exported,
# typed, by the package's modules (abi, loader, manifest, fallback,
# containers, nexus, errors); the rest is private.
from typing import Any

__version__: str
core_version: str
_crash_worker: str | None  # set by edgert.worker_initializer: KernelCrash names it

def __getattr__(name: str) -> Any: ...
