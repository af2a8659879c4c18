"""flordb 4.0.1's remaining public names: its constants, ``Clock``, and the retired
calls old versions of a script still make (which replay runs).

The constants name this project's own layout (``.flor/objects`` for content-addressed
objects, ``.flor/flor.db`` for the cache); they are computed when first read, from the
working directory, and reading them creates nothing.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Any

from . import _capture, _native


class Clock:
    """When this process imported flordb: ``current_datetime`` (local time, ISO format
    with microseconds, as flordb 4.0.1 names runs) and ``start_time`` (perf_counter)."""

    current_datetime = datetime.datetime.now().isoformat(timespec="microseconds")
    start_time = time.perf_counter()


_PATHS = {
    "CURRDIR": "root",
    "FLORDIR": "flor_dir",
    "RUNS_DIR": "runs_dir",
    "OBJSTORE_DIR": "objects_dir",
    "DB_PATH": "db_path",
}


def constant(name: str) -> Any:
    """The value of one of flordb 4.0.1's module constants; AttributeError otherwise."""
    if name == "SCRIPTNAME":
        return os.path.basename(sys.argv[0]) if sys.argv else ""
    if name == "PROJID":
        return os.path.basename(str(_native.project_paths(os.getcwd())["root"]))
    if name in _PATHS:
        return str(_native.project_paths(os.getcwd())[_PATHS[name]])
    raise AttributeError(f"module 'flordb' has no attribute {name!r}")


CONSTANTS = ("CURRDIR", "PROJID", "FLORDIR", "RUNS_DIR", "OBJSTORE_DIR", "DB_PATH", "SCRIPTNAME")

_told: set[str] = set()


def _notice_once(what: str, text: str) -> None:
    if what not in _told:
        _told.add(what)
        _capture.say(text)


def restore(path: Any = None, *targets: Any, **keyed: Any) -> None:
    """Retired in flordb 4.0.1: a one-time notice, nothing else (``flor.checkpointing``
    saves and restores state here)."""
    _notice_once(
        "restore",
        "flordb: flor.restore(...) no longer has an effect; flor.checkpointing(...) around the loop saves and restores state",
    )


def set_ckpt_interval(seconds: Any = None) -> None:
    """Retired in flordb 4.0.1: a one-time notice, nothing else (the checkpoint budget is
    ``FLOR_EPSILON``, a fraction of training time)."""
    _notice_once(
        "set_ckpt_interval",
        "flordb: flor.set_ckpt_interval(...) no longer has an effect; FLOR_EPSILON sets the checkpoint time budget",
    )
