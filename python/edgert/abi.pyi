from collections.abc import Mapping
from typing import Any, List, Optional, Tuple, Type

from .cdecl import CDeclError as CDeclError

__all__ = ["ABIContract", "const", "get_errno", "set_errno", "contracts_from_c", "CDeclError"]

def contracts_from_c(
    text: str, *, release_gil: bool = ..., use_errno: bool = ...
) -> List[ABIContract]: ...
def get_errno() -> int: ...
def set_errno(value: int) -> int: ...

class const:
    type: Type[Any]
    def __init__(self, t: Type[Any]) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class ABIContract:
    function_name: str
    arg_types: List[Any]
    return_type: Optional[Type[Any]]
    calling_convention: str
    release_gil: bool
    use_errno: bool
    variadic: Optional[int]
    def __init__(
        self,
        function_name: str,
        arg_types: List[Any],
        return_type: Optional[Type[Any]] = ...,
        calling_convention: str = ...,
        release_gil: bool = ...,
        use_errno: bool = ...,
        variadic: Optional[int] = ...,
    ) -> None: ...
    def _encode(
        self,
    ) -> Tuple[str, Tuple[str, ...], Optional[str], str, bool, bool, Optional[int]]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __reduce__(self) -> Tuple[Any, Tuple[dict[str, Any]]]: ...
    @classmethod
    def from_c(
        cls, decl: str, *, release_gil: bool = ..., use_errno: bool = ...
    ) -> ABIContract: ...
    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> ABIContract: ...
