"""Replay of one recorded run inside the user's own script:
``python train.py --replay_flor --apply NAMES [--iter LOOP=SPEC] [--override K=V] [--workers N]``.

The engine finds the run (the newest finished run of this script, or ``--replay_run``),
its args and its checkpoints, and plans each outer ``flor.loop`` (see
``crates/flor-core/src/replay/plan.rs``). This module executes the plan from inside the
loop generators:

- an outer iteration that is not needed is not yielded: none of its code runs;
- before a needed one, the checkpoint holding the state it starts from is restored;
- in an ``own`` iteration (statements at the outer level), each nested ``flor.loop``
  yields nothing and restores the checkpoint taken right after it in the recorded run,
  so code after it (``scheduler.step()``) runs once, on the state it saw then;
- ``full`` iterations run their nested loops; ``silent`` ones only rebuild state;
- when the loop ends, the recorded end state is restored for the code after it.

Only ``--apply`` names and args are recorded, as ``source=replay`` rows of the
historical run, in ``.flor/replays/<run>/``. ``torch.save`` does nothing.

Every value logged again under a name the recorded run logged is compared with the
record (``crates/flor-core/src/record/verify.rs``). When one differs after a checkpoint
was restored, the replay starts over from the loop's start (``--replay_from_start``: no
checkpoint is restored, every earlier iteration is recomputed); when it differs even
then, the replay fails and records nothing: the run cannot be reproduced here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import _carried, _ckpt, _environment, _native, _on_torch, _saved
from ._argv import Flags
from ._native import CheckpointError, CheckpointNotFoundError, ReplayError

# Keys --override may change even though the recorded run read them (spec §3.1).
OVERRIDE_ALLOWED = {"device"}
# Set by `flor replay`'s worker server in the tasks it forks (crates/flor-core/src/replay/zygote.py).
FORKED_TASK_ENV = "FLORDB_FORKED_TASK"
# The mismatch that made a replay start over from the loop's start (JSON), for its report.
RETRY_ENV = "FLORDB_REPLAY_RETRY"
# Exit status of a replay whose values differ from the record even from the start.
DIVERGED_EXIT = 3


class _Replay:
    def __init__(self, flags: Flags, info: dict, sites: list, names: list[str]):
        self.flags = flags
        self.run_id: str = info["run_id"]
        self.flor_dir = str(info["flor_dir"])
        self.args = dict(info["args"])
        self.loop_counts: dict[str, int] = info["loop_counts"]
        self.output = info["output"]
        self.names = names
        # Per outer loop name: whether applied statements sit at its level / deeper. A
        # level-1 statement that reads what the nested loops build counts as deeper: restoring
        # the checkpoint would leave those values stale (crates/flor-core/src/analyze/nested.rs).
        self.levels: dict[str, set[int]] = {}
        for name, _line, level, loops, needs_nested, _clock in sites:
            if level >= 1 and (not names or name in names):
                self.levels.setdefault(loops[0], set()).add(2 if needs_nested else level)
        # The check against the record: names it leaves out, and why.
        self.skipped: dict[str, str] = {s[0]: "clock" for s in sites if s[0] and s[5]}
        for name in os.environ.get("FLOR_REPLAY_NOVERIFY", "").split(","):
            if name.strip():
                self.skipped[name.strip()] = "asked"
        # Level-1 names that read what the nested loops build: not compared where those are skipped.
        self.stale = sorted({s[0] for s in sites if s[0] and s[2] == 1 and s[4]})
        self.occurrence = -1
        self.mode: str | None = None
        self.epoch = -1
        self.nested = 0
        self.muted = False
        self.restores = 0
        # The frame running the outer loop (carried state is restored into it).
        self.frame: Any = None
        # What each outer loop's plan did, for the report: (loop, steps, set_aside).
        self.plans: list[tuple[str, list, list]] = []
        # What the user is told about how this run is replayed (`_notice`).
        self.notices: list[str] = []
        # flor.iteration loops whose `--iter NAME=last` could not be decided (said once).
        self.undecided: set[str] = set()
        self.diverged: dict | None = None
        # The settings the run had (`_environment`), which the replay runs under.
        self.env: dict | None = json.loads(info["env"]) if info.get("env") else None
        # Whether a child replays this process's share instead (it diverged).
        self.handed_off = False
        self.tag = ""
        # The file this process's records go to (a task's part, or the part a replay by
        # itself merges into its output at exit).
        self.output_part = ""
        # The script's own command line, for the processes a replay starts.
        self.script_argv = list(sys.argv)

    def mute(self, muted: bool) -> None:
        if muted != self.muted:
            self.muted = muted
            _native.replay_mute(muted)

    def restore(self, iteration: int, point: str = "end", index: int = 0) -> None:
        objs = _ckpt.enrolled()
        if not objs:
            raise ReplayError(
                "replay needs the script's flor.checkpointing(...) block around the loop to restore state into"
            )
        skeleton, leaves = _native.ckpt_read(self.flor_dir, self.run_id, self.occurrence, iteration, point, index)
        _ckpt.restore(objs, skeleton, leaves, self.frame if point == "end" else None)
        self.restores += 1


_R: _Replay | None = None


def active() -> bool:
    return _R is not None


class _Scratch:
    """Where ``torch.save`` writes in replay (never the user's files), and what it wrote."""

    dir: str | None = None
    files: dict[str, str] = {}


def _scratch_path(path: str) -> str:
    import atexit
    import hashlib
    import shutil
    import tempfile

    if _Scratch.dir is None:
        _Scratch.dir = tempfile.mkdtemp(prefix="flordb-replay-")
        atexit.register(shutil.rmtree, _Scratch.dir, True)
    return os.path.join(_Scratch.dir, hashlib.sha1(path.encode()).hexdigest()[:16])


def _scratch_copy(path: str, data: bytes) -> str:
    """A scratch file holding ``data`` that stands in for ``path`` (a real path)."""
    scratch = _scratch_path(path)
    with open(scratch, "wb") as f:
        f.write(data)
    return scratch


def patch_torch() -> None:
    """In replay, ``torch.save`` to a path writes a scratch copy instead (the user's files
    stay as they are), which a later ``torch.load`` of that path reads; saving into an
    open file writes nothing."""
    torch = sys.modules.get("torch")
    if _R is None or torch is None or getattr(torch.save, "_flor_replay", False):
        return
    import io

    original_save, original_load = torch.save, torch.load

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(f, io.BytesIO):
            return original_save(obj, f, *args, **kwargs)
        path = _real(f) if isinstance(f, (str, os.PathLike)) else None
        if path is None:
            return None
        scratch = _scratch_path(path)
        original_save(obj, scratch, *args, **kwargs)
        _Scratch.files[path] = scratch
        return None

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        path = _real(f) if isinstance(f, (str, os.PathLike)) else None
        if path is not None and path in _Scratch.files:
            f = _Scratch.files[path]
        else:
            f = _saved.replay_load_path(path) or f
        return original_load(f, *args, **kwargs)

    save._flor_replay = True  # type: ignore[attr-defined]
    torch.save = save
    torch.load = load


def requested(spec: str, n: int | None, loop: str) -> list[int]:
    """The iterations an --iter SPEC selects out of ``n`` (the engine's reading, shared
    with `flor replay`); ReplayError for a SPEC that is not all, last, none or a list."""
    return _native.iter_spec(spec, n, loop)


def _size(iterable: Any) -> int | None:
    try:
        return len(iterable)
    except TypeError:
        return None


def arg_value(name: str, default: Any, cast) -> tuple[bool, Any]:
    """The value ``flor.arg(name)`` takes in replay: an override, else the recorded one."""
    assert _R is not None
    if name in _R.flags.overrides:
        return True, cast(name, _R.flags.overrides[name], default)
    if name in _R.args:
        value = _R.args[name]
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        return True, value
    return False, None


def mute(muted: bool) -> None:
    assert _R is not None
    _R.mute(muted)


def iteration_muted(name: str, idx: int | None) -> bool:
    """Whether `--iter` leaves this `flor.iteration` body out of the replay's records."""
    R = _R
    assert R is not None
    spec = R.flags.iters.get(name, "all")
    if spec == "all" or R.muted:
        return False
    if spec == "none":
        return True
    # The recorded run says how many bodies there were, so `last` is decidable.
    n = R.loop_counts.get(name)
    if spec == "last" and (n is None or idx is None):
        if name not in R.undecided:
            R.undecided.add(name)
            _notice(f"--iter {name}=last: the run recorded no position for flor.iteration({name!r}); every body logs")
        return False
    return idx is None or int(idx) not in set(requested(spec, n, name))


def loop(name: str, iterable: Iterable) -> Iterator:
    depth = _native.loop_enter(name)
    patch_torch()
    try:
        if depth == 0:
            yield from _outer(depth, name, iterable)
        else:
            yield from _inner(depth, name, iterable)
    finally:
        _native.loop_exit(depth)


def _outer(depth: int, name: str, iterable: Iterable) -> Iterator:
    R = _R
    assert R is not None
    _unhide()
    _environment.apply(R.env, announce=True)
    R.occurrence += 1
    R.frame = _carried.user_frame(sys._getframe(1))
    carried = [path for path, _ in _carried.carried_for(R.frame)]
    # The recorded count wins: a run that stopped early (`break`) had fewer iterations
    # than its iterable, and `last` is its last one.
    n = R.loop_counts.get(name)
    if n is None:
        n = _size(iterable)
    if n is None:
        iterable = list(iterable)
        n = len(iterable)
    levels = R.levels.get(name, set())
    if any(n.startswith("io::") for n in R.flags.apply):
        levels = levels | {2}  # what the loop prints: every step of the iterations asked for
    want = requested(R.flags.iters.get(name, "all"), n, name) if levels else []
    own = want if 1 in levels else []
    full = want if any(level >= 2 for level in levels) else []
    plan = _native.replay_plan(
        R.flor_dir, R.run_id, R.occurrence, n, own, full, carried, not R.flags.replay_from_start
    )
    R.plans.append((name, plan["steps"], plan["set_aside"]))
    _explain(plan, name, n)
    steps = {it: (action, restore) for it, action, restore in plan["steps"]}
    last = max(steps) if steps else -1
    for i, item in enumerate(iterable):
        if i > last:
            break
        step = steps.get(i)
        if step is None:
            continue
        action, restore = step
        if restore is not None:
            R.restore(restore)
        R.mode, R.epoch, R.nested = action, i, 0
        R.mute(action == "silent")
        _native.replay_skipping_nested(action == "own")
        _native.loop_next(depth, i, item)
        yield item
        _check_divergence()
    R.mode = None
    R.mute(False)
    _native.replay_skipping_nested(False)
    if plan["exit_restore"] is not None:
        R.restore(plan["exit_restore"])


def _explain(plan: dict, name: str, n: int) -> None:
    R = _R
    assert R is not None
    by_reason: dict[str, list[str]] = {}
    for key, why in plan["refused"]:
        by_reason.setdefault(why, []).append(key)
    for why, keys in by_reason.items():
        what = f"checkpoint {keys[0]}" if len(keys) == 1 else f"checkpoints {', '.join(keys)}"
        _notice(f"{what} cannot be used ({why}); planning without {'it' if len(keys) == 1 else 'them'}")
    aside = plan["set_aside"]
    if aside and plan["steps"]:
        it, why = aside[0]
        _notice(f"{len(aside)} checkpoint(s) cannot start an iteration ({name} {it}: {why}); replaying from earlier ones")
    if R.flags.replay_from_start:
        _notice(f"recomputing every {name} iteration from the start of the loop")
        return
    silent = [it for it, action, _ in plan["steps"] if action == "silent"]
    if plan["from_scratch"] and silent:
        why = (
            "it has no checkpoints here (recorded without flor.checkpointing, or they stay on the machine that recorded it)"
            if plan["available"] == 0
            else "its checkpoints do not cover them"
        )
        _notice(f"{why}; recomputing {name} iterations {_ranges(silent)} from the start of the loop")
    elif silent:
        _notice(f"recomputing {name} iterations {_ranges(silent)} from the nearest checkpoint")


def _notice(text: str) -> None:
    """Tells the user something about how this run is replayed: on stderr, and in the
    task's report, which `flor replay` prints (a task's own output is kept only when it
    fails)."""
    R = _R
    run = f"run {R.run_id}: " if R is not None else ""
    print(f"flordb: replay: {run}{text}", file=sys.stderr)
    if R is not None and text not in R.notices:
        R.notices.append(text)


def _ranges(xs: list[int]) -> str:
    out, start, prev = [], None, None
    for x in xs:
        if start is None:
            start = prev = x
        elif x == prev + 1:
            prev = x
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = x
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


def _inner(depth: int, name: str, iterable: Iterable) -> Iterator:
    R = _R
    assert R is not None
    if depth == 1 and R.mode is not None:
        k = R.nested
        R.nested += 1
        if R.mode == "own":
            try:
                R.restore(R.epoch, "nested", k)
                return
            except CheckpointNotFoundError:
                pass  # not checkpointed: run it; the state before it is right
            except CheckpointError as err:
                # Nothing was restored (a checkpoint is read and verified whole first):
                # running the loop from the state before it is exact.
                _notice(f"checkpoint {R.occurrence}_{R.epoch}_nested{k} cannot be used ({err}); recomputing that nested loop")
    spec = R.flags.iters.get(name, "all")
    outer_muted = R.muted
    if spec == "all" or outer_muted:
        for i, item in enumerate(iterable):
            _native.loop_next(depth, i, item)
            yield item
        return
    n = _size(iterable)
    if spec == "last" and n is None:
        items = list(iterable)
        iterable, n = items, len(items)
    wanted = set(requested(spec, n, name))
    try:
        for i, item in enumerate(iterable):
            R.mute(i not in wanted)
            _native.loop_next(depth, i, item)
            yield item
    finally:
        R.mute(outer_muted)


# -- setting up ------------------------------------------------------------------------


def setup(flags: Flags) -> None:
    """Makes this process a replay (called at import when --replay_flor is given)."""
    global _R
    root, script = _native.script_info()
    if script is None:
        raise SystemExit("flordb: --replay_flor needs a script file inside the project (python path/to/train.py --replay_flor ...)")
    try:
        source = (Path(root) / script).read_text()
        sites = _native.read_script(source)
    except (OSError, ReplayError) as err:
        raise SystemExit(f"flordb: replay: {err}") from None
    known = sorted({s[0] for s in sites if s[0] is not None})
    # Captured output (`--apply io::stdout`) is no statement: every iteration re-prints it.
    unknown = [n for n in flags.apply if n not in known and not n.startswith("io::")]
    if unknown:
        sites += _module_sites(root, script, source, unknown)
        known = sorted({s[0] for s in sites if s[0] is not None})
        unknown = [n for n in flags.apply if n not in known and not n.startswith("io::")]
    if unknown:
        raise SystemExit(
            f"flordb: --apply {','.join(unknown)}: {script} has no flor.log call by that name "
            f"(it logs: {', '.join(known) or 'nothing'})"
        )
    loops = set(_native.loop_names(source))
    for module in _native.local_modules(str(root), script, source):
        try:
            loops.update(_native.loop_names((Path(root) / module).read_text()))
        except OSError:
            pass
    # (A task of `flor replay` may be asked for a loop that only other versions have.)
    misspelled = sorted(set(flags.iters) - loops) if flags.replay_run is None else []
    if misspelled:
        name = misspelled[0]
        raise SystemExit(
            f"flordb: --iter {name}={flags.iters[name]}: {script} has no loop named {name!r} "
            f"(its loops: {', '.join(sorted(loops)) or 'none'})"
        )
    tag = json.dumps([sorted(flags.iters.items()), sorted(flags.overrides.items())])
    try:
        # Under `flor replay` the script runs in a worktree of its version; the store
        # (runs, checkpoints, results) stays in the user's project.
        project = os.environ.get("FLORDB_PROJECT") or os.getcwd()
        info = _native.replay_open(project, script, flags.replay_run, flags.apply, tag)
    except ReplayError as err:
        raise SystemExit(f"flordb: {err}") from None
    if flags.replay_run is None:
        # Started by the user (`python train.py --replay_flor`), not as a task of a larger
        # replay: the script's own flags are the recorded run's.
        _use_recorded_argv(info, script)
    # The copies the run resumed from stand in for the files it loaded them from; in the
    # user's checkout (not a `flor replay` worktree, which leaves them out) the files the
    # run did not see are hidden. Both until its loop starts.
    standing_in = _saved.prepare_replay(info, _scratch_copy)
    hidden: list = []
    if not os.environ.get("FLORDB_PROJECT"):
        hidden = info["written_since"]
        # An untracked file the run's code version holds stands in as it was then.
        for path, data in info["as_then"].items():
            real = os.path.realpath(str(path))
            if real not in standing_in:
                standing_in[real] = _scratch_copy(real, data)
    _hide_until_loop(hidden, standing_in)
    rejected = sorted(k for k in flags.overrides if k in dict(info["args"]) and k not in OVERRIDE_ALLOWED)
    if rejected:
        raise SystemExit(
            f"flordb: --override rejected for {rejected}: the recorded run read them with flor.arg, and replay "
            "reproduces that run (override only args it did not read, or device)"
        )
    _R = _Replay(flags, info, sites, flags.apply)
    if flags.workers > 1 and flags.replay_output is None and _orchestrate(flags, info, sites):
        # This process is task 0 now: same run, its own share of iterations and file.
        _R = _Replay(flags, info, sites, flags.apply)
    _R.tag = tag
    # Tasks write a part; a replay by itself writes one too, merged at exit.
    # (Named after this process: two replays of one request at once write their own.)
    _R.output_part = flags.replay_output or f"{info['output']}.{os.getpid()}.part0"
    _native.replay_start(
        info["run_id"], info["tstamp"], info["projid"], info["filename"], _R.output_part, flags.apply,
        verify=os.environ.get("FLOR_REPLAY_VERIFY", "1") != "0",
        skipped=_R.skipped, stale=_R.stale, tolerance=_tolerance(),
    )
    _on_torch.when_imported(_on_torch_in_replay)
    changed = _environment.differences(_R.env)
    if changed:
        _notice(
            f"it ran with other versions: {', '.join(changed)}; "
            "values may differ in the last bits (the check against the record will say)"
        )


def _on_torch_in_replay() -> None:
    """Once the replayed script imports torch: its save and load are patched (so that its
    set-up code already writes nothing of the user's), its settings are the run's."""
    patch_torch()
    if _R is not None:
        _environment.apply(_R.env, announce=True)


def _module_sites(root: str, script: str, source: str, names: list[str]) -> list:
    """Log sites of ``names`` in the project's own modules that the script imports (the
    training step in ``helpers.py``). Such a statement runs wherever the script calls it:
    it counts as nested in the script's outer loop, which is then replayed in full."""
    outer = next((loop[0] for loop in _native.script_loops(source) if loop[3] == 1), None)
    out = []
    for module in _native.local_modules(str(root), script, source):
        try:
            found = _native.read_script((Path(root) / module).read_text())
        except (OSError, ReplayError):
            continue
        for name, line, level, loops, needs_nested, clock in found:
            if name not in names:
                continue
            if outer is None:
                out.append((name, line, level, loops, needs_nested, clock))
            else:
                out.append((name, line, 2, [outer, *loops], True, clock))
    return out


def _use_recorded_argv(info: dict, script: str) -> None:
    """Replays with the script flags the run was started with (argparse's `--lr 0.1`):
    given none, they are put back; given others, the replay is refused."""
    import shlex

    from ._argv import take_flags

    recorded = list(info.get("argv") or [])
    if not recorded:
        return
    _, rest = take_flags(recorded)
    recorded_own, now_own = rest[1:], sys.argv[1:]
    if now_own == recorded_own:
        return
    started = shlex.join(["python", *rest])
    if not now_own:
        sys.argv[1:] = recorded_own
        print(f"flordb: replay: run {info['run_id']} was started as `{started}`; replaying it with those arguments", file=sys.stderr)
        return
    raise SystemExit(
        f"flordb: replay: run {info['run_id']} was started as `{started}`, and replay reproduces that run: "
        f"leave the script's own arguments out (`python {script} --replay_flor ...` takes them from the run); "
        f"to train with `{shlex.join(now_own)}`, record a new run"
    )


class _Hidden:
    """Files the replayed run did not see when it started (written after it by later runs,
    or by itself: a `ckpt.pth` saved every epoch), hidden from the script until its first
    outer loop starts, so a resume block (`if os.path.exists("ckpt.pth"): ...load...`)
    takes the branch the run took. The `flor replay` command leaves them out of each
    run's checkout instead."""

    paths: set[str] = set()
    saved: dict = {}


def _real(path: Any) -> str | None:
    try:
        return os.path.realpath(os.fspath(path))
    except (TypeError, ValueError):
        return None


def _hide_until_loop(paths: list, standing_in: dict[str, str]) -> None:
    """Hides ``paths`` and shows, for each real path in ``standing_in``, the file it maps
    to instead, until the first outer loop starts."""
    import builtins
    import pathlib

    _Hidden.paths = {os.path.realpath(str(p)) for p in paths} - set(standing_in)
    if not _Hidden.paths and not standing_in:
        return

    def seen(path: Any) -> Any:
        """The path to look at instead of ``path``, or None where it is hidden."""
        if isinstance(path, int):
            return path
        real = _real(path)
        if real in standing_in:
            return standing_in[real]
        return None if real in _Hidden.paths else path

    def gone(original):
        def check(path, *args, **kwargs):
            shown = seen(path)
            return False if shown is None else original(shown, *args, **kwargs)

        return check

    def missing(original):
        def use(path, *args, **kwargs):
            shown = seen(path)
            if shown is None:
                raise FileNotFoundError(2, "No such file or directory (written after the replayed run started)", str(path))
            return original(shown, *args, **kwargs)

        return use

    saved = _Hidden.saved
    for owner, name, wrap in (
        (os.path, "exists", gone),
        (os.path, "isfile", gone),
        (os.path, "isdir", gone),
        (os.path, "lexists", gone),
        (builtins, "open", missing),
        (pathlib.Path, "exists", gone),
        (pathlib.Path, "is_file", gone),
        (pathlib.Path, "is_dir", gone),
    ):
        original = getattr(owner, name)
        saved[(owner, name)] = original
        setattr(owner, name, wrap(original))


def _unhide() -> None:
    for (owner, name), original in _Hidden.saved.items():
        setattr(owner, name, original)
    _Hidden.saved = {}
    _Hidden.paths = set()
    _saved.check_setup_loads()


def _tolerance() -> float:
    text = os.environ.get("FLOR_REPLAY_TOLERANCE", "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        raise SystemExit(f"flordb: FLOR_REPLAY_TOLERANCE={text!r}: expected a relative tolerance such as 1e-6 (0: bit for bit)")
    return value


# -- checking against the record ----------------------------------------------------------


def _check_divergence() -> None:
    """After an outer iteration (and at exit): a value that came back different from the
    record starts the replay over from the loop's start, or, if it did start there, ends
    it as a failure."""
    R = _R
    assert R is not None
    found = _native.replay_divergence()
    if found is None or R.diverged is not None:
        return
    R.diverged = found
    if R.flags.replay_from_start or R.restores == 0:
        _write_report(R.output_part)
        _native.replay_abandon()
        raise SystemExit(
            f"flordb: replay: run {R.run_id} does not reproduce its recorded values even when recomputed "
            f"from the start: {found['message']}. The run cannot be replayed exactly here (nondeterministic "
            "code, other library versions or hardware, or input files changed since it ran); nothing was "
            "recorded for it. FLOR_REPLAY_TOLERANCE=1e-6 accepts small float differences; "
            "FLOR_REPLAY_NOVERIFY=NAME leaves a name that is not reproducible by nature out of the check"
        )
    print(
        f"flordb: replay: run {R.run_id} diverged from its recorded values after a checkpoint was restored "
        f"({found['message']}); replaying it again from the start of the loop",
        file=sys.stderr,
    )
    _native.replay_abandon()
    # A task of a larger replay keeps its file; a replay by itself merges its own at exit.
    part = R.output_part if R.flags.replay_output is not None else None
    argv = _task_argv(R.flags, R.flags.apply, R.flags.iters, part, R.run_id, from_start=True)
    env = {k: v for k, v in os.environ.items() if k != FORKED_TASK_ENV}
    env[RETRY_ENV] = json.dumps(found)
    if _tasks is not None:
        # This process also directs the other tasks (--workers): its share goes to a child.
        _tasks.procs.append(subprocess.Popen(argv, env=env))
        R.handed_off = True
        raise _HandedOff(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


class _HandedOff(SystemExit):
    """Ends this process's run of the script: a child replays its share instead."""


def _task_argv(
    flags: Flags, apply: list[str], iters: dict, output: str | None, run_id: str, from_start: bool = False
) -> list[str]:
    """The command line of a replay process for one share of the run."""
    R = _R
    script = R.script_argv if R is not None else list(sys.argv)
    argv = [sys.executable, *script]
    for key, value in flags.kwargs.items():
        argv += ["--kwargs", f"{key}={value}"]
    argv += ["--replay_flor", "--apply", ",".join(apply)]
    for loop_name, spec in iters.items():
        argv += ["--iter", f"{loop_name}={spec}"]
    for key, value in flags.overrides.items():
        argv += ["--override", f"{key}={value}"]
    argv += ["--replay_run", run_id]
    if output is not None:
        argv += ["--replay_output", output]
    if from_start:
        argv.append("--replay_from_start")
    return argv


_exit_status: int | None = None


def forced_exit() -> int | None:
    """The exit status a replay must end with whatever the script did, if any: a check
    that failed even from the start, or tasks that failed."""
    R = _R
    if R is not None and R.diverged is not None and not R.handed_off and (R.flags.replay_from_start or R.restores == 0):
        return DIVERGED_EXIT
    return _exit_status


def before_commit() -> None:
    """At exit, before the replay's file is completed: what was logged after the loop is
    checked too (a divergence there starts over or fails, as inside the loop)."""
    R = _R
    if R is None or R.diverged is not None:
        return
    try:
        _check_divergence()
    except _HandedOff:
        pass
    except SystemExit as stop:
        print(stop.code, file=sys.stderr)


def _write_report(part: str) -> None:
    """The check's findings beside the replay's file, for the merge and the report."""
    R = _R
    assert R is not None
    text = _native.replay_report()
    retry = os.environ.get(RETRY_ENV)
    report = {
        "run_id": R.run_id,
        "from_start": R.flags.replay_from_start,
        "retry_of": json.loads(retry) if retry else None,
        "diverged": R.diverged,
        "restores": R.restores,
        "check": json.loads(text) if text else None,
        "plans": [{"loop": loop, "steps": steps, "set_aside": aside} for loop, steps, aside in R.plans],
        "notices": R.notices,
    }
    path = Path(part + ".verify.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


def summary(result: dict | None, failed: bool) -> None:
    """At exit, once the replay's file is complete: writes the check's report, merges the
    replay's file(s) and reports."""
    R = _R
    if R is None:
        return
    if _tasks is None and R.flags.replay_output is None and (failed or result is None) and R.diverged is None:
        # A replay by itself that was refused or failed leaves nothing behind.
        for leftover in (R.output_part, R.output_part + ".verify.json"):
            try:
                os.remove(leftover)
            except OSError:
                pass
        return
    if result is not None and R.diverged is None:
        _write_report(R.output_part)
    if _tasks is not None:
        _finish_tasks(ok=not failed and (R.diverged is None or R.handed_off))
        return
    if failed or result is None or R.diverged is not None or R.flags.replay_output is not None:
        return
    records = _native.replay_merge([R.output_part], str(R.output), _provenance())
    rel = os.path.relpath(R.output)
    print(f"flordb: replayed run {R.run_id}: {records} record(s) in {rel}", file=sys.stderr)


def _provenance() -> str:
    R = _R
    assert R is not None
    script = _native.script_info()[1]
    return json.dumps({"script": script, "statements": [{"name": n} for n in R.names], "request": R.tag})


class _Tasks:
    def __init__(self, procs: list, parts: list[Path], output: Path, run_id: str):
        self.procs, self.parts, self.output, self.run_id = procs, parts, output, run_id


_tasks: _Tasks | None = None


def _orchestrate(flags: Flags, info: dict, sites: list) -> bool:
    """--workers N: split the requested outer iterations into N contiguous tasks, each
    starting from its own checkpoint. Tasks 1..N-1 are child processes; this process
    becomes task 0 (it has paid for its imports already). Their files are merged when
    this process exits. Returns whether the work was split."""
    global _tasks
    R = _R
    assert R is not None
    outer = next(iter(R.levels), None)
    n = info["loop_counts"].get(outer) if outer else None
    if outer is None or not n:
        return False  # run-level statements only: one process does it
    want = requested(flags.iters.get(outer, "all"), n, outer)
    k = min(flags.workers, len(want))
    if k <= 1:
        return False
    chunks = [want[len(want) * j // k : len(want) * (j + 1) // k] for j in range(k)]
    deep = {s[0] for s in sites if s[2] >= 1 and s[3][0] == outer}
    names = flags.apply or sorted({s[0] for s in sites if s[0] is not None})
    output = Path(info["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    parts = [output.with_name(f"{output.name}.{os.getpid()}.part{j}") for j in range(k)]
    procs = []
    task_names = [names if j == k - 1 else [x for x in names if x in deep] for j in range(k)]
    for j in range(1, k):
        # Run-level statements go to the last task only.
        iters = {**flags.iters, outer: ",".join(map(str, chunks[j]))}
        procs.append(subprocess.Popen(_task_argv(flags, task_names[j], iters, str(parts[j]), info["run_id"])))
    flags.apply = task_names[0]
    flags.iters[outer] = ",".join(map(str, chunks[0]))
    flags.replay_output = str(parts[0])
    _tasks = _Tasks(procs, parts, output, info["run_id"])
    return True


def _finish_tasks(ok: bool) -> None:
    t = _tasks
    assert t is not None
    codes = [p.wait() for p in t.procs]
    # A task handed to a child (it diverged) counts by the child's status.
    failed = [j for j, c in enumerate(codes) if c != 0] + ([] if ok else ["this process"])
    if failed:
        global _exit_status
        for p in t.parts:
            p.unlink(missing_ok=True)
            Path(str(p) + ".verify.json").unlink(missing_ok=True)
        print(f"flordb: replay: {len(failed)} of {len(t.parts)} task(s) failed; nothing was recorded", file=sys.stderr)
        _exit_status = 1
        return
    records = _native.replay_merge([str(p) for p in t.parts], str(t.output), _provenance())
    print(
        f"flordb: replayed run {t.run_id} in {len(t.parts)} processes: {records} record(s) in {os.path.relpath(t.output)}",
        file=sys.stderr,
    )
