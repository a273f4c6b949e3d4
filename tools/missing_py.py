"""Print the PyPI distributions among argv that are not installed, one a line."""
import importlib.metadata
import sys

for name in sys.argv[1:]:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        print(name)
