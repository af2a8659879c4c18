"""``flordb.api``: flordb 4.0.1's module of the recording and reading calls; the same
functions as the package's top level."""

from . import _compat
from ._capture import set_capture
from ._ckpt import checkpointing, checkpoints, load_checkpoint
from ._frames import dataframe, io, query
from ._hindsight import replay
from ._session import arg, commit, iteration, log, loop, set_echo

restore = _compat.restore
set_ckpt_interval = _compat.set_ckpt_interval

__all__ = [
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
    "query",
    "replay",
    "restore",
    "set_capture",
    "set_echo",
    "set_ckpt_interval",
]
