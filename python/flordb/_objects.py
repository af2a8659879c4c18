"""Objects' state as checkpoints hold it: tensors and arrays become raw byte buffers
(the "leaves") behind `_Leaf` placeholders, everything else stays in a picklable
structure; and putting a state back into a live object in place. Shared by the enrolled
objects (`_ckpt`) and a loop's carried state (`_carried`). torch and numpy are used only
if the script imported them.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

from ._native import CheckpointError


class _Leaf:
    """Placeholder for a tensor or array in a pickled skeleton."""

    __slots__ = ("index", "kind", "dtype", "shape")

    def __init__(self, index: int, kind: str, dtype: Any, shape: tuple):
        self.index, self.kind, self.dtype, self.shape = index, kind, dtype, shape

    def __reduce__(self):
        return (_Leaf, (self.index, self.kind, self.dtype, self.shape))


def _is_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _capture_object(obj: Any) -> tuple[str, Any]:
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        state = {"state_dict": obj.state_dict()}
        if _is_module(obj):
            state["training"] = [m.training for m in obj.modules()]
        return "state_dict", state
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return "numpy", obj
    return "pickle", obj


_ATOMIC = frozenset((int, float, bool, str, bytes, type(None)))


def _flatten(x: Any, leaves: list) -> Any:
    t = type(x)
    if t in _ATOMIC:
        return x
    if t is dict or t is OrderedDict:
        return t((k, _flatten(v, leaves)) for k, v in x.items())
    if t is list:
        return [_flatten(v, leaves) for v in x]
    if t is tuple:
        return tuple(_flatten(v, leaves) for v in x)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor) and x.layout == torch.strided and not x.is_quantized:
        flat = x.detach().resolve_conj().resolve_neg().reshape(-1)
        if flat.device.type != "cpu":
            flat = flat.cpu()
        if flat.dtype != torch.uint8:
            flat = flat.view(torch.uint8) if flat.numel() else torch.empty(0, dtype=torch.uint8)
        leaves.append(flat.numpy())
        return _Leaf(len(leaves) - 1, "torch", str(x.dtype).removeprefix("torch."), tuple(x.shape))
    np = sys.modules.get("numpy")
    if np is not None and t is np.ndarray and not x.dtype.hasobject:
        flat = np.ascontiguousarray(x).reshape(-1)
        leaves.append(flat.view(np.uint8) if flat.size else np.empty(0, dtype=np.uint8))
        return _Leaf(len(leaves) - 1, "numpy", x.dtype, x.shape)
    return x


def _unflatten(x: Any, leaves: list, device: Any = None) -> Any:
    t = type(x)
    if t is _Leaf:
        # Each leaf is a fresh bytearray from the engine: wrapped, not copied.
        buf = leaves[x.index]
        if x.kind == "numpy":
            import numpy as np

            return np.frombuffer(buf, dtype=np.uint8).view(x.dtype).reshape(x.shape)
        import torch

        raw = torch.frombuffer(buf, dtype=torch.uint8) if len(buf) else torch.empty(0, dtype=torch.uint8)
        dtype = getattr(torch, x.dtype)
        tensor = (raw.view(dtype) if dtype != torch.uint8 else raw).reshape(x.shape)
        return tensor.to(device) if device is not None else tensor
    if t is dict or t is OrderedDict:
        return t((k, _unflatten(v, leaves, device)) for k, v in x.items())
    if t is list:
        return [_unflatten(v, leaves, device) for v in x]
    if t is tuple:
        return tuple(_unflatten(v, leaves, device) for v in x)
    return x


def _restore_object(name: str, obj: Any, backend: str, state: Any) -> None:
    if backend == "state_dict":
        obj.load_state_dict(state["state_dict"])
        flags = state.get("training")
        if flags is not None and _is_module(obj):
            for module, flag in zip(obj.modules(), flags):
                module.training = flag
        return
    if backend == "numpy":
        if obj.shape != state.shape:
            raise CheckpointError(f"{name}: the array has shape {obj.shape}, its checkpoint {state.shape}")
        obj[...] = state
        return
    if isinstance(obj, dict):
        obj.clear()
        obj.update(state)
    elif isinstance(obj, (list, bytearray)):
        obj[:] = state
    elif isinstance(obj, set):
        obj.clear()
        obj.update(state)
    elif hasattr(obj, "bit_generator") and hasattr(state, "bit_generator"):
        # numpy's Generator: its state lives in the bit generator.
        obj.bit_generator.state = state.bit_generator.state
    elif hasattr(obj, "setstate") and hasattr(state, "getstate"):
        obj.setstate(state.getstate())  # random.Random
    elif hasattr(obj, "set_state") and hasattr(state, "get_state"):
        obj.set_state(state.get_state())  # numpy's RandomState
    elif hasattr(obj, "__dict__") and hasattr(state, "__dict__"):
        obj.__dict__.clear()
        obj.__dict__.update(state.__dict__)
    else:
        raise CheckpointError(f"{name}: a {type(obj).__name__} cannot be restored in place")
