from os import PathLike
from typing import Any, Iterable, List, Union

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

__all__ = ["ShipModules"]
