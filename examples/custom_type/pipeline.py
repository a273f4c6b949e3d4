"""The article's custom-type flow, as written there, then the type in use.

Run after building (PYTHONPATH=<build>/py), from this directory's build
output: python3 pipeline.py <build>/examples/custom_type/libcustom_types.so
"""
import ctypes
import sys

from pyv_edge_agent.module_host.abi import ABIContract
from pyv_edge_agent.module_host.loader import ModuleLoader

import edgert


class PointObj:
    def __init__(self, x, y):
        self.x, self.y = x, y


def main(path: str) -> None:
    abi = ABIContract(
        function_name="register_custom_type",
        arg_types=[
            ctypes.c_char_p,  # type name
            ctypes.c_void_p,  # sizeof_fn
            ctypes.c_void_p,  # check_fn
            ctypes.c_void_p,  # copy_fn
        ],
        return_type=ctypes.c_int,
    )
    loader = ModuleLoader()
    loader.load(path, abi)
    sizeof_fp, check_fp, copy_fp = (loader.address_of(n) for n in
                                    ("sizeof_point", "check_point", "copy_point"))
    assert loader.call("register_custom_type", b"Point", sizeof_fp, check_fp, copy_fp) == 0

    points = edgert.TypedList("Point", [PointObj(1, 2), PointObj(3, 4), PointObj(5, 6)])
    loader.bind(ABIContract("point_mean_x", [ctypes.c_void_p, ctypes.c_size_t],
                            ctypes.c_double))
    print("mean x:", loader.call("point_mean_x", points, len(points)))  # 3.0, no copy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "./libcustom_types.so")
