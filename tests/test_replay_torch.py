"""Replay exactness with real PyTorch training on the CPU: dropout, a shuffled
DataLoader, Adam, and an LR scheduler stepped after the nested loop. Values replayed for
names the forward run also logged must be equal bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project
from test_replay import EVERY, rows, steps

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
pytestmark = pytest.mark.skipif(
    _probe.returncode != 0,
    reason="torch is not installed (`make torch` installs it into ~/.cache/flordb): " + _probe.stderr[-200:],
)

TRAIN_TORCH = """
import os
import torch
import flordb as flor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

trace = open(os.environ["TRACE"], "a") if os.environ.get("TRACE") else None
torch.set_num_threads(1)
torch.manual_seed(flor.arg("seed", 0))
X = torch.randn(96, 8)
y = (X[:, 0] > 0).long()
loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
opt = torch.optim.Adam(net.parameters(), lr=flor.arg("lr", 0.01))
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
loss_fn = nn.CrossEntropyLoss()

if os.path.exists("ckpt.pt"):  # a resume block: replay must not start from this file
    net.load_state_dict(torch.load("ckpt.pt"))

with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    for epoch in flor.loop("epoch", range(flor.arg("epochs", 4))):
        net.train()
        for xb, yb in flor.loop("step", loader):
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            if trace:
                trace.write(f"{epoch} 0\\n"); trace.flush()
            flor.log("loss", loss.item())
        sched.step()
        net.eval()
        with torch.no_grad():
            flor.log("val_loss", loss_fn(net(X), y).item() + sched.get_last_lr()[0])
        flor.log("noise", torch.rand(1).item())
        torch.save(net.state_dict(), "ckpt.pt")
with torch.no_grad():
    flor.log("acc", (net(X).argmax(1) == y).float().mean().item())
"""


@pytest.fixture
def torch_project(project: Project) -> Project:
    project.write("train.py", TRAIN_TORCH)
    project.write(".gitignore", "ckpt.pt\n")
    project.commit_all()
    project.run("train.py", env=EVERY)
    return project


def _replay(project: Project, *args: str, trace: Path | None = None):
    env = {"TRACE": str(trace)} if trace else None
    return project.run("train.py", "--replay_flor", *args, env=env, timeout=300)


def _exact(project: Project, name: str, count: int) -> None:
    fwd, rep = rows(project, name, "forward"), rows(project, name, "replay")
    assert len(rep) == count, rep
    for key, value in rep.items():
        assert value == fwd[key], (name, key, value, fwd[key])


def test_torch_replay_is_exact_at_every_level(torch_project: Project, tmp_path: Path):
    ckpt = (torch_project.path / "ckpt.pt").read_bytes()
    trace = tmp_path / "t1"
    _replay(torch_project, "--apply", "val_loss,noise,acc", trace=trace)
    assert steps(trace) == []
    _exact(torch_project, "val_loss", 4)
    _exact(torch_project, "noise", 4)
    _exact(torch_project, "acc", 1)
    trace = tmp_path / "t2"
    _replay(torch_project, "--apply", "loss", "--iter", "epoch=2", trace=trace)
    assert len(steps(trace)) == 3
    _exact(torch_project, "loss", 3)
    # torch.save wrote nothing during replay.
    assert (torch_project.path / "ckpt.pt").read_bytes() == ckpt


@pytest.mark.parametrize("spec,count", [("last", 1), ("none", 0), ("0,3", 2)])
def test_torch_iter_forms(torch_project: Project, spec: str, count: int):
    _replay(torch_project, "--apply", "val_loss", "--iter", f"epoch={spec}")
    _exact(torch_project, "val_loss", count)


def test_torch_workers(torch_project: Project, tmp_path: Path):
    trace = tmp_path / "t"
    _replay(torch_project, "--apply", "loss,val_loss,acc", "--iter", "epoch=1,2,3", "--workers", "2", trace=trace)
    assert sorted({e for e, _ in steps(trace)}) == [1, 2, 3]
    _exact(torch_project, "loss", 9)
    _exact(torch_project, "val_loss", 3)
    _exact(torch_project, "acc", 1)


def test_torch_fallback_without_checkpoints(torch_project: Project):
    import shutil

    # A fresh clone: no checkpoints, and no ckpt.pt for the resume block to load.
    shutil.rmtree(torch_project.path / ".flor" / "ckpts")
    (torch_project.path / "ckpt.pt").unlink()
    out = _replay(torch_project, "--apply", "val_loss", "--iter", "epoch=1")
    assert "recomputing epoch iterations 0" in out.stderr
    _exact(torch_project, "val_loss", 1)
