"""A full disk loses no record silently: the run says so when writing fails, holds what
it cannot write and writes it once there is space; a run that ends with the disk still
full exits non-zero and says where its last records were saved.

The project lives on a small tmpfs, which needs the right to mount one (root, as in CI);
without it the tests are skipped with that reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Project, git

# Fills the disk at epoch 5 (a checkpoint or a dataset cache would), frees it at epoch
# `free` (never, with -1), and logs a few hundred bytes per epoch meanwhile.
FILLER = """
import os, sys
import flordb as flor

free = int(sys.argv[1])
for epoch in flor.loop("epoch", range(40)):
    flor.log("x", epoch)
    flor.log("pad", "p" * 400)
    if epoch == 5:
        try:
            with open("filler", "wb") as f:
                while True:
                    f.write(b"\\0" * 4096)
                    f.flush()
        except OSError:
            pass
    if epoch == free:
        os.remove("filler")
"""


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    size = "3m"
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({out.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _project(mount: Path) -> Project:
    repo = mount / "proj"
    repo.mkdir()
    for args in (("init", "-q", "-b", "main"), ("config", "user.email", "t@example.com"), ("config", "user.name", "T")):
        git(repo, *args)
    p = Project(repo)
    p.write("train.py", FILLER)
    p.commit_all()
    return p


def test_records_held_while_the_disk_is_full_are_written_once_it_frees(small_disk: Path):
    p = _project(small_disk)
    out = p.run("train.py", "20")
    assert "cannot be written (No space left on device" in out.stderr, out.stderr
    assert "is written again: no record was lost" in out.stderr, out.stderr
    runs = p.runs()
    assert [(r["status"], r["exit_code"]) for r in runs] == [("finished", 0)]
    assert sorted(r["x"] for r in p.frame("x")) == list(range(40))


def test_a_run_ending_on_a_full_disk_fails_and_saves_its_records_elsewhere(small_disk: Path):
    p = _project(small_disk)
    out = p.run("train.py", "-1", check=False)
    assert out.returncode != 0, out.stderr
    assert "cannot be written (No space left on device" in out.stderr, out.stderr
    saved = [w for w in out.stderr.split() if "flordb-unsaved-" in w]
    assert saved, out.stderr
    rescue = Path(saved[0].rstrip(":;,"))
    run_file = next((p.path / ".flor" / "runs").glob("*.jsonl"))
    (p.path / "filler").unlink()
    with run_file.open("ab") as f:
        f.write(rescue.read_bytes())
    rescue.unlink()
    lines = [json.loads(x) for x in run_file.read_text().splitlines()]
    assert sorted(x["value"] for x in lines if x["name"] == "x") == list(range(40))
    assert [x["value"]["status"] for x in lines if x["name"] == "flor::end"] == ["finished"]


def test_reads_work_while_the_disk_is_full(small_disk: Path):
    p = _project(small_disk)
    p.write("short.py", "import flordb as flor\nfor e in flor.loop('epoch', range(3)):\n    flor.log('y', e)\n")
    p.commit_all()
    p.run("short.py")
    assert len(p.frame("y")) == 3  # the cache holds the run
    p.run("short.py")
    fd = os.open(p.path / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    out = p.run("-c", "import flordb as flor\nprint(len(flor.dataframe('y')))", check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("3", "6") and "may lack the newest runs" in out.stderr, out.stderr
