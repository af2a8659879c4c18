"""Runs code the moment the script imports torch (at once if it already has): FlorDB
wraps ``torch.save`` and ``torch.load`` without importing torch itself, which would cost
every script that never uses it a second or more."""

from __future__ import annotations

import sys
from typing import Any, Callable

_waiting: list[Callable[[], None]] = []


def when_imported(callback: Callable[[], None]) -> None:
    """Calls ``callback`` once torch is imported: now, or right after its import."""
    if "torch" in sys.modules:
        callback()
        return
    _waiting.append(callback)
    if not any(isinstance(finder, _Watcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())


class _Watcher:
    """An import finder that only looks for ``torch``; it wraps torch's loader so the
    callbacks run after the module's code, then steps out of the import system."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            callbacks = list(_waiting)
            _waiting.clear()
            for callback in callbacks:
                callback()

        loader.exec_module = exec_module
        return spec
