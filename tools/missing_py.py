"""Print the PyPI distributions among argv that are not installed, one a line.

A name with extras (``dask[distributed]``) counts as installed when the
distribution is and so is every distribution its extras require (on this
interpreter); else it is printed as given, for pip."""
import importlib.metadata
import re
import sys


def _base(req: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", req, maxsplit=1)[0]


def installed(spec: str) -> bool:
    name, _, rest = spec.partition("[")
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    for extra in filter(None, (e.strip() for e in rest.rstrip("]").split(","))):
        for req in dist.requires or []:
            if ";" not in req:
                continue
            marker = req.split(";", 1)[1]
            if not re.search(r"extra\s*==\s*['\"]%s['\"]" % re.escape(extra), marker):
                continue
            try:
                importlib.metadata.distribution(_base(req))
            except importlib.metadata.PackageNotFoundError:
                return False
    return True


for spec in sys.argv[1:]:
    if not installed(spec):
        print(spec)
