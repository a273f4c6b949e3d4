from typing import Any, Callable, Dict, Optional, TypeVar

from .errors import CompiledModeFailure as CompiledModeFailure
from .errors import FallbackMismatchError as FallbackMismatchError

__all__ = [
    "ExplicitFallback",
    "CompiledModeFailure",
    "FallbackMismatchError",
    "results_match",
    "crash_guard_enabled",
    "process_healthy",
    "process_unhealthy_reason",
]

_T = TypeVar("_T")

class ExplicitFallback:
    @staticmethod
    def run_with_guard(compiled: Callable[..., _T], reference: Callable[..., _T], *args: Any,
                       tolerance: float = ..., fallback_enabled: bool = ...) -> _T: ...
    @staticmethod
    def fallback_to_python(compiled: Callable[..., Any], reference: Callable[..., _T],
                           *args: Any, tolerance: float = ...) -> _T: ...
    @staticmethod
    def stats() -> Dict[str, int]: ...
    @staticmethod
    def reset_stats() -> None: ...

def results_match(compiled_result: Any, reference_result: Any, *,
                  tolerance: float = ...) -> Optional[str]: ...
def crash_guard_enabled() -> bool: ...
def process_healthy() -> bool: ...
def process_unhealthy_reason() -> Optional[str]: ...
