"""edgert: call compiled kernels safely and fast.

Typed containers stored inline in C, a loader that verifies a module's
SHA-256 before any of its code runs and binds its functions through libffi,
guarded calls that survive crashing kernels, and a dispatch layer (Nexus).
See docs/python-api.md.
"""
import logging as _logging

from . import _edgert
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .abi import *  # noqa: F401,F403
from .abi import __all__ as _abi_all
from .loader import *  # noqa: F401,F403
from .loader import __all__ as _loader_all
from .manifest import *  # noqa: F401,F403
from .manifest import __all__ as _manifest_all
from .fallback import *  # noqa: F401,F403
from .fallback import __all__ as _fallback_all
from .containers import *  # noqa: F401,F403
from .containers import __all__ as _containers_all
from .nexus import *  # noqa: F401,F403
from .nexus import __all__ as _nexus_all
from .paths import *  # noqa: F401,F403
from .paths import __all__ as _paths_all
from .structs import *  # noqa: F401,F403
from .structs import __all__ as _structs_all
from .isolation import *  # noqa: F401,F403
from .isolation import __all__ as _isolation_all
from .workers import *  # noqa: F401,F403
from .workers import __all__ as _workers_all
from . import signing  # noqa: F401  (edgert.signing; its names stay in it)
from . import _pickle  # noqa: F401  (registers pickling by content: docs/distributed.md)

__version__: str = _edgert.__version__

# A library logs; the application decides where logs go.
_logging.getLogger("edgert").addHandler(_logging.NullHandler())

__all__ = ["__version__", *_errors_all, *_abi_all, *_loader_all, *_manifest_all, *_fallback_all,
           *_containers_all, *_nexus_all, *_paths_all, *_structs_all,
           *_isolation_all, *_workers_all]
