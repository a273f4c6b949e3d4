"""CLI bench: `edgert hash` against `sha256sum` on a 100 MB file (issue #16:
within 1.1x). Both are whole-process wall times (start-up included), run in
alternation so a busy machine slows both alike; the file is read once
beforehand so both hash from the page cache.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

import common
from common import Row

SIZE = 100 * 1000 * 1000


def _wall(cmd: List[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1e9


def run() -> List[Row]:
    peer = shutil.which("sha256sum")
    if peer is None:
        print("bench cli: no sha256sum here; the hash row is skipped", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="edgert-bench-cli-") as tmp:
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as f:
            chunk = os.urandom(1 << 20)
            left = SIZE
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        ours_cmd = [sys.executable, "-m", "edgert", "hash", path]
        peer_cmd = [peer, path]
        out_ours = subprocess.run(ours_cmd, check=True, stdout=subprocess.PIPE).stdout.split()[0]
        out_peer = subprocess.run(peer_cmd, check=True, stdout=subprocess.PIPE).stdout.split()[0]
        assert out_ours == out_peer, (out_ours, out_peer)
        a, b = [], []
        for _ in range(max(common.REPEAT, 5)):
            a.append(_wall(ours_cmd))
            b.append(_wall(peer_cmd))
    return [Row("cli", "edgert hash 100 MB (process)", statistics.median(a), "sha256sum",
                statistics.median(b), "<= 1.1x")]
