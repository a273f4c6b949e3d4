from os import PathLike
from typing import Iterable, List, Union

_Path = Union[str, bytes, "PathLike[str]", "PathLike[bytes]"]

class _SetupHook:
    @property
    def sha256s(self) -> List[str]: ...
    def __call__(self) -> None: ...

def setup_hook(manifest_or_paths: Union[_Path, Iterable[_Path]]) -> _SetupHook: ...

__all__ = ["setup_hook"]
