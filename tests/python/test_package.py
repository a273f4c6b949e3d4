"""The package as a whole: names, import paths, exceptions."""
import logging

import edgert
from edgert import _edgert


def test_version_matches_core():
    assert edgert.__version__ == _edgert.core_version


def test_every_exported_name_exists():
    for name in edgert.__all__:
        assert hasattr(edgert, name), name


def test_exceptions_derive_from_edgert_error_and_builtins():
    assert issubclass(edgert.IntegrityError, edgert.EdgertError)
    assert issubclass(edgert.ManifestError, ValueError)
    assert issubclass(edgert.SymbolNotFoundError, LookupError)
    assert issubclass(edgert.CompiledModeFailure, RuntimeError)
    assert edgert.KernelCrash.__module__ == "edgert"


def test_library_logger_has_a_null_handler():
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("edgert").handlers)
