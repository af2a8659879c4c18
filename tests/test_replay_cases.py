"""Replay on the shapes of other people's scripts: a resume block that would load the
checkpoint file the runs left behind, data beside the repository (`../data`), run
selection by identity, the script's own command-line flags, statements calling helpers
that only today's script has, and runs that log nothing where the statement was put.

Every replayed value is compared with a forward run of today's code (ground truth).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project, git
from test_trust import EVERY, ground_truth, record, values

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
needs_torch = pytest.mark.skipif(_probe.returncode != 0, reason="torch is not installed (`make torch`)")

# A script that resumes from its own checkpoint file, the way flordb 4.0.1 recommends.
RESUME = """
import os
import torch
import flordb as flor
from torch import nn

torch.manual_seed(flor.arg("seed", 0))
torch.set_num_threads(1)
X = torch.randn(64, 4)
y = X @ torch.tensor([1.0, -1.0, 0.5, 2.0])
net = nn.Linear(4, 1)
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
start = 0
if os.path.exists("ckpt.pth"):
    state = torch.load("ckpt.pth")
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    start = state["epoch"] + 1
with flor.checkpointing(model=net, optimizer=opt):
    for epoch in flor.loop("epoch", range(start, 6)):
        for i in flor.loop("step", range(4)):
            xb, yb = X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
            opt.zero_grad()
            loss = ((net(xb).squeeze(1) - yb) ** 2).mean()
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, "ckpt.pth")
"""
RESUME_STMT = (
    '        torch.save({"model"',
    '        flor.log("wnorm", net.weight.norm().item())\n        torch.save({"model"',
)


@needs_torch
@pytest.mark.parametrize("checkpointing", [True, False], ids=["checkpointing", "flordb4-style"])
def test_a_resume_block_does_not_load_the_file_the_runs_left_behind(project: Project, tmp_path: Path, checkpointing: bool):
    script = RESUME
    if not checkpointing:
        script = script.replace("with flor.checkpointing(model=net, optimizer=opt):\n", "if True:\n")
    today = script.replace(*RESUME_STMT)
    truth = ground_truth(tmp_path, {"train.py": today, ".gitignore": "ckpt.pth\n"}, "wnorm")
    record(project, {"train.py": script, ".gitignore": "ckpt.pth\n"})
    left_behind = (project.path / "ckpt.pth").read_bytes()
    project.write("train.py", today)
    out = project.run("train.py", "--replay_flor", "--apply", "wnorm", "--iter", "epoch=2,4", timeout=300)
    assert values(project, "wnorm", "replay") == {(2,): truth[(2,)], (4,): truth[(4,)]}, out.stderr
    assert (project.path / "ckpt.pth").read_bytes() == left_behind
    cli = project.flor("replay", "wnorm", "--yes")
    assert "left out of its checkout, written after the run started: ckpt.pth" in cli.stdout, cli.stdout
    assert values(project, "wnorm", "replay") == truth
    assert (project.path / "ckpt.pth").read_bytes() == left_behind


# pytorch/examples' layout: the data sits beside the code, read as `../data`.
MNIST_LIKE = """
import argparse
import numpy as np
import flordb as flor


def train(args, w, data, epoch):
    for i in flor.loop("step", range(0, len(data), args.batch_size)):
        xb = data[i:i + args.batch_size]
        w -= args.lr * (xb @ w - 1.0) @ xb / len(xb)
        flor.log("loss", float(((xb @ w - 1.0) ** 2).mean()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    data = np.load("../data/points.npy")
    w = np.zeros(data.shape[1])
    with flor.checkpointing(w=w):
        for epoch in flor.loop("epoch", range(1, args.epochs + 1)):
            train(args, w, data, epoch)
            flor.log("w0", float(w[0]))


if __name__ == "__main__":
    main()
"""
MNIST_STMT = ('            flor.log("w0", float(w[0]))\n', '            flor.log("w0", float(w[0]))\n            flor.log("wsum", float(w.sum()))\n')


@pytest.mark.parametrize("layout", ["beside-the-repository", "in-the-repository"])
def test_data_at_dotdot_resolves_as_it_did_for_the_run(project: Project, tmp_path: Path, layout: str):
    import numpy as np

    points = np.random.default_rng(0).standard_normal((40, 3))
    if layout == "beside-the-repository":
        data_dir, code = project.path.parent / "data", ""
    else:
        data_dir, code = project.path / "data", "mnist/"
        project.write(".gitignore", "data/\n")
    data_dir.mkdir(exist_ok=True)
    np.save(data_dir / "points.npy", points)
    project.write(f"{code}train.py", MNIST_LIKE)
    project.commit_all()
    cwd = project.path / code
    project.run("train.py", "--lr", "0.1", cwd=cwd, env=EVERY)
    project.write(f"{code}train.py", MNIST_LIKE.replace(*MNIST_STMT))
    out = project.flor("replay", "wsum", "--yes")
    assert "replayed 1 of 1" in out.stdout, out.stdout + out.stderr
    replayed = values(project, "wsum", "replay")
    # Ground truth: today's code, run the same way, here (the data is where it was).
    project.run("train.py", "--lr", "0.1", cwd=cwd)
    assert replayed == values(project, "wsum", "forward") and len(replayed) == 4


def test_the_direct_form_replays_with_the_runs_own_flags(project: Project):
    project.write("train.py", MNIST_LIKE.replace("../data/", "data/"))
    project.write(".gitignore", "data/\n")
    import numpy as np

    (project.path / "data").mkdir()
    np.save(project.path / "data" / "points.npy", np.random.default_rng(1).standard_normal((24, 3)))
    project.commit_all()
    project.run("train.py", "--lr", "0.2", env=EVERY)
    project.write("train.py", MNIST_LIKE.replace("../data/", "data/").replace(*MNIST_STMT))
    refused = project.run("train.py", "--lr", "0.0", "--replay_flor", "--apply", "wsum", check=False)
    assert refused.returncode != 0
    assert "was started as `python train.py --lr 0.2`" in refused.stderr, refused.stderr
    out = project.run("train.py", "--replay_flor", "--apply", "wsum")
    assert "replaying it with those arguments" in out.stderr
    replayed = values(project, "wsum", "replay")
    project.run("train.py", "--lr", "0.2")
    assert replayed == values(project, "wsum", "forward") and len(replayed) == 4


SEED_STYLE = """
import flor
from flor import MTK as Flor
import numpy as np

hidden = flor.arg("hidden", 8)
w = np.ones(hidden)
Flor.checkpoints(w)
for epoch in Flor.loop(range(3)):
    w *= 0.5
    flor.log("acc", float(w.sum()))
"""


def test_selection_is_by_run_not_by_name(project: Project):
    project.write("main.py", SEED_STYLE)
    project.commit_all()
    for hidden in (4, 8, 16):
        project.run("main.py", "--flor", "base", "--kwargs", f"hidden={hidden}")
    project.write("main.py", SEED_STYLE.replace('    flor.log("acc", float(w.sum()))\n', '    flor.log("acc", float(w.sum()))\n    flor.log("w0", float(w[0]))\n'))
    project.py(
        """
        import json, flor
        flor.replay(["w0"], 'hidden.astype("float") < 10', path="main.py", yes=True)
        print(json.dumps(0))
        """
    )
    runs = {r["run_id"]: r for r in project.runs()}
    replayed = {r["run_id"] for r in project.frame("w0", "hidden") if r["source"] == "replay" and r.get("w0") is not None}
    assert len(replayed) == 2
    assert all(runs[r]["name"] == "base" for r in replayed)
    hiddens = {r["hidden"] for r in project.frame("hidden") if r["run_id"] in replayed and r["source"] == "forward"}
    assert hiddens == {4, 8}


# A helper that exists only in today's script, and a module imported only for it.
HELPER = """
import numpy as np
import flordb as flor

w = np.arange(3.0)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(3)):
        w *= 0.9
        flor.log("w0", float(w[0]))
"""
HELPER_TODAY = HELPER.replace(
    "import flordb as flor\n",
    "import math\nimport flordb as flor\n\n\ndef norm(v):\n    return math.sqrt(float((v ** 2).sum()))\n",
).replace('        flor.log("w0", float(w[0]))\n', '        flor.log("w0", float(w[0]))\n        flor.log("norm", norm(w))\n')


def test_a_statement_calling_a_helper_of_todays_script_carries_it(project: Project, tmp_path: Path):
    truth = ground_truth(tmp_path, {"train.py": HELPER_TODAY}, "norm")
    record(project, {"train.py": HELPER})
    project.write("train.py", HELPER_TODAY)
    out = project.flor("replay", "norm", "--yes")
    assert "carried from today's script: import math, def norm" in out.stdout, out.stdout + out.stderr
    assert values(project, "norm", "replay") == truth


def test_a_replay_that_fills_nothing_is_a_failure(project: Project):
    script = """
import flordb as flor
for epoch in flor.loop("epoch", range(3)):
    if epoch > 99:
        pass
    flor.log("e", epoch)
"""
    record(project, {"train.py": script})
    project.write("train.py", script.replace("        pass\n", "        flor.log('never', epoch)\n"))
    out = project.flor("replay", "never", "--yes", check=False)
    assert out.returncode != 0
    assert "no statement of never logged anything" in out.stderr, out.stderr
    assert "replayed 0 of 1" in out.stdout


THREADS = """
import torch
import flordb as flor

torch.manual_seed(0)
X = torch.randn(256, 64)
w = torch.zeros(64, requires_grad=False)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(3)):
        w += (X.T @ (X @ w - 1.0)) * -1e-3
        flor.log("loss", float(((X @ w - 1.0) ** 2).mean()))
"""


@needs_torch
def test_replay_runs_under_the_runs_thread_count(project: Project, tmp_path: Path):
    today = THREADS.replace('        flor.log("loss"', '        flor.log("threads", torch.get_num_threads())\n        flor.log("loss"')
    project.write("train.py", THREADS)
    project.commit_all()
    project.run("train.py", env={"OMP_NUM_THREADS": "1", **EVERY})
    run = project.runs()[-1]["run_id"]
    project.write("train.py", today)
    out = project.run("train.py", "--replay_flor", "--apply", "threads", "--replay_run", run, env={"OMP_NUM_THREADS": "2"})
    assert "torch threads 2 -> 1" in out.stderr, out.stderr
    assert {v for k, v in values(project, "threads", "replay").items()} == {1}


def test_flor_iteration_follows_iter_in_replay(project: Project):
    script = """
import flordb as flor
total = 0
for doc in ["a", "b", "c"]:
    with flor.iteration("doc", ["a", "b", "c"].index(doc), doc):
        total += len(doc)
        flor.log("n", total)
"""
    record(project, {"train.py": script})
    project.write("train.py", script.replace('        flor.log("n", total)\n', '        flor.log("n", total)\n        flor.log("twice", 2 * total)\n'))
    project.run("train.py", "--replay_flor", "--apply", "twice", "--iter", "doc=0,2")
    got = {r["doc"]: r["twice"] for r in project.frame("twice") if r["source"] == "replay" and r.get("twice") is not None}
    assert got == {0: 2, 2: 6}


def test_plan_wording_for_a_loop_without_nested_loops_and_iter_counting(project: Project):
    script = """
import numpy as np
import flordb as flor

w = np.ones(2)
with flor.checkpointing(w=w):
    for it in flor.loop("iter", range(6)):
        w *= 0.5
        flor.log("w0", float(w[0]))
"""
    record(project, {"train.py": script})
    project.write("train.py", script.replace('        flor.log("w0", float(w[0]))\n', '        flor.log("w0", float(w[0]))\n        flor.log("w1", float(w[1]))\n'))
    plan = project.flor("replay", "w1", "--iter", "iter=2,4", "--dry-run").stdout
    assert "2 run (no nested loop)" in plan and "without their nested loops" not in plan, plan
    assert "--iter counts a loop's iterations from 0: iter=2 is its pass number 3" in plan, plan
    assert "checked against the recorded values of w0" in plan, plan


def test_a_new_argument_without_default_asks_for_override_in_replay(project: Project):
    script = """
import flordb as flor
for epoch in flor.loop("epoch", range(2)):
    flor.log("e", epoch)
"""
    record(project, {"train.py": script})
    project.write("train.py", script.replace('    flor.log("e", epoch)\n', '    flor.log("e", epoch)\n    flor.log("k", flor.arg("k"))\n'))
    out = project.run("train.py", "--replay_flor", "--apply", "k", check=False)
    assert out.returncode != 0
    assert "pass --override k=VALUE" in out.stderr, out.stderr
