from typing import TypedDict

class IsolationStats(TypedDict):
    """ModuleLoader.isolation_stats(): the core's counters of an isolated module."""

    calls: int
    crashes: int
    timeouts: int
    respawns: int
    workers_running: int
    latency_p50_us: float
    latency_p90_us: float
    latency_p99_us: float
    latency_max_us: float

class IsolationOptions(TypedDict):
    """ModuleLoader.isolation: the options an isolated module was loaded with."""

    isolation: str
    timeout: float | None
    memory_limit: int | None
    sandbox: str
    workers: int
    worker_path: str | None

class SharedBuffer:
    """Zeroed, page-aligned bytes in shared memory: isolated calls take
    pointers into it by reference, zero copy. Freed with its last reference."""

    @property
    def nbytes(self) -> int: ...
    @property
    def address(self) -> int: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

def shared_buffer(nbytes: int) -> SharedBuffer: ...

__all__ = ["SharedBuffer", "shared_buffer"]
