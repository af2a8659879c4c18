"""Output capture: what a script prints, and what goes through ``logging``, becomes
records of its run (channels ``io::stdout``, ``io::stderr``, ``io::log::<level>``) with
the loop context it was printed in, as flordb 4.0.1 keeps it. A script that only
prints is a recorded, versioned run.

``sys.stdout`` and ``sys.stderr`` are replaced by tees: every write goes to the real
stream first and unchanged (colours and progress bars included), then its text to the
engine, which splits lines, keeps a progress bar's last state, drops blank and repeated
lines and bounds what a run keeps (``crates/flor-core/src/record/capture.rs``).
``logging.Logger.handle`` is wrapped once; the handlers it then calls write muted, so a
message is captured once, on its level's channel.

Only Python-level writes are seen: what C extensions and child processes write to file
descriptors 1 and 2 reaches the terminal but not the run (as in flordb 4.0.1).
``FLOR_CAPTURE=0`` or ``flor.set_capture(False)`` turns capture off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import _native


class _State:
    enabled = os.environ.get("FLOR_CAPTURE", "1").strip().lower() not in ("0", "false", "no", "off")
    installed = False


_state = _State()


class _Tee:
    """A text stream that writes through to ``stream`` and hands the text to capture."""

    __slots__ = ("_flor_stream", "_flor_code")

    def __init__(self, stream: Any, code: int):
        self._flor_stream = stream
        self._flor_code = code

    def write(self, text: Any) -> Any:
        written = self._flor_stream.write(text)
        if _state.enabled and type(text) is str:
            try:
                _native.capture_write(self._flor_code, text)
            except Exception:  # noqa: BLE001 - the script's output matters more than its record
                pass
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> Any:
        return self._flor_stream.flush()

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding, buffer, and whatever tqdm and rich probe.
        return getattr(self._flor_stream, name)

    def __repr__(self) -> str:
        return f"<flordb capture of {self._flor_stream!r}>"


def install() -> None:
    """Tees stdout, stderr and logging into the run (once per process)."""
    if _state.installed:
        return
    _state.installed = True
    if not isinstance(sys.stdout, _Tee) and sys.stdout is not None:
        sys.stdout = _Tee(sys.stdout, 1)
    if not isinstance(sys.stderr, _Tee) and sys.stderr is not None:
        sys.stderr = _Tee(sys.stderr, 2)
    _install_logging()


def _install_logging() -> None:
    import logging

    original = logging.Logger.handle
    if getattr(original, "_flor_capture", False):
        return

    def handle(self: logging.Logger, record: logging.LogRecord) -> Any:
        if _state.enabled:
            try:
                _native.capture_log(record.levelname, record.name, record.getMessage())
            except Exception:  # noqa: BLE001 - never in the way of the script's logging
                pass
        # The handlers' own writes to stderr are the same message: not captured again.
        _native.capture_mute(True)
        try:
            return original(self, record)
        finally:
            _native.capture_mute(False)

    handle._flor_capture = True  # type: ignore[attr-defined]
    logging.Logger.handle = handle  # type: ignore[method-assign]


def set_capture(
    enabled: bool | None = None,
    *,
    max_line: int | None = None,
    max_records: int | None = None,
    extract: Any = None,
) -> None:
    """Turns output capture on or off and sets its bounds: ``max_line`` characters a line
    keeps (4096), ``max_records`` lines a run keeps (10000). ``extract`` is accepted, as
    flordb 4.0.1 accepts it, and does nothing: ``python -m flordb capture --extract``
    turns captured lines into metrics after the fact."""
    if enabled is not None:
        _state.enabled = bool(enabled)
    if max_line is not None or max_records is not None:
        _limits[0] = int(max_line) if max_line is not None else _limits[0]
        _limits[1] = int(max_records) if max_records is not None else _limits[1]
        _native.set_capture_limits(_limits[0], _limits[1])
    if extract is not None:
        say("flordb: set_capture(extract=...) has no effect: run `python -m flordb capture --extract` to turn captured lines into metrics")


_limits = [4096, 10_000]


def echo(line: str) -> None:
    """Prints a ``flor.log`` echo to stdout, not captured as the script's output."""
    _native.capture_mute(True)
    try:
        print(line, file=sys.stdout, flush=False)
    finally:
        _native.capture_mute(False)


def say(text: str) -> None:
    """Prints FlorDB's own message on stderr, outside the run's captured output."""
    _native.capture_mute(True)
    try:
        print(text, file=sys.stderr)
    finally:
        _native.capture_mute(False)
