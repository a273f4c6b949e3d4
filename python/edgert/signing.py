"""Signed manifests: Ed25519 keys, detached signatures, verification.

A signed manifest carries a top-level ``"version"`` (a positive integer that
rises with each release) and ``"expires"`` (RFC 3339 UTC,
``"2027-01-01T00:00:00Z"``), and a signature file beside it,
``<manifest>.sig``, over the manifest's exact bytes::

    edgert-signature-v1
    key-id: 3f1c0e9a7b2d4c56
    signature: <128 hex digits>

Keys are standard PEM files (``openssl genpkey -algorithm ed25519`` works as
well as :func:`generate_key`); a key id is the first 16 hex digits of the
SHA-256 of the raw 32-byte public key. Every rule lives in libedgert
(``include/edgert/sign.h``), so C hosts and Python accept and refuse the same
files with the same messages. Refusals, all raised before any module is read:
:class:`~edgert.SignatureError` (no, a malformed or a non-matching signature),
:class:`~edgert.UnknownKeyError`, :class:`~edgert.ManifestExpiredError`,
:class:`~edgert.RollbackError` (a ``version`` lower than the state file's),
:class:`~edgert.StateFileError` (an ``OSError``: the state file cannot be read
or written) and :class:`~edgert.ManifestError` (no ``version``/``expires``).
See docs/signing.md.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _edgert

__all__ = ["KeySet", "generate_key", "key_id", "sign_manifest", "verify_manifest"]

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Key = Union[str, bytes, "os.PathLike[str]"]

#: Trusted Ed25519 public keys, each parsed once when the set is made. Build
#: one and pass it as ``trusted_keys`` to skip re-reading the key files on
#: every load.
KeySet = _edgert.KeySet


def _keyset(trusted_keys: "Union[KeySet, Sequence[_Key]]") -> "KeySet":
    if isinstance(trusted_keys, KeySet):
        return trusted_keys
    return KeySet(trusted_keys)


def generate_key(private_path: _Path, public_path: _Path) -> str:
    """Makes a new Ed25519 key pair and writes it as PEM: the private key to
    `private_path` (mode 0600), the public key to `public_path`. Neither may
    exist (keys are never overwritten: ``ValueError``). Returns the key id."""
    return _edgert.signing_generate_key(private_path, public_path)


def key_id(public_key_path: _Path) -> str:
    """The key id (16 hex digits) of the PEM Ed25519 key at the path (a
    public key, or a private key: its public key's id)."""
    return _edgert.signing_key_id(public_key_path)


def sign_manifest(manifest_path: _Path, private_key_path: _Path,
                  sig_path: Optional[_Path] = None) -> str:
    """Signs the manifest's exact bytes with the PEM private key and writes
    the signature file (atomically) to `sig_path`, default
    ``<manifest_path>.sig``. The manifest must be valid and carry
    ``"version"`` and ``"expires"`` (``ManifestError`` otherwise). Returns the
    path of the signature file written."""
    out = os.fsdecode(sig_path) if sig_path is not None else os.fsdecode(manifest_path) + ".sig"
    _edgert.signing_sign_manifest(manifest_path, private_key_path, out)
    return out


def _read_signed(path: _Path, trusted_keys: "Union[KeySet, Sequence[_Key]]",
                 state_file: Optional[_Path], sig_path: Optional[_Path],
                 now: Optional[int] = None) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    return _edgert.signing_read_signed_manifest(path, _keyset(trusted_keys), state_file,
                                                sig_path, now)


def verify_manifest(manifest_path: _Path, trusted_keys: "Union[KeySet, Sequence[_Key]]",
                    state_file: Optional[_Path] = None,
                    sig_path: Optional[_Path] = None) -> Dict[str, Any]:
    """Verifies a signed manifest without loading anything: the signature
    over its exact bytes by one of `trusted_keys` (PEM public key paths, PEM
    bytes, or a :class:`KeySet`), its ``version`` and ``expires``, and, with
    `state_file`, that its version is not lower than the highest this device
    accepted (and records it when higher). Returns ``{"key_id", "version",
    "expires", "expires_at", "previous_version"}``; raises on any refusal."""
    info, _ = _read_signed(manifest_path, trusted_keys, state_file, sig_path)
    return info
