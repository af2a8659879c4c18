"""The state an outer ``flor.loop`` carries from one iteration to the next beyond its
enrolled objects: a prefetched batch, a best-so-far metric, a patience counter, an EMA
model, a learning rate decayed by hand. The engine names it by reading the script
(``crates/flor-core/src/analyze/carried.rs``); this module reads those values out of the
frame that runs the loop when a checkpoint is taken, and writes them back when replay
restores one.

Each value is saved one of these ways (the manifest records which, ``flor
checkpoints`` shows it):

- ``value``: the loop binds it to new objects (``X, Y = get_batch()``); pickled (tensors
  and arrays as raw buffers, like the enrolled objects' state) and rebound on restore;
- ``state``: the loop changes the object in place (``history.append``, ``ema.update``);
  its state is saved and restored into the live object, so other references to it see it;
- ``unchanged``: nothing to save (an immutable value, an enrolled object, code);
- ``unbound``: not defined yet at that point;
- ``ignored``: output only (a progress bar, a log file, a logger): it does not change
  what the script computes;
- ``failed``: it cannot be saved (a generator, a live DataLoader iterator, an open file
  being read); a replay cannot start from that checkpoint and starts earlier.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import pickle
import sys
import sysconfig
import types
from typing import Any

from . import _native
from ._objects import _capture_object, _flatten, _restore_object, _unflatten

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset, range)
_CODE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


class _Unbound(Exception):
    pass


def user_frame(start: Any) -> Any:
    """The first frame from ``start`` outwards that runs the user's code: not FlorDB's,
    not an installed package's (a ``tqdm`` wrapper), not the standard library's."""
    f = start
    while f is not None:
        name = os.path.abspath(f.f_code.co_filename)
        if not (
            name.startswith(_PACKAGE)
            or name.startswith(_STDLIB)
            or "site-packages" in name
            or "dist-packages" in name
            or f.f_code.co_filename.startswith("<")
        ):
            return f
        f = f.f_back
    return None


_loops: dict[tuple[str, float], list] = {}


def carried_for(frame: Any) -> list[tuple[str, bool]]:
    """The carried state of the outer loop that ``frame`` is running, as ``(path,
    rebound)`` pairs; empty when its source cannot be read."""
    if frame is None:
        return []
    path = frame.f_code.co_filename
    try:
        key = (path, os.stat(path).st_mtime)
    except OSError:
        return []
    loops = _loops.get(key)
    if loops is None:
        try:
            with open(path, encoding="utf-8") as f:
                loops = _native.script_loops(f.read())
        except (OSError, UnicodeDecodeError):
            loops = []
        _loops[key] = loops
    line = frame.f_lineno
    outer = [loop for loop in loops if loop[3] == 1 and loop[1] <= line <= loop[2]]
    if not outer:
        return []
    # The innermost outer loop that holds the line (a plain loop may hold two).
    best = max(outer, key=lambda loop: loop[1])
    return list(best[4])


# -- reading and writing the frame's variables -------------------------------------------


def _resolve(frame: Any, path: str) -> Any:
    root, *attrs = path.split(".")
    if root in frame.f_locals:
        value = frame.f_locals[root]
    elif root in frame.f_globals:
        value = frame.f_globals[root]
    else:
        raise _Unbound(root)
    for attr in attrs:
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise _Unbound(path) from None
    return value


def _assign(frame: Any, path: str, value: Any) -> None:
    if "." in path:
        parent, attr = path.rsplit(".", 1)
        setattr(_resolve(frame, parent), attr, value)
        return
    code = frame.f_code
    is_local = frame.f_locals is not frame.f_globals and (
        path in code.co_varnames or path in code.co_cellvars or path in code.co_freevars
    )
    if not is_local:
        frame.f_globals[path] = value
    elif sys.version_info >= (3, 13):
        frame.f_locals[path] = value  # a write-through proxy (PEP 667)
    else:
        frame.f_locals[path] = value
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))


# -- capturing ---------------------------------------------------------------------------


def _is_output_only(value: Any) -> bool:
    module = type(value).__module__ or ""
    if module.split(".")[0] in ("tqdm", "wandb", "tensorboardX") or module.startswith("torch.utils.tensorboard"):
        return True
    if isinstance(value, (logging.Logger, logging.Handler)):
        return True
    if isinstance(value, io.IOBase):
        try:
            return value.writable() and not value.readable()
        except ValueError:  # closed
            return True
    return False


def _immutable(value: Any) -> bool:
    if isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, (torch.device, torch.dtype))


def _loader_state(value: Any) -> dict | None:
    """A DataLoader's own random generators: iterating it changes nothing else."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.utils.data.DataLoader):
        return None
    out = {}
    for key, owner in (("loader", value), ("sampler", getattr(value, "sampler", None))):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator):
            out[key] = gen.get_state().numpy().tobytes()
    return out


def capture(frame: Any, carried: list[tuple[str, bool]], enrolled: dict, leaves: list) -> tuple[dict, list]:
    """Reads the carried values out of ``frame``: ``(state for the skeleton, [(path,
    how, note)] for the manifest)``. Tensors and arrays join ``leaves``."""
    enrolled_ids = {id(o) for o in enrolled.values()}
    state: dict[str, tuple] = {}
    infos: list[tuple[str, str, str | None]] = []
    for path, rebound in carried:
        try:
            value = _resolve(frame, path)
        except _Unbound:
            infos.append((path, "unbound", None))
            continue
        if isinstance(value, _CODE) or id(value) in enrolled_ids:
            infos.append((path, "unchanged", None))
            continue
        if _immutable(value) and not rebound:
            infos.append((path, "unchanged", None))
            continue
        if _is_output_only(value):
            infos.append((path, "ignored", f"a {type(value).__name__}: output only"))
            continue
        loader = _loader_state(value)
        if loader is not None and not rebound:
            state[path] = ("loader", "", pickle.dumps(loader))
            infos.append((path, "state", None))
            continue
        if rebound:
            how, backend, payload = "value", "pickle", value
        else:
            backend, payload = _capture_object(value)
            how = "state"
        mark = len(leaves)
        try:
            data = pickle.dumps(_flatten(payload, leaves), protocol=5)
        except Exception as err:  # noqa: BLE001 - anything that cannot be pickled
            del leaves[mark:]
            infos.append((path, "failed", f"a {type(value).__name__}: {err}"))
            continue
        state[path] = (how, backend, data)
        infos.append((path, how, None))
    return state, infos


# -- restoring ---------------------------------------------------------------------------


def restore(frame: Any, state: dict, leaves: list) -> None:
    """Writes carried values saved by :func:`capture` back into ``frame``."""
    for path, (how, backend, data) in state.items():
        payload = pickle.loads(data)
        if how == "loader":
            _restore_loader(_resolve(frame, path), payload)
            continue
        value = _unflatten(payload, leaves)
        if how == "state":
            try:
                _restore_object(path, _resolve(frame, path), backend, value)
                continue
            except Exception:  # noqa: BLE001 - not restorable in place: rebind it
                if backend == "state_dict":
                    raise
        _assign(frame, path, value)


def _restore_loader(loader: Any, states: dict) -> None:
    import torch

    for key, owner in (("loader", loader), ("sampler", getattr(loader, "sampler", None))):
        gen = getattr(owner, "generator", None)
        if key in states and isinstance(gen, torch.Generator):
            gen.set_state(torch.frombuffer(bytearray(states[key]), dtype=torch.uint8))
