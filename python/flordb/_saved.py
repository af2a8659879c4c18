"""The files a script saves with ``torch.save``, kept per run, and where a run's state
came from (flordb 4.0.1's checkpoint copies and lineage; the rules and the store are the
engine's, ``crates/flor-core/src/record/recorder/lineage.rs``).

- Forward, after ``torch.save(obj, path)`` writes the file, the run keeps a copy of it
  (one per path as passed, the last save); ``flor.checkpoints(run)`` lists the copies
  and ``flor.load_checkpoint(run, "ckpt.pth")`` reads one back.
- Forward, a ``torch.load(path)`` outside any ``flor.loop`` of a file that is another
  run's copy, untouched since (same path, size and modification time), records that
  this run resumed from that run (``flor::start``); so does ``flor.load_checkpoint``
  called by a training script.
- In replay, the set-up code finds the file as the run found it: the recorded run's
  copy stands in for the path until the outer loop starts, and ``torch.load`` reads it;
  ``flor.load_checkpoint`` reads the copy the run read, whatever run its arguments pick
  now. A copy that is not here, or a recorded set-up load that the replay never made,
  refuses the replay: training from initialization instead would give plausible,
  wrong values.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from . import _native, _on_torch
from ._native import FlorError, ReplayError


def install() -> None:
    """Keeps copies of what a script run saves (torch patched the moment it is imported)."""
    _on_torch.when_imported(_patch_forward)


def _path_of(f: Any) -> str | None:
    return os.fsdecode(f) if isinstance(f, (str, bytes, os.PathLike)) else None


def _patch_forward() -> None:
    torch = sys.modules["torch"]
    if getattr(torch.save, "_flor_kept", False):
        return
    from . import _capture, _replay

    original_save, original_load = torch.save, torch.load

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_save(obj, f, *args, **kwargs)
        name = _path_of(f)
        if name is not None and not _replay.active():
            try:
                _native.saved_keep(name, os.path.abspath(name))
            except FlorError as err:
                _capture.say(f"flordb: torch.save({name!r}) wrote the file, but this run kept no copy of it: {err}")
        return result

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        name = _path_of(f)
        if name is not None and not _replay.active() and os.path.isfile(name):
            try:
                _native.note_resume(name, os.path.abspath(name))
            except FlorError as err:
                _capture.say(f"flordb: torch.load({name!r}): where this run's state came from is not recorded: {err}")
        return original_load(f, *args, **kwargs)

    save._flor_kept = True  # type: ignore[attr-defined]
    torch.save, torch.load = save, load


# -- replay ---------------------------------------------------------------------------


class _Lineage:
    """What the replayed run recorded of where its state came from."""

    run_id: str = ""
    flor_dir: str = ""
    # torch.load starts: real path -> (scratch copy, start); set-up ones not yet loaded.
    loads: dict[str, tuple[str, dict]] = {}
    pending_setup: set[str] = set()
    # load_checkpoint starts by (name, call), and the calls made so far per name.
    explicit: dict[tuple[str, int], dict] = {}
    calls: Counter = Counter()


def prepare_replay(info: dict, scratch_copy: Any) -> dict[str, str]:
    """Reads the replayed run's starts; puts each copy it loaded by path in a scratch
    file (``scratch_copy(path, bytes)`` writes one and names it). Returns real path -> scratch file for the
    paths that stand in until the outer loop starts. Refuses (SystemExit) a run whose
    copy is not here."""
    _Lineage.run_id, _Lineage.flor_dir = info["run_id"], str(info["flor_dir"])
    standing_in: dict[str, str] = {}
    for text in info.get("starts") or []:
        start = json.loads(text)
        source, name = start.get("run"), start.get("name") or start.get("key")
        if start.get("via") == "load_checkpoint":
            _Lineage.explicit[(name, int(start.get("call", 0)))] = start
            continue
        try:
            data = _native.saved_read(_Lineage.flor_dir, source, name)
        except FlorError as err:
            raise SystemExit(
                f"flordb: replay: run {info['run_id']} resumed from run {source}'s copy of {name}, which cannot be "
                f"read here ({err}); replay would train from another state and give wrong values "
                "(replay where that run's copies are)"
            ) from None
        real = os.path.realpath(start["key"])
        scratch = scratch_copy(real, data)
        _Lineage.loads[real] = (scratch, start)
        if start.get("setup", True):
            standing_in[real] = scratch
            _Lineage.pending_setup.add(real)
    return standing_in


def replay_load_path(real: str | None) -> str | None:
    """In replay, the file ``torch.load`` of ``real`` reads instead (the run's copy)."""
    if real is None or real not in _Lineage.loads:
        return None
    _Lineage.pending_setup.discard(real)
    return _Lineage.loads[real][0]


def check_setup_loads() -> None:
    """At the outer loop's start in replay: every set-up load the run made was made."""
    if not _Lineage.pending_setup:
        return
    missed = sorted(_Lineage.loads[p][1]["key"] for p in _Lineage.pending_setup)
    _Lineage.pending_setup = set()
    raise ReplayError(
        f"run {_Lineage.run_id} loaded {', '.join(missed)} before its loop (resuming another run), but this replay "
        "skipped that set-up load; refusing to train from initialization, which would give wrong values"
    )


def explicit_run(asked: str, name: str) -> str:
    """In replay, the run whose copy ``flor.load_checkpoint(asked, name)`` reads: the one
    the replayed run read at this call. Outside replay, ``asked``."""
    from . import _replay

    if not _replay.active():
        return asked
    call = _Lineage.calls[name]
    _Lineage.calls[name] += 1
    start = _Lineage.explicit.get((name, call))
    if start is None:
        raise ReplayError(
            f"flor.load_checkpoint({asked!r}, {name!r}): run {_Lineage.run_id} recorded no matching load "
            f"(call {call} of that name); replay cannot know which state it started from"
        )
    recorded = start["run"]
    if recorded != asked:
        from . import _capture

        _capture.say(
            f"flordb: flor.load_checkpoint now selects run {asked}, but the run being replayed started from run "
            f"{recorded}: replay reads {recorded}'s copy"
        )
    return recorded


def note_explicit(run_id: str, name: str) -> None:
    """Forward, in a script run: this run starts from ``run_id``'s ``name``."""
    from . import _replay, _session

    if _replay.active() or not _session._is_script_run():
        return
    call = _Lineage.calls[name]
    _Lineage.calls[name] += 1
    _native.note_explicit_start(run_id, name, call)
