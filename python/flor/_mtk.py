"""``MTK`` (flordb 2.x's Model Training Kit): ``from flor import MTK as Flor``.

``Flor.loop(iterable)`` is ``flordb.loop`` without a name: the outermost loop is
``epoch``, the one inside it ``step``, deeper ones ``loop_2``, ``loop_3``... (their
depth), which is what ``log_records()`` reads as its ``epoch`` and ``step`` columns.

``Flor.checkpoints(*objs)`` enrols objects positionally. They are named ``obj_0``,
``obj_1``... by position, so that every version of a script that passes the same
objects in the same order names them alike. Where ``flordb.checkpointing`` exists,
the objects are handed to it (as keywords) for the outermost ``Flor.loop``; until
then they are only kept (``MTK.enrolled()``), and nothing is checkpointed.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Iterable, Iterator, TypeVar

import flordb

T = TypeVar("T")

# The replay analyzer names unnamed loops the same way without running the script
# (`depth_name` in crates/flor-core/src/analyze/sites.rs): change both together.
_LOOP_NAMES = ("epoch", "step")


class MTK:
    """The 2023 notebook's training kit; every method is a static method."""

    _enrolled: dict[str, Any] = {}
    _depth = 0

    @staticmethod
    def loop_name(depth: int) -> str:
        """The name ``Flor.loop`` gives a loop nested ``depth`` deep (0: outermost)."""
        return _LOOP_NAMES[depth] if depth < len(_LOOP_NAMES) else f"loop_{depth}"

    @staticmethod
    def loop(iterable: Iterable[T]) -> Iterator[T]:
        """Yields the items of ``iterable``, recorded as loop ``epoch`` (outermost),
        ``step`` (inside it) or ``loop_<depth>`` (deeper)."""
        depth = MTK._depth
        MTK._depth += 1
        try:
            with ExitStack() as stack:
                if depth == 0:
                    _enter_checkpointing(stack)
                yield from flordb.loop(MTK.loop_name(depth), iterable)
        finally:
            MTK._depth -= 1

    @staticmethod
    def checkpoints(*objs: Any) -> None:
        """Enrols ``objs`` (a model, an optimizer, ...) for checkpoints of the
        outermost ``Flor.loop``, named ``obj_0``, ``obj_1``... by position."""
        MTK._enrolled = {f"obj_{i}": obj for i, obj in enumerate(objs)}

    @staticmethod
    def enrolled() -> dict[str, Any]:
        """The objects given to ``checkpoints``, by the names they are enrolled under."""
        return dict(MTK._enrolled)


def _enter_checkpointing(stack: ExitStack) -> None:
    checkpointing = getattr(flordb, "checkpointing", None)
    if checkpointing is None or not MTK._enrolled:
        return
    block = checkpointing(**MTK._enrolled)
    if hasattr(block, "__enter__"):
        stack.enter_context(block)
