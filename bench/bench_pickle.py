"""Pickling bench (issue #14): a bound function pickled and unpickled in the
same process, where unpickling binds by SHA-256 to the module already
loaded (no file read, no hash), against pickle of a plain Python function
reference (ctypes and cffi functions do not pickle at all), with and
without an unpickled copy of the function alive (then it is reused); the same for
a nexus Kernel handle (its bound function by hash, its reference by name, its
options); and a 1e6-float TypedList with protocol 5 out of band against protocol 4 (a copy)."""
from __future__ import annotations

import ctypes
import pickle
from typing import List

import common
from common import Row

from edgert import ABIContract, Kernel, ModuleLoader, TypedList


def plain(x: float, y: float) -> float:
    return x + y


def run() -> List[Row]:
    kpath = str(common.build_dir() / "bench" / "libbenchk.so")
    ld = ModuleLoader().load(kpath, ABIContract("add", [ctypes.c_double] * 2, ctypes.c_double))
    g = {"pickle": pickle, "f": ld.function("add"), "plain": plain}
    g["blob"] = pickle.dumps(g["f"])
    g["pblob"] = pickle.dumps(plain)
    rows: List[Row] = []
    ours, peer = common.paired_ns("pickle.loads(pickle.dumps(f))", "pickle.loads(pickle.dumps(plain))", g)
    rows.append(Row("pickle", "bound add(): dumps+loads, by-hash hit", ours,
                    "pickle of a Python function ref", peer, note=f"({ours / 1e3:.1f} us)"))
    def loads_row(blob: str, what: str) -> None:
        ours, peer = common.paired_ns(f"pickle.loads({blob})", "pickle.loads(pblob)", g)
        rows.append(Row("pickle", what, ours, "loads of a Python function ref", peer,
                        note=f"({ours / 1e3:.1f} us; issue #14 asks <= 20 us)"))

    loads_row("blob", "bound add(): loads, by-hash (open_loaded + bind)")
    g["alive"] = pickle.loads(g["blob"])  # one unpickled copy alive: reused, no bind
    loads_row("blob", "bound add(): loads, an unpickled copy alive")
    del g["alive"]
    # A Kernel handle: the bound function (by hash), the reference (a
    # module-level function: by name), the options; no counters.
    g["kblob"] = pickle.dumps(Kernel("kadd", g["f"], plain, max_failures=5, validate_every=100))
    loads_row("kblob", "Kernel(add): loads, by-hash (bind + reference + options)")
    g["kalive"] = pickle.loads(g["kblob"])  # its bound function alive: reused, no bind
    loads_row("kblob", "Kernel(add): loads, an unpickled copy alive")
    del g["kalive"]
    tl = TypedList(float, [0.0]) * 1_000_000
    g.update(tl=tl)
    ours, peer = common.paired_ns("pickle.dumps(tl, protocol=5, buffer_callback=list().append)",
                                  "pickle.dumps(tl, protocol=4)", g)
    rows.append(Row("pickle", "TypedList 1e6 floats dumps, protocol 5 out of band", ours,
                    "protocol 4 (in-band copy)", peer))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
