from os import PathLike
from typing import Any, Dict, Iterable, List, Optional, Union

_Path = Union[str, bytes, "PathLike[str]", "PathLike[bytes]"]

# A distributed.WorkerPlugin at run time (not imported here: the stubs
# type-check where Dask is not installed).
class ShipModules:
    name: str
    def __init__(self, manifest_or_paths: Union[_Path, Iterable[_Path]]) -> None: ...
    @property
    def sha256s(self) -> List[str]: ...
    def setup(self, worker: Any) -> None: ...
    def teardown(self, worker: Any) -> None: ...

class NameCrashes:
    name: str
    def setup(self, worker: Any) -> None: ...

class NexusReport:
    workers: List[str]
    rows: List[Dict[str, Any]]
    totals: List[Dict[str, Any]]
    def __init__(self, per_worker: Dict[str, List[Dict[str, Any]]]) -> None: ...
    def total(self, kernel: str) -> Dict[str, Any]: ...

def nexus_report(client: Any, workers: Optional[List[str]] = None) -> NexusReport: ...

__all__ = ["ShipModules", "NameCrashes", "NexusReport", "nexus_report"]
