"""Output capture, metrics from printed lines, and zero-code-change runs: what a script
prints becomes records of its run with the loop context it was printed in, the terminal
shows exactly what it showed before, and `capture --extract` turns printed metrics into
values without replaying anything."""

from __future__ import annotations

from conftest import Project

PRINTS_ONLY = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=3)
args = p.parse_args()
loss = 1.0
for epoch in range(args.epochs):
    loss *= 1 - args.lr
    print(f"epoch {epoch} | loss: {loss:.4f} | acc={1 - loss:.3f} | at 12:00:01 from http://host:80")
print("saved ckpt=/tmp/model.pth (acc: 90%)")
"""


def test_a_script_that_only_prints_is_a_run_and_its_metrics_are_extracted(project: Project):
    project.write("train.py", PRINTS_ONLY)
    project.commit_all()
    out = project.flor("run", "train.py", "--lr", "0.2")
    assert out.stdout.splitlines()[0] == "epoch 0 | loss: 0.8000 | acc=0.200 | at 12:00:01 from http://host:80"
    project.flor("run", "train.py", "--epochs", "2")
    runs = project.runs()
    assert [(r["script"], r["status"], r["exit_code"]) for r in runs] == [("train.py", "finished", 0)] * 2
    assert all(r["version"] for r in runs)
    lines = project.py(
        """
        import json, flordb as flor
        df = flor.io()
        print(json.dumps([[r.channel, r.line] for r in df.itertuples()]))
        """
    )
    assert lines[0] == ["io::stdout", "epoch 0 | loss: 0.8000 | acc=0.200 | at 12:00:01 from http://host:80"]
    assert len(lines) == 4 + 3
    preview = project.flor("capture", "--preview")
    assert f"run {runs[0]['run_id']}: 3 of 4 captured line(s) matched: 6 value(s) of loss, acc" in preview.stdout
    assert "nothing written" in preview.stdout
    assert not [r for r in project.frame("loss") if r.get("loss") is not None]
    for _ in range(2):  # extracting twice gives the same rows
        project.flor("capture", "--extract")
        rows = [r for r in project.frame("lr", "loss", "acc") if r.get("loss") is not None]
        got = sorted((r["lr"], r["epoch"], r["loss"], r["acc"]) for r in rows)
        assert got == sorted([(0.2, 0, 0.8, 0.2), (0.2, 1, 0.64, 0.36), (0.2, 2, 0.512, 0.488), (0.1, 0, 0.9, 0.1), (0.1, 1, 0.81, 0.19)])
        assert {r["source"] for r in rows} == {"extract"}


LOOPED = """
import logging, sys
import flordb as flor
from tqdm import tqdm

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("trainer")
for epoch in flor.loop("epoch", range(2)):
    for i in tqdm(range(50), desc="batches"):
        pass
    print(f"\\033[1;32mepoch {epoch}\\033[0m | loss: {0.5 / (epoch + 1)}")
    print("same")
    print("same")
    print("")
    log.info("lr=%s", 0.1 * epoch)
    flor.log("x", epoch)
print("no newline at the end", end="")
"""


def test_captured_lines_keep_their_loop_and_the_terminal_is_unchanged(project: Project):
    project.write("train.py", LOOPED)
    project.commit_all()
    out = project.run("train.py")
    off = project.run("train.py", env={"FLOR_CAPTURE": "0"})
    # What the terminal got is the same with capture on and off.
    assert out.stdout == off.stdout and "\x1b[1;32mepoch 0\x1b[0m" in out.stdout
    assert out.stderr.count("INFO:trainer:lr=") == 2
    rows = project.py(
        """
        import json, flordb as flor
        df = flor.io()
        df = df.astype(object).where(df.notna(), None)
        print(json.dumps([[r["run_id"], r["epoch"], r["channel"], r["line"]] for _, r in df.iterrows()]))
        """
    )
    first = rows[0][0]
    mine = [(e, c, t) for run, e, c, t in rows if run == first]
    assert [r[0] for r in rows if r[0] != first] == []  # the FLOR_CAPTURE=0 run captured nothing
    bars = [t for e, c, t in mine if c == "io::stderr"]
    assert len(bars) == 2 and all(t.startswith("batches: 100%") and "50/50" in t for t in bars)
    assert (0, "io::stdout", "epoch 0 | loss: 0.5") in mine
    assert [t for e, c, t in mine if t == "same"] == ["same", "same"]  # once per epoch
    assert (1, "io::log::info", "trainer: lr=0.1") in mine
    assert (None, "io::stdout", "no newline at the end") in mine
    assert not [t for e, c, t in mine if not t.strip()]
    # The metric table is not disturbed by captured lines.
    assert [r["x"] for r in project.frame("x") if r["run_id"] == first] == [0, 1]
    logs = project.py("import json, flordb as flor\nprint(json.dumps(flor.io('io::log')['line'].tolist()))")
    assert logs == ["trainer: lr=0.0", "trainer: lr=0.1"]


def test_capture_bounds_and_switches(project: Project):
    project.write(
        "train.py",
        """
import flordb as flor
flor.set_capture(max_line=10, max_records=3)
print("a" * 30)
for i in range(5):
    print(f"line {i}")
flor.set_capture(False)
print("not kept")
""",
    )
    project.commit_all()
    out = project.run("train.py", "--kwargs", "unused=1")
    assert "reached its 3 captured lines" in out.stderr
    lines = project.py("import json, flordb as flor\nprint(json.dumps(flor.io()['line'].tolist()))")
    assert lines == ["a" * 10 + " ...[flor: line truncated]", "line 0", "line 1"]
    # FlorDB's own messages (the unread --kwargs, the ceiling notice) are not the run's output.
    assert "never read with flor.arg" in out.stderr


def test_flor_run_keeps_the_exit_status_and_python_c_is_not_captured(project: Project):
    project.write("fail.py", "print('about to fail')\nimport sys\nsys.exit(3)\n")
    project.commit_all()
    out = project.flor("run", "fail.py", check=False)
    assert out.returncode == 3 and out.stdout == "about to fail\n"
    assert [(r["status"], r["exit_code"]) for r in project.runs()] == [("failed", 3)]
    missing = project.flor("run", "nope.py", check=False)
    assert missing.returncode == 2 and "no such script" in missing.stderr
    project.run("-c", "import flordb as flor\nprint('hello')\nflor.log('x', 1)")
    runs = project.runs()
    lines = project.py("import json, flordb as flor\nprint(json.dumps(flor.io()['line'].tolist()))")
    assert len(runs) == 2 and lines == ["about to fail"]


FD_LEVEL = """
import ctypes, os, subprocess, sys
import flordb as flor
for epoch in flor.loop("epoch", range(2)):
    print(f"python {epoch}", flush=True)
    os.write(1, f"fd {epoch}\\n".encode())
    ctypes.CDLL(None).puts(f"libc {epoch}".encode())
    ctypes.CDLL(None).fflush(None)
    subprocess.run([sys.executable, "-c", f"print('child {epoch}')"], check=True)
    flor.log("x", epoch)
"""


def test_output_below_python_reaches_the_terminal_and_is_not_recorded(project: Project):
    # The documented default: the tee is at Python's streams, so a line is recorded with
    # the exact loop context it was printed in and a terminal stays a terminal; what
    # C code and child processes write to the descriptors passes by unrecorded.
    project.write("train.py", FD_LEVEL)
    project.commit_all()
    out = project.run("train.py")
    for epoch in range(2):
        for source in ("python", "fd", "libc", "child"):
            assert f"{source} {epoch}\n" in out.stdout, out.stdout
    lines = project.py(
        "import json, flordb as flor\ndf = flor.io()\n"
        "print(json.dumps([[int(r.epoch), r.line] for r in df.itertuples()]))"
    )
    assert lines == [[0, "python 0"], [1, "python 1"]]
