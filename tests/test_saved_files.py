"""flordb 4.0.1's checkpoint semantics: a run keeps a copy of each file its script saves
with `torch.save` (the last save per path), `flor.checkpoints` lists them and
`flor.load_checkpoint(run, "ckpt.pth")` reads them back; a run whose set-up code loads
another run's file (or calls `flor.load_checkpoint`) records where it started from, and
its replay starts from that same copy, exactly, or refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project, git
from test_trust import values

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
pytestmark = pytest.mark.skipif(_probe.returncode != 0, reason="torch is not installed (`make torch`)")

# The way flordb 4.0.1 recommends: no flor.checkpointing, a torch.save every epoch and a
# resume block that loads the file if it is there.
TRAIN = """
import os
import torch
from torch import nn
import flordb as flor

torch.manual_seed(flor.arg("seed", 0))
torch.set_num_threads(1)
X = torch.randn(32, 3)
y = X @ torch.tensor([1.0, -2.0, 0.5])
net = nn.Linear(3, 1)
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
if os.path.exists("ckpt.pth"):
    state = torch.load("ckpt.pth")
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
for epoch in flor.loop("epoch", range(3)):
    for i in flor.loop("step", range(4)):
        xb, yb = X[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]
        opt.zero_grad()
        loss = ((net(xb).squeeze(1) - yb) ** 2).mean()
        loss.backward()
        opt.step()
        flor.log("loss", loss.item())
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, "ckpt.pth")
"""
STATEMENT = ('    torch.save({"model"', '    flor.log("wnorm", net.weight.norm().item())\n    torch.save({"model"')
TODAY = TRAIN.replace(*STATEMENT)


def _starts(project: Project, run: str) -> list[dict]:
    lines = (project.path / ".flor" / "runs" / f"{run}.jsonl").read_text().splitlines()
    return [json.loads(x)["value"] for x in lines if json.loads(x)["name"] == "flor::start"]


def _record_two(project: Project) -> tuple[str, str]:
    project.write("train.py", TRAIN)
    project.write(".gitignore", "ckpt.pth\n")
    project.commit_all()
    project.run("train.py")
    project.run("train.py")
    first, second = (r["run_id"] for r in project.runs())
    return first, second


def test_each_run_keeps_its_last_save_and_reads_it_back(project: Project):
    first, second = _record_two(project)
    out = project.py(
        f"""
        import io, json, torch, flordb as flor
        ck = flor.checkpoints({first!r})
        mine = flor.load_checkpoint({first!r}, "ckpt.pth")
        alone = flor.load_checkpoint({first!r})
        theirs = flor.load_checkpoint({second!r}, "ckpt.pth")
        on_disk = torch.load("ckpt.pth")
        try:
            flor.load_checkpoint({first!r}, "other.pth")
            err = None
        except flor.CheckpointNotFoundError as e:
            err = str(e)
        print(json.dumps({{
            "rows": ck[["kind", "name", "backend", "path"]].values.tolist(),
            "same_as_alone": torch.equal(mine["model"]["weight"], alone["model"]["weight"]),
            "second_is_disk": torch.equal(theirs["model"]["weight"], on_disk["model"]["weight"]),
            "first_differs": not torch.equal(mine["model"]["weight"], theirs["model"]["weight"]),
            "err": err,
        }}))
        """
    )
    assert out["rows"] == [["run", "ckpt.pth", "state_dict", "ckpt.pth"]]
    assert out["same_as_alone"] and out["second_is_disk"] and out["first_differs"], out
    assert "has no checkpoint of 'other.pth' here (it saved: ckpt.pth" in out["err"], out["err"]
    # The second run started from the first one's file, untouched since its last save.
    assert _starts(project, first) == []
    assert _starts(project, second) == [{"via": "torch.load", "key": "ckpt.pth", "run": first, "name": "ckpt.pth", "setup": True}]


def test_a_file_changed_since_the_save_is_not_a_resume(project: Project):
    project.write("train.py", TRAIN)
    project.write(".gitignore", "ckpt.pth\n")
    project.commit_all()
    project.run("train.py")
    # Someone re-saves the file outside FlorDB: it is no longer that run's output.
    project.run("-c", "import torch; s = torch.load('ckpt.pth'); torch.save(s, 'ckpt.pth')")
    project.run("train.py")
    assert _starts(project, project.runs()[-1]["run_id"]) == []


def _truth_from(tmp_path: Path, ckpt: bytes | None) -> dict:
    """wnorm by epoch in a forward run of today's code starting from `ckpt` (or fresh)."""
    repo = tmp_path / f"truth{len(list(tmp_path.iterdir()))}"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    p = Project(repo)
    p.write("train.py", TODAY)
    p.write(".gitignore", "ckpt.pth\n")
    p.commit_all()
    if ckpt is not None:
        (repo / "ckpt.pth").write_bytes(ckpt)
    p.run("train.py")
    return values(p, "wnorm", "forward")


def _replayed(project: Project, run: str) -> dict:
    out = {}
    for r in project.frame("wnorm"):
        if r["source"] == "replay" and r["run_id"] == run and r.get("wnorm") is not None:
            out[(r["epoch"],)] = r["wnorm"]
    return out


def test_replay_of_a_resumed_run_starts_from_the_copy_it_loaded(project: Project, tmp_path: Path):
    first, second = _record_two(project)
    first_copy = project.py(
        f"""
        import base64, json, flordb as flor
        from flordb import _native
        run_id, flor_dir = _native.resolve_run(".", {first!r})
        print(json.dumps(base64.b64encode(_native.saved_read(str(flor_dir), run_id, "ckpt.pth")).decode()))
        """
    )
    import base64

    resumed_truth = _truth_from(tmp_path, base64.b64decode(first_copy))
    fresh_truth = _truth_from(tmp_path, None)
    assert resumed_truth != fresh_truth
    left_behind = (project.path / "ckpt.pth").read_bytes()
    project.write("train.py", TODAY)
    # In the user's checkout: the file on disk now is the second run's end state.
    out = project.run("train.py", "--replay_flor", "--apply", "wnorm", timeout=300)
    assert _replayed(project, second) == resumed_truth, out.stderr
    assert (project.path / "ckpt.pth").read_bytes() == left_behind
    # Across runs, each in its own checkout of its version.
    cli = project.flor("replay", "wnorm", "--yes")
    assert _replayed(project, first) == fresh_truth, cli.stdout + cli.stderr
    assert _replayed(project, second) == resumed_truth, cli.stdout + cli.stderr
    assert (project.path / "ckpt.pth").read_bytes() == left_behind


def test_replay_refuses_when_the_copy_it_resumed_from_is_gone(project: Project):
    first, second = _record_two(project)
    (project.path / ".flor" / "ckpts" / first / "saved.index").unlink()
    project.write("train.py", TODAY)
    out = project.run("train.py", "--replay_flor", "--apply", "wnorm", check=False, timeout=300)
    assert out.returncode != 0
    assert f"resumed from run {first}'s copy of ckpt.pth, which cannot be read here" in out.stderr, out.stderr
    assert _replayed(project, second) == {}


EXPLICIT = """
import torch
from torch import nn
import flordb as flor

torch.manual_seed(0)
torch.set_num_threads(1)
net = nn.Linear(3, 1)
runs = flor.dataframe()
best = runs[runs.filename == "train.py"].run_id.iloc[-1]
net.load_state_dict(flor.load_checkpoint(best, "ckpt.pth")["model"])
X = torch.randn(16, 3)
for epoch in flor.loop("epoch", range(2)):
    net.weight.data -= 0.01 * net.weight.data
    flor.log("w", net.weight.sum().item())
"""


def test_an_explicit_load_is_recorded_and_replay_reads_the_same_copy(project: Project):
    first, _ = _record_two(project)
    project.write("finetune.py", EXPLICIT.replace('runs.filename == "train.py"].run_id.iloc[-1]', 'runs.filename == "train.py"].run_id.iloc[0]'))
    project.commit_all()
    project.run("finetune.py")
    tune = project.runs()[-1]["run_id"]
    assert _starts(project, tune) == [{"via": "load_checkpoint", "key": "ckpt.pth", "run": first, "name": "ckpt.pth", "setup": True, "call": 0}]
    forward = {r["epoch"]: r["w"] for r in project.frame("w") if r["run_id"] == tune}
    # Today's version picks the newest run; the replay still reads what the run read.
    project.write("finetune.py", EXPLICIT.replace('flor.log("w", net.weight.sum().item())', 'flor.log("w", net.weight.sum().item())\n    flor.log("b", net.bias.sum().item())'))
    out = project.run("finetune.py", "--replay_flor", "--apply", "b", timeout=300)
    assert "flor.load_checkpoint now selects run" in out.stderr and f"started from run {first}" in out.stderr, out.stderr
    assert "diverged" not in out.stderr and "cannot be reproduced" not in out.stderr, out.stderr
    replayed = [r for r in project.frame("b") if r["run_id"] == tune and r["source"] == "replay"]
    assert len(replayed) == 2 and len(forward) == 2
