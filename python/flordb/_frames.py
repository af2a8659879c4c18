"""Reading: ``dataframe``, ``query``, ``runs``, ``unpack``.

The engine computes the table; this module only wraps its column buffers in numpy and
pandas. pandas is imported on first use, so training scripts that only record never
pay for it.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from . import _native

# Columns holding a run's flordb timestamp, shown as pandas datetimes.
_TIMESTAMP_COLUMNS = ("tstamp",)


def _column(name: str, kind: str, data: Any, extra: Any):
    import numpy as np
    import pandas as pd

    # The engine's buffers are fresh bytearrays: numpy wraps them writable, uncopied.
    if kind == "int":
        values = np.frombuffer(data, dtype="<i8")
        mask = np.frombuffer(extra, dtype=np.bool_)
        return pd.arrays.IntegerArray(values, mask)
    if kind == "float":
        return np.frombuffer(data, dtype="<f8")
    if kind == "bool":
        values = np.frombuffer(data, dtype=np.bool_)
        mask = np.frombuffer(extra, dtype=np.bool_)
        return pd.arrays.BooleanArray(values, mask)
    if kind == "text":
        codes = np.frombuffer(data, dtype="<i4")
        if name in _TIMESTAMP_COLUMNS:
            categories = pd.to_datetime(pd.Series(extra, dtype=object), errors="coerce", format="ISO8601")
            lookup = np.append(categories.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT"))
            return lookup[codes]  # code -1 picks the trailing missing value
        # Take from the few distinct strings: no per-cell conversion, and the column
        # gets the installed pandas' own string dtype.
        strings = pd.array(list(extra), dtype=pd.Series(["x"]).dtype)
        return strings.take(codes.astype(np.intp), allow_fill=True)
    values = np.empty(len(data), dtype=object)
    values[:] = data
    return values


def _frame(columns: list) -> "Any":
    import pandas as pd

    if not columns:
        return pd.DataFrame()
    data = {name: _column(name, kind, a, b) for name, kind, a, b in columns}
    return pd.DataFrame(data, copy=False)


def dataframe(*names: str):
    """Every run as one pandas DataFrame.

    With names: one row per loop context where any of them was logged, with columns
    ``projid, tstamp, filename, run_id, source``, one integer column per loop (its
    0-based iteration; ``<loop>_value`` where the items are not just positions), then
    the names. A value logged outside a loop repeats on every row of its run; an
    epoch-level value on every step of its epoch. Numbers come back as numbers.

    Without names: the run table, one row per run with its args and run-level values.
    """
    flat: list[str] = []
    for n in names:
        if isinstance(n, (list, tuple)):
            flat.extend(n)
        else:
            flat.append(n)
    for n in flat:
        if not isinstance(n, str):
            raise TypeError(f"flor.dataframe takes log names as strings, got {n!r}")
    return _frame(_native.dataframe(os.getcwd(), flat))


def _rows_frame(columns: Sequence[str], rows: list):
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    for name in frame.columns:
        col = frame[name]
        if col.dtype == object and len(col) and col.map(lambda v: isinstance(v, int) and not isinstance(v, bool) or v is None).all() and col.notna().any():
            frame[name] = col.astype("Int64")
    return frame


def query(sql: str, params: Sequence[Any] | None = None, *, write: bool = False):
    """Runs SQL on the query cache and returns a DataFrame (empty when no rows match).

    Tables: ``runs``, ``records``, ``names``, ``ctxs``, ``replays`` (where replayed values
    came from); flordb's ``logs`` is a view.
    Values are bound with ``?`` placeholders: ``flor.query("select * from logs where
    value_name = ?", ["loss"])``. Statements that modify the cache need ``write=True``.
    """
    columns, rows = _native.query(os.getcwd(), sql, list(params or []), write)
    return _rows_frame(columns, rows)


def runs():
    """Every recorded run: id, timestamp, script, branch, code version, status
    (finished, failed, running or killed), exit code, start, duration, record count."""
    columns, rows = _native.runs(os.getcwd())
    import pandas as pd

    frame = _rows_frame(columns, rows)
    if len(frame):
        frame["tstamp"] = pd.to_datetime(frame["tstamp"], errors="coerce", format="ISO8601")
        frame["start"] = pd.to_datetime(frame["start"], unit="s", errors="coerce")
    return frame


def unpack() -> dict:
    """Rebuilds the query cache from ``.flor/runs/*.jsonl``; returns counts."""
    return _native.unpack(os.getcwd())


def io(channel: str | None = None):
    """The captured output of every run: one row per line, in the order it was printed,
    with the run's columns, a column per loop of the line's context, ``channel`` and
    ``line``. ``channel`` keeps one channel and those under it: ``"io::log"`` is every
    logging level, ``"io::log::error"`` one."""
    return _frame(_native.io(os.getcwd(), channel))
