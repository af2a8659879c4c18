"""How runs end: finished, failed with their exit code, killed; nothing lost on a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import Project


def test_exception_marks_the_run_failed_and_keeps_its_records(project: Project):
    project.write(
        "crash.py",
        """
        import flordb as flor
        for e in flor.loop("epoch", range(5)):
            flor.log("loss", e)
            if e == 2:
                raise RuntimeError("diverged")
        """,
    )
    out = project.run("crash.py", check=False)
    assert out.returncode == 1 and "diverged" in out.stderr
    (run,) = project.runs()
    assert run["status"] == "failed" and run["exit_code"] == 1
    assert [r["loss"] for r in project.frame("loss")] == [0, 1, 2]


def test_sys_exit_code_is_recorded(project: Project):
    project.write("bye.py", "import sys, flordb as flor\nflor.log('x', 1)\nsys.exit(3)\n")
    out = project.run("bye.py", check=False)
    assert out.returncode == 3
    (run,) = project.runs()
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    project.write("ok.py", "import sys, flordb as flor\nflor.log('x', 1)\nsys.exit(0)\n")
    project.run("ok.py")
    assert sorted(r["status"] for r in project.runs()) == ["failed", "finished"]


def test_kill_9_loses_at_most_the_current_iteration(project: Project):
    project.write(
        "long.py",
        """
        import os, time, flordb as flor
        for e in flor.loop("epoch", range(1000)):
            for s in flor.loop("step", range(10)):
                flor.log("loss", e * 10 + s)
            flor.log("epoch_done", e)
            with open("progress.tmp", "w") as f:
                f.write(str(e))
            os.replace("progress.tmp", "progress")
            time.sleep(0.05)
        """,
    )
    progress = project.path / "progress"

    def epochs_done() -> int:
        text = progress.read_text() if progress.exists() else ""
        return int(text) if text else -1

    proc = subprocess.Popen([sys.executable, "long.py"], cwd=project.path)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and epochs_done() < 5:
            time.sleep(0.02)
        done = epochs_done()
        assert done >= 5, "the script did not get going"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    (run,) = project.runs()
    assert run["status"] == "killed"
    epochs = [r["epoch_done"] for r in project.frame("epoch_done")]
    # Every epoch that finished before the last boundary crossed is on disk.
    assert epochs[:done] == list(range(done))
    losses = project.frame("loss")
    assert len(losses) >= 10 * done


def test_a_running_run_shows_as_running(project: Project):
    project.write(
        "slow.py",
        """
        import time, flordb as flor
        for e in flor.loop("epoch", range(100)):
            flor.log("x", e)
            open("started", "w").write("1")
            time.sleep(0.1)
        """,
    )
    proc = subprocess.Popen([sys.executable, "slow.py"], cwd=project.path)
    try:
        deadline = time.time() + 30
        while not (project.path / "started").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        (run,) = project.runs()
        assert run["status"] == "running"
    finally:
        proc.kill()
        proc.wait()


def test_four_processes_at_once_make_four_complete_runs(project: Project):
    project.write(
        "worker.py",
        """
        import flordb as flor
        rank = flor.arg("rank", 0)
        for e in flor.loop("epoch", range(5)):
            for s in flor.loop("step", range(50)):
                flor.log("loss", rank * 1000 + e * 50 + s)
        """,
    )
    project.commit_all()
    procs = [
        subprocess.Popen([sys.executable, "worker.py", "--kwargs", f"rank={r}"], cwd=project.path, stderr=subprocess.PIPE, text=True)
        for r in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    for p, err in zip(procs, errors):
        assert p.returncode == 0, err
    runs = project.runs()
    assert len(runs) == 4 and all(r["status"] == "finished" for r in runs)
    assert len({r["run_id"] for r in runs}) == 4
    for r in runs:
        assert project.git("rev-parse", "-q", "--verify", f"refs/flor/runs/{r['run_id']}")
    rows = project.frame("rank", "loss")
    assert len(rows) == 4 * 5 * 50
    for rank in range(4):
        mine = sorted(x["loss"] for x in rows if x["rank"] == rank)
        assert mine == [rank * 1000 + i for i in range(250)]


def test_four_processes_on_a_flor_branch_all_land_on_it(project: Project):
    project.write("w.py", "import flordb as flor\nflor.log('r', flor.arg('r', 0))\n")
    project.commit_all()
    project.git("checkout", "-q", "-b", "flor.sweep")
    procs = [subprocess.Popen([sys.executable, "w.py", "--kwargs", f"r={r}"], cwd=project.path) for r in range(4)]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0, 0, 0]
    files = project.git("ls-tree", "-r", "--name-only", "flor.sweep", "--", ".flor/runs/").splitlines()
    assert len(files) == 4
    assert project.git("status", "--porcelain") == ""
