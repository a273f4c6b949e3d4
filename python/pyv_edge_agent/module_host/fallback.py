from edgert.fallback import *  # noqa: F401,F403
from edgert.fallback import __all__  # noqa: F401
