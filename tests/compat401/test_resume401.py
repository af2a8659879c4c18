"""flordb 4.0.1's tests/test_resume_lineage.py, tests/test_resume_neutralization.py and
tests/test_resume_binding.py, ported as black-box tests.

Lineage: a run whose set-up code loads another run's checkpoint (the file that run's
last save left, or `flor.load_checkpoint`) records where it started (`flor::start` in
its run file), and its replay starts from that same copy, or refuses. Neutralisation:
a script's resume block must not start the replay of a fresh run from the checkpoint
the runs left behind. 4.0.1 recognises a few shapes of block and turns their loads
into no-ops; this project hides the files written after the run started (README,
"Differences from flordb 4.0.1"), so every shape replays, and the 4.0.1 tests that
expected a warning or a refusal for the shapes it cannot handle are ported as tests
of that ("documented difference" in their docstrings).

The replays re-log the scripts' own `weight_sum`: the recorded forward run of the same
code is the ground truth the replay must equal (and the project also checks it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from textwrap import indent

import pytest

from conftest import PYTHON, Project, init_project

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
pytestmark = pytest.mark.skipif(_probe.returncode != 0, reason="torch is not installed (`make torch`)")

HEAD = """
import os

import torch
import torch.nn as nn

import flordb as flor

epochs = flor.arg("epochs", {epochs})

torch.manual_seed(flor.arg("seed", 42))
torch.set_num_threads(1)
model = nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
"""
TAIL = """
x = torch.ones(4, 2)
y = torch.zeros(4, 1)

for epoch in flor.loop("epoch", range(epochs)):
    for step in flor.loop("step", range(2)):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))
"""
FLAT_SAVE = """    torch.save(model.state_dict(), "ckpt.pth")
"""
DICT_SAVE = """    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
        "ckpt.pth",
    )
"""
FLAT_RESUME_BLOCK = """
if os.path.exists("ckpt.pth"):
    model.load_state_dict(torch.load("ckpt.pth"))
"""
FULL_RESUME_BLOCK = """
if os.path.exists("ckpt.pth"):
    _resume = torch.load("ckpt.pth")
    model.load_state_dict(_resume["model"])
    optimizer.load_state_dict(_resume["optimizer"])
"""
EXPLICIT_RESUME = """
runs = flor.dataframe("weight_sum")
if len(runs):
    latest = runs[runs.source == "forward"].tstamp.max()
    state = flor.load_checkpoint(latest, "ckpt.pth")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
"""


def script(resume: str = "", save: str = FLAT_SAVE, epochs: int = 3) -> str:
    return HEAD.format(epochs=epochs) + resume + TAIL + save


# 4.0.1's lineage scripts: resume by loading the file the previous run saved, or from
# whichever run a query over flor picks (the latest forward one).
IMPLICIT = script(FULL_RESUME_BLOCK, DICT_SAVE, epochs=2)
EXPLICIT = script(EXPLICIT_RESUME, DICT_SAVE, epochs=2).replace("import os\n\n", "")




def starts(p: Project, run: str) -> list[dict]:
    lines = (p.path / ".flor" / "runs" / f"{run}.jsonl").read_text().splitlines()
    return [r["value"] for r in map(json.loads, lines) if r["name"] == "flor::start"]


def values(p: Project, source: str, run: str | None = None, name: str = "weight_sum") -> dict:
    out = {}
    for r in p.frame(name):
        if r["source"] == source and r.get(name) is not None and run in (None, r["run_id"]):
            assert (r["run_id"], r["epoch"]) not in out, "duplicate row"
            out[(r["run_id"], r["epoch"])] = r[name]
    return {k[1]: v for k, v in out.items()} if run else out


def replay(p: Project, *extra: str, script_name: str = "train.py", name: str = "weight_sum", check: bool = True):
    return p.run(script_name, "--replay_flor", "--apply", name, "--iter", "epoch=all", *extra, check=check, timeout=300)


def record(p: Project, source: str, times: int = 1, ignore: bool = True) -> list[str]:
    p.write("train.py", source)
    if ignore:
        p.write(".gitignore", "*.pth\n*.pt\n")
    p.commit_all()
    for _ in range(times):
        p.run("train.py")
    return [r["run_id"] for r in p.runs()]


def forward_equals_replay(p: Project, run: str) -> None:
    forward = values(p, "forward", run)
    assert forward and values(p, "replay", run) == forward


@pytest.fixture(scope="module")
def implicit_pair(tmp_path_factory):
    """Two runs of IMPLICIT, ckpt.pth not ignored (as in 4.0.1): the second resumed."""
    p = init_project(tmp_path_factory.mktemp("implicit") / "proj")
    first, second = record(p, IMPLICIT, times=2, ignore=False)
    return p, first, second


@pytest.fixture(scope="module")
def explicit_pair(tmp_path_factory):
    """Two runs of EXPLICIT: the second loaded the first's copy through a query."""
    p = init_project(tmp_path_factory.mktemp("explicit") / "proj")
    first, second = record(p, EXPLICIT, times=2, ignore=False)
    return p, first, second


# --- test_resume_lineage.py: TestImplicitResume ------------------------------------------


def test_a_deleted_file_is_stood_in_for_by_the_copy_it_loaded(project: Project):
    """Documented difference (skipped_file_guard[missing_copy=False]): 4.0.1 refuses to
    replay a resumed run whose file is gone ("replay skipped that setup load"); here "a
    run that did resume sees, in replay, the copy it loaded standing in for the file
    until its loop starts": the guarded and an unguarded load both replay exactly, and
    the user's file is not recreated."""
    first, second = record(project, IMPLICIT, times=2, ignore=False)
    (project.path / "ckpt.pth").unlink()
    replay(project)
    forward_equals_replay(project, second)
    assert not (project.path / "ckpt.pth").exists()
    unguarded = IMPLICIT.replace('if os.path.exists("ckpt.pth"):\n', "")
    for statement in ('_resume = torch.load("ckpt.pth")', 'model.load_state_dict(_resume["model"])', 'optimizer.load_state_dict(_resume["optimizer"])'):
        unguarded = unguarded.replace("    " + statement, statement)
    assert unguarded != IMPLICIT
    # Its own statement, so that what it logs is told apart from the first replay's rows.
    line = '    flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))\n'
    assert line in unguarded
    project.write("train.py", unguarded.replace(line, line + line.replace('"weight_sum"', '"ws2"')))
    replay(project, name="ws2")
    assert values(project, "replay", second, "ws2") == values(project, "forward", second)
    assert not (project.path / "ckpt.pth").exists()


def test_skipped_file_guard_with_the_copy_missing_refuses_before_recording_values(project: Project):
    """Documented difference (skipped_file_guard[missing_copy=True]): the store is
    `.flor/objects` and the message names the run id: "resumed from run X's copy of
    ckpt.pth, which cannot be read here" (4.0.1: "isn't in .flor/obj_store/")."""
    first, second = record(project, IMPLICIT, times=2, ignore=False)
    (project.path / "ckpt.pth").unlink()
    shutil.rmtree(project.path / ".flor" / "objects")
    out = replay(project, check=False)
    assert out.returncode != 0
    assert f"resumed from run {first}'s copy of ckpt.pth, which cannot be read here" in out.stderr, out.stderr
    assert values(project, "replay") == {}
    assert not (project.path / "ckpt.pth").exists()


def test_importing_flor_before_torch_tracks_early_resume(project: Project):
    """Documented difference: the start names its source run by `run` (the run id), not
    by tstamp."""
    source = "import flordb as flor\n" + IMPLICIT.replace("import flordb as flor\n", "")
    source = source.replace('epochs = flor.arg("epochs", 2)', "epochs = 2").replace('torch.manual_seed(flor.arg("seed", 42))', "torch.manual_seed(42)")
    first, second = record(project, source, times=2, ignore=False)
    assert [s["run"] for s in starts(project, second)] == [first]
    replay(project)
    forward_equals_replay(project, second)


def test_second_run_records_the_first_as_its_start(implicit_pair):
    """Documented difference: `flor::start` names the source run by `run` (its run id)
    instead of 4.0.1's tstamp and commit; `flor.runs()` gives both for that id."""
    p, first, second = implicit_pair
    assert starts(p, first) == []
    [start] = starts(p, second)
    assert start["via"] == "torch.load" and start["key"] == "ckpt.pth" and start["name"] == "ckpt.pth"
    assert start["run"] == first and start["setup"] is True
    [row] = [r for r in p.runs() if r["run_id"] == first]
    assert row["tstamp"] and len(row["version"]) == 40


def test_replay_starts_where_the_run_did(implicit_pair):
    # Starting from initialization would give the first run's numbers, not the second's.
    p, first, second = implicit_pair
    assert values(p, "forward", second) != values(p, "forward", first)
    replay(p)
    forward_equals_replay(p, second)


def test_a_file_changed_outside_flor_is_not_attributed(project: Project):
    record(project, IMPLICIT, ignore=False)
    # Re-saved without flor: the same contents, but no run saved this file.
    project.run("-c", "import torch; torch.save(torch.load('ckpt.pth'), 'ckpt.pth')")
    project.run("train.py")
    assert starts(project, project.runs()[-1]["run_id"]) == []


def test_missing_copy_stops_replay_and_names_the_run(project: Project):
    """Documented difference (store layout, run ids): with `.flor/objects` gone (the copies
    stay on the machine that recorded them), the replay of the resumed run refuses and
    names the run it resumed from by its run id."""
    first, second = record(project, IMPLICIT, times=2, ignore=False)
    shutil.rmtree(project.path / ".flor" / "objects")
    out = replay(project, check=False)
    assert out.returncode != 0
    assert f"run {second} resumed from run {first}'s copy of ckpt.pth" in out.stderr, out.stderr
    assert values(project, "replay") == {}


# --- test_resume_lineage.py: TestExplicitResume ------------------------------------------


def test_fresh_run_refuses_a_query_that_now_finds_a_checkpoint(project: Project):
    # The run found no earlier run; in replay the query finds the run itself.
    record(project, EXPLICIT, ignore=False)
    out = replay(project, check=False)
    assert out.returncode != 0
    assert "recorded no matching load" in out.stderr, out.stderr
    assert values(project, "replay") == {}


@pytest.mark.parametrize("name", [None, "ckpt.pth"], ids=["no-name", "named"])
@pytest.mark.parametrize("in_loop", [False, True], ids=["setup", "in-loop"])
def test_same_name_can_load_two_different_runs(implicit_pair, name, in_loop):
    """Documented difference: each start names its run by `run` (run id), not tstamp."""
    p, first, second = implicit_pair
    source = """
import flordb as flor
runs = flor.dataframe("weight_sum")
stamps = sorted(runs[(runs.source == "forward") & (runs.filename == "train.py")].tstamp.unique())
"""
    if in_loop:
        source += f"""
for epoch in flor.loop("epoch", range(2)):
    state = flor.load_checkpoint(stamps[epoch], {name!r})
    flor.log("ws", float(state["model"]["weight"].sum()))
"""
    else:
        source += f"""
a = flor.load_checkpoint(stamps[0], {name!r})
b = flor.load_checkpoint(stamps[1], {name!r})
for epoch in flor.loop("epoch", range(1)):
    flor.log("ws", float(a["model"]["weight"].sum() - b["model"]["weight"].sum()))
"""
    filename = f"load_{int(in_loop)}_{name is None}.py"
    p.write(filename, source)
    p.commit_all()
    p.run(filename)
    run = p.runs()[-1]["run_id"]
    recorded = starts(p, run)
    assert [s["call"] for s in recorded] == [0, 1]
    assert [s["run"] for s in recorded] == [first, second]
    assert [s["setup"] for s in recorded] == [not in_loop] * 2
    replay(p, script_name=filename, name="ws")
    forward = values(p, "forward", run, "ws")
    assert forward and values(p, "replay", run, "ws") == forward


def test_old_lineage_without_call_numbers_still_replays(project: Project):
    # A start written before starts carried `call` and `setup`: the first call, at set-up.
    _, second = record(project, EXPLICIT, times=2, ignore=False)
    path = project.path / ".flor" / "runs" / f"{second}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        if r["name"] == "flor::start":
            r["value"].pop("call")
            r["value"].pop("setup")
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [sorted(s) for s in starts(project, second)] == [["key", "name", "run", "via"]]
    replay(project)
    forward_equals_replay(project, second)


def test_the_query_answer_is_recorded(explicit_pair):
    """Documented difference: the start names the run by `run`, not tstamp and commit."""
    p, first, second = explicit_pair
    assert starts(p, first) == []
    [start] = starts(p, second)
    assert start["via"] == "load_checkpoint" and start["key"] == "ckpt.pth" and start["name"] == "ckpt.pth"
    assert start["run"] == first and start["call"] == 0 and start["setup"] is True


def test_replay_uses_the_recorded_run_not_todays_answer(explicit_pair):
    # Replaying the second run, the query's latest forward run is the second run itself.
    p, first, second = explicit_pair
    out = replay(p)
    assert "now selects run" in out.stderr and f"started from run {first}" in out.stderr, out.stderr
    forward_equals_replay(p, second)


def test_reading_from_python_c_records_no_run(explicit_pair):
    p, _, _ = explicit_pair
    before = sorted(os.listdir(p.path / ".flor" / "runs"))
    p.run("-c", "import flordb as flor\nstamp = flor.dataframe('weight_sum').tstamp.max()\nflor.load_checkpoint(stamp, 'ckpt.pth')\n")
    assert sorted(os.listdir(p.path / ".flor" / "runs")) == before


# --- test_resume_neutralization.py: TestRecognizedBlocks -----------------------------------

@pytest.mark.parametrize("ignored", [True, False], ids=["ignored", "untracked"])
@pytest.mark.parametrize("resume, save", [(FLAT_RESUME_BLOCK, FLAT_SAVE), (FULL_RESUME_BLOCK, DICT_SAVE)], ids=["flat", "full"])
def test_block_is_neutralized(project: Project, resume, save, ignored):
    [run] = record(project, script(resume, save), ignore=ignored)
    assert (project.path / "ckpt.pth").exists()
    out = replay(project, check=False)
    assert "neutraliz" not in out.stderr
    assert values(project, "replay", run) == values(project, "forward", run), out.stderr


def test_forward_run_still_resumes(project: Project):
    first, second = record(project, script(FULL_RESUME_BLOCK, DICT_SAVE), times=2)
    # The second run continued from the first one's weights: none of its values repeat.
    a, b = values(project, "forward", first), values(project, "forward", second)
    assert len(set(a.values()) | set(b.values())) == len(a) + len(b) == 6


TWO_TARGET_BLOCK = """
ema = nn.Linear(2, 1)
if os.path.exists("ckpt.pth"):
    model.load_state_dict(torch.load("ckpt.pth"))
    ema.load_state_dict(torch.load("ckpt.pth"))
"""


def test_a_block_4_0_1_cannot_neutralize_replays_exactly(project: Project):
    """Documented difference: 4.0.1 stops ("cannot replay from iteration 0") on a block
    that loads one file into two objects; here the file is hidden, so the block is not
    taken, and the replay is exact."""
    [run] = record(project, script(TWO_TARGET_BLOCK))
    out = replay(project, "--iter", "epoch=1")
    assert "cannot replay" not in out.stderr
    assert values(project, "replay", run) == {1: values(project, "forward", run)[1]}


# --- TestUnrecognizedLoadsAreAnnounced ------------------------------------------------------

COMPUTED_PATH_BLOCK = """
CKPT = "ckpt" + ".pth"
if os.path.exists(CKPT):
    model.load_state_dict(torch.load(CKPT))
"""
SPLIT_BLOCK = """
if os.path.exists("model.pth"):
    model.load_state_dict(torch.load("model.pth"))
    optimizer.load_state_dict(torch.load("opt.pth"))
"""
SPLIT_SAVE = """    torch.save(model.state_dict(), "model.pth")
    torch.save(optimizer.state_dict(), "opt.pth")
"""


def test_computed_path_replays_exactly_without_warning(project: Project):
    """Documented difference: 4.0.1 warns that it can't neutralize a load of a computed
    path (it matches literals); here any shape works: no warning, exact values."""
    [run] = record(project, script(COMPUTED_PATH_BLOCK))
    out = replay(project, "--iter", "epoch=1")
    assert "neutraliz" not in out.stderr
    assert values(project, "replay", run) == {1: values(project, "forward", run)[1]}


def test_two_checkpoint_files_replay_exactly_without_warning(project: Project):
    """Documented difference: 4.0.1 warns about "more than one checkpoint file"; here
    both files are hidden and the replay is exact."""
    [run] = record(project, script(SPLIT_BLOCK, SPLIT_SAVE))
    out = replay(project, "--iter", "epoch=1")
    assert "more than one checkpoint file" not in out.stderr
    assert values(project, "replay", run) == {1: values(project, "forward", run)[1]}


def test_script_without_a_setup_load_is_not_warned(project: Project):
    [run] = record(project, script())
    out = replay(project, "--iter", "epoch=2")
    assert "neutraliz" not in out.stderr
    assert values(project, "replay", run) == {2: values(project, "forward", run)[2]}


def test_load_inside_the_loop_is_left_alone(project: Project):
    # A tensor saved at set-up and read every epoch is not a resume block.
    source = script().replace(
        "x = torch.ones(4, 2)\n", 'torch.save(torch.ones(3), "data.pt")\nx = torch.ones(4, 2)\n'
    ).replace(
        '    for step in flor.loop("step", range(2)):\n',
        '    blob = torch.load("data.pt")\n    for step in flor.loop("step", range(2)):\n',
    ).replace(".detach()))\n", ".detach()) + float(blob.sum()) * 0)\n")
    assert "blob = torch.load" in source and "blob.sum()" in source
    [run] = record(project, source)
    out = replay(project)
    assert "neutraliz" not in out.stderr
    assert values(project, "replay", run) == values(project, "forward", run)


# --- TestRetiredCalls -------------------------------------------------------------------------

RETIRED = HEAD.format(epochs=3) + """
flor.set_ckpt_interval(0)
flor.restore("ckpt.pth", model=model, optimizer=optimizer)

x = torch.ones(4, 2)
y = torch.zeros(4, 1)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        for step in flor.loop("step", range(2)):
            loss = ((model(x) - y) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flor.log("weight_sum", float(sum(p.sum() for p in model.parameters()).detach()))
        torch.save(model.state_dict(), "ckpt.pth")
"""


@pytest.fixture(scope="module")
def retired(tmp_path_factory):
    p = init_project(tmp_path_factory.mktemp("retired") / "proj")
    p.write("train.py", RETIRED)
    p.write(".gitignore", "*.pth\n")
    p.commit_all()
    out = p.run("train.py", env={"FLOR_EPSILON": "1000"})
    return p, p.runs()[-1]["run_id"], out


def test_forward_runs_and_says_so_once(retired):
    """Documented difference: `flor.checkpointing` still checkpoints here (4.0.1 made it a
    no-op with a notice), so only set_ckpt_interval and restore say "no longer has an
    effect", once each."""
    p, run, out = retired
    assert out.stderr.count("flor.set_ckpt_interval(...) no longer has an effect") == 1
    assert out.stderr.count("flor.restore(...) no longer has an effect") == 1
    assert "flor.checkpointing(...) no longer has an effect" not in out.stderr
    assert sorted(values(p, "forward", run)) == [0, 1, 2]


def test_the_torch_save_copy_and_the_checkpointing_snapshots_are_kept(retired):
    """Documented difference: 4.0.1 keeps only the torch.save copy; here the run also has
    `flor.checkpointing`'s checkpoints of model and optimizer (`kind="iteration"`)."""
    p, run, _ = retired
    got = p.py(
        f"""
        import json, flordb as flor
        ck = flor.checkpoints({run!r})
        print(json.dumps([ck[ck.kind == "run"].name.tolist(), sorted(set(ck[ck.kind == "iteration"].name))]))
        """
    )
    assert got == [["ckpt.pth"], ["model", "optimizer"]]


def test_retired_calls_replay_still_works(retired):
    p, run, _ = retired
    replay(p)
    forward_equals_replay(p, run)


# --- TestFunctionResume -----------------------------------------------------------------------


def function_resume_script(*, flat: bool = False, guarded: bool = True, method: bool = False) -> str:
    """The resume block inside a set-up function (or a static method) whose objects the
    training function receives under other names."""
    head = HEAD.format(epochs=3)
    split = head.index("torch.manual_seed")
    setup = head[split:]
    if flat:
        resume = 'model.load_state_dict(torch.load("ckpt.pth"))\n'
    else:
        resume = '_resume = torch.load("ckpt.pth")\nmodel.load_state_dict(_resume["model"])\noptimizer.load_state_dict(_resume["optimizer"])\n'
    if guarded:
        resume = 'if os.path.exists("ckpt.pth"):\n' + indent(resume, "    ")
    setup += resume + "return model, optimizer\n"
    training = TAIL + (FLAT_SAVE if flat else DICT_SAVE)
    if not flat:
        # Momentum history too: a no-op that covered only the model would show.
        training = training.replace(
            ".detach()))\n",
            '.detach()) + sum(float(s["momentum_buffer"].sum()) for s in optimizer.state.values()))\n',
        )
    training = training.replace("model.", "trained.").replace("model(", "trained(").replace("optimizer.", "optim.")
    prep = "def prep():\n" + indent(setup, "    ")
    if method:
        prep = "class Setup:\n" + indent("@staticmethod\n" + prep, "    ")
    call = "    net, opt = Setup.prep()\n" if method else "    net, opt = prep()\n"
    return head[:split] + prep + "\ndef train(trained, optim):\n" + indent(training, "    ") + "\ndef main():\n" + call + "    train(net, opt)\n\nmain()\n"


@pytest.mark.parametrize("flat", [False, True], ids=["dict", "flat"])
@pytest.mark.parametrize("file_present", [True, False], ids=["file-there", "file-gone"])
def test_prep_block_is_neutralized(project: Project, flat, file_present):
    [run] = record(project, function_resume_script(flat=flat))
    if not file_present:
        (project.path / "ckpt.pth").unlink()
    replay(project, "--iter", "epoch=0,1,2")
    forward_equals_replay(project, run)


def test_forward_prep_still_loads_the_users_checkpoint(project: Project):
    first, second = record(project, function_resume_script(), times=2)
    assert values(project, "forward", second)[0] != values(project, "forward", first)[0]


def test_unguarded_prep_fails_as_a_fresh_run_would(project: Project):
    """Documented difference: 4.0.1 turns today's unguarded `torch.load("ckpt.pth")` into a
    no-op; here the file is hidden (written after the run started, and deleted here), so
    the load fails as it would in a forward run from the run's starting point: the
    replay exits non-zero, names the missing file and records nothing."""
    [run] = record(project, function_resume_script())
    (project.path / "ckpt.pth").unlink()
    project.write("train.py", function_resume_script(guarded=False))
    out = replay(project, check=False)
    assert out.returncode != 0
    assert "FileNotFoundError" in out.stderr and "ckpt.pth" in out.stderr, out.stderr
    assert values(project, "replay", run) == {}
    assert not (project.path / "ckpt.pth").exists()


def test_resume_in_a_method_binds_its_local_objects(project: Project):
    [run] = record(project, function_resume_script(method=True))
    replay(project)
    forward_equals_replay(project, run)


# --- test_resume_binding.py ---------------------------------------------------------------------

TRACED = function_resume_script().replace(
    "\ndef main():\n",
    """
events = []


def tracer(frame, event, arg):
    if frame.f_code.co_name == "prep":
        events.append(event)
    return tracer


def main():
    import sys
    sys.settrace(tracer)
""",
).replace("    train(net, opt)\n", "    flor.log(\"tracing\", [sys.gettrace() is tracer, sorted(set(events))])\n    sys.settrace(None)\n    train(net, opt)\n")


def test_binding_preserves_an_existing_tracer(project: Project, tmp_path: Path):
    """The script's own tracer (a coverage tool, a debugger) sees the set-up function with
    its resume block in replay as in the forward run, and stays installed."""
    assert "sys.settrace(tracer)" in TRACED
    today = TRACED.replace('    flor.log("tracing"', '    flor.log("tracing2", [sys.gettrace() is tracer, sorted(set(events))])\n    flor.log("tracing"')
    truth = init_project(tmp_path / "truth")
    record(truth, today)
    expected = [r["tracing2"] for r in truth.frame("tracing2") if r["source"] == "forward"]
    assert expected == [[True, ["call", "line", "return"]]]
    [run] = record(project, TRACED)
    project.write("train.py", today)
    replay(project, name="tracing2,weight_sum")
    assert [r["tracing2"] for r in project.frame("tracing2") if r["source"] == "replay"] == expected
    forward_equals_replay(project, run)


def test_skipped_guard_in_a_helper_without_an_explicit_return(project: Project):
    # The resume block sits in a helper that gets the objects and returns nothing; its
    # guard is not taken in the run, nor in its replay.
    helper = """
def resume(model, optimizer):
    if os.path.exists("ckpt.pth"):
        state = torch.load("ckpt.pth")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])


resume(model, optimizer)
"""
    [run] = record(project, script(helper, DICT_SAVE))
    assert (project.path / "ckpt.pth").exists()
    replay(project)
    forward_equals_replay(project, run)
