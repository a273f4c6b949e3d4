"""`python -m edgert`: the edgert command line (edgert.cli, docs/cli.md)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
