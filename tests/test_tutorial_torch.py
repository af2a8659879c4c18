"""The PyTorch tutorial script (examples/tutorial/train_torch.py) under `flor replay`
across two versions: an epoch-level and a step-level statement added to today's code are
replayed into a run of each version, and the replayed values equal, bit for bit, what
today's code logs when run forward with the same args."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project

_probe = subprocess.run([PYTHON, "-c", "import torch, sklearn"], capture_output=True, text=True)
pytestmark = pytest.mark.skipif(
    _probe.returncode != 0,
    reason="torch or scikit-learn cannot be imported (`make torch` installs torch into ~/.cache/flordb): "
    + _probe.stderr[-200:],
)

TUTORIAL = Path(__file__).resolve().parents[1] / "examples" / "tutorial" / "train_torch.py"
V2 = TUTORIAL.read_text()
# Version 1 calls the network `mlp`: the same computation under another name.
V1 = re.sub(r"\bnet\b", "mlp", V2)
VAL = '        flor.log("val_acc", accuracy(X_val, y_val))\n'
LOSS = '            flor.log("loss", loss.item())\n'
TODAY = V2.replace(VAL, VAL + '        flor.log("w_norm", net[0].weight.norm().item())\n').replace(
    LOSS, LOSS + '            flor.log("g_norm", net[0].weight.grad.norm().item())\n'
)
RUNS = [(1, ["hidden=16", "epochs=2", "seed=1"]), (2, ["hidden=24", "epochs=3", "seed=2", "lr=0.1"])]


def values(p: Project, name: str, source: str) -> dict:
    out = {}
    for row in p.frame("seed", name):
        if row["source"] == source and row.get(name) is not None:
            out[(row["seed"], row.get("epoch"), row.get("step"))] = row[name]
    return out


def test_torch_tutorial_replays_exactly_across_two_versions(project: Project):
    p = project
    assert VAL in V2 and LOSS in V2 and "mlp" in V1
    for version, kwargs in RUNS:
        p.write("train_torch.py", V1 if version == 1 else V2)
        p.commit_all(f"v{version}")
        p.run("train_torch.py", "--kwargs", *kwargs, timeout=300)
    p.write("train_torch.py", TODAY)

    out = p.flor("replay", "w_norm", "g_norm", "--yes", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "replayed 2 of 2 run(s)" in out.stdout, out.stdout
    epochs, steps = values(p, "w_norm", "replay"), values(p, "g_norm", "replay")
    assert {k[0] for k in epochs} == {k[0] for k in steps} == {1, 2}
    assert len(epochs) == 2 + 3 and all(k[2] is None for k in epochs)
    steps_per_epoch = len(steps) // 5
    assert steps_per_epoch > 10 and len(steps) == 5 * steps_per_epoch

    # Today's code, run forward with each run's args, logs the same values.
    for _, kwargs in RUNS:
        p.run("train_torch.py", "--kwargs", *kwargs, timeout=300)
    assert values(p, "w_norm", "forward") == epochs
    assert values(p, "g_norm", "forward") == steps
