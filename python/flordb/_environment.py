"""What changes a run's numbers besides its code and its args: torch's thread count
(a sum split over other threads adds in another order), its deterministic-algorithm
flags, the library versions. Recorded when a run's first loop starts; replay sets the
same before the script's code runs and again at its first loop (the script may have set
them itself in between, as the run did), and says what it could not make equal.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any


def snapshot() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version()}
    np = sys.modules.get("numpy")
    if np is not None:
        env["numpy"] = np.__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_deterministic"] = torch.are_deterministic_algorithms_enabled()
        cudnn = getattr(torch.backends, "cudnn", None)
        if cudnn is not None:
            env["cudnn_deterministic"] = bool(cudnn.deterministic)
            env["cudnn_benchmark"] = bool(cudnn.benchmark)
    return env


def record(native: Any) -> None:
    native.record_env(json.dumps(snapshot()))


def apply(recorded: dict[str, Any] | None, announce: bool) -> None:
    """Sets torch's settings to the recorded ones (if torch is imported); with
    ``announce``, prints what differed."""
    if not recorded:
        return
    torch = sys.modules.get("torch")
    notes = []
    if torch is not None and "torch_threads" in recorded:
        want = int(recorded["torch_threads"])
        if torch.get_num_threads() != want:
            notes.append(f"torch threads {torch.get_num_threads()} -> {want}")
            torch.set_num_threads(want)
        if recorded.get("torch_deterministic") and not torch.are_deterministic_algorithms_enabled():
            notes.append("deterministic algorithms on")
            torch.use_deterministic_algorithms(True)
        cudnn = getattr(torch.backends, "cudnn", None)
        for key in ("deterministic", "benchmark"):
            value = recorded.get(f"cudnn_{key}")
            if cudnn is not None and value is not None and bool(getattr(cudnn, key)) != value:
                notes.append(f"cudnn.{key} {value}")
                setattr(cudnn, key, value)
    if announce and notes:
        print(f"flordb: replay: as the run had it: {', '.join(notes)}", file=sys.stderr)


def differences(recorded: dict[str, Any] | None) -> list[str]:
    """Library versions that differ from the run's (results may differ in the last bits)."""
    if not recorded:
        return []
    now = snapshot()
    return [
        f"{key} {recorded[key]} (now {now[key]})"
        for key in ("python", "numpy", "torch")
        if key in recorded and key in now and recorded[key] != now[key]
    ]
