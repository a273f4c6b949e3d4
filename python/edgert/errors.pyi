from typing import Any

class EdgertError(Exception): ...
class IntegrityError(EdgertError): ...
class ModuleFormatError(EdgertError, ValueError): ...
class SymbolNotFoundError(EdgertError, LookupError): ...
class ManifestError(EdgertError, ValueError): ...
class ModuleUnloadedError(EdgertError, RuntimeError): ...
class CallbackError(EdgertError, RuntimeError):
    """A Python callback raised during a call; __cause__ is its exception."""

class KernelCrash(EdgertError):
    signal: int
    signal_name: str
    address: int
    function: str
    module: str
    sent: bool
    sender_pid: int | None
    unhealthy: bool
    worker: str
    """The process it happened in: its edgert.worker_initializer name, else "host:pid"."""
    isolated: bool
    """True when an isolated call's worker process died (this process is untouched)."""
    worker_pid: int | None
    exit_status: int | None
    """The worker's exit() status, or None when a signal ended it."""
    syscall: str | None
    """The system call sandbox="strict" denied (signal SIGSYS), else None."""

class KernelTimeout(EdgertError, TimeoutError):
    """An isolated call overran its timeout; its worker was killed and is respawned."""

class QuarantinedError(EdgertError, RuntimeError): ...
class CompiledModeFailure(EdgertError, RuntimeError):
    kernel: str | None
    version: int | None

class FallbackMismatchError(EdgertError, ValueError):
    kernel: str | None
    version: int | None
    compiled_result: Any
    reference_result: Any
    difference: str | None

class SignatureError(IntegrityError): ...
class UnknownKeyError(SignatureError): ...
class ManifestExpiredError(SignatureError): ...
class RollbackError(SignatureError): ...
class StateFileError(EdgertError, OSError): ...

__all__ = ["EdgertError", "IntegrityError", "ModuleFormatError", "SymbolNotFoundError", "ManifestError", "ModuleUnloadedError", "KernelCrash", "KernelTimeout", "QuarantinedError", "CompiledModeFailure", "FallbackMismatchError", "SignatureError", "UnknownKeyError", "ManifestExpiredError", "RollbackError", "StateFileError", "CallbackError"]
