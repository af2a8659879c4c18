"""Checkpoints and replay of one run, with numpy training: replayed values equal the
forward run's bit for bit, and replay executes only the work the statements need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Project

# Shuffled data and dropout from the global RNGs, a "scheduler" stepped after the
# nested loop, and a trace of every executed training step (TRACE=path).
TRAIN_NP = """
import os, random
import numpy as np
import flordb as flor

trace = open(os.environ["TRACE"], "a") if os.environ.get("TRACE") else None
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 5)
np.random.seed(seed)
random.seed(seed)
X = np.random.randn(64, 4)
y = X @ np.random.randn(4) + 0.1 * np.random.randn(64)
w = np.zeros(4)
sched = {"lr": 0.1}
with flor.checkpointing(w=w, sched=sched):
    for epoch in flor.loop("epoch", range(epochs)):
        idx = np.random.permutation(len(X))
        for step in flor.loop("step", range(4)):
            b = idx[step * 16:(step + 1) * 16]
            mask = (np.random.rand(4) > 0.2) / 0.8
            grad = X[b].T @ (X[b] @ (w * mask) - y[b]) / 16
            w -= sched["lr"] * grad
            if trace:
                trace.write(f"{epoch} {step}\\n"); trace.flush()
            flor.log("loss", float(np.mean((X[b] @ w - y[b]) ** 2)))
        sched["lr"] *= 0.9
        flor.log("val", float(np.mean((X @ w - y) ** 2)) + random.random() + sched["lr"])
flor.log("final", float(w.sum()))
flor.log("w_final", w.tolist())
"""

# The new statements a user adds in hindsight, one per level.
NEW_OUTER = '        flor.log("wnorm", float(np.linalg.norm(w)) * sched["lr"])\n'
NEW_NESTED = '            flor.log("gnorm", float(np.linalg.norm(grad)))\n'


# The toy scripts train for microseconds, so the default budget (1/15 of training time)
# would keep few checkpoints; tests that want one per iteration raise it.
EVERY = {"FLOR_EPSILON": "1000"}


def forward(project: Project, text: str = TRAIN_NP, *args: str, env: dict | None = EVERY) -> str:
    project.write("train.py", text)
    project.commit_all()
    project.run("train.py", *args, env=env)
    return project.runs()[-1]["run_id"]


def rows(project: Project, name: str, source: str) -> dict[tuple, object]:
    out = {}
    for r in project.frame(name):
        if r["source"] == source and r.get(name) is not None:
            key = (r["run_id"], r.get("epoch"), r.get("step"))
            assert key not in out, f"duplicate row {key}"
            out[key] = r[name]
    return out


def replay(project: Project, *args: str, trace: Path | None = None, check: bool = True, env: dict | None = None):
    env = {**({"TRACE": str(trace)} if trace else {}), **(env or {})}
    return project.run("train.py", "--replay_flor", *args, env=env, check=check)


def steps(trace: Path) -> list[tuple[int, int]]:
    if not trace.exists():
        return []
    return [tuple(map(int, line.split())) for line in trace.read_text().splitlines()]


@pytest.fixture
def np_project(project: Project) -> Project:
    forward(project)
    return project


def test_checkpoints_are_listed_and_load_back(np_project: Project):
    out = np_project.py(
        """
        import json, numpy as np, flordb as flor
        run = flor.runs().run_id.iloc[-1]
        ck = flor.checkpoints(run)
        w = flor.load_checkpoint(run, "w")
        first = flor.load_checkpoint(run, "sched", iteration=0)
        entry = flor.load_checkpoint(run, "w", iteration=-1)
        try:
            flor.load_checkpoint(run)
            err = None
        except flor.CheckpointError as e:
            err = str(e)
        print(json.dumps({"iters": sorted(set(ck.iteration)), "points": sorted(set(ck.point)),
                          "names": sorted(set(ck.name)), "w": w.tolist(), "lr": first["lr"],
                          "entry": entry.tolist(), "err": err,
                          "empty": len(flor.checkpoints(flor.runs().tstamp.iloc[-1])) > 0}))
        """
    )
    assert out["iters"] == [-1, 0, 1, 2, 3, 4]
    assert out["points"] == ["end", "nested0"]
    assert out["names"] == ["sched", "w"]
    final = rows(np_project, "w_final", "forward")
    assert out["w"] == list(final.values())[0]
    assert out["lr"] == 0.1 * 0.9
    assert out["entry"] == [0.0] * 4
    assert "pass an explicit name=" in out["err"]
    assert out["empty"]


def test_checkpoint_store_is_content_addressed(np_project: Project):
    # The same seed again: every chunk is already stored, no new object file appears.
    objects = np_project.path / ".flor" / "objects"
    before = sorted(p.name for p in objects.rglob("*") if p.is_file())
    np_project.run("train.py", env=EVERY)
    after = sorted(p.name for p in objects.rglob("*") if p.is_file())
    assert before == after


@pytest.mark.parametrize("spec", ["all", "last", "none", "1,3"])
def test_outer_statement_replays_exactly_without_training(np_project: Project, tmp_path: Path, spec: str):
    trace = tmp_path / "trace"
    args = ["--apply", "val"] + ([] if spec == "all" else ["--iter", f"epoch={spec}"])
    replay(np_project, *args, trace=trace)
    assert steps(trace) == []  # no training step executed
    fwd, rep = rows(np_project, "val", "forward"), rows(np_project, "val", "replay")
    wanted = {"all": [0, 1, 2, 3, 4], "last": [4], "none": [], "1,3": [1, 3]}[spec]
    assert sorted(k[1] for k in rep) == wanted
    for key, value in rep.items():
        assert value == fwd[key]


@pytest.mark.parametrize("spec", ["2", "0,4", "last"])
def test_nested_statement_replays_only_requested_epochs(np_project: Project, tmp_path: Path, spec: str):
    trace = tmp_path / "trace"
    replay(np_project, "--apply", "loss", "--iter", f"epoch={spec}", trace=trace)
    epochs = {"2": [2], "0,4": [0, 4], "last": [4]}[spec]
    assert sorted({e for e, _ in steps(trace)}) == epochs
    assert len(steps(trace)) == 4 * len(epochs)
    fwd, rep = rows(np_project, "loss", "forward"), rows(np_project, "loss", "replay")
    assert len(rep) == 4 * len(epochs)
    for key, value in rep.items():
        assert value == fwd[key]


def test_nested_iter_spec_filters_logged_steps(np_project: Project):
    replay(np_project, "--apply", "loss", "--iter", "epoch=1", "--iter", "step=last")
    fwd, rep = rows(np_project, "loss", "forward"), rows(np_project, "loss", "replay")
    assert list(rep) == [(k[0], 1, 3) for k in rep]
    assert all(v == fwd[k] for k, v in rep.items())


def test_run_level_statement_skips_the_loop(np_project: Project, tmp_path: Path):
    trace = tmp_path / "trace"
    replay(np_project, "--apply", "final,w_final", trace=trace)
    assert steps(trace) == []
    for name in ("final", "w_final"):
        assert rows(np_project, name, "replay") == rows(np_project, name, "forward")


def test_mixed_levels_in_one_replay(np_project: Project):
    replay(np_project, "--apply", "val,loss,final", "--iter", "epoch=3")
    for name in ("val", "loss", "final"):
        fwd, rep = rows(np_project, name, "forward"), rows(np_project, name, "replay")
        assert rep and all(v == fwd[k] for k, v in rep.items())


def test_new_statements_equal_a_fresh_run(np_project: Project, tmp_path: Path):
    old = np_project.runs()[-1]["run_id"]
    text = TRAIN_NP.replace('        sched["lr"] *= 0.9\n', '        sched["lr"] *= 0.9\n' + NEW_OUTER)
    text = text.replace('            w -= sched["lr"] * grad\n', '            w -= sched["lr"] * grad\n' + NEW_NESTED)
    np_project.write("train.py", text)
    trace = tmp_path / "trace"
    replay(np_project, "--apply", "wnorm", trace=trace)
    assert steps(trace) == []
    replay(np_project, "--apply", "gnorm", "--iter", "epoch=1,2")
    # A fresh run of the new script with the same args is the ground truth.
    np_project.run("train.py", env=EVERY)
    new = np_project.runs()[-1]["run_id"]
    for name, epochs in (("wnorm", [0, 1, 2, 3, 4]), ("gnorm", [1, 2])):
        truth = {(k[1], k[2]): v for k, v in rows(np_project, name, "forward").items() if k[0] == new}
        rep = {(k[1], k[2]): v for k, v in rows(np_project, name, "replay").items() if k[0] == old}
        assert sorted({k[0] for k in rep}) == epochs
        assert all(v == truth[k] for k, v in rep.items())


def test_without_checkpoints_replay_recomputes_and_says_so(np_project: Project, tmp_path: Path):
    import shutil

    shutil.rmtree(np_project.path / ".flor" / "ckpts")
    trace = tmp_path / "trace"
    out = replay(np_project, "--apply", "val", "--iter", "epoch=2", trace=trace)
    assert "has no checkpoints here" in out.stderr and "recomputing epoch iterations 0-1" in out.stderr
    assert sorted({e for e, _ in steps(trace)}) == [0, 1, 2, 3, 4]
    fwd, rep = rows(np_project, "val", "forward"), rows(np_project, "val", "replay")
    assert list(k[1] for k in rep) == [2] and all(v == fwd[k] for k, v in rep.items())


def test_corrupt_checkpoint_is_not_used(np_project: Project, tmp_path: Path):
    run = np_project.runs()[-1]["run_id"]
    manifest = json.loads((np_project.path / ".flor" / "ckpts" / run / "0_1_end.json").read_text())
    chunk = manifest["leaves"][0]["hash"]
    path = np_project.path / ".flor" / "objects" / chunk[:2] / chunk[2:]
    path.write_bytes(b"\x00garbage")
    trace = tmp_path / "trace"
    out = replay(np_project, "--apply", "val", "--iter", "epoch=2", trace=trace)
    assert "corrupt" in out.stderr
    fwd, rep = rows(np_project, "val", "forward"), rows(np_project, "val", "replay")
    assert rep and all(v == fwd[k] for k, v in rep.items())


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_split_epochs_and_merge(np_project: Project, tmp_path: Path, workers: int):
    trace = tmp_path / "trace"
    out = replay(np_project, "--apply", "val,loss,final", "--iter", "epoch=0,2,3,4", "--workers", str(workers), trace=trace)
    assert f"in {workers} processes" in out.stderr
    assert sorted({e for e, _ in steps(trace)}) == [0, 2, 3, 4]
    for name in ("val", "loss", "final"):
        fwd, rep = rows(np_project, name, "forward"), rows(np_project, name, "replay")
        assert rep and all(v == fwd[k] for k, v in rep.items())
    replays = list((np_project.path / ".flor" / "replays").rglob("*"))
    assert [p.suffix for p in replays if p.is_file()] == [".jsonl"]


def test_replaying_twice_keeps_one_copy_and_joins_args(np_project: Project):
    replay(np_project, "--apply", "val")
    replay(np_project, "--apply", "val")
    rep = rows(np_project, "val", "replay")  # rows() fails on duplicates
    assert len(rep) == 5
    joined = [r for r in np_project.frame("seed", "val") if r["source"] == "replay"]
    assert len(joined) == 5 and all(r["seed"] == 0 for r in joined)


def test_replay_binds_to_the_newest_run_of_its_own_script(np_project: Project):
    first = np_project.runs()[-1]["run_id"]
    np_project.write("other.py", "import flordb as flor\nflor.log('x', 1)\n")
    np_project.commit_all()
    np_project.run("other.py")
    replay(np_project, "--apply", "final")
    assert [k[0] for k in rows(np_project, "final", "replay")] == [first]


def test_replay_uses_recorded_args(project: Project):
    forward(project, TRAIN_NP, "--kwargs", "seed=3", "epochs=3")
    replay(project, "--apply", "val")
    fwd, rep = rows(project, "val", "forward"), rows(project, "val", "replay")
    assert len(rep) == 3 and all(v == fwd[k] for k, v in rep.items())


def test_replay_mistakes_are_reported(np_project: Project):
    out = replay(np_project, "--apply", "nope", check=False)
    assert out.returncode != 0 and "no flor.log call by that name" in out.stderr and "Traceback" not in out.stderr
    out = replay(np_project, "--apply", "val", "--override", "seed=4", check=False)
    assert "--override rejected for ['seed']" in out.stderr and "Traceback" not in out.stderr
    out = replay(np_project, "--apply", "val", "--iter", "epoch=9", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    # One line saying what is wrong, and the script's line that asked for it.
    assert "flordb: ReplayError: --iter epoch=9: the recorded loop only has 5 iteration(s)" in out.stderr
    assert "at train.py, line" in out.stderr and "flor.loop(" in out.stderr
    out = replay(np_project, "--apply", "val", "--iter", "epoch=9", check=False, env={"FLORDB_TRACEBACK": "1"})
    assert "Traceback" in out.stderr and "only has 5 iteration(s)" in out.stderr
    out = np_project.run("train.py", "--apply", "val", check=False)
    assert "require --replay_flor" in out.stderr
    out = np_project.run("train.py", "--replay_flor", "--kwargs", "seed=1", check=False)
    assert "cannot combine --kwargs" in out.stderr
    out = replay(np_project, "--apply", "val", "--iter", "epoch=x", check=False)
    assert "expected all, last, none" in out.stderr


def test_replay_without_any_run(project: Project):
    project.write("train.py", TRAIN_NP)
    project.commit_all()
    out = project.run("train.py", "--replay_flor", "--apply", "val", check=False)
    assert out.returncode != 0 and "no recorded run of train.py" in out.stderr


def test_sparse_checkpoints_under_the_default_budget_stay_exact(project: Project, tmp_path: Path):
    run = forward(project, env=None)
    listed = project.py(
        f"""
        import json, flordb as flor
        print(json.dumps(sorted(set(flor.checkpoints({run!r}).iteration))))
        """
    )
    assert listed[0] == -1 and listed[-1] == 4 and len(listed) < 6  # entry and last always
    trace = tmp_path / "trace"
    replay(project, "--apply", "val,loss", "--iter", "epoch=1,2", trace=trace)
    fwd, rep = rows(project, "val", "forward"), rows(project, "val", "replay")
    assert sorted(k[1] for k in rep) == [1, 2] and all(v == fwd[k] for k, v in rep.items())
    fwd, rep = rows(project, "loss", "forward"), rows(project, "loss", "replay")
    assert len(rep) == 8 and all(v == fwd[k] for k, v in rep.items())


def test_forward_run_records_checkpoint_time(np_project: Project):
    recs = np_project.py(
        """
        import json, flordb as flor
        df = flor.query("select value from logs where value_name = 'time::ckpt'")
        print(json.dumps(df.value.tolist()))
        """
    )
    assert len(recs) == 1 and recs[0] >= 0


def test_a_replay_process_runs_every_exit_handler_and_keeps_its_exit_code(project: Project):
    # A replay process ends right after the exit handlers, skipping the interpreter's
    # teardown of the script's modules: every handler, registered before or after
    # `import flordb`, still runs, and the exit code is the script's.
    text = (
        'import atexit\natexit.register(lambda: print("handler before flordb", flush=True))\n'
        + TRAIN_NP
        + 'atexit.register(lambda: print("handler after flordb", flush=True))\n'
        + 'import sys\nif os.environ.get("END") == "raise":\n    raise RuntimeError("boom")\n'
        + 'sys.exit(int(os.environ.get("END", "0")))\n'
    )
    forward(project, text)
    for end, code in (("0", 0), ("3", 3), ("raise", 1)):
        out = replay(project, "--apply", "val", check=False, env={"END": end})
        assert out.returncode == code, (end, out.stderr)
        assert "handler before flordb" in out.stdout and "handler after flordb" in out.stdout, out.stdout
    assert len(rows(project, "val", "replay")) == 5
