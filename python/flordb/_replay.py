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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import _ckpt, _native
from ._argv import Flags
from ._native import CheckpointError, ReplayError

# Keys --override may change even though the recorded run read them (spec §3.1).
OVERRIDE_ALLOWED = {"device"}
# Set by `flor replay`'s worker server in the tasks it forks (crates/flor-core/src/replay/zygote.py).
FORKED_TASK_ENV = "FLORDB_FORKED_TASK"


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
        for name, _line, level, loops, needs_nested in sites:
            if level >= 1 and (not names or name in names):
                self.levels.setdefault(loops[0], set()).add(2 if needs_nested else level)
        self.occurrence = -1
        self.mode: str | None = None
        self.epoch = -1
        self.nested = 0
        self.muted = False
        self.restores = 0

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
        _ckpt.restore(objs, skeleton, leaves)
        self.restores += 1


_R: _Replay | None = None


def active() -> bool:
    return _R is not None


def patch_torch() -> None:
    """In replay, ``torch.save`` writes nothing: the user's files stay as they are."""
    torch = sys.modules.get("torch")
    if _R is None or torch is None or getattr(torch.save, "_flor_replay", False):
        return

    def save(*args: Any, **kwargs: Any) -> None:
        return None

    save._flor_replay = True  # type: ignore[attr-defined]
    torch.save = save


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
    R.occurrence += 1
    n = _size(iterable)
    if n is None:
        n = R.loop_counts.get(name)
    if n is None:
        iterable = list(iterable)
        n = len(iterable)
    levels = R.levels.get(name, set())
    want = requested(R.flags.iters.get(name, "all"), n, name) if levels else []
    own = want if 1 in levels else []
    full = want if any(level >= 2 for level in levels) else []
    plan = _native.replay_plan(R.flor_dir, R.run_id, R.occurrence, n, own, full)
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
        _native.loop_next(depth, i, item)
        yield item
    R.mode = None
    R.mute(False)
    if plan["exit_restore"] is not None:
        R.restore(plan["exit_restore"])


def _explain(plan: dict, name: str, n: int) -> None:
    R = _R
    assert R is not None
    for key in plan["refused"]:
        print(f"flordb: replay: checkpoint {key} of run {R.run_id} is incomplete or corrupt; not used", file=sys.stderr)
    silent = [it for it, action, _ in plan["steps"] if action == "silent"]
    if plan["from_scratch"] and silent:
        why = (
            "it has no checkpoints here (recorded without flor.checkpointing, or they stay on the machine that recorded it)"
            if plan["available"] == 0
            else "its checkpoints do not cover them"
        )
        print(
            f"flordb: replay: run {R.run_id}: {why}; recomputing {name} iterations "
            f"{_ranges(silent)} from the start of the loop",
            file=sys.stderr,
        )
    elif silent:
        print(f"flordb: replay: recomputing {name} iterations {_ranges(silent)} from the nearest checkpoint", file=sys.stderr)


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
            except CheckpointError:
                pass  # not checkpointed: run it; the state before it is right
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
    unknown = [n for n in flags.apply if n not in known]
    if unknown:
        raise SystemExit(
            f"flordb: --apply {','.join(unknown)}: {script} has no flor.log call by that name "
            f"(it logs: {', '.join(known) or 'nothing'})"
        )
    tag = json.dumps([sorted(flags.iters.items()), sorted(flags.overrides.items())])
    try:
        # Under `flor replay` the script runs in a worktree of its version; the store
        # (runs, checkpoints, results) stays in the user's project.
        project = os.environ.get("FLORDB_PROJECT") or os.getcwd()
        info = _native.replay_open(project, script, flags.replay_run, flags.apply, tag)
    except ReplayError as err:
        raise SystemExit(f"flordb: {err}") from None
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
    output = flags.replay_output or info["output"]
    _native.replay_start(info["run_id"], info["tstamp"], info["projid"], info["filename"], str(output), flags.apply)
    patch_torch()


def summary(result: dict | None, failed: bool) -> None:
    """At exit: reports the replay (and merges the tasks' files under --workers)."""
    if _tasks is not None:
        _finish_tasks(ok=not failed)
        return
    if _R is None or failed or result is None or _R.flags.replay_output is not None:
        return
    rel = os.path.relpath(_R.output)
    print(f"flordb: replayed run {_R.run_id}: {result['records']} record(s) in {rel}", file=sys.stderr)


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
    parts = [output.with_name(f"{output.name}.part{j}") for j in range(k)]
    procs = []
    task_names = [names if j == k - 1 else [x for x in names if x in deep] for j in range(k)]
    for j in range(1, k):
        # Run-level statements go to the last task only.
        argv = [sys.executable, sys.argv[0], *sys.argv[1:], "--replay_flor", "--apply", ",".join(task_names[j])]
        for loop_name, spec in flags.iters.items():
            if loop_name != outer:
                argv += ["--iter", f"{loop_name}={spec}"]
        argv += ["--iter", f"{outer}={','.join(map(str, chunks[j]))}"]
        for key, value in flags.overrides.items():
            argv += ["--override", f"{key}={value}"]
        argv += ["--replay_run", info["run_id"], "--replay_output", str(parts[j])]
        procs.append(subprocess.Popen(argv))
    flags.apply = task_names[0]
    flags.iters[outer] = ",".join(map(str, chunks[0]))
    flags.replay_output = str(parts[0])
    _tasks = _Tasks(procs, parts, output, info["run_id"])
    return True


def _finish_tasks(ok: bool) -> None:
    t = _tasks
    assert t is not None
    codes = [p.wait() for p in t.procs]
    failed = [j + 1 for j, c in enumerate(codes) if c != 0] + ([] if ok else [0])
    if failed:
        for p in t.parts:
            p.unlink(missing_ok=True)
        print(f"flordb: replay: task(s) {sorted(failed)} of {len(t.parts)} failed; nothing was recorded", file=sys.stderr)
        return
    _merge(t.parts, t.output)
    records = sum(1 for _ in t.output.open())
    print(
        f"flordb: replayed run {t.run_id} in {len(t.parts)} processes: {records} record(s) in {os.path.relpath(t.output)}",
        file=sys.stderr,
    )


def _merge(parts: list[Path], output: Path) -> None:
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w") as out:
        for j, part in enumerate(parts):
            if not part.exists():  # a task that recorded nothing
                continue
            with part.open() as f:
                for line in f:
                    # Every task records the args; the first task's copy is kept.
                    if j > 0 and json.loads(line).get("arg"):
                        continue
                    out.write(line)
    os.replace(tmp, output)
    for part in parts:
        part.unlink(missing_ok=True)
