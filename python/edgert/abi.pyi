from collections.abc import Mapping
from typing import Any, List, Optional, Tuple, Type

__all__ = ["ABIContract"]

_CLASS_NAMES: dict[type, str]

def _class_for(canonical: str) -> Any: ...

class ABIContract:
    function_name: str
    arg_types: List[Type[Any]]
    return_type: Optional[Type[Any]]
    calling_convention: str
    release_gil: bool
    def __init__(
        self,
        function_name: str,
        arg_types: List[Type[Any]],
        return_type: Optional[Type[Any]] = ...,
        calling_convention: str = ...,
        release_gil: bool = ...,
    ) -> None: ...
    def _encode(self) -> Tuple[str, Tuple[str, ...], Optional[str], str, bool]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def struct_names(self) -> List[str]: ...
    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]: ...
    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> ABIContract: ...
