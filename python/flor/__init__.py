"""``import flor``: the names of the 2023 FlorDB (2.5-2.7) on today's engine.

Scripts and notebooks written for it run unchanged::

    import flor
    from flor import MTK as Flor

    hidden = flor.arg("hidden_size", 500)           # --kwargs hidden_size=250, or --hidden_size 250
    Flor.checkpoints(model, optimizer)
    for epoch in Flor.loop(range(epochs)):          # recorded as loop "epoch"
        for i, (x, y) in Flor.loop(enumerate(data)):    # loop "step"
            flor.log("loss", loss.item())
    flor.log("cf_matrix", flor.utils.plot_confusion_matrix(y_true, y_pred))

    # python main.py --flor NAME: the run's name, `runid` below
    from flor import log_records, full_pivot
    pvt = full_pivot(log_records())                 # DATA_PREP keys, epoch, step, names

Every other ``flordb`` name (``dataframe``, ``query``, ``runs``, ``commit``...) is
available here too. ``flor.replay(apply_vars, where_clause, path)`` replays past runs for
new statements, selecting them with the where-clause on ``full_pivot(log_records())``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, TypeVar

import flordb
from flordb import (
    ArgError,
    FlorError,
    commit,
    dataframe,
    iteration,
    log,
    query,
    runs,
    unpack,
)

from . import utils
from ._args import arg
from ._constants import DATA_PREP, INNR_LOOP, OUTR_LOOP
from ._mtk import MTK
from ._pivot import full_pivot, log_records
from ._replay import replay

T = TypeVar("T")


def loop(name: str | Iterable[T], iterable: Iterable[T] | None = None) -> Iterator[T]:
    """``flor.loop(name, iterable)`` as in flordb; ``flor.loop(iterable)`` names the
    loop by its depth like ``Flor.loop`` (``epoch``, then ``step``)."""
    if iterable is None and not isinstance(name, str):
        return MTK.loop(name)
    return flordb.loop(name, iterable)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    try:
        return getattr(flordb, name)
    except AttributeError:
        raise AttributeError(f"module 'flor' has no attribute {name!r}") from None


__all__ = [
    "replay",
    "DATA_PREP",
    "INNR_LOOP",
    "MTK",
    "OUTR_LOOP",
    "ArgError",
    "FlorError",
    "arg",
    "commit",
    "dataframe",
    "full_pivot",
    "iteration",
    "log",
    "log_records",
    "loop",
    "query",
    "runs",
    "unpack",
    "utils",
]
