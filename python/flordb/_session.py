"""The recording API: ``log``, ``arg``, ``loop``, ``iteration``, ``commit``.

One process records one run at a time. The run starts at the first FlorDB call and
ends at ``commit()`` or at exit (in IPython and Jupyter, at the end of the cell:
``_interactive``); an uncaught exception or a non-zero ``sys.exit`` marks it failed
with its exit code. The hot path (``log``) is the native function itself: no Python
frame in between; only values it would log as text reach ``_artifacts``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TypeVar

from . import _argv, _artifacts, _capture, _ckpt, _environment, _interactive, _native, _replay, _saved
from ._native import FlorError

T = TypeVar("T")

# The native function itself (documented in crates/flor-py/src/recording.rs): no
# Python frame between the training loop and the engine.
log = _native.log


def _echoing_log(name: str, value: Any) -> Any:
    result = _native.log(name, value)
    _capture.echo(_native.echo_line(name, value))
    return result


def set_echo(enabled: bool = True) -> None:
    """Prints every ``flor.log`` to stdout as flordb 4.0.1 did (``epoch: 2, step: 7,
    loss: 0.25``; not captured as output). Off by default: for a value logged every step
    it floods the terminal and costs more than the log itself. ``FLOR_ECHO=1`` turns it
    on from the start. Takes effect for ``flor.log`` looked up after the call."""
    chosen = _echoing_log if enabled else _native.log
    global log
    log = chosen
    for module in ("flordb", "flordb.api"):
        if module in sys.modules:
            sys.modules[module].log = chosen  # type: ignore[attr-defined]


class ArgError(FlorError, ValueError, RuntimeError):
    """A ``--kwargs`` value does not fit its argument, or an argument has no value
    (flordb 4.0.1 raised ValueError for the one, RuntimeError for the other: both catch it)."""


class _State:
    flags = _argv.Flags()
    exit_code: int | None = None
    read_args: set[str] = set()
    # The run whose settings (`_environment`) are recorded.
    env_run: str | None = None


_state = _State()


def _cast(name: str, text: str, default: Any, where: str | None = None) -> Any:
    kind = type(default)
    where = where or f"--kwargs {name}={text}"
    try:
        if default is None:
            try:
                return json.loads(text)
            except ValueError:
                return text
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "t", "yes", "y", "on"):
                return True
            # Empty (`--kwargs flag=`) is false, as in flordb 4.0.1; a word that is neither
            # (a typo such as `ture`) is refused where 4.0.1 would read it as false.
            if lowered in ("", "0", "false", "f", "no", "n", "off"):
                return False
            raise ValueError("expected true/false, yes/no or 1/0, or nothing for false")
        if kind in (int, float, str):
            return kind(text)
        if kind in (list, tuple, dict):
            parsed = json.loads(text)
            expected = dict if kind is dict else list
            if not isinstance(parsed, expected):
                raise ValueError(f"expected a JSON {expected.__name__}")
            return kind(parsed)
        return kind(text)
    except (ValueError, TypeError) as err:
        raise ArgError(f"{where}: cannot read it as {kind.__name__} like the default {default!r} ({err})") from None


def arg(name: str, default: Any = None) -> Any:
    """Returns the run input ``name`` and records it.

    The value comes from ``--kwargs name=value`` on the command line, cast to the
    default's type (bool, int, float, str; lists, tuples and dicts as JSON), else the
    default. Without a default the text is read as JSON when it can be.
    """
    _state.read_args.add(name)
    found, value = _replay.arg_value(name, default, _cast) if _replay.active() else (False, None)
    if found:
        pass
    elif name in _state.flags.kwargs:
        value = _cast(name, _state.flags.kwargs[name], default)
    elif default is not None:
        value = default
    else:
        how = f"--override {name}=VALUE" if _replay.active() else f"--kwargs {name}=VALUE"
        raise ArgError(f"flor.arg({name!r}) has no default and no value was given: pass {how}")
    _native.log_arg(name, value)
    return value


def loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """Yields the items of ``iterable`` unchanged, recording each as iteration ``name``.

    Everything logged inside carries the loop's 0-based position (and the item's text
    when it is a plain value). The outermost loop's iteration boundaries make what was
    logged durable and, inside ``flor.checkpointing(...)``, are where checkpoints are
    taken. ``break`` and exceptions close the loop properly. In replay
    (``--replay_flor``) it runs only the iterations the replay needs.
    """
    if _replay.active():
        return _replay.loop(name, iterable)
    depth = _native.loop_depth()
    if depth == 0:
        current = _native.current_run()
        if current is None or current[0] != _state.env_run:
            _environment.record(_native)
            _state.env_run = _native.current_run()[0]
    if not _ckpt.enrolled():
        return _native.loop_iter(name, iterable)
    if depth == 0:
        return _checkpointed_loop(name, iterable)
    # The state a nested loop leaves is checkpointed when the first-level one ends.
    return _native.loop_iter(name, iterable, _ckpt.nested_exit if depth == 1 else None)


def _size(iterable: Iterable) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def _checkpointed_loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """The outermost loop under ``flor.checkpointing``: its boundaries take checkpoints."""
    n = _size(iterable)
    steps = _native.loop_iter(name, iterable)
    try:
        _ckpt.outer_enter(name)
        for i, item in enumerate(steps):
            _ckpt.outer_start(i, n is not None and i == n - 1)
            yield item
            _ckpt.outer_end(i)
    finally:
        _ckpt.outer_exit()
        steps.close()


@contextmanager
def iteration(name: str, idx: int | None = None, value: Any = None) -> Iterator[None]:
    """One iteration of a loop FlorDB does not drive (a request, a file, a process).

    In replay the body always runs (later code may depend on it); ``--iter NAME=0,2``
    records only those indices, ``--iter NAME=none`` none."""
    depth = _native.iteration_enter(name, None if idx is None else int(idx), value)
    muted = _replay.active() and _replay.iteration_muted(name, idx)
    if muted:
        _replay.mute(True)
    try:
        yield
    finally:
        if muted:
            _replay.mute(False)
        _native.iteration_exit(depth)


def commit() -> dict | None:
    """Ends the current run now (it also ends at exit); the next call starts a new one.

    Returns ``{"run_id", "records", "version"}``, or None if nothing was recorded.
    """
    _note_code_read()
    return _native.commit(0)


def _note_code_read() -> None:
    """Hands the engine the source files this process read (the script and every module
    imported from a file): it checks those of the project against the code snapshot."""
    if _replay.active() or _native.current_run() is None:
        return
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            files.append(os.path.abspath(path))
    _native.note_code_read(files)


def _exit_status_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _install_exit_hooks() -> None:
    original_exit = sys.exit
    original_hook = sys.excepthook

    def exit_(code: Any = 0) -> None:
        _state.exit_code = _exit_status_code(code)
        original_exit(code)

    def excepthook(kind, value, tb) -> None:  # noqa: ANN001
        _state.exit_code = 130 if issubclass(kind, KeyboardInterrupt) else 1
        if isinstance(value, FlorError) and not os.environ.get("FLORDB_TRACEBACK"):
            _report_flor_error(value, tb)
            return
        original_hook(kind, value, tb)

    sys.exit = exit_
    sys.excepthook = excepthook
    atexit.register(_at_exit)
    _install_signal_handlers()


def _install_signal_handlers() -> None:
    """SIGTERM and SIGHUP (a scheduler's stop, a closed terminal) end the script through
    its exit handlers, so the current epoch's records are saved and the run keeps the
    status a shell reports (143, 129). Only in a script's main thread, where the script
    has not set its own; not in FlorDB's own command (its engine code would hold the
    signal back) nor in IPython and Jupyter (the kernel owns its signals)."""
    import signal
    import threading

    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program in ("-m", "flor") or "IPython" in sys.modules:
        return
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: Any) -> None:
        _state.exit_code = 128 + signum
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, stop)


def _report_flor_error(err: FlorError, tb: Any) -> None:
    """A FlorDB error that ended the script: what went wrong and the script's line that
    asked for it, not a traceback through FlorDB's internals (FLORDB_TRACEBACK=1 shows it)."""
    import traceback

    package = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(tb) if not os.path.abspath(f.filename).startswith(package + os.sep)]
    where = ""
    if frames:
        f = frames[-1]
        path = os.path.abspath(f.filename)
        shown = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else f.filename
        where = f"  at {shown}, line {f.lineno}" + (f": {f.line.strip()}" if f.line else "") + "\n"
    sys.stderr.write(f"flordb: {type(err).__name__}: {err}\n{where}")


def _at_exit() -> None:
    unread = sorted(set(_state.flags.kwargs) - _state.read_args)
    if _replay.active():
        _replay.before_commit()
    try:
        _note_code_read()
        # A forward run keeps the status the process really exits with (see commit).
        summary = _native.commit(_state.exit_code or 0, at_exit=not _replay.active())
    except FlorError as err:
        _capture.say(f"flordb: the run could not be saved completely: {err}")
        # Records were lost or saved elsewhere: a scheduler must not see success.
        _end_process(_state.exit_code or 1)
        return
    if _replay.active():
        _replay.summary(summary, failed=bool(_state.exit_code))
    if summary and unread and not _replay.active():
        names = ", ".join(unread)
        _capture.say(f"flordb: --kwargs {names} given but never read with flor.arg")
    if _replay.active() and not os.environ.get(_replay.FORKED_TASK_ENV):
        forced = _replay.forced_exit()
        _end_process(forced if forced is not None else _state.exit_code or 0)


def _end_process(code: int) -> None:
    """Runs the remaining exit handlers now and ends the process with ``code``.

    A replay's results are saved; what the interpreter would do after the exit handlers
    is tear down the script's modules (seconds for torch), of no use to a replay. (A
    script that ends with ``raise SystemExit(n)`` rather than ``sys.exit(n)`` ends with 0
    here.) Tasks forked by ``flor replay``'s worker server are ended by it, with the code
    it saw. A run whose records could not all be saved ends with a non-zero code."""
    atexit.unregister(_at_exit)
    try:
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def _is_script_run() -> bool:
    """A script (``python train.py``, ``python -``), not ``python -c``, a REPL, IPython or
    FlorDB's own command: where output capture belongs."""
    if "IPython" in sys.modules or not sys.argv or sys.argv[0] in ("", "-c", "-m"):
        return False
    return os.path.basename(sys.argv[0]) != "flor" and not hasattr(sys, "ps1")


def _configure_at(cwd: str) -> None:
    _native.configure(cwd, _state.flags.original, sys.executable, _state.flags.run_name)
    _artifacts.configure(cwd)


def configure_for_script() -> None:
    """Configures this process for the script now in ``sys.argv`` (``flor run``), as
    importing flordb from that script would have."""
    _state.flags = _argv.install()
    _configure_at(os.getcwd())
    if _state.flags.replay:
        _replay.setup(_state.flags)
    _capture.install()
    _saved.install()
    _install_signal_handlers()


def _configure() -> None:
    if os.environ.get("FLOR_ECHO", "").strip().lower() in ("1", "true", "yes", "on"):
        set_echo(True)
    _state.flags = _argv.install()
    _configure_at(os.getcwd())
    # Objects the native converter would log as str(obj), and image paths, go here.
    _native.set_object_hook(_artifacts._object_hook)
    _ckpt.configure_from_env()
    if _state.flags.replay:
        _replay.setup(_state.flags)
    if _is_script_run():
        _capture.install()
        _saved.install()
    _install_exit_hooks()
    _interactive.install(_configure_at, _native.commit, lambda: _native.current_run() is not None)


_configure()
