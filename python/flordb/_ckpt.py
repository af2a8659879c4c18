"""Checkpoints of the training state: ``checkpointing`` (enrolment), taking them at the
outer ``flor.loop``'s iteration boundaries, restoring them in replay, and reading them
back with ``checkpoints`` / ``load_checkpoint``.

A checkpoint is the enrolled objects' state plus the RNG states (Python ``random``,
numpy's global generator, torch's CPU and CUDA generators). Tensors and arrays become
raw byte buffers (the "leaves") that the engine copies once and then hashes, compresses
and stores on its own thread; everything else is pickled into a small "skeleton" with
placeholders where the leaves were. torch is never imported here: it is used only if
the script already imported it.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

from . import _native
from ._native import CheckpointError, CheckpointNotFoundError, FlorError

# `_Leaf` is named here too: checkpoints pickled before it moved refer to it by this module.
from ._objects import _capture_object, _flatten, _Leaf, _restore_object, _unflatten  # noqa: F401

# The objects enrolled by the innermost active `flor.checkpointing(...)`.
_enrolled: dict[str, Any] = {}

_IMMUTABLE = (int, float, complex, str, bytes, bool, tuple, frozenset, type(None))


def enrolled() -> dict[str, Any]:
    return _enrolled


@contextmanager
def checkpointing(*, epsilon: float | None = None, **objs: Any) -> Iterator[None]:
    """Enrols objects whose state is checkpointed at the outer ``flor.loop``'s
    iteration boundaries and restored by replay::

        with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
            for epoch in flor.loop("epoch", range(10)):
                ...

    Anything with ``state_dict()``/``load_state_dict()`` (torch modules, optimizers, LR
    schedulers, grad scalers), numpy arrays (restored in place), and mutable picklable
    objects (dicts, lists, objects with attributes) can be enrolled. RNG states are
    always captured. ``epsilon`` is the budget: checkpoints may cost at most that
    fraction of training time (default 1/15, or ``FLOR_EPSILON``); when they are cheap
    every iteration is kept.
    """
    for name, obj in objs.items():
        if isinstance(obj, _IMMUTABLE):
            raise FlorError(
                f"flor.checkpointing({name}=...): a {type(obj).__name__} cannot be restored in place; "
                "enrol a mutable container that holds it (a dict or a list)"
            )
    if epsilon is not None:
        _native.set_epsilon(float(epsilon))
    previous = dict(_enrolled)
    _enrolled.update(objs)
    from . import _replay

    _replay.patch_torch()
    try:
        yield
    finally:
        _enrolled.clear()
        _enrolled.update(previous)


def configure_from_env() -> None:
    text = os.environ.get("FLOR_EPSILON")
    if text:
        try:
            _native.set_epsilon(float(text))
        except ValueError:
            raise FlorError(f"FLOR_EPSILON={text!r} is not a number (e.g. 0.0667 for 1/15)") from None


# -- capturing ------------------------------------------------------------------------


def _rng_state() -> dict:
    # Pickled into the skeleton as it is, not flattened into leaves: the states are small,
    # and walking Python's 625-int tuple item by item was a third of a snapshot's time.
    state: dict[str, Any] = {"random": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = torch.get_rng_state().numpy().tobytes()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = [s.numpy().tobytes() for s in torch.cuda.get_rng_state_all()]
    return state


def snapshot(
    objs: dict[str, Any], frame: Any = None, carried: list | None = None
) -> tuple[bytes, list, list[tuple[str, str]], list | None]:
    """The state of ``objs`` and the RNGs, plus the loop's ``carried`` state read from
    ``frame`` (``_carried``): (pickled skeleton, leaf buffers, objects, carried infos)."""
    objects: dict[str, Any] = {}
    infos = []
    for name, obj in objs.items():
        backend, st = _capture_object(obj)
        objects[name] = (backend, st)
        infos.append((name, backend))
    leaves: list = []
    skeleton: dict[str, Any] = {"objects": _flatten(objects, leaves), "rng": _rng_state()}
    carried_infos = None
    if carried is not None and frame is not None:
        from . import _carried

        skeleton["carried"], carried_infos = _carried.capture(frame, carried, objs, leaves)
    try:
        data = pickle.dumps(skeleton, protocol=5)
    except Exception as err:  # noqa: BLE001 - any pickling failure is the user's object
        raise CheckpointError(f"flor.checkpointing: an enrolled object cannot be pickled: {err}") from None
    return data, leaves, infos, carried_infos


# -- restoring ------------------------------------------------------------------------


def decode(skeleton: bytes, leaves: list, device: Any = None) -> dict:
    return _unflatten(pickle.loads(skeleton), leaves, device)


def _set_rng(state: dict) -> None:
    random.setstate(state["random"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.set_rng_state(_byte_tensor(state["torch"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_byte_tensor(s) for s in state["cuda"]])


def _byte_tensor(state: Any) -> Any:
    """A generator state as torch wants it back (bytes; checkpoints from older builds hold tensors)."""
    import torch

    if isinstance(state, bytes):
        return torch.frombuffer(bytearray(state), dtype=torch.uint8)
    return state


def restore(objs: dict[str, Any], skeleton: bytes, leaves: list, frame: Any = None) -> None:
    """Puts a checkpoint's state back into the live ``objs`` and the RNGs, and its carried
    state into ``frame`` (the frame running the loop)."""
    state = decode(skeleton, leaves)
    from ._native import ReplayError

    for name, (backend, st) in state["objects"].items():
        if name not in objs:
            raise ReplayError(
                f"the recorded run checkpointed {name!r}, but this script's flor.checkpointing(...) "
                f"has no object by that name (it has: {', '.join(objs) or 'none'})"
            )
        _restore_object(name, objs[name], backend, st)
    _set_rng(state["rng"])
    if frame is not None and state.get("carried"):
        from . import _carried

        _carried.restore(frame, state["carried"], leaves)


# -- taking, in forward runs ------------------------------------------------------------


class _Taking:
    run: str | None = None
    occurrence = -1
    loop_name = ""
    epoch = -1
    take = False
    nested = 0
    # The frame running the outer loop, and what the loop carries across iterations.
    frame: Any = None
    carried: list = []


_taking = _Taking()


def _take(iteration: int, point: str, index: int) -> None:
    started = time.perf_counter()
    end = point == "end"
    skeleton, leaves, infos, carried = snapshot(
        _enrolled, _taking.frame if end else None, _taking.carried if end else None
    )
    _native.ckpt_take(
        _taking.loop_name, _taking.occurrence, iteration, point, index, skeleton, leaves, infos,
        time.perf_counter() - started, carried,
    )


def outer_enter(name: str) -> None:
    from . import _carried

    current = _native.current_run()
    run = current[0] if current else None
    if run != _taking.run:
        _taking.run, _taking.occurrence = run, -1
    _taking.occurrence += 1
    _taking.loop_name = name
    _taking.take = False
    _taking.frame = _carried.user_frame(sys._getframe(1))
    _taking.carried = _carried.carried_for(_taking.frame)
    _take(-1, "end", 0)


def outer_start(iteration: int, last: bool) -> None:
    _taking.epoch = iteration
    _taking.nested = 0
    _taking.take = _native.ckpt_decide(last)


def nested_exit() -> None:
    if _taking.take:
        _take(_taking.epoch, "nested", _taking.nested)
        _taking.nested += 1


def outer_end(iteration: int) -> None:
    if _taking.take:
        _take(iteration, "end", _taking.nested)
    _taking.take = False


def outer_exit() -> None:
    _taking.take = False
    _taking.frame = None


# -- reading back -----------------------------------------------------------------------


def _run_key(run: Any) -> str:
    if isinstance(run, str):
        return run
    if hasattr(run, "isoformat"):
        try:
            return run.isoformat(timespec="microseconds")
        except TypeError:
            return run.isoformat()
    raise TypeError(f"a run is given by its run_id or tstamp, not {type(run).__name__}")


def checkpoints(run: Any):
    """What one run saved, as a DataFrame (reads only indexes and manifests):

    - ``kind="run"``: the copies of the files the script saved with ``torch.save``, one
      per path as passed (``name``, e.g. ``ckpt.pth``), holding the last save; ``path``
      is where the script wrote it, ``backend`` is ``state_dict`` as in flordb 4.0.1.
    - ``kind="iteration"``: the checkpoints of ``flor.checkpointing``, one row per
      checkpoint and enrolled object. ``iteration`` -1 is the loop's entry; ``point`` is
      ``end`` (after the iteration) or ``nestedK`` (after its K-th nested loop).
      ``carried`` maps each value the loop carries across iterations beyond its enrolled
      objects to how the checkpoint saved it (``value``, ``state``, ``unchanged``,
      ``unbound``, ``ignored``, or ``failed: why``; see ``flordb._carried``).

    Columns: ``run_id, kind, name, backend, path, loop, iteration, point, raw_bytes,
    carried``.
    """
    import pandas as pd

    run_id, flor_dir = _native.resolve_run(os.getcwd(), _run_key(run))
    rows = []
    for s in _native.saved_list(str(flor_dir), run_id):
        rows.append((run_id, "run", s["name"], "state_dict", s["path"], None, None, None, s["size"], None))
    for m in _native.ckpt_list(str(flor_dir), run_id):
        point = "end" if m["point"] == "end" else f"nested{m['index']}"
        carried = None
        if m["carried"] is not None:
            carried = {path: (f"{how}: {note}" if how == "failed" else how) for path, how, note in m["carried"]}
        for name, backend in m["objects"]:
            rows.append((run_id, "iteration", name, backend, None, m["loop"], m["iteration"], point, m["raw_bytes"], carried))
    columns = ["run_id", "kind", "name", "backend", "path", "loop", "iteration", "point", "raw_bytes", "carried"]
    return pd.DataFrame(rows, columns=columns)


class _NameNeeded(CheckpointError, ValueError):
    """``load_checkpoint`` without a name of a run that saved several things (a
    ValueError too, as flordb 4.0.1 raises)."""


def load_checkpoint(
    run: Any,
    name: str | None = None,
    *,
    iteration: int | None = None,
    loop: str | None = None,
    map_location: Any = "cpu",
    weights_only: bool = True,
) -> Any:
    """Reads back what ``run`` saved under ``name``:

    - a file the script saved with ``torch.save`` (``name`` as the script passed it,
      e.g. ``"ckpt.pth"``): the object, through ``torch.load`` with ``map_location`` and
      ``weights_only``, as flordb 4.0.1 does;
    - an object enrolled in ``flor.checkpointing``: its state_dict (tensors on
      ``map_location``), numpy array or unpickled object, from the checkpoint after
      outer iteration ``iteration`` (-1: the loop's entry; default: the last) of the
      outer loop ``loop`` (when a run has several).

    ``name`` may be left out when the run saved exactly one thing. Every chunk is
    verified; a missing or corrupt copy raises ``CheckpointError``
    (``CheckpointNotFoundError`` when there is none). Called by a training script, it
    records that the run starts from that copy, and its replay reads the same copy.
    """
    from . import _saved

    run_id, flor_dir = _native.resolve_run(os.getcwd(), _run_key(run))
    files = [s["name"] for s in _native.saved_list(str(flor_dir), run_id)]
    ends = [m for m in _native.ckpt_list(str(flor_dir), run_id) if m["point"] == "end" and (loop is None or m["loop"] == loop)]
    objects = sorted({n for m in ends for n, _ in m["objects"]})
    if name is None:
        everything = files + [o for o in objects if o not in files]
        if not everything:
            raise CheckpointNotFoundError(
                f"run {run_id} has no checkpoints here (it saved no file with torch.save and ran without "
                "flor.checkpointing, or its checkpoints stay on the machine that recorded it: they do not travel with git)"
            )
        if len(everything) > 1:
            raise _NameNeeded(f"run {run_id} saved {len(everything)} things ({', '.join(everything)}): pass an explicit name=...")
        name = everything[0]
    if name in files and iteration is None and loop is None:
        source = _saved.explicit_run(run_id, name)
        data = _native.saved_read(str(flor_dir), source, name)
        _saved.note_explicit(source, name)
        import io

        import torch

        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)
    if not ends:
        raise CheckpointNotFoundError(
            f"run {run_id} has no checkpoint of {name!r} here (it saved: {', '.join(files) or 'nothing'}; "
            "checkpoints stay on the machine that recorded them: they do not travel with git)"
        )
    if iteration is None:
        chosen = max(ends, key=lambda m: (m["occurrence"], m["iteration"]))
    else:
        matching = [m for m in ends if m["iteration"] == iteration]
        if not matching:
            have = sorted({m["iteration"] for m in ends})
            raise CheckpointNotFoundError(f"run {run_id} has no checkpoint after iteration {iteration} (it has: {have})")
        chosen = matching[0]
    held = [n for n, _ in chosen["objects"]]
    if name not in held:
        raise CheckpointNotFoundError(f"the checkpoint holds no object named {name!r} (it holds: {', '.join(held)})")
    skeleton, leaves = _native.ckpt_read(str(flor_dir), run_id, chosen["occurrence"], chosen["iteration"], "end", 0)
    device = map_location if "torch" in sys.modules else None
    backend, state = decode(skeleton, leaves, device)["objects"][name]
    return state["state_dict"] if backend == "state_dict" else state
