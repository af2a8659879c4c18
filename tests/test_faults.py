"""Nothing lost, nothing wrong under what scripts and users do: a script that changes its
environment while FlorDB snapshots its code, two replays of the same runs at once, and
the ways a script ends that its exit handlers cannot see."""

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


# Ways a script ends that Python's exit handlers cannot see, and signals that would kill
# it before they run: the run keeps the status the process really ended with.
EXITS = {
    "raise SystemExit(3)": ("raise SystemExit(3)\n", 3, "failed", 3),
    "the exit builtin": ("exit(4)\n", 4, "failed", 4),
    "a caught sys.exit": ("import sys\ntry:\n    sys.exit(3)\nexcept SystemExit:\n    pass\n", 0, "finished", 0),
    "the script's own excepthook": (
        "import sys\nsys.excepthook = lambda *a: print('custom', file=sys.stderr)\nraise RuntimeError('boom')\n",
        1,
        "failed",
        1,
    ),
    "SystemExit inside the loop": (None, 5, "failed", 5),
}


def test_runs_keep_the_status_the_process_ended_with(project: Project):
    loop = "import flordb as flor\nfor e in flor.loop('epoch', range(3)):\n    flor.log('x', e)\n"
    for i, (tail, _, _, _) in enumerate(EXITS.values()):
        body = loop + tail if tail else loop.replace("    flor.log('x', e)\n", "    flor.log('x', e)\n    if e == 1:\n        raise SystemExit(5)\n")
        project.write(f"s{i}.py", body)
    project.commit_all()
    for i, (why, (_, code, _, _)) in enumerate(EXITS.items()):
        out = project.run(f"s{i}.py", check=False)
        assert out.returncode == code, (why, out.stderr)
    runs = {r["script"]: r for r in project.runs()}
    for i, (why, (_, _, status, exit_code)) in enumerate(EXITS.items()):
        r = runs[f"s{i}.py"]
        assert (r["status"], r["exit_code"]) == (status, exit_code), why
        assert r["version"], why


def test_sigterm_and_sighup_save_the_epoch_and_keep_the_code(project: Project):
    script = """
import os, signal, sys, time
import flordb as flor
sig = getattr(signal, sys.argv[1])
for e in flor.loop("epoch", range(100)):
    flor.log("x", e)
    if e == 3:
        os.kill(os.getpid(), sig)
    time.sleep(0.01)
"""
    project.write("train.py", script)
    project.commit_all()
    for name, code in (("SIGTERM", 143), ("SIGHUP", 129)):
        out = project.run("train.py", name, check=False)
        assert out.returncode == code, out.stderr
    runs = project.runs()
    assert [(r["status"], r["exit_code"]) for r in runs] == [("failed", 143), ("failed", 129)]
    counts = {}
    for r in project.frame("x"):
        counts[r["run_id"]] = counts.get(r["run_id"], 0) + 1
    assert sorted(counts.values()) == [4, 4]


def test_where_clauses_reach_no_python_name_and_loop_names_are_checked(project: Project):
    script = """
import flordb as flor
for epoch in flor.loop("epoch", range(2)):
    flor.log("x", epoch)
"""
    project.write("train.py", script)
    project.commit_all()
    project.run("train.py", env={"FLOR_EPSILON": "1000"})
    project.write("train.py", script.replace('    flor.log("x", epoch)\n', '    flor.log("x", epoch)\n    flor.log("y", epoch)\n'))
    out = project.run(
        "-c",
        "import flordb as flor\n"
        "try:\n"
        "    flor.replay(['y'], where_clause=\"@os.system('touch PWNED') == 0\", yes=True)\n"
        "except flor.ReplayError as e:\n"
        "    print('refused:', e)\n",
    )
    assert "refused:" in out.stdout and not (project.path / "PWNED").exists(), out.stdout + out.stderr
    cli = project.flor("replay", "y", "--iter", "epcoh=1", "--yes", check=False)
    assert cli.returncode != 0 and 'no loop named "epcoh" (its loops: epoch)' in cli.stderr, cli.stderr
    direct = project.run("train.py", "--replay_flor", "--apply", "y", "--iter", "epcoh=1", check=False)
    assert direct.returncode != 0 and "no loop named 'epcoh'" in direct.stderr, direct.stderr
