"""Nothing lost and nothing left behind: a damaged query cache rebuilds itself, reading
creates nothing, a killed `flor replay` leaves no process running, and a killed
checkpoint write leaves no temporary file for good."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from conftest import PYTHON, Project

TRAIN = """
import numpy as np
import flordb as flor

w = np.ones(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        w *= 0.9
        flor.log("w0", float(w[0]))
"""


def test_a_damaged_cache_rebuilds_itself_and_unpack_starts_from_nothing(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py")
    db = project.path / ".flor" / "flor.db"
    assert len(project.frame("w0")) == 4
    db.write_bytes(os.urandom(8192))
    out = project.run("-c", "import flordb as flor\nprint(len(flor.dataframe('w0')))")
    assert out.stdout.strip() == "4" and "query cache was damaged" in out.stderr, out.stderr
    db.write_bytes(b"\x00" * 100)
    out = project.flor("unpack")
    assert "from 1 run file(s)" in out.stdout
    assert len(project.frame("w0")) == 4


def test_reading_a_repository_without_runs_creates_nothing(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    got = project.py("import json, flordb as flor\nprint(json.dumps([len(flor.runs()), len(flor.dataframe('w0'))]))")
    assert got == [0, 0]
    project.flor("runs")
    assert not (project.path / ".flor").exists()


def _marked(mark: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_killed_flor_replay_leaves_no_process_behind(project: Project):
    slow = TRAIN.replace("        w *= 0.9\n", "        w *= 0.9\n        import os, time; time.sleep(float(os.environ.get('SLOW', '0')))\n")
    project.write("train.py", slow)
    project.commit_all()
    project.run("train.py", env={"FLOR_EPSILON": "1000"})
    # The replay's task would sleep 12 s: long after the 4 s the check below waits.
    project.write("train.py", slow.replace('        flor.log("w0", float(w[0]))\n', '        flor.log("w0", float(w[0]))\n        flor.log("g", float(w.sum()))\n'))
    mark = f"FLOR_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, mark.split("=")[0]: mark.split("=")[1], "SLOW": "3"}
    proc = subprocess.Popen([PYTHON, "-m", "flordb", "replay", "g", "--yes", "--iter", "epoch=0,1,2,3"], cwd=project.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(_marked(mark)) < 3:  # flor replay, its server, a task
        time.sleep(0.1)
    assert len(_marked(mark)) >= 3, "the replay never started its task"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 4
    while time.time() < deadline and _marked(mark):
        time.sleep(0.1)
    assert _marked(mark) == []


def test_a_killed_checkpoint_write_leaves_no_temporary_file(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    objects = project.path / ".flor" / "objects" / "ab"
    objects.mkdir(parents=True)
    stale = objects / ".cdef0123.4194999.tmp"  # a writer pid Linux never hands out
    stale.write_bytes(b"x" * 1000)
    project.run("train.py")
    assert not stale.exists()


def _committed(project: Project, run: str) -> None:
    deadline = time.time() + 30
    spec = f"refs/flor/runs/{run}:.flor/runs/{run}.jsonl"
    while time.time() < deadline:
        if subprocess.run(["git", "cat-file", "-e", spec], cwd=project.path).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{spec} never appeared")


def test_a_damaged_or_deleted_run_file_comes_back_from_git(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py")
    run = project.runs()[0]["run_id"]
    _committed(project, run)
    path = project.path / ".flor" / "runs" / f"{run}.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2] + "\x00garbage"
    path.write_text("\n".join(lines) + "\n")
    out = project.run("-c", "import flordb as flor\nprint(flor.dataframe('w0')['w0'].tolist())")
    assert "restored from git" in out.stderr, out.stderr
    assert out.stdout.strip() == str([0.9, 0.81, 0.7290000000000001, 0.6561000000000001])
    assert (path.parent / f"{run}.jsonl.damaged").exists()
    path.unlink()
    out = project.run("-c", "import flordb as flor\nprint(len(flor.runs()))")
    assert out.stdout.strip() == "0" and "flor unpack --restore" in out.stderr
    back = project.flor("unpack", "--restore")
    assert f"restored 1 run file(s) from git: {run}" in back.stdout
    assert len(project.frame("w0")) == 4


def test_a_logged_nan_and_a_logged_none_stay_apart(project: Project):
    project.write("t.py", 'import flordb as flor\nfor e in flor.loop("epoch", range(3)):\n    flor.log("x", [float("nan"), None, 1.5][e])\n')
    project.commit_all()
    project.run("t.py")
    got = project.py(
        "import json, math, flordb as flor\n"
        "xs = flor.dataframe('x')['x'].tolist()\n"
        "print(json.dumps(['nan' if isinstance(x, float) and math.isnan(x) else x for x in xs]))"
    )
    assert got == ["nan", None, 1.5]


READER = """
import sys
import flordb as flor

seen = 0
for _ in range(12):
    seen = max(seen, len(flor.dataframe("w0")))
print(seen)
"""


def test_readers_beside_finishing_runs_wait_instead_of_failing(project: Project):
    # Every run ends by importing its file into the cache while readers query it: a
    # reader waits for the writer's lock and never sees "database is locked".
    project.write("train.py", TRAIN)
    project.write("reader.py", READER)
    project.commit_all()
    project.run("train.py")
    env = {**os.environ}
    runs = [subprocess.Popen([PYTHON, "train.py"], cwd=project.path, env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    readers = [subprocess.Popen([PYTHON, "reader.py"], cwd=project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in runs + readers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "locked" not in (err or "") and "flor unpack" not in (err or ""), err
    assert len(project.frame("w0")) == 7 * 4


def test_a_refused_replay_leaves_nothing_behind(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py")
    project.write("train.py", TRAIN.replace('flor.log("w0", float(w[0]))', 'flor.log("w0", float(w[0]))\n        flor.log("w1", float(w[1]))'))
    out = project.run("train.py", "--replay_flor", "--apply", "w1", "--iter", "epoch=9", check=False)
    assert out.returncode != 0 and "only has 4 iteration(s)" in out.stderr, out.stderr
    replays = project.path / ".flor" / "replays"
    assert not replays.exists() or [p for p in replays.rglob("*") if p.is_file()] == []
