"""The ``flor`` command (installed as a script): the engine's command line."""

from __future__ import annotations

import os
import platform
import sys

from . import _native


def main(argv: list[str] | None = None) -> int:
    """Runs ``flor`` with ``argv`` (default: this process's arguments)."""
    args = list(sys.argv if argv is None else argv)
    args[0] = "flor"
    if len(args) > 1 and args[1] == "run":
        # The script runs in this interpreter, under the recorder.
        from ._launch import run_script

        return run_script(args[2:])
    os.environ.setdefault("FLOR_PYTHON_VERSION", platform.python_version())
    # `flor replay` runs the scripts with the interpreter this package is installed in.
    os.environ.setdefault("FLORDB_PYTHON", sys.executable)
    try:
        return _native.cli_main(args)
    except KeyboardInterrupt:
        # Ctrl-C while the engine ran: it has stopped and cleaned up; no traceback.
        return 130


if __name__ == "__main__":
    sys.exit(main())
