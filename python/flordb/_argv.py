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

import os
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
    # Replay (spec §3.1): --replay_flor --apply a,b --iter epoch=1,3 --override k=v --workers N
    replay: bool = False
    apply: list[str] = field(default_factory=list)
    iters: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    # Internal, for the replay orchestrator and its workers: which run, which file, and
    # whether to recompute from the loop's start (after a segment diverged).
    replay_run: str | None = None
    replay_output: str | None = None
    replay_from_start: bool = False


_VALUED = ("--apply", "--iter", "--override", "--workers", "--replay_run", "--replay_output")


def check_iter_spec(loop: str, spec: str) -> str:
    """Validates an --iter SPEC: all, last, none, empty (none) or a comma list of ints."""
    text = spec.strip()
    if text in ("all", "last", "none", ""):
        return text or "none"
    try:
        [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"flordb: --iter {loop}={spec}: expected all, last, none or iterations like 0,2,5") from None
    return text


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
        if token == "--replay_flor":
            flags.replay = True
            i += 1
            continue
        if token == "--replay_from_start":
            flags.replay_from_start = True
            i += 1
            continue
        flag, eq, inline = token.partition("=")
        if flag in _VALUED:
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                raise SystemExit(f"flordb: {flag} needs a value")
            _take_valued(flags, flag, value)
            continue
        rest.append(token)
        i += 1
    _check(flags)
    return flags, rest


def _take_valued(flags: Flags, flag: str, value: str) -> None:
    if flag == "--apply":
        flags.apply.extend(n.strip() for n in value.split(",") if n.strip())
    elif flag in ("--iter", "--override"):
        name, eq, spec = value.partition("=")
        if not eq or not name:
            example = "epoch=0,2" if flag == "--iter" else "device=cpu"
            raise SystemExit(f"flordb: {flag} {value!r}: expected NAME=VALUE (e.g. {flag} {example})")
        if flag == "--iter":
            flags.iters[name] = check_iter_spec(name, spec)
        else:
            flags.overrides[name] = spec
    elif flag == "--workers":
        try:
            flags.workers = int(value)
        except ValueError:
            flags.workers = 0
        if flags.workers < 1:
            raise SystemExit(f"flordb: --workers {value!r}: expected a number of processes, 1 or more")
    elif flag == "--replay_run":
        flags.replay_run = value
    else:
        flags.replay_output = value


def _check(flags: Flags) -> None:
    # `flor replay` passes the recorded command line on, --kwargs included: replay
    # takes the args from the recorded run anyway.
    if flags.replay and flags.kwargs and flags.replay_run is None:
        raise SystemExit(
            "flordb: cannot combine --kwargs with --replay_flor: replay uses the recorded run's args; "
            "use --override KEY=VALUE for args the run did not read"
        )
    if not flags.replay and (flags.apply or flags.iters or flags.overrides or flags.workers != 1 or flags.replay_run):
        raise SystemExit("flordb: --apply / --iter / --override / --workers require --replay_flor")


def install() -> Flags:
    """Takes FlorDB's flags out of ``sys.argv`` (the script's parser never sees them).

    FlorDB's own command line (``flor ...``, ``python -m flordb ...``, where ``argv[0]``
    is still ``-m`` while the package is imported) keeps its arguments: ``--workers``
    there is ``flor replay``'s."""
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program in ("-m", "flor"):
        return Flags(original=list(sys.argv))
    flags, rest = take_flags(sys.argv)
    sys.argv[:] = rest
    return flags
