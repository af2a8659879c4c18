"""flordb 4.0.1's tests/test_torch_checkpointing.py and tests/test_checkpoint_io.py,
ported as black-box tests.

A forward run keeps a copy of each file its script saves with `torch.save` (the last
save per path); `flor.checkpoints(run)` lists the copies and `flor.load_checkpoint(run,
name)` reads them back; a replay never writes the user's file nor the store, and its
values equal a forward run's. 4.0.1 checks the copies by reading its store
(`.flor/obj_store/<tstamp>/.latest/`) and drives private save helpers in-process; this
project stores chunks under `.flor/objects` (README, "Differences from flordb 4.0.1"),
so the copies are checked through `flor.checkpoints` / `flor.load_checkpoint`, and the
save helpers through scripts that save.

Every replayed value is compared with ground truth: a forward run of today's script
(the recorded one plus the new statement) in another repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, Project, init_project

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
pytestmark = pytest.mark.skipif(_probe.returncode != 0, reason="torch is not installed (`make torch`)")

# 4.0.1's training script: a resume block, momentum (state carried across epochs), and a
# torch.save of model and optimizer every epoch.
TRAIN = """
import os

import torch
import torch.nn as nn

import flordb as flor

epochs = flor.arg("epochs", 3)

torch.manual_seed(flor.arg("seed", 42))
torch.set_num_threads(1)
model = nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

if os.path.exists("ckpt.pth"):
    _resume = torch.load("ckpt.pth")
    model.load_state_dict(_resume["model"])
    optimizer.load_state_dict(_resume["optimizer"])

x = torch.ones(4, 2)
y = torch.zeros(4, 1)

for epoch in flor.loop("epoch", range(epochs)):
    for step in flor.loop("step", range(2)):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
        "ckpt.pth",
    )
"""
# The new statement: the momentum buffers, which no recorded value shows. It goes right
# after the weight_sum statement, at its indentation.
STATEMENT = 'flor.log("{name}", sum(float(s["momentum_buffer"].sum()) for s in optimizer.state.values()))\n'

# The same training, the user's own `for` marked with flor.iteration.
ITERATION_TRAIN = TRAIN.replace(
    """for epoch in flor.loop("epoch", range(epochs)):
    for step in flor.loop("step", range(2)):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
        "ckpt.pth",
    )
""",
    """for epoch in range(epochs):
    with flor.iteration("epoch", epoch, None):
        for step in flor.loop("step", range(2)):
            loss = ((model(x) - y) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
            "ckpt.pth",
        )
""",
)
assert ITERATION_TRAIN != TRAIN


def today(script: str, name: str) -> str:
    """`script` with the new statement `name` after its weight_sum statement."""
    lines = script.splitlines(keepends=True)
    [i] = [i for i, line in enumerate(lines) if 'flor.log("weight_sum"' in line]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    return "".join(lines[: i + 1] + [indent + STATEMENT.format(name=name)] + lines[i + 1 :])




def values(p: Project, name: str, source: str, run: str | None = None) -> dict:
    out = {}
    for r in p.frame(name):
        if r["source"] == source and r.get(name) is not None and run in (None, r["run_id"]):
            assert r["epoch"] not in out, f"duplicate row {r['epoch']}"
            out[r["epoch"]] = r[name]
    return out


def record(p: Project, script: str, *args: str, ignore: bool = True) -> str:
    p.write("train.py", script)
    if ignore:
        p.write(".gitignore", "*.pth\n")
    p.commit_all()
    p.run("train.py", *args)
    return p.runs()[-1]["run_id"]


def replay(p: Project, name: str, *iters: str, extra=(), check: bool = True):
    argv = ["train.py", "--replay_flor", "--apply", name]
    for spec in iters:
        argv += ["--iter", spec]
    return p.run(*argv, *extra, check=check, timeout=300)


def store(p: Project) -> dict:
    """Every file of this project's checkpoint store (chunks and indexes), with its bytes."""
    out = {}
    for top in ("objects", "ckpts"):
        root = p.path / ".flor" / top
        for f in sorted(root.rglob("*")) if root.exists() else []:
            if f.is_file():
                out[str(f.relative_to(p.path))] = f.read_bytes()
    return out


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict:
    """The new statement's values by epoch in a forward run of today's script."""
    p = init_project(tmp_path_factory.mktemp("truth") / "proj")
    record(p, today(TRAIN, "mom"))
    got = values(p, "mom", "forward")
    assert sorted(got) == [0, 1, 2]
    return got


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Project, str]:
    """One recorded run of TRAIN (ckpt.pth ignored by git), shared by the tests below:
    each replays its own new statement, so their replays do not mix."""
    p = init_project(tmp_path_factory.mktemp("trained") / "proj")
    return p, record(p, TRAIN)


# --- TestForwardCopy -----------------------------------------------------------------


def test_one_copy_per_run(trained):
    """Documented difference (store layout, `flor.checkpoints` columns): 4.0.1 finds one
    `.latest/index.json` entry under its shelf; here `flor.checkpoints(run)` lists one
    `kind="run"` copy, of ckpt.pth, and nothing per iteration."""
    p, run = trained
    rows = p.py(
        f"""
        import json, flordb as flor
        ck = flor.checkpoints({run!r})
        print(json.dumps(ck[["kind", "name", "backend", "path"]].values.tolist()))
        """
    )
    assert rows == [["run", "ckpt.pth", "state_dict", "ckpt.pth"]]


def test_copy_holds_the_last_save(trained):
    """Documented difference (store layout): 4.0.1 compares its copy's bytes with the
    user's file; here the copy read back equals the user's file, tensor for tensor."""
    p, run = trained
    same = p.py(
        f"""
        import json, torch, flordb as flor
        copy = flor.load_checkpoint({run!r}, "ckpt.pth")
        disk = torch.load("ckpt.pth")
        print(json.dumps(
            all(torch.equal(copy["model"][k], disk["model"][k]) for k in disk["model"])
            and copy["optimizer"]["state"].keys() == disk["optimizer"]["state"].keys()
            and all(torch.equal(copy["optimizer"]["state"][i]["momentum_buffer"], s["momentum_buffer"])
                    for i, s in disk["optimizer"]["state"].items())
        ))
        """
    )
    assert same is True


def test_each_run_keeps_its_own_copy(project: Project):
    """Documented difference (store layout): two runs, two copies, read back through
    `flor.load_checkpoint` instead of globbing 4.0.1's `.latest/*.pth`."""
    project.write(".gitignore", "*.pth\n")
    record(project, TRAIN, "--kwargs", "epochs=1")
    project.run("train.py", "--kwargs", "epochs=2")
    first, second = (r["run_id"] for r in project.runs())
    out = project.py(
        f"""
        import json, torch, flordb as flor
        a = flor.load_checkpoint({first!r}, "ckpt.pth")
        b = flor.load_checkpoint({second!r}, "ckpt.pth")
        disk = torch.load("ckpt.pth")
        print(json.dumps([
            len(flor.checkpoints({first!r})), len(flor.checkpoints({second!r})),
            torch.equal(a["model"]["weight"], b["model"]["weight"]),
            torch.equal(b["model"]["weight"], disk["model"]["weight"]),
        ]))
        """
    )
    assert out == [1, 1, False, True]


# --- TestReplay ------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint_exists", [True, False], ids=["file-there", "file-gone"])
@pytest.mark.parametrize("overrides", [(), ("--override", "device=cpu")], ids=["plain", "override"])
def test_replay_does_not_write_users_checkpoint(trained, truth, checkpoint_exists, overrides):
    p, run = trained
    ckpt = p.path / "ckpt.pth"
    before, stat = ckpt.read_bytes(), ckpt.stat()
    name = f"mom_{int(checkpoint_exists)}{len(overrides)}"
    p.write("train.py", today(TRAIN, name))
    if not checkpoint_exists:
        ckpt.unlink()
    try:
        replay(p, name, "epoch=1", extra=overrides)
        if checkpoint_exists:
            assert ckpt.read_bytes() == before
            assert ckpt.stat().st_mtime_ns == stat.st_mtime_ns
        else:
            assert not ckpt.exists()
        assert values(p, name, "replay", run) == {1: truth[1]}
    finally:
        if not ckpt.exists():
            ckpt.write_bytes(before)
            os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_replay_writes_nothing_to_the_object_store(trained, truth):
    """Documented difference (store layout): the store is `.flor/objects` (and its
    indexes), not `.flor/obj_store`; a replay leaves every file of it as it was."""
    p, run = trained
    before = store(p)
    assert before
    p.write("train.py", today(TRAIN, "mom_store"))
    replay(p, "mom_store", "epoch=all")
    assert store(p) == before
    assert values(p, "mom_store", "replay", run) == truth


@pytest.mark.parametrize(
    "selection, expected",
    [("0", [0]), ("1", [1]), ("0,2", [0, 2]), ("all", [0, 1, 2]), ("last", [2])],
    ids=["0", "1", "0,2", "all", "last"],
)
def test_replayed_values_match_the_forward_run(trained, truth, selection, expected):
    p, run = trained
    name = "mom_sel_" + selection.replace(",", "_")
    p.write("train.py", today(TRAIN, name))
    replay(p, name, "epoch=" + selection, "step=all")
    assert values(p, name, "replay", run) == {i: truth[i] for i in expected}


def test_step_none_still_trains(trained, truth):
    # --iter only chooses what logs: every epoch after the first needs the steps.
    p, run = trained
    p.write("train.py", today(TRAIN, "mom_stepnone"))
    replay(p, "mom_stepnone", "epoch=all", "step=none")
    assert values(p, "mom_stepnone", "replay", run) == truth


def test_user_driven_iteration_replays_exactly(project: Project, tmp_path: Path):
    """flor.iteration: the user's own `for` drives the loop; `epoch=1` logs epoch 1 only,
    with the forward run's value."""
    gt = init_project(tmp_path / "truth")
    record(gt, today(ITERATION_TRAIN, "mom"))
    expected = values(gt, "mom", "forward")
    assert sorted(expected) == [0, 1, 2]
    run = record(project, ITERATION_TRAIN)
    project.write("train.py", today(ITERATION_TRAIN, "mom"))
    replay(project, "mom", "epoch=1")
    assert values(project, "mom", "replay", run) == {1: expected[1]}


def test_fresh_clone_matches_forward(project: Project, truth):
    # A teammate has the run files, but neither the checkpoint store nor ckpt.pth.
    run = record(project, TRAIN)
    shutil.rmtree(project.path / ".flor" / "objects")
    shutil.rmtree(project.path / ".flor" / "ckpts")
    (project.path / "ckpt.pth").unlink()
    project.write("train.py", today(TRAIN, "mom"))
    replay(project, "mom", "epoch=2")
    assert values(project, "mom", "replay", run) == {2: truth[2]}


def test_users_checkpoint_is_neutralized_not_loaded(project: Project, truth):
    # ckpt.pth (not ignored, as in 4.0.1's test) holds the end of the run; the resume
    # block must not start the replay from it.
    run = record(project, TRAIN, ignore=False)
    assert (project.path / "ckpt.pth").exists()
    project.write("train.py", today(TRAIN, "mom"))
    out = replay(project, "mom", "epoch=2", check=False)
    assert values(project, "mom", "replay", run) == {2: truth[2]}, out.stderr


# --- test_checkpoint_io.py -------------------------------------------------------------


def test_missing_run_is_read_only(trained, tmp_path: Path):
    """Documented difference: an unknown run raises flordb.RunNotFoundError (a
    ValueError) from `flor.checkpoints` and `flor.load_checkpoint`, where 4.0.1 returns
    an empty frame and raises FileNotFoundError; as in 4.0.1 nothing is created and a
    path such as `../../outside` is refused with a ValueError. A known run without
    copies raises CheckpointNotFoundError (a FileNotFoundError) saying copies do not
    travel with git."""
    p, run = trained
    code = """
        import json, pandas as pd, flordb as flor
        out = []
        for call in (lambda: flor.checkpoints(pd.Timestamp("2026-01-02T03:04:05.000000")),
                     lambda: flor.load_checkpoint(pd.Timestamp("2026-01-02T03:04:05.000000")),
                     lambda: flor.checkpoints("../../outside")):
            try:
                call()
                out.append("no error")
            except flor.RunNotFoundError as e:
                out.append(isinstance(e, ValueError))
        print(json.dumps(out))
        """
    listing = sorted(str(f.relative_to(p.path)) for f in (p.path / ".flor").rglob("*") if "replays" not in f.parts)
    assert p.py(code) == [True, True, True]
    assert sorted(str(f.relative_to(p.path)) for f in (p.path / ".flor").rglob("*") if "replays" not in f.parts) == listing
    # A fresh repository: reading creates nothing.
    empty = init_project(tmp_path / "empty")
    assert empty.py(code) == [True, True, True]
    assert sorted(os.listdir(empty.path)) == [".git"]
    # A run that saved nothing.
    empty.write("noop.py", 'import flordb as flor\nflor.log("x", 1)\n')
    empty.commit_all()
    empty.run("noop.py")
    noop = empty.runs()[-1]["run_id"]
    got = empty.py(
        f"""
        import json, flordb as flor
        try:
            flor.load_checkpoint({noop!r})
            print(json.dumps("no error"))
        except flor.CheckpointNotFoundError as e:
            print(json.dumps([isinstance(e, FileNotFoundError), str(e), len(flor.checkpoints({noop!r}))]))
        """
    )
    assert got[0] is True and "do not travel with git" in got[1] and got[2] == 0, got


ENROLLED = """
import numpy as np
import flordb as flor

w = np.zeros(3)
b = np.ones(2)
with flor.checkpointing(w=w, b=b):
    for epoch in flor.loop("epoch", range(3)):
        w += epoch
        b *= 2
        flor.log("w0", float(w[0]))
"""


def test_per_iteration_checkpoints_require_explicit_selection(project: Project):
    """Documented difference: 4.0.1's per-iteration files are legacy snapshots of older
    versions; here `flor.checkpointing` still checkpoints (README), listed as
    `kind="iteration"`. As in 4.0.1, with several saved and no name, loading needs a
    name (CheckpointError, also a ValueError); with a name it returns the object."""
    project.write("train.py", ENROLLED)
    project.commit_all()
    project.run("train.py", env={"FLOR_EPSILON": "1000"})
    run = project.runs()[-1]["run_id"]
    got = project.py(
        f"""
        import json, flordb as flor
        try:
            flor.load_checkpoint({run!r})
            err = None
        except flor.CheckpointError as e:
            err = [isinstance(e, ValueError), str(e)]
        ck = flor.checkpoints({run!r})
        print(json.dumps({{
            "err": err,
            "kinds": sorted(set(ck.kind)),
            "last": flor.load_checkpoint({run!r}, "w").tolist(),
            "first": flor.load_checkpoint({run!r}, "b", iteration=0).tolist(),
        }}))
        """
    )
    assert got["err"][0] is True and "explicit name" in got["err"][1], got
    assert got["kinds"] == ["iteration"]
    assert got["last"] == [3.0, 3.0, 3.0] and got["first"] == [2.0, 2.0]


def test_run_copies_and_ambiguous_default(project: Project):
    """4.0.1's ValueError for a run that saved several paths and no name is given holds
    here (flordb.CheckpointError is a ValueError too); a single copy loads without a
    name; the copy of a path saved twice holds the last save."""
    project.write(".gitignore", "*.pt\n")
    project.write("one.py", 'import torch, flordb as flor\ntorch.save({"weight": 1}, "ckpt.pt")\n')
    project.write(
        "many.py",
        'import torch, flordb as flor\n'
        'torch.save({"weight": 2}, "ckpt.pt")\ntorch.save({"weight": 3}, "ckpt.pt")\ntorch.save({"weight": 4}, "other.pt")\n',
    )
    project.commit_all()
    project.run("one.py")
    project.run("many.py")
    one, many = (r["run_id"] for r in project.runs())
    got = project.py(
        f"""
        import json, flordb as flor
        out = [flor.load_checkpoint({one!r}), flor.load_checkpoint({many!r}, "ckpt.pt"),
               flor.load_checkpoint({many!r}, "other.pt"), sorted(set(flor.checkpoints({many!r}).kind))]
        try:
            flor.load_checkpoint({many!r})
            out.append(None)
        except ValueError as e:
            out.append([isinstance(e, flor.CheckpointError), str(e)])
        print(json.dumps(out))
        """
    )
    assert got[:4] == [{"weight": 1}, {"weight": 3}, {"weight": 4}, ["run"]]
    assert got[4][0] is True and "explicit name" in got[4][1], got


def test_failed_save_keeps_the_previous_copy(project: Project):
    # A torch.save that fails half-way (an object that cannot be pickled) leaves a
    # partial file; the run's copy stays the last good save.
    project.write(".gitignore", "*.pt\n")
    project.write(
        "train.py",
        """
import torch
import flordb as flor

torch.save({"weight": 1}, "ckpt.pt")
try:
    torch.save({"weight": 2, "bad": lambda: 0}, "ckpt.pt")
except Exception as e:
    print("save failed:", type(e).__name__)
flor.log("done", True)
""",
    )
    project.commit_all()
    out = project.run("train.py")
    assert "save failed" in out.stdout
    run = project.runs()[-1]["run_id"]
    got = project.py(f"import json, flordb as flor\nprint(json.dumps(flor.load_checkpoint({run!r}, 'ckpt.pt')))")
    assert got == {"weight": 1}


GAIN = """
import torch
import flordb as flor

value = flor.arg("gain", 1)
model = torch.nn.Linear(1, 1, bias=False)
for epoch in flor.loop("epoch", range(3)):
    with torch.no_grad():
        model.weight.fill_(value + epoch)
    flor.log("weight", model.weight.item())
    torch.save({"model": model.state_dict()}, "ckpt.pt")
# A save after the loop replaces the run's copy too.
with torch.no_grad():
    model.weight.fill_(value + 10)
torch.save({"model": model.state_dict()}, "ckpt.pt")
"""


def test_dataframe_loads_latest_weights_for_each_run_and_replay_preserves_them(project: Project):
    project.write(".gitignore", "*.pt\n")
    project.write("train.py", GAIN)
    project.commit_all()
    project.run("train.py", "--kwargs", "gain=1")
    project.run("train.py", "--kwargs", "gain=7")
    runs_dir = project.path / ".flor" / "runs"
    before_runs = sorted(os.listdir(runs_dir))
    before_store = store(project)
    read = """
        import json, torch, flordb as flor
        results = []
        for row in flor.dataframe("gain").drop_duplicates("tstamp").itertuples():
            state = flor.load_checkpoint(row.tstamp, "ckpt.pt")
            model = torch.nn.Linear(1, 1, bias=False)
            model.load_state_dict(state["model"])
            assert model.weight.device.type == "cpu"
            model(torch.ones(1, 1)).square().sum().backward()
            results.append([int(row.gain), model.weight.item(), model.weight.grad.item()])
        print(json.dumps(sorted(results)))
        """
    assert project.py(read) == [[1, 11, 22], [7, 17, 34]]
    assert sorted(os.listdir(runs_dir)) == before_runs  # reading recorded no run
    project.run("train.py", "--replay_flor", "--apply", "weight", "--iter", "epoch=0")
    assert store(project) == before_store
    assert project.py(read) == [[1, 11, 22], [7, 17, 34]]
    assert sorted(os.listdir(runs_dir)) == before_runs


def test_each_saved_path_keeps_its_own_copy(project: Project):
    project.write(".gitignore", "first/\nsecond/\n")
    project.write(
        "train.py",
        """
from pathlib import Path
import torch
import flordb as flor

Path("first").mkdir()
Path("second").mkdir()
for epoch in flor.loop("epoch", range(3)):
    torch.save({"weight": torch.tensor(epoch)}, Path("first/model.pt"))
    torch.save({"weight": torch.tensor(epoch + 10)}, "second/model.pt")
flor.log("done", True)
""",
    )
    project.commit_all()
    project.run("train.py")
    got = project.py(
        """
        import json, flordb as flor
        stamp = flor.dataframe().iloc[0].tstamp
        available = flor.checkpoints(stamp)
        print(json.dumps([
            sorted(available.loc[available.kind == "run", "name"]), sorted(set(available.kind)),
            flor.load_checkpoint(stamp, "first/model.pt")["weight"].item(),
            flor.load_checkpoint(stamp, "second/model.pt")["weight"].item(),
        ]))
        """
    )
    assert got == [["first/model.pt", "second/model.pt"], ["run"], 2, 12]
