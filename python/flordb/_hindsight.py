"""``flor.replay``: hindsight logging from Python (a notebook, a script), the same engine
as ``flor replay`` on the command line.

The where-clause is pandas ``query`` syntax over ``flor.dataframe()`` of the names it
mentions (names no run has logged yet are empty columns, so ``x.isna()`` works); the
runs with a matching row are replayed. The engine does the rest: it carries the
statements into each run's version, plans from the checkpoints, runs the tasks in
worktrees on a pool of workers and merges the values.
"""

from __future__ import annotations

import keyword
import os
import re
import sys
from typing import Any, Iterable, Sequence

from . import _native
from ._frames import dataframe
from ._native import ReplayError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _where_columns(where_clause: str) -> list[str]:
    """Names the clause mentions (identifiers outside string literals, not keywords)."""
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", " ", where_clause)
    text = re.sub(r"`([^`]*)`", lambda m: f" {m.group(1)} ", text)
    seen: list[str] = []
    for m in _IDENT.finditer(text):
        word = m.group(0)
        before = text[: m.start()].rstrip()
        if before.endswith("."):  # a method or attribute: x.isna(), s.str
            continue
        if keyword.iskeyword(word) or word in ("True", "False", "None") or word in seen:
            continue
        seen.append(word)
    return seen


def _known_names() -> set[str]:
    try:
        return {row[0] for row in _native.query(os.getcwd(), "SELECT text FROM names")[1]}
    except Exception:  # noqa: BLE001 - no store yet: nothing is known
        return set()


def _selected_runs(names: list[str], where_clause: str) -> list[str]:
    import pandas as pd

    known = _known_names()
    mentioned = _where_columns(where_clause)
    frame = dataframe(*[n for n in mentioned if n in known])
    if frame is None or len(frame) == 0:
        return []
    for name in mentioned:
        if name not in frame.columns and (name in names or name not in known):
            frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    hits = query_rows(frame, where_clause, "flor.dataframe()")
    return list(dict.fromkeys(hits["run_id"].astype(str)))


def query_rows(frame, where_clause: str, what: str):
    """The rows of ``frame`` where ``where_clause`` (pandas ``query`` syntax) holds, with
    no access to any Python name: no ``@name`` of the caller's or of FlorDB's, no dunder
    attributes (a where-clause may come from a web page)."""
    if "@" in where_clause or "__" in where_clause:
        raise ReplayError(
            f"where_clause {where_clause!r}: only column names, literals, comparisons and column "
            "methods (x.isna(), x.astype(...)) are allowed; no @names and no __attributes__"
        )
    try:
        return frame.query(where_clause, engine="python", local_dict={}, global_dict={})
    except Exception as err:  # noqa: BLE001 - pandas raises many kinds for a bad clause
        raise ReplayError(f"where_clause {where_clause!r} failed on {what}: {err}") from None


def _pairs(items: Any, what: str) -> list[str]:
    if not items:
        return []
    if isinstance(items, dict):
        items = items.items()
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        else:
            key, value = item
            out.append(f"{key}={value}")
    return out


def replay(
    apply_vars: str | Sequence[str],
    *positional: Any,
    where_clause: str | None = None,
    path: str | None = None,
    narrow_iters: Iterable | dict | None = None,
    overrides: Iterable | dict | None = None,
    workers: int = 1,
    dry_run: bool = False,
    yes: bool | None = None,
):
    """Replays past runs so that the log statements ``apply_vars`` (names, or
    ``"@LINE"`` of today's script) get values for them, and returns
    ``flor.dataframe(*apply_vars, *<columns the where-clause mentions>)``.

    ``where_clause`` (pandas ``query`` syntax over ``flor.dataframe()``) picks the runs;
    ``path`` names today's script (default: the newest run's). ``narrow_iters``
    (``{"epoch": "0,2"}`` or flordb's ``[("epoch", "0,2")]``) and ``overrides``
    (``{"device": "cpu"}``) are passed on as ``--iter`` and ``--override``. It asks
    before starting only on an interactive terminal; ``yes=True`` never asks.

    Positionally, flordb 4.0.1's order, ``replay(apply_vars, narrow_iters, where_clause,
    overrides)``, and the older ``replay(apply_vars, where_clause, path)`` both work: a
    text second argument is a where-clause.
    """
    given = dict(where_clause=where_clause, path=path, narrow_iters=narrow_iters, overrides=overrides)
    order = ("where_clause", "path") if positional and isinstance(positional[0], str) else ("narrow_iters", "where_clause", "overrides")
    if len(positional) > len(order):
        raise TypeError(f"replay() takes at most {len(order) + 1} positional arguments in this form ({', '.join(('apply_vars',) + order)})")
    for key, value in zip(order, positional):
        if given[key] is not None:
            raise TypeError(f"replay() got {key} both by position and by name")
        given[key] = value
    where_clause, path = given["where_clause"], given["path"]
    narrow_iters, overrides = given["narrow_iters"], given["overrides"]
    names = _names(apply_vars)
    runs = None
    if where_clause:
        runs = _selected_runs([n for n in names if not n.startswith("@")], where_clause)
        if not runs:
            print(f"flor.replay: no run matches {where_clause!r}", file=sys.stderr)
            return _result(names, where_clause)
    execute(names, runs, path, narrow_iters=narrow_iters, overrides=overrides, workers=workers, dry_run=dry_run, yes=yes)
    return _result(names, where_clause)


def _names(apply_vars: str | Sequence[str]) -> list[str]:
    names = [apply_vars] if isinstance(apply_vars, str) else list(apply_vars)
    if not names:
        raise ReplayError("flor.replay: nothing to apply: name the flor.log statements to replay")
    return names


def execute(
    names: list[str],
    runs: list[str] | None,
    path: str | None,
    *,
    narrow_iters: Any = None,
    overrides: Any = None,
    workers: int = 1,
    dry_run: bool = False,
    yes: bool | None = None,
) -> None:
    """Runs the engine's replay of ``names`` over ``runs`` (ids, tstamps or run names;
    ``None``: every run of the script)."""
    argv = ["flor", "replay", *names, "--workers", str(workers)]
    if path is not None:
        argv += ["--script", str(path)]
    for run in runs or []:
        argv += ["--run", run]
    for item in _pairs(narrow_iters, "narrow_iters"):
        argv += ["--iter", item]
    for item in _pairs(overrides, "overrides"):
        argv += ["--override", item]
    if dry_run:
        argv.append("--dry-run")
    interactive = all(getattr(f, "isatty", lambda: False)() for f in (sys.stdin, sys.stdout, sys.stderr))
    if yes or (yes is None and not interactive):
        argv.append("--yes")
    os.environ.setdefault("FLORDB_PYTHON", sys.executable)
    if interactive:
        # A terminal: the engine prompts and draws its progress bar there itself.
        sys.stdout.flush()
        code = _native.cli_main(argv)
    else:
        code = _run_streamed(argv)
    if code == 2:
        raise ReplayError("flor.replay failed; see the message above")


def _run_streamed(argv: list[str]) -> int:
    """Runs ``flor replay`` as a child process and copies its output into this
    process's ``sys.stdout``/``sys.stderr`` (a notebook's cell output), line by line."""
    import subprocess
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "flordb", *argv[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )

    def copy(src, dst_name: str) -> None:
        for line in src:
            dst = getattr(sys, dst_name)
            dst.write(line)
            dst.flush()

    err = threading.Thread(target=copy, args=(proc.stderr, "stderr"), daemon=True)
    err.start()
    try:
        copy(proc.stdout, "stdout")
        err.join()
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(2)
        proc.wait()
        raise


def _result(names: list[str], where_clause: str | None):
    log_names = [n for n in names if not n.startswith("@")]
    known = _known_names()
    extra = [c for c in _where_columns(where_clause or "") if c in known and c not in log_names]
    return dataframe(*log_names, *extra)
