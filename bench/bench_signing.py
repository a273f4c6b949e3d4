"""Signing bench: what verifying a signed manifest adds to load_manifest.

Target (issue #16): one Ed25519 verify, with the key parsed once per key
set, adds <= 0.3 ms to load_manifest. Each row times load_manifest of the
same one-module manifest (libbenchk.so, 3 contracts) signed and unsigned, in
alternation so a busy machine slows both alike; the target column is the
ratio that +0.3 ms over the unsigned load would give, so `holds` checks the
absolute budget. Rows: trusted keys as a prebuilt KeySet, as a list of key
paths (each key file read and parsed per call), and with a state file (an
equal version: read and compared, nothing written). A last row times
verify_manifest alone against reading the manifest unsigned.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import tempfile
from typing import List

import common
from common import Row

import edgert
from edgert import signing

C = ctypes
BUDGET_NS = 300_000.0  # 0.3 ms


def _row(case: str, ours: float, peer_name: str, peer: float) -> Row:
    added = ours - peer
    return Row("signing", case, ours, peer_name, peer, f"<= {(peer + BUDGET_NS) / peer:.2f}x",
               note=f"adds {added / 1e6:.3f} ms (budget 0.3 ms)")


def run() -> List[Row]:
    kpath = common.build_dir() / "bench" / "libbenchk.so"
    tmp = tempfile.mkdtemp(prefix="edgert-bench-signing-")
    try:
        lib = os.path.join(tmp, "libbenchk.so")
        shutil.copyfile(kpath, lib)
        with open(lib, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        contracts = [edgert.ABIContract("add", [C.c_double, C.c_double], C.c_double).to_dict(),
                     edgert.ABIContract("inc", [C.c_int64], C.c_int64).to_dict(),
                     edgert.ABIContract("noop", []).to_dict()]
        doc = {"schema_version": 1, "version": 1, "expires": "2099-01-01T00:00:00Z",
               "modules": [{"path": "libbenchk.so", "sha256": digest, "contracts": contracts}]}
        man = os.path.join(tmp, "m.json")
        with open(man, "w") as f:
            json.dump(doc, f, indent=1)
        key, pub = os.path.join(tmp, "key"), os.path.join(tmp, "key.pub")
        signing.generate_key(key, pub)
        signing.sign_manifest(man, key)
        keys = signing.KeySet([pub])
        state = os.path.join(tmp, "state")
        signing.verify_manifest(man, keys, state_file=state)  # recorded once

        def unsigned():
            edgert.load_manifest(man).unload()

        def with_keyset():
            edgert.load_manifest(man, trusted_keys=keys).unload()

        def with_paths():
            edgert.load_manifest(man, trusted_keys=[pub]).unload()

        def with_state():
            edgert.load_manifest(man, trusted_keys=keys, state_file=state).unload()

        rows = []
        ours, peer = common.paired_ns(with_keyset, unsigned)
        rows.append(_row("load_manifest signed, KeySet", ours, "unsigned", peer))
        ours, peer = common.paired_ns(with_paths, unsigned)
        rows.append(_row("load_manifest signed, key paths", ours, "unsigned", peer))
        ours, peer = common.paired_ns(with_state, unsigned)
        rows.append(_row("load_manifest signed, KeySet + state file", ours, "unsigned", peer))
        ours, peer = common.paired_ns(lambda: signing.verify_manifest(man, keys),
                           lambda: edgert.read_manifest(man))
        rows.append(_row("verify_manifest vs read_manifest", ours, "read_manifest", peer))
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
