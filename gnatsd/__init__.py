"""gnatsd: a NATS server in Python on gevent.

Public API: `Server`, `Options`, `__version__`.
"""
from .const import GNATSD_VERSION as __version__
from .opts import Options
from .server import Server

__all__ = ["Server", "Options", "__version__"]
