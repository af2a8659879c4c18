"""FlorDB: hindsight logging for machine learning.

Record training runs cheaply, query every run of every version as one table::

    import flordb as flor

    lr = flor.arg("lr", 1e-3)                      # --kwargs lr=0.01 on the command line
    for epoch in flor.loop("epoch", range(5)):
        for x, y in flor.loop("step", batches):
            flor.log("loss", loss)
        flor.log("val_acc", acc)

    flor.dataframe("lr", "loss", "val_acc")         # every run, one pandas DataFrame

``flor.log("cf_matrix", fig)`` with a matplotlib figure, a PIL image or an image file
stores the image under ``.flor/artifacts/`` and logs its path.

The engine is Rust (``flordb._native``); this package is the thin layer that touches
live Python objects. ``import flor`` gives the 2023 names (``MTK``, ``log_records``,
``full_pivot``) on the same engine.
"""

from ._native import (
    CheckpointError,
    CheckpointNotFoundError,
    FlorError,
    GitError,
    ProjectNotFoundError,
    QueryError,
    RecordError,
    ReplayError,
    RunNotFoundError,
    StoreError,
    __version__,
)
from ._session import ArgError, arg, commit, iteration, log, loop, set_echo
from ._frames import dataframe, io, query, runs, unpack
from ._capture import set_capture
from ._artifacts import MissingDependencyError, plot_confusion_matrix
from ._ckpt import checkpointing, checkpoints, load_checkpoint
from ._hindsight import replay
from ._compat import Clock, restore, set_ckpt_interval
from . import api, capture, database, utils  # noqa: E402 - flordb 4.0.1's modules

VALUE_TYPE_LOG = 1
VALUE_TYPE_IO = 2
VALUE_TYPE_TIME = 3
VALUE_TYPE_START = 4

__all__ = [
    "ArgError",
    "Clock",
    "CheckpointError",
    "CheckpointNotFoundError",
    "FlorError",
    "GitError",
    "MissingDependencyError",
    "ProjectNotFoundError",
    "QueryError",
    "RecordError",
    "ReplayError",
    "RunNotFoundError",
    "StoreError",
    "__version__",
    "arg",
    "checkpointing",
    "checkpoints",
    "commit",
    "dataframe",
    "io",
    "iteration",
    "load_checkpoint",
    "log",
    "loop",
    "plot_confusion_matrix",
    "query",
    "replay",
    "restore",
    "runs",
    "set_capture",
    "set_echo",
    "set_ckpt_interval",
    "unpack",
]


def __getattr__(name: str):
    # flordb 4.0.1's constants (CURRDIR, PROJID, FLORDIR, ...), computed when first read.
    from ._compat import constant

    return constant(name)
