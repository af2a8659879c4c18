"""``flor.arg`` as flordb 2.6-2.7 read it: ``--kwargs name=value`` (today's spelling)
or ``--name value`` / ``--name=value`` on the script's own command line.

``--kwargs`` wins when both are given. The ``--name value`` tokens are left in
``sys.argv``: FlorDB cannot know at import which of them are its arguments.
"""

from __future__ import annotations

import sys
from typing import Any

import flordb
from flordb import _native, _session


def _legacy_value(argv: list[str], name: str) -> str | None:
    flag = f"--{name}"
    for i, token in enumerate(argv[1:], start=1):
        if token == "--":
            return None
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token[len(flag) + 1 :]
    return None


def arg(name: str, default: Any = None) -> Any:
    """Returns the run input ``name`` and records it: ``--kwargs name=value``, else
    ``--name value``, else ``default`` (values cast to the default's type)."""
    if name not in _session._state.flags.kwargs:
        text = _legacy_value(sys.argv, name)
        if text is not None:
            _session._state.read_args.add(name)
            value = _session._cast(name, text, default, where=f"--{name} {text}")
            _native.log_arg(name, value)
            return value
    return flordb.arg(name, default)
