from edgert.abi import *  # noqa: F401,F403
from edgert.abi import __all__  # noqa: F401
