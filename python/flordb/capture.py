"""``flordb.capture``: flordb 4.0.1's module for output capture
(``python/flordb/_capture.py`` does the work)."""

from ._capture import say, set_capture
from ._frames import io

__all__ = ["io", "say", "set_capture"]
