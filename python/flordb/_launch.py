"""``flor run train.py ARGS...``: records a script that does not import flordb.

The script runs in this process as ``python train.py ARGS...`` would run it (as
``__main__``, with its own ``sys.argv`` and its folder first on ``sys.path``), and its
run keeps what FlorDB can know without a line of FlorDB in it: the command line, the
arguments its ``argparse`` parser read (as hyper-parameters), the code version, what it
printed or logged (output capture) and how it ended. ``python -m flordb capture
--extract`` then turns printed metrics into values.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from . import _capture, _environment, _native, _session

USAGE = """usage: flor run SCRIPT [ARGS...]

Runs SCRIPT with ARGS as `python SCRIPT ARGS...` would and records it as a FlorDB run:
its command line, the arguments its argparse parser reads (as hyper-parameters), its
code version, what it prints and logs, and its exit status. The script needs no change.
"""


def run_script(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        _capture.say(USAGE.rstrip())
        return 0 if args else 2
    script = args[0]
    if not os.path.isfile(script):
        _capture.say(f"flor run: {script}: no such script (flor run SCRIPT [ARGS...])")
        return 2
    sys.argv[:] = args
    _session.configure_for_script()
    _hook_argparse()
    # The run starts now, so that a script that prints nothing is recorded too.
    _environment.record(_native)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


def _hook_argparse() -> None:
    """Records what the script's top-level ``parse_args`` (or ``parse_known_args``)
    returns, each argument once, as a hyper-parameter."""
    import argparse

    original = argparse.ArgumentParser.parse_known_args
    depth = [0]
    seen: set[str] = set()

    def parse_known_args(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        depth[0] += 1
        try:
            result = original(self, *a, **kw)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            namespace = result[0] if isinstance(result, tuple) else result
            for name, value in vars(namespace).items():
                if name in seen or name.startswith("_"):
                    continue
                seen.add(name)
                try:
                    _native.log_arg(name, value)
                except Exception:  # noqa: BLE001 - never in the way of the script's parsing
                    pass
        return result

    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]
