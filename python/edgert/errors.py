"""The exceptions edgert raises. All derive from EdgertError; where a
built-in exception fits too (ValueError, LookupError, RuntimeError) they
derive from it as well, so existing handlers keep working."""
from ._edgert import (
    CallbackError,
    CompiledModeFailure,
    EdgertError,
    FallbackMismatchError,
    IntegrityError,
    KernelCrash,
    KernelTimeout,
    ManifestError,
    ModuleFormatError,
    ModuleUnloadedError,
    QuarantinedError,
    ManifestExpiredError,
    RollbackError,
    SignatureError,
    StateFileError,
    UnknownKeyError,
    SymbolNotFoundError,
)

__all__ = [
    "EdgertError",
    "IntegrityError",
    "ModuleFormatError",
    "SymbolNotFoundError",
    "ManifestError",
    "ModuleUnloadedError",
    "KernelCrash",
    "KernelTimeout",
    "QuarantinedError",
    "CompiledModeFailure",
    "FallbackMismatchError",
    "SignatureError",
    "UnknownKeyError",
    "ManifestExpiredError",
    "RollbackError",
    "StateFileError",
    "CallbackError",
]
