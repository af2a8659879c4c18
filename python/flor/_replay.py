"""``flor.replay`` as the 2023 notebook calls it::

    flor.replay(apply_vars=["cf_matrix"],
                where_clause='cf_matrix.isna() and hidden_size.astype("float") < 250',
                path="main.py")

The where-clause is evaluated on ``full_pivot(log_records())``, with every requested
name present as a column (empty where no run logged it yet); the matching runs are
replayed by the engine exactly as ``flor replay`` does, and the refreshed frame is
returned.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from flordb import ReplayError
from flordb._hindsight import execute, query_rows

from ._pivot import full_pivot, log_records


def replay(
    apply_vars: str | Sequence[str],
    where_clause: str | None = None,
    path: str | None = None,
    **options: Any,
):
    """Replays the runs matching ``where_clause`` so that ``apply_vars`` get values;
    returns ``full_pivot(log_records())`` afterwards. ``options`` are those of
    ``flordb.replay`` (``narrow_iters``, ``overrides``, ``workers``, ``dry_run``, ``yes``)."""
    names = [apply_vars] if isinstance(apply_vars, str) else list(apply_vars)
    if not names:
        raise ReplayError("flor.replay: nothing to apply: name the flor.log statements to replay")
    runs = None
    if where_clause:
        frame = full_pivot(log_records())
        if frame is None or len(frame) == 0:
            print("flor.replay: no runs recorded yet", file=sys.stderr)
            return frame
        for name in names:
            if not name.startswith("@") and name not in frame.columns:
                frame[name] = None
        hits = query_rows(frame, where_clause, "full_pivot(log_records())")
        runs = _run_ids(hits)
        if not runs:
            print(f"flor.replay: no run matches {where_clause!r}", file=sys.stderr)
            return full_pivot(log_records())
    execute(names, runs, path, **options)
    return full_pivot(log_records())


def _run_ids(hits) -> list[str]:
    """The run ids of the matching rows: by run identity (name and start time together),
    not by name, which several runs may share (``--flor baseline`` three times)."""
    import os

    import pandas as pd

    from flordb import _native

    _, rows = _native.query(os.getcwd(), "SELECT run_id, COALESCE(name, run_id), tstamp FROM runs", [], False)
    by_key = {(runid, pd.Timestamp(tstamp)): run_id for run_id, runid, tstamp in rows}
    out: list[str] = []
    for runid, tstamp in zip(hits["runid"].astype(str), hits["tstamp"]):
        run_id = by_key.get((runid, pd.Timestamp(tstamp)))
        if run_id is not None and run_id not in out:
            out.append(run_id)
    return out
