"""Replay of seed-style scripts (`from flor import MTK as Flor`, unnamed `Flor.loop`s), and
of outer-level statements that read values built in the nested loop: replayed values equal
the forward run's bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project
from test_replay import EVERY, forward, replay, rows, steps

# `total` is built in the nested loop and read at the epoch level; `w` and `sched` are
# enrolled, so `val` only needs them restored.
TRAIN_MTK = """
import os
import numpy as np
import flor
from flor import MTK as Flor

trace = open(os.environ["TRACE"], "a") if os.environ.get("TRACE") else None
np.random.seed(flor.arg("seed", 0))
X = np.random.randn(64, 4)
y = X @ np.random.randn(4) + 0.1 * np.random.randn(64)
w = np.zeros(4)
sched = {"lr": 0.1}
Flor.checkpoints(w, sched)
for epoch in Flor.loop(range(flor.arg("epochs", 4))):
    idx = np.random.permutation(len(X))
    total = 0.0
    for step in Flor.loop(range(4)):
        b = idx[step * 16:(step + 1) * 16]
        mask = (np.random.rand(4) > 0.2) / 0.8
        w -= sched["lr"] * X[b].T @ (X[b] @ (w * mask) - y[b]) / 16
        loss = float(np.mean((X[b] @ w - y[b]) ** 2))
        total += loss
        if trace:
            trace.write(f"{epoch} {step}\\n"); trace.flush()
        flor.log("loss", loss)
    sched["lr"] *= 0.9
    flor.log("val", float(np.mean((X @ w - y) ** 2)) + sched["lr"])
    flor.log("avg_loss", total / 4)
flor.log("final", float(w.sum()))
"""

# The same training with today's names.
TRAIN_NAMED = (
    TRAIN_MTK.replace("from flor import MTK as Flor\n", "")
    .replace("import flor\n", "import flordb as flor\n")
    .replace("Flor.checkpoints(w, sched)\n", "")
    .replace("\n    ", "\n        ")
    .replace("for epoch in Flor.loop(", 'with flor.checkpointing(w=w, sched=sched):\n    for epoch in flor.loop("epoch", ')
    .replace("Flor.loop(range(4))", 'flor.loop("step", range(4))')
)


def _exact(project: Project, name: str, epochs: list[int], per_epoch: int = 1) -> None:
    fwd, rep = rows(project, name, "forward"), rows(project, name, "replay")
    assert sorted({k[1] for k in rep}) == epochs, rep
    assert len(rep) == len(epochs) * per_epoch
    for key, value in rep.items():
        assert value == fwd[key], (name, key, value, fwd[key])


def test_seed_script_replays_both_levels_exactly(project: Project, tmp_path: Path):
    forward(project, TRAIN_MTK)
    trace = tmp_path / "outer"
    replay(project, "--apply", "val", trace=trace)
    assert steps(trace) == []  # epoch level: restored, no training step run
    _exact(project, "val", [0, 1, 2, 3])
    trace = tmp_path / "nested"
    replay(project, "--apply", "loss", "--iter", "epoch=2", trace=trace)
    assert steps(trace) == [(2, s) for s in range(4)]
    _exact(project, "loss", [2], per_epoch=4)


@pytest.mark.parametrize("script", [TRAIN_MTK, TRAIN_NAMED], ids=["seed", "named"])
def test_outer_statement_reading_a_nested_value_runs_the_nested_loop(project: Project, tmp_path: Path, script: str):
    forward(project, script)
    trace = tmp_path / "trace"
    replay(project, "--apply", "avg_loss", "--iter", "epoch=1,3", trace=trace)
    _exact(project, "avg_loss", [1, 3])
    assert sorted({e for e, _ in steps(trace)}) == [1, 3]
    # In the same script, a statement reading only enrolled objects keeps the fast path.
    trace = tmp_path / "fast"
    replay(project, "--apply", "val", trace=trace)
    assert steps(trace) == []
    _exact(project, "val", [0, 1, 2, 3])


_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)

# The 2023 notebook's shape: Flor.checkpoints(net, optimizer), a shuffled DataLoader,
# dropout, and an epoch-level statement on the model.
TRAIN_TORCH_MTK = """
import torch
import flor
from flor import MTK as Flor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
torch.manual_seed(0)
X = torch.randn(96, 8)
y = (X[:, 0] > 0).long()
loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
criterion = nn.CrossEntropyLoss()
Flor.checkpoints(net, optimizer)
for epoch in Flor.loop(range(3)):
    net.train()
    for data in Flor.loop(loader):
        inputs, labels = data
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        flor.log("loss", loss.item())
    flor.log("w", net[0].weight.sum().item())
"""


@pytest.mark.skipif(_probe.returncode != 0, reason="torch is not installed (`make torch`)")
def test_seed_torch_script_replays_exactly(project: Project):
    forward(project, TRAIN_TORCH_MTK)
    project.run("train.py", "--replay_flor", "--apply", "w", timeout=300)
    _exact(project, "w", [0, 1, 2])
    project.run("train.py", "--replay_flor", "--apply", "loss", "--iter", "epoch=1", timeout=300)
    _exact(project, "loss", [1], per_epoch=3)
