from edgert.loader import *  # noqa: F401,F403
from edgert.loader import __all__  # noqa: F401
