"""FlorDB's own command-line flags, taken out of ``sys.argv`` at import.

Unlike flordb 4, which runs a strict argparse over the whole command line (so a
script's own flags break as soon as ``--kwargs`` appears), only FlorDB's flags are
consumed here and everything else is left for the script's own parser:

- ``--kwargs k=v [k=v ...]``: values for ``flor.arg``;
- ``--flor NAME [EPSILON]``: the 2023 spelling that names the run (``runid`` in
  ``log_records()``); the optional EPSILON (a number like ``0.1``, the old
  checkpoint overhead budget) is accepted and kept in ``Flags.epsilon``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field


@dataclass
class Flags:
    """FlorDB's flags found on the command line."""

    kwargs: dict[str, str] = field(default_factory=dict)
    # ``--flor NAME``: the run's name.
    run_name: str | None = None
    # ``--flor NAME 0.1``: flordb 2.x's checkpoint overhead budget, kept for the
    # checkpoint engine; nothing reads it yet.
    epsilon: float | None = None
    # The command line as given, before FlorDB's flags were taken out.
    original: list[str] = field(default_factory=list)


def _is_flag(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


# flordb 2.x's EPSILON token: a fraction such as 0.1, .05 or 1e-2.
_EPSILON = re.compile(r"\d*\.\d+([eE]-?\d+)?|\d+[eE]-\d+")


def _epsilon(token: str) -> float | None:
    if not _EPSILON.fullmatch(token):
        return None
    value = float(token)
    return value if 0.0 <= value <= 1.0 else None


def take_flags(argv: list[str]) -> tuple[Flags, list[str]]:
    """Splits FlorDB's flags from ``argv``; returns them and the script's own argv.

    ``--kwargs k=v [k=v ...]`` takes every following ``k=v`` token; a value may itself
    contain ``=`` (only the first one splits), and ``--kwargs=k=v`` works too.
    """
    flags = Flags(original=list(argv))
    rest: list[str] = argv[:1]
    i = 1
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest.extend(argv[i:])
            break
        if token == "--flor" or token.startswith("--flor="):
            if "=" in token:
                name = token.split("=", 1)[1]
                i += 1
            else:
                name = argv[i + 1] if i + 1 < len(argv) else ""
                i += 2
            if not name or _is_flag(name):
                raise SystemExit("flordb: --flor needs a run name (e.g. --flor baseline)")
            flags.run_name = name
            if i < len(argv) and (eps := _epsilon(argv[i])) is not None:
                flags.epsilon = eps
                i += 1
            continue
        if token == "--kwargs" or token.startswith("--kwargs="):
            items = [token.split("=", 1)[1]] if "=" in token else []
            i += 1
            while i < len(argv) and "=" in argv[i] and not _is_flag(argv[i]):
                items.append(argv[i])
                i += 1
            if not items:
                raise SystemExit("flordb: --kwargs needs at least one NAME=VALUE (e.g. --kwargs lr=0.01 epochs=5)")
            for item in items:
                name, value = item.split("=", 1)
                if not name:
                    raise SystemExit(f"flordb: --kwargs {item!r} has no name before '='")
                flags.kwargs[name] = value
            continue
        rest.append(token)
        i += 1
    return flags, rest


def install() -> Flags:
    """Takes FlorDB's flags out of ``sys.argv`` (the script's parser never sees them)."""
    flags, rest = take_flags(sys.argv)
    sys.argv[:] = rest
    return flags
