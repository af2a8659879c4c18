"""FlorDB's own command-line flags, taken out of ``sys.argv`` at import.

Unlike flordb 4, which runs a strict argparse over the whole command line (so a
script's own flags break as soon as ``--kwargs`` appears), only FlorDB's flags are
consumed here and everything else is left for the script's own parser.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class Flags:
    """FlorDB's flags found on the command line."""

    kwargs: dict[str, str] = field(default_factory=dict)
    # The command line as given, before FlorDB's flags were taken out.
    original: list[str] = field(default_factory=list)


def _is_flag(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


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
