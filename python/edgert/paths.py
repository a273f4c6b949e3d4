"""Where an installed edgert keeps its C headers and libedgert, so C code can
build against the package the way it builds against NumPy with
`numpy.get_include()`:

    cc -shared -fPIC -I"$(python -c 'import edgert; print(edgert.get_include())')" \\
       point.c "$(python -c 'import edgert; print(edgert.get_library())')"

The wheel, `pip install .` and the build tree (<build>/py/edgert) all lay the
package out alike: the headers in edgert/include (edgert.h and edgert/*.h),
and libedgert as one file named by its SONAME (libedgert.so.0) beside the
extension, which is the library every part of the process shares: a module
linked against get_library() uses the same instance, and so the same type
registry, as the extension (the dynamic loader matches it by SONAME).
"""
from __future__ import annotations

import os

from . import _edgert

__all__ = ["get_include", "get_library", "get_library_dir"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_include() -> str:
    """The directory holding edgert.h and edgert/*.h: pass it to `-I`."""
    d = os.path.join(_HERE, "include")
    if not os.path.isfile(os.path.join(d, "edgert.h")):
        raise FileNotFoundError(
            f"edgert's C headers are not in {d} (edgert.h missing): this copy of the "
            "package was installed without them; reinstall edgert from a wheel or with "
            "`pip install .`")
    return d


def get_library_dir() -> str:
    """The directory holding libedgert (the package's own directory): for
    `-L` and an rpath."""
    return _HERE


def get_library() -> str:
    """The path of libedgert's shared library, named by its SONAME
    (libedgert.so.<major>): link against this file."""
    name = "libedgert.so." + _edgert.core_version.split(".")[0]
    path = os.path.join(_HERE, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} is not in {_HERE}: this copy of the package is "
                                "incomplete; reinstall edgert")
    return path
