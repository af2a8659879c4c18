"""flordb 4.0.1's tests/test_end_to_end.py, ported as black-box tests: a forward run, the
files and git state it leaves, `flor unpack`, and `python train.py --replay_flor` of it,
each in a fresh git repository. Where 4.0.1 opens its sqlite file directly, these read
`flor.query()` on the `logs` view (4.0.1's table) instead."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import Project, new_project, run_files, settle

TRAIN = """
import flordb as flor

lr = flor.arg("lr", 1e-3)
epochs = flor.arg("epochs", 2)
steps = flor.arg("steps", 3)

for epoch in flor.loop("epoch", range(epochs)):
    for step in flor.loop("step", range(steps)):
        flor.log("loss", round(1.0 / (epoch + step + 1), 4))
    flor.log("val_acc", 90 + epoch)

flor.log("accuracy", 99)
"""

# 4.0.1's record types: 1 log/arg, 2 io, 3 time, 4 start. This project adds its own
# bookkeeping records (flor::run, flor::version, flor::end, ...) as type 0, outside `logs`.
FLORDB_401_TYPES = (1, 2, 3, 4)






def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]




ROWS = """
import json, flordb as flor
df = flor.query("select tstamp, source, value_name, ctx from logs where source = ?", [{source!r}])
print(json.dumps([[r.tstamp, r.value_name, json.loads(r.ctx) if isinstance(r.ctx, str) else None] for r in df.itertuples()]))
"""


def rows(p: Project, source: str) -> list:
    """(tstamp, value_name, ctx) of every `logs` row of one source."""
    return p.py(ROWS.format(source=source))


def count(p: Project) -> int:
    return p.py("import json, flordb as flor\nprint(json.dumps(int(flor.query('select count(*) as n from logs')['n'][0])))")


# --- 4.0.1's TestForwardRun and TestUnpack --------------------------------------------


@pytest.fixture(scope="module")
def forward(tmp_path_factory):
    """Two runs: the defaults, then `--kwargs epochs=1 lr=5e-4`; then the cache is
    deleted and rebuilt with `flor unpack`, twice."""
    p = new_project(tmp_path_factory, "forward")
    p.write("train.py", TRAIN)
    p.run("train.py")
    s = {"p": p, "files1": run_files(p)}
    p.run("train.py", "--kwargs", "epochs=1", "lr=5e-4")
    s["files2"] = run_files(p)
    settle(p)
    s["forward_rows"] = len(rows(p, "forward"))
    s["runs"] = p.runs()
    (p.path / ".flor" / "flor.db").unlink()
    p.flor("unpack")
    s["unpacked"] = count(p)
    p.flor("unpack")
    s["unpacked_twice"] = count(p)
    return s


def first(s) -> list[dict]:
    return records(s["files1"][0])


def kept(recs: list[dict]) -> list[dict]:
    return [r for r in recs if r["type"] in FLORDB_401_TYPES]


def test_writes_one_jsonl_per_run(forward):
    assert len(forward["files1"]) == 1 and len(forward["files2"]) == 2


def test_run_file_is_named_for_the_run(forward):
    """Documented difference: the file is .flor/runs/<run_id>.jsonl (4.0.1: <tstamp>.jsonl);
    every record still carries the run's one tstamp, and flor.runs() pairs the two."""
    (path,) = forward["files1"]
    tstamps = {r["tstamp"] for r in records(path)}
    assert len(tstamps) == 1
    (run,) = [r for r in forward["runs"] if r["run_id"] == path.stem]
    assert run["tstamp"].replace(" ", "T") == tstamps.pop()


def test_logs_land_with_self_describing_ctx(forward):
    recs = first(forward)
    loss = next(r for r in recs if r["name"] == "loss")
    assert [(s["name"], s["iteration"]) for s in loss["ctx"]] == [("epoch", 0), ("step", 0)]
    assert next(r for r in recs if r["name"] == "accuracy")["ctx"] is None


def test_args_are_recorded_at_run_level(forward):
    args = {r["name"]: r["value"] for r in kept(first(forward)) if r["ctx"] is None}
    assert args["lr"] == 1e-3 and args["epochs"] == 2


def test_cli_kwargs_override_defaults(forward):
    second = records(forward["files2"][1])
    args = {r["name"]: r["value"] for r in kept(second) if r["ctx"] is None}
    assert args["epochs"] == 1
    assert args["lr"] == pytest.approx(5e-4)


def test_iteration_times_are_summarized_not_per_iter(forward):
    recs = first(forward)
    names = [r["name"] for r in recs]
    assert names.count("time::iter::n") == names.count("time::iter") == names.count("time::iter::std")
    outer_n = next(r for r in recs if r["name"] == "time::iter::n" and r["ctx"] is None)
    assert outer_n["value"] == 2  # epochs


def test_script_wall_time_always_emitted(forward):
    assert any(r["name"] == "time::script" for r in first(forward))


def test_flor_dir_is_ignored_without_editing_gitignore(forward):
    """Documented difference: no .gitignore is written (4.0.1 appends `.flor/*` and
    `!.flor/runs/`), .flor/ ignores itself, and there is no `.flor.<branch>.cmd` file."""
    p = forward["p"]
    assert not (p.path / ".gitignore").exists()
    assert p.git("status", "--porcelain", "--untracked-files=all") == "?? train.py"
    path = forward["files1"][0].relative_to(p.path)
    assert subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=p.path).returncode == 0
    assert [f.name for f in p.path.glob(".flor*.cmd")] == []


def test_run_jsonl_is_committed_but_cache_and_objstore_are_not(forward):
    """Documented difference: committed in the run's commit refs/flor/runs/<run>."""
    p = forward["p"]
    for path in forward["files2"]:
        tree = p.git("ls-tree", "-r", "--name-only", f"refs/flor/runs/{path.stem}").splitlines()
        assert f".flor/runs/{path.name}" in tree
        assert not [f for f in tree if f.startswith(".flor/objects/") or f.endswith(".db")]


def test_each_run_gets_a_commit_with_args_in_the_body(forward):
    """Documented difference: the commits are refs/flor/runs/<run>, not on the branch."""
    p = forward["p"]
    messages = [p.git("log", "-1", "--format=%B", f"refs/flor/runs/{f.stem}") for f in forward["files2"]]
    assert [m.startswith("FLOR::Auto-commit::") for m in messages] == [True, True]
    assert "epochs=2" in messages[0] and "epochs=1" in messages[1] and "lr=0.0005" in messages[1]
    assert p.git("for-each-ref", "--format=%(refname)", "refs/heads") == ""  # no branch was made


def test_cache_matches_jsonl(forward):
    assert forward["forward_rows"] == sum(len(kept(records(f))) for f in forward["files2"])


def test_unpack_rebuilds_the_cache_from_jsonl(forward):
    assert forward["unpacked"] == forward["forward_rows"]


def test_unpack_is_idempotent(forward):
    assert forward["unpacked_twice"] == forward["unpacked"]


@pytest.mark.parametrize(
    "branches",
    [("flor.trial-a", "flor.trial-b"), ("flor.trial/a", "flor.trial%2Fa")],
    ids=["plain", "escaped"],
)
def test_merging_trials_preserves_each_branch_run(project, branches):
    """Documented difference: 4.0.1 keeps each branch's command in `.flor.<branch>.cmd`;
    here a `flor.*` branch receives each run's commit with its run file, whose first
    record holds the command line, and merged branches keep every run file as it was."""
    project.write("train.py", TRAIN)
    base = project.commit_all()
    project.run("train.py")
    expected = {}
    for epochs, branch in enumerate(branches, start=1):
        project.git("checkout", "-q", "-b", branch, base)
        project.run("train.py", "--kwargs", f"epochs={epochs}")
        (new,) = [f for f in project.git("ls-tree", "-r", "--name-only", branch, "--", ".flor/runs/").splitlines()]
        text = project.git("show", f"{branch}:{new}")
        run = json.loads(text.splitlines()[0])
        assert run["name"] == "flor::run" and f"epochs={epochs}" in run["value"]["argv"]
        expected[new] = text
    project.git("checkout", "-q", "-b", "flor.dev", base)
    for branch in branches:
        project.git("merge", "-q", "--no-edit", branch)
    project.run("train.py")
    tracked = project.git("ls-tree", "-r", "--name-only", "HEAD", "--", ".flor/runs/").splitlines()
    assert len(tracked) == 3 and set(expected) < set(tracked)
    for path, text in expected.items():
        assert (project.path / path).read_text().strip() == text
        assert project.git("show", f"HEAD:{path}") == text
    assert project.git("status", "--porcelain") == ""
    assert [f.name for f in project.path.glob(".flor*.cmd")] == []


# --- 4.0.1's TestReplay -------------------------------------------------------------


@pytest.fixture(scope="module")
def replays(tmp_path_factory):
    p = new_project(tmp_path_factory, "replays")
    p.write("train.py", TRAIN)
    p.run("train.py")
    settle(p)
    (path,) = run_files(p)
    s = {"path": path, "tstamp": records(path)[0]["tstamp"]}
    p.run("train.py", "--replay_flor", "--apply", "val_acc", "--iter", "epoch=1", "--iter", "step=none")
    s["narrowed"] = rows(p, "replay")
    p.run("train.py", "--replay_flor", "--apply", "val_acc", "--iter", "epoch=all", "--iter", "step=none")
    s["files"] = run_files(p)
    s["replayed"] = rows(p, "replay")
    p.flor("unpack")
    s["unpacked"] = rows(p, "replay")
    replay = lambda *flags: p.run("train.py", "--replay_flor", *flags, check=False)
    s["override_lr"] = replay("--apply", "val_acc", "--override", "lr=1e-2")
    s["override_device"] = replay(
        "--apply", "val_acc", "--iter", "epoch=last", "--iter", "step=none", "--override", "device=cpu"
    )
    s["no_mode"] = p.run("train.py", "--apply", "val_acc", check=False)
    s["with_kwargs"] = replay("--apply", "val_acc", "--kwargs", "lr=1e-2")
    return s


def test_replay_does_not_write_a_new_run_file(replays):
    assert replays["files"] == [replays["path"]]


def test_replay_rows_are_tagged_replay(replays):
    assert "val_acc" in {name for _, name, _ in replays["replayed"]}


def test_apply_projects_away_other_logs(replays):
    names = {name for _, name, _ in replays["replayed"]}
    # loss is not projected; args ride along so replayed rows join to their config.
    assert "loss" not in names and "accuracy" not in names
    assert {"lr", "epochs", "steps"} <= names


def test_iter_narrowing_selects_iterations(replays):
    ctxs = [ctx for _, name, ctx in replays["narrowed"] if name == "val_acc"]
    assert [c[0]["iteration"] for c in ctxs] == [1]


def test_replay_reuses_the_historical_tstamp(replays):
    assert {t for t, _, _ in replays["replayed"]} == {replays["tstamp"]}


def test_unpack_keeps_replay_rows(replays):
    """Documented-different: replayed values live in their own files under .flor/replays/,
    which `flor unpack` reads back with the run files (4.0.1's unpack wipes them)."""
    assert replays["replayed"]
    assert sorted(map(json.dumps, replays["unpacked"])) == sorted(map(json.dumps, replays["replayed"]))


def test_override_of_a_logged_hyperparameter_is_rejected(replays):
    out = replays["override_lr"]
    assert out.returncode != 0 and "--override rejected" in out.stderr


def test_override_of_an_allowlisted_knob_is_accepted(replays):
    out = replays["override_device"]
    assert out.returncode == 0, out.stderr


def test_narrowing_flags_require_replay_mode(replays):
    out = replays["no_mode"]
    assert out.returncode != 0 and "require --replay_flor" in out.stderr


def test_kwargs_cannot_be_combined_with_replay(replays):
    out = replays["with_kwargs"]
    assert out.returncode != 0 and "cannot combine --kwargs" in out.stderr.lower()


# --- 4.0.1's TestIterationEndToEnd ---------------------------------------------------

ITERATION_SCRIPT = """
import flordb as flor

epochs = flor.arg("epochs", 3)

for epoch in range(epochs):          # the user drives the loop
    with flor.iteration("epoch", epoch, None):
        flor.log("val_acc", 90 + epoch)

flor.log("accuracy", 99)
"""


@pytest.fixture(scope="module")
def iterated(tmp_path_factory):
    p = new_project(tmp_path_factory, "iterated")
    p.write("train.py", ITERATION_SCRIPT)
    p.run("train.py")
    (path,) = run_files(p)
    s = {"recs": records(path)}
    p.run("train.py", "--replay_flor", "--apply", "val_acc", "--iter", "epoch=0,2")
    s["narrowed"] = rows(p, "replay")
    s["full"] = p.run("train.py", "--replay_flor", "--apply", "val_acc", check=False)
    s["replayed"] = rows(p, "replay")
    return s


def test_forward_run_records_each_iteration(iterated):
    accs = [r for r in iterated["recs"] if r["name"] == "val_acc"]
    assert [r["ctx"][0]["iteration"] for r in accs] == [0, 1, 2]


def test_iteration_replay_completes(iterated):
    assert iterated["full"].returncode == 0, iterated["full"].stderr


def test_iteration_replay_records_the_projected_variable(iterated):
    accs = sorted(ctx[0]["iteration"] for _, name, ctx in iterated["replayed"] if name == "val_acc")
    assert accs == [0, 1, 2]


def test_iteration_replay_narrowing_filters_iterations(iterated):
    assert sorted(ctx[0]["iteration"] for _, name, ctx in iterated["narrowed"] if name == "val_acc") == [0, 2]
