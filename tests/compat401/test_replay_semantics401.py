"""flordb 4.0.1's tests/test_replay_semantics.py, ported as black-box tests.

4.0.1 drives its private selection helpers in-process. Here the same rules are checked
the way a user meets them: a script is recorded in a fresh git repository, today's
version of it gains new `flor.log` statements, and `python train.py --replay_flor
--apply NAMES [--iter loop=SPEC]` fills them in. What the replay logged is read back
with `flor.dataframe`, and every value is compared with ground truth: a forward run of
today's script in another repository.

Where this project deliberately differs from 4.0.1, the test says so in its docstring
("documented difference")."""

from __future__ import annotations

from pathlib import Path


from conftest import Project, init_project

# Pure Python, deterministic: every replayed value can be compared exactly.
NESTED = """
import flordb as flor
w = 1.0
for epoch in flor.loop("epoch", range(flor.arg("epochs", 5))):
    for step in flor.loop("step", range(3)):
        w = w * 0.9 + step
        flor.log("loss", w)
    flor.log("val_acc", w / 10)
flor.log("final", w)
"""
# Today's version: one new statement per level (step, epoch, after the loop).
NESTED_TODAY = (
    NESTED.replace('        flor.log("loss", w)\n', '        flor.log("loss", w)\n        flor.log("w2", w * 2)\n')
    .replace('    flor.log("val_acc", w / 10)\n', '    flor.log("val_acc", w / 10)\n    flor.log("v2", w * 3)\n')
    .replace('flor.log("final", w)\n', 'flor.log("final", w)\nflor.log("after", w + 1)\n')
)
NEW = "w2,v2,after"

# The user drives the loop and marks each pass with flor.iteration.
ITERATION = """
import flordb as flor
acc = 0
for i in range(4):
    with flor.iteration("epoch", i, None):
        acc += i
        flor.log("val_acc", 90 + acc)
flor.log("total", acc)
"""
ITERATION_TODAY = ITERATION.replace(
    '        flor.log("val_acc", 90 + acc)\n', '        flor.log("val_acc", 90 + acc)\n        flor.log("v2", 90 + acc)\n'
).replace('flor.log("total", acc)\n', 'flor.log("total", acc)\nflor.log("t2", acc)\n')




def values(p: Project, name: str, source: str, keys=("epoch", "step")) -> dict:
    """`name`'s values of `source` rows, by loop position (a tuple; () at run level)."""
    out = {}
    for r in p.frame(name):
        if r["source"] == source and r.get(name) is not None:
            key = tuple(r[k] for k in keys if r.get(k) is not None)
            assert key not in out, f"duplicate row {key} of {name}"
            out[key] = r[name]
    return out


def ground_truth(tmp_path: Path, files: dict[str, str], names: str, keys=("epoch", "step")) -> dict:
    """What a forward run of today's code logs for each of `names`."""
    p = init_project(tmp_path / "ground_truth")
    for path, text in files.items():
        p.write(path, text)
    p.commit_all()
    p.run("train.py")
    return {n: values(p, n, "forward", keys) for n in names.split(",")}


def record(project: Project, files: dict[str, str], today: dict[str, str]) -> None:
    for path, text in files.items():
        project.write(path, text)
    project.commit_all()
    project.run("train.py")
    for path, text in today.items():
        project.write(path, text)


def replay(project: Project, names: str, *iters: str, check: bool = True):
    argv = ["train.py", "--replay_flor", "--apply", names]
    for spec in iters:
        argv += ["--iter", spec]
    return project.run(*argv, check=check)


def only(table: dict, keep) -> dict:
    return {k: v for k, v in table.items() if keep(k)}


def nested(project: Project, tmp_path: Path) -> dict:
    """Records NESTED, puts today's statements in; returns their ground truth."""
    truth = ground_truth(tmp_path, {"train.py": NESTED_TODAY}, NEW)
    record(project, {"train.py": NESTED}, {"train.py": NESTED_TODAY})
    assert len(truth["w2"]) == 15 and len(truth["v2"]) == 5 and len(truth["after"]) == 1
    return truth


def replayed(project: Project, names: str = NEW, keys=("epoch", "step")) -> dict:
    return {n: values(project, n, "replay", keys) for n in names.split(",")}


# --- TestSelection: which iterations of a nested loop log ---------------------------


def test_selection_all(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all", "step=all")
    assert replayed(project)["w2"] == truth["w2"]


def test_selection_none(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all", "step=none")
    got = replayed(project)
    assert got["w2"] == {}
    assert got["v2"] == truth["v2"]


def test_selection_last(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all", "step=last")
    assert replayed(project)["w2"] == only(truth["w2"], lambda k: k[1] == 2)


def test_selection_indices(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all", "step=0,2")
    assert replayed(project)["w2"] == only(truth["w2"], lambda k: k[1] in (0, 2))


def test_selection_out_of_range_names_the_valid_range(project: Project, tmp_path: Path):
    nested(project, tmp_path)
    out = replay(project, NEW, "epoch=all", "step=7", check=False)
    assert out.returncode != 0
    assert "only has 3 iteration(s)" in out.stderr and "0..2" in out.stderr, out.stderr
    assert replayed(project) == {"w2": {}, "v2": {}, "after": {}}


def test_selection_unmentioned_loop_defaults_to_all(project: Project, tmp_path: Path):
    """Documented difference: 4.0.1 logs only the last iteration of a loop that --iter
    does not name (with a tip); here such a loop is answered in full (`flor replay
    --help`: "--iter ... (default all)")."""
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all")
    assert replayed(project)["w2"] == truth["w2"]


EMPTY = """
import flordb as flor
total = 0
for epoch in flor.loop("epoch", range(2)):
    for item in flor.loop("item", []):
        total += item
    flor.log("total", total + epoch)
"""
EMPTY_TODAY = EMPTY.replace("        total += item\n", "        total += item\n        flor.log(\"item2\", item)\n").replace(
    '    flor.log("total", total + epoch)\n', '    flor.log("total", total + epoch)\n    flor.log("t2", total + epoch)\n'
)


def _empty_loop(project: Project, tmp_path: Path, kind: str):
    truth = ground_truth(tmp_path, {"train.py": EMPTY_TODAY}, "item2,t2", keys=("epoch", "item"))
    record(project, {"train.py": EMPTY}, {"train.py": EMPTY_TODAY})
    replay(project, "item2,t2", "epoch=all", f"item={kind}")
    got = replayed(project, "item2,t2", keys=("epoch", "item"))
    assert got["item2"] == {} == truth["item2"]
    assert got["t2"] == truth["t2"] and len(got["t2"]) == 2


def test_selection_empty_loop_requests_nothing_all(project: Project, tmp_path: Path):
    _empty_loop(project, tmp_path, "all")


def test_selection_empty_loop_requests_nothing_last(project: Project, tmp_path: Path):
    _empty_loop(project, tmp_path, "last")


# --- TestOuterReplayPlan: the outermost loop -----------------------------------------


def test_outer_requested_iterations_only_and_code_after_the_loop_is_exact(project: Project, tmp_path: Path):
    """4.0.1 runs epochs 0..3 for `epoch=1,3` and logs 1 and 3. Same here for what is
    logged. Documented difference: 4.0.1 stops the loop after epoch 3, so code after the
    loop sees epoch 3's state; here it logs what the forward run logged ("A replayed
    value is what a forward run of that version with the new statement would have
    logged")."""
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=1,3")
    got = replayed(project)
    assert got["v2"] == only(truth["v2"], lambda k: k[0] in (1, 3))
    assert got["w2"] == only(truth["w2"], lambda k: k[0] in (1, 3))
    assert got["after"] == truth["after"]


def test_outer_all(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all")
    assert replayed(project) == truth


def test_outer_last_logs_the_end(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=last")
    got = replayed(project)
    assert got["v2"] == only(truth["v2"], lambda k: k[0] == 4)
    assert got["after"] == truth["after"]


def test_outer_none_logs_no_iteration(project: Project, tmp_path: Path):
    """Documented difference: 4.0.1 runs no iteration for `epoch=none`, so code after the
    loop logs the initial state; here no iteration logs either, and the code after the
    loop logs the forward run's value (replay is exact)."""
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=none")
    got = replayed(project)
    assert got["v2"] == {} and got["w2"] == {}
    assert got["after"] == truth["after"]


def test_outer_out_of_range_names_the_valid_range(project: Project, tmp_path: Path):
    nested(project, tmp_path)
    out = replay(project, NEW, "epoch=9", check=False)
    assert out.returncode != 0
    assert "only has 5 iteration(s)" in out.stderr and "0..4" in out.stderr, out.stderr
    assert replayed(project) == {"w2": {}, "v2": {}, "after": {}}


HELPERS = """
import flordb as flor


def train(state):
    for epoch in flor.loop("epoch", range(3)):
        state["w"] = state["w"] * 0.5 + epoch
        flor.log("w", state["w"])
"""
HELPERS_TODAY = HELPERS.replace('        flor.log("w", state["w"])\n', '        flor.log("w", state["w"])\n        flor.log("w2", state["w"] * 2)\n')
MAIN = """
import flordb as flor
from helpers import train

state = {"w": 1.0}
train(state)
flor.log("final", state["w"])
"""


def test_outer_loop_outside_the_script_follows_iter(project: Project, tmp_path: Path):
    """Documented difference: when the script's own source has no flor.loop (the loop is
    in a module it imports), 4.0.1 ignores --iter and runs and logs everything. Here
    --iter applies to that loop like any other (README: a statement in the script's
    modules is found there); values are exact."""
    truth = ground_truth(tmp_path, {"train.py": MAIN, "helpers.py": HELPERS_TODAY}, "w2")
    record(project, {"train.py": MAIN, "helpers.py": HELPERS}, {"helpers.py": HELPERS_TODAY})
    replay(project, "w2", "epoch=none")
    assert replayed(project, "w2") == {"w2": {}}
    replay(project, "w2")
    assert replayed(project, "w2") == truth and len(truth["w2"]) == 3


# --- TestLoopReplay -------------------------------------------------------------------


def test_nested_loop_runs_in_full_but_logs_only_its_selection(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=1", "step=last")
    got = replayed(project)
    assert got["w2"] == {(1, 2): truth["w2"][(1, 2)]}
    assert got["v2"] == {(1,): truth["v2"][(1,)]}


def test_step_none_still_runs_every_step(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=all", "step=none")
    got = replayed(project)
    assert got["w2"] == {}
    # Every epoch's value is the forward one: the steps ran although none logged.
    assert got["v2"] == truth["v2"]


def test_suppression_does_not_leak_past_the_loop(project: Project, tmp_path: Path):
    truth = nested(project, tmp_path)
    replay(project, NEW, "epoch=0", "step=none")
    got = replayed(project)
    assert got["w2"] == {} and got["v2"] == {(0,): truth["v2"][(0,)]}
    assert got["after"] == truth["after"]


def test_forward_mode_runs_and_logs_everything(project: Project):
    project.write("train.py", NESTED)
    project.commit_all()
    project.run("train.py", "--kwargs", "epochs=2")
    loss = values(project, "loss", "forward")
    assert sorted(loss) == [(e, s) for e in range(2) for s in range(3)]
    assert sorted(values(project, "val_acc", "forward")) == [(0,), (1,)]


# --- TestIterationReplay: flor.iteration ---------------------------------------------


def iteration(project: Project, tmp_path: Path, script: str = ITERATION, today: str = ITERATION_TODAY) -> dict:
    truth = ground_truth(tmp_path, {"train.py": today}, "v2,t2")
    record(project, {"train.py": script}, {"train.py": today})
    assert len(truth["v2"]) == 4
    return truth


def test_iteration_runs_and_logs_under_replay(project: Project, tmp_path: Path):
    truth = iteration(project, tmp_path)
    replay(project, "v2,t2")
    assert replayed(project, "v2,t2") == truth


def test_iteration_records_the_loop_context(project: Project, tmp_path: Path):
    iteration(project, tmp_path)
    replay(project, "v2,t2")
    ctx = project.py(
        """
        import json, flordb as flor
        df = flor.query("select ctx from logs where value_name = 'v2' and source = 'replay'")
        print(json.dumps(sorted(df["ctx"].tolist())))
        """
    )
    assert ctx[2] == '[{"name": "epoch", "iteration": 2, "value": null}]'
    assert len(ctx) == 4


def test_iteration_unrequested_iterations_are_silent(project: Project, tmp_path: Path):
    truth = iteration(project, tmp_path)
    replay(project, "v2,t2", "epoch=0,2")
    assert replayed(project, "v2,t2")["v2"] == only(truth["v2"], lambda k: k[0] in (0, 2))


def test_iteration_none_suppresses_every_iteration(project: Project, tmp_path: Path):
    iteration(project, tmp_path)
    replay(project, "v2,t2", "epoch=none")
    assert replayed(project, "v2,t2")["v2"] == {}


def test_iteration_last_is_either_decided_or_said_to_be_undecidable(project: Project, tmp_path: Path):
    truth = iteration(project, tmp_path)
    out = replay(project, "v2,t2", "epoch=last")
    got = replayed(project, "v2,t2")["v2"]
    if got == {(3,): truth["v2"][(3,)]}:
        return  # decided from the record: only the last iteration logs
    assert got == truth["v2"]
    notes = [line for line in (out.stdout + out.stderr).splitlines() if "last" in line]
    assert len(notes) == 1, out.stdout + out.stderr


def test_iteration_suppression_does_not_leak_past_the_block(project: Project, tmp_path: Path):
    truth = iteration(project, tmp_path)
    replay(project, "v2,t2", "epoch=none")
    assert replayed(project, "v2,t2") == {"v2": {}, "t2": truth["t2"]}


def test_iteration_timing_is_recorded_forward_not_by_replay(project: Project, tmp_path: Path):
    """Documented difference (README sentence needed): 4.0.1's replay emits `time::setup`
    and `time::iter` records as replay rows; here the forward run records them (one
    `time::iter` per flor.iteration block, at the block's parent level, as in 4.0.1) and
    a replay adds no `time::*` rows: it records only the applied names."""
    iteration(project, tmp_path)
    replay(project, "v2,t2")
    counts = project.py(
        """
        import json, flordb as flor
        df = flor.query("select source, value_name from logs where value_name in ('time::iter', 'time::setup')")
        print(json.dumps(sorted(map(list, df.groupby(["source", "value_name"]).size().reset_index().values.tolist()))))
        """
    )
    assert counts == [["forward", "time::iter", 4], ["forward", "time::setup", 1]]
    assert replayed(project, "v2,t2")["v2"]  # the replay did record its statement


RAISING = ITERATION.replace(
    'flor.log("total", acc)\n',
    'try:\n    with flor.iteration("epoch", 9, None):\n        raise ValueError("boom")\nexcept ValueError:\n    pass\nflor.log("total", acc)\n',
)
RAISING_TODAY = RAISING.replace('flor.log("total", acc)\n', 'flor.log("total", acc)\nflor.log("t2", acc)\n').replace(
    '        flor.log("val_acc", 90 + acc)\n', '        flor.log("val_acc", 90 + acc)\n        flor.log("v2", 90 + acc)\n'
)


def test_iteration_state_is_unwound_after_an_exception(project: Project, tmp_path: Path):
    truth = iteration(project, tmp_path, RAISING, RAISING_TODAY)
    replay(project, "v2,t2")
    assert replayed(project, "v2,t2") == truth
    ctxs = project.py(
        """
        import json, flordb as flor
        df = flor.query("select source, ctx from logs where value_name in ('total', 't2')")
        print(json.dumps(df.astype(object).where(df.notna(), None).values.tolist()))
        """
    )
    # Logged after the block that raised: at run level, no stale epoch=9 context.
    assert sorted(map(tuple, ctxs)) == [("forward", None), ("replay", None)]


def test_iteration_forward_mode_is_unchanged(project: Project):
    project.write("train.py", 'import flordb as flor\nwith flor.iteration("epoch", 1, None):\n    flor.log("val_acc", 90)\n')
    project.commit_all()
    project.run("train.py")
    assert values(project, "val_acc", "forward") == {(1,): 90}


# --- TestArgErrors ----------------------------------------------------------------------


def test_missing_arg_without_default_says_what_to_do(project: Project):
    project.write("train.py", 'import flordb as flor\nx = flor.arg("undeclared")\n')
    project.commit_all()
    out = project.run("train.py", check=False)
    assert out.returncode != 0
    assert "has no default" in out.stderr and "--kwargs undeclared=" in out.stderr, out.stderr


def test_replay_missing_arg_without_default_mentions_override(project: Project):
    script = 'import flordb as flor\nfor epoch in flor.loop("epoch", range(2)):\n    flor.log("e", epoch)\n'
    record(project, {"train.py": script}, {"train.py": script + '    flor.log("k", flor.arg("undeclared"))\n'})
    out = replay(project, "k", check=False)
    assert out.returncode != 0
    assert "--override" in out.stderr, out.stderr
    assert replayed(project, "k") == {"k": {}}
