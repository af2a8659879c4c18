"""IPython and Jupyter: one run per cell that records.

When FlorDB is imported inside an IPython shell or kernel, a ``post_run_cell`` hook
ends the run a cell started (a cell that raised ends it as failed), so every cell
that logs is its own run, as in flordb 3.4 and 4. ``flor.commit()`` inside a cell
ends the run earlier. Cells that only read (``dataframe``, ``log_records`` ...) start
no run.

Notebooks often ``os.chdir`` into the project after ``import flordb``: before each
cell, while no run is active, the recorder follows the working directory.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable


def _shell() -> Any:
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def install(reconfigure: Callable[[str], None], commit: Callable[[int], Any], active: Callable[[], bool]) -> bool:
    """Registers the cell hooks in the running IPython shell; False outside IPython.

    ``reconfigure(cwd)`` points the recorder at another directory, ``commit(code)``
    ends the active run, ``active()`` says whether a run is active.
    """
    shell = _shell()
    if shell is None or not hasattr(shell, "events"):
        return False
    configured = [os.getcwd()]

    def pre_run_cell(*_: Any) -> None:
        cwd = os.getcwd()
        if cwd != configured[0] and not active():
            reconfigure(cwd)
            configured[0] = cwd

    def post_run_cell(result: Any = None) -> None:
        if not active():
            return
        failed = result is not None and getattr(result, "error_in_exec", None) is not None
        try:
            commit(1 if failed else 0)
        except Exception as err:  # noqa: BLE001 - a hook must never break the shell
            print(f"flordb: the cell's run could not be saved completely: {err}", file=sys.stderr)

    shell.events.register("pre_run_cell", pre_run_cell)
    shell.events.register("post_run_cell", post_run_cell)
    return True
