"""flordb 4.0.1's tests/test_cli.py, ported as black-box tests.

4.0.1 tests its flag parsers (`parse_iter_spec`, `parse_override_arg`, ...) as functions.
Here each case is the command line a user types, `python train.py --replay_flor ...` or
`python -m flordb replay ...`, against a run recorded once per module; what it checks is
the exit status, the message, and the values the replay wrote (the replay file it names
on stderr, or the `logs` view)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import Project, new_project, run_files

TRAIN = """
import flordb as flor

device = flor.arg("device", "cpu")
for epoch in flor.loop("epoch", range(4)):
    for step in flor.loop("step", range(3)):
        flor.log("loss", epoch * 10 + step)
    flor.log("val_acc", 90 + epoch)
"""
# Added after the run was recorded: a hindsight statement reading the device arg.
HINDSIGHT = TRAIN + '    flor.log("dev", device)\n'






@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    p = new_project(tmp_path_factory, "cli")
    p.write("train.py", TRAIN)
    p.commit_all()
    p.run("train.py")
    p.write("train.py", HINDSIGHT)
    return p


def replay(p: Project, *flags: str):
    """Runs the direct replay; returns (process, the records of the replay file it wrote,
    or None when it wrote none)."""
    out = p.run("train.py", "--replay_flor", *flags, check=False)
    written = re.search(r"record\(s\) in (\S+\.jsonl)", out.stderr)
    if not written:
        return out, None
    recs = [json.loads(line) for line in (p.path / written.group(1)).read_text().splitlines() if line.strip()]
    return out, recs


def iterations(recs, name="val_acc", depth=0) -> list[int]:
    return [r["ctx"][depth]["iteration"] for r in recs if r["name"] == name]


def refused(out) -> bool:
    return out.returncode != 0 and "replayed run" not in out.stderr and out.stderr.startswith("flordb")


# --- 4.0.1's TestParseIterSpec --------------------------------------------------------


@pytest.mark.parametrize("verb,expected", [("all", [0, 1, 2, 3]), ("last", [3]), ("none", [])])
def test_iter_verbs(recorded, verb, expected):
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", f"epoch={verb}")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == expected


def test_empty_iter_spec_is_none(recorded):
    # `--iter epoch=` (the v3 "skip entirely" spelling) still means skip.
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", "epoch=")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == []


def test_iter_indices_are_sorted_and_deduped(recorded):
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", "epoch=3, 0, 2, 0")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [0, 2, 3]


def test_iter_whitespace_tolerated(recorded):
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", "epoch=  all ")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [0, 1, 2, 3]


def test_non_integer_iter_rejected(recorded):
    out, _ = replay(recorded, "--apply", "val_acc", "--iter", "epoch=first,second")
    assert refused(out) and "epoch=first,second" in out.stderr


# --- 4.0.1's TestParseArgs ------------------------------------------------------------


def test_iter_arg(recorded):
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", "epoch=0,2")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [0, 2]


def test_iter_arg_needs_equals(recorded):
    out, _ = replay(recorded, "--apply", "val_acc", "--iter", "epoch")
    assert refused(out) and "NAME=VALUE" in out.stderr


def test_iter_arg_needs_name(recorded):
    out, _ = replay(recorded, "--apply", "val_acc", "--iter", "=all")
    assert refused(out) and "NAME=VALUE" in out.stderr


def test_override_splits_once(recorded):
    # Values may contain '=': the replayed run reads device as "cuda:0=x".
    out, recs = replay(recorded, "--apply", "dev", "--override", "device=cuda:0=x")
    assert out.returncode == 0, out.stderr
    assert [r["value"] for r in recs if r["name"] == "dev"] == ["cuda:0=x"] * 4


def test_override_needs_equals(recorded):
    out, _ = replay(recorded, "--apply", "dev", "--override", "device")
    assert refused(out) and "NAME=VALUE" in out.stderr


def test_apply_vars_trimmed(recorded):
    out, recs = replay(recorded, "--apply", " loss , val_acc ,", "--iter", "epoch=1")
    assert out.returncode == 0, out.stderr
    logged = {r["name"] for r in recs if r["type"] == 1 and r["ctx"] and not r["name"].startswith("flor::")}
    assert logged == {"loss", "val_acc"}


# --- 4.0.1's TestArgvMentions and TestReplayModeGate -----------------------------------


def test_bare_replay_token_is_seen(recorded):
    before = run_files(recorded)
    out, recs = replay(recorded, "--apply", "val_acc", "--iter", "epoch=last")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [3] and run_files(recorded) == before


def test_flag_equals_value_is_seen(recorded):
    # `--apply=loss` used to slip through 4.0.1 and silently run forward.
    alone = recorded.run("train.py", "--apply=val_acc", check=False)
    assert refused(alone) and "require --replay_flor" in alone.stderr
    out, recs = replay(recorded, "--apply=val_acc", "--iter=epoch=1")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [1]


def test_unrelated_argv_is_the_scripts_own(project):
    project.write(
        "args.py",
        """
        import argparse
        import flordb as flor
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=1.0)
        flor.log("lr_seen", parser.parse_args().lr)
        """,
    )
    out = project.run("args.py", "--lr=0.1")
    assert out.returncode == 0 and "flordb" not in out.stderr
    assert [r["lr_seen"] for r in project.frame("lr_seen")] == [0.1]


def test_replay_flor_is_the_mode_switch(project):
    project.write("train.py", TRAIN)
    project.run("train.py")
    project.run("train.py")  # no flag: a second forward run
    assert len(run_files(project)) == 2
    project.run("train.py", "--replay_flor", "--apply", "val_acc", "--iter", "epoch=0")
    assert len(run_files(project)) == 2
    rows = project.frame("val_acc")
    assert sorted(r["source"] for r in rows) == ["forward"] * 8 + ["replay"]


# --- 4.0.1's TestIterSpecFor ------------------------------------------------------------


def test_explicit_iter_spec_wins(recorded):
    out, recs = replay(recorded, "--apply", "loss", "--iter", "epoch=1", "--iter", "step=0")
    assert out.returncode == 0, out.stderr
    assert [(r["ctx"][0]["iteration"], r["ctx"][1]["iteration"]) for r in recs if r["name"] == "loss"] == [(1, 0)]


def test_unmentioned_loop_is_replayed_in_full(recorded):
    """Documented-different: an unmentioned loop replays all its iterations here; 4.0.1
    defaults it to `last` (one loss row per epoch) and prints a tip once."""
    out, recs = replay(recorded, "--apply", "loss", "--iter", "epoch=1")
    assert out.returncode == 0, out.stderr
    assert iterations(recs, "loss", depth=1) == [0, 1, 2]
    assert "not given; defaulting" not in out.stdout + out.stderr


def test_no_default_tip_when_nothing_is_defaulted(recorded):
    """Documented-different: 4.0.1 prints "not given; defaulting" once per defaulted loop;
    with no loop narrowed by default there is nothing to announce."""
    out, recs = replay(recorded, "--apply", "val_acc")
    assert out.returncode == 0, out.stderr
    assert iterations(recs) == [0, 1, 2, 3]
    assert "defaulting" not in out.stdout + out.stderr


# --- 4.0.1's TestResolveReplayArgs: `python -m flordb replay` -----------------------------

SWEEP = """
import flordb as flor
lr = flor.arg("lr", 0.01)
for epoch in flor.loop("epoch", range(2)):
    flor.log("val_acc", 90 + epoch)
"""
SWEEP_TODAY = SWEEP + '    flor.log("grad", lr * epoch)\n    flor.log("extra", epoch)\n'


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Runs with lr=0.01 and lr=0.1; today's script adds `grad` and `extra`."""
    p = new_project(tmp_path_factory, "sweep")
    p.write("train.py", SWEEP)
    p.commit_all()
    p.run("train.py")
    p.run("train.py", "--kwargs", "lr=0.1")
    p.write("train.py", SWEEP_TODAY)
    small, large = (r["run_id"] for r in p.runs())
    return p, small, large


def test_new_surface(swept):
    p, small, large = swept
    p.flor("replay", "--apply", "grad,extra", "--where", "lr < 0.05", "--yes")
    rows = [r for r in p.frame("grad", "extra") if r["source"] == "replay"]
    assert {r["run_id"] for r in rows} == {small}
    assert sorted((r["epoch"], r["grad"], r["extra"]) for r in rows) == [(0, 0.0, 0), (1, 0.01, 1)]


def test_legacy_positional(swept):
    p, small, large = swept
    plan = p.flor("replay", "grad", "lr < 0.05", "--dry-run").stdout
    assert plan.startswith("replay grad (line") and "extra" not in plan
    assert small in plan and large not in plan


def test_positional_vars_with_named_where(swept):
    p, small, large = swept
    plan = p.flor("replay", "grad", "--where", "lr < 0.05", "--dry-run").stdout
    assert plan.startswith("replay grad (line") and small in plan and large not in plan


def test_mixing_apply_with_positional_is_rejected(swept):
    # Otherwise "lr < 0.05" would be taken for a statement name.
    p, _, _ = swept
    out = p.flor("replay", "--apply", "grad", "lr < 0.05", "--dry-run", check=False)
    assert out.returncode != 0 and "--apply" in out.stderr and "replay grad" not in out.stdout


def test_nothing_to_apply(swept):
    p, _, _ = swept
    out = p.flor("replay", "--yes", check=False)
    assert out.returncode != 0 and "nothing to apply" in out.stderr
