"""Nothing lost, nothing wrong under what scripts and users do at the same time: a script
that changes its environment while FlorDB snapshots its code, and two replays of the
same runs at once."""

from __future__ import annotations

import subprocess

from conftest import PYTHON, Project

# Like `lightning.seed_everything` and transformers: the environment changes right after
# the first FlorDB call, while the code snapshot's git starts on another thread.
ENV_WRITER = """
import os
import flordb as flor

flor.arg("seed", 0)
for i in range(30000):
    os.environ[f"FLOR_PROBE_{i % 64}"] = str(i)
for epoch in flor.loop("epoch", range(2)):
    flor.log("x", epoch)
"""


def test_a_script_changing_its_environment_is_not_disturbed(project: Project):
    project.write("train.py", ENV_WRITER)
    project.commit_all()
    procs = [
        subprocess.Popen([PYTHON, "train.py"], cwd=project.path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    codes = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert all(code == 0 for code, _ in codes), codes
    runs = project.runs()
    assert len(runs) == 8
    assert all(r["status"] == "finished" and r["version"] for r in runs), runs


TRAIN = """
import numpy as np
import flordb as flor

w = np.ones(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        w *= 0.9
        flor.log("w0", float(w[0]))
"""


def test_two_replays_at_once_are_both_complete(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    for _ in range(3):
        project.run("train.py", env={"FLOR_EPSILON": "1000"})
    project.write("train.py", TRAIN.replace('        flor.log("w0", float(w[0]))\n', '        flor.log("w0", float(w[0]))\n        flor.log("g", float(w.sum()))\n'))
    cmd = [PYTHON, "-m", "flordb", "replay", "g", "--yes", "--workers", "2"]
    procs = [subprocess.Popen(cmd, cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [(p.returncode, *p.communicate(timeout=300)) for p in procs]
    outs = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, outs)]
    assert all(code == 0 for code, _, _ in outs), outs
    rows = [r for r in project.frame("g") if r["source"] == "replay" and r.get("g") is not None]
    per_run = {}
    for r in rows:
        per_run.setdefault(r["run_id"], set()).add(r["epoch"])
    assert len(per_run) == 3 and all(epochs == {0, 1, 2, 3} for epochs in per_run.values()), per_run
    assert len(rows) == 12
