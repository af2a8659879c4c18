"""flordb 4.0.1's public surface beyond the core calls: its constants and modules, its
retired calls, the positional order of ``flor.replay``, and ``--apply`` of an output
channel. Each as a user of 4.0.1 would call it, in a fresh repository."""

from __future__ import annotations

from conftest import Project


def test_constants_modules_and_retired_calls(project: Project):
    project.write(
        "train.py",
        """
import json, os
import flordb as flor
from flordb import api, capture, database, utils
flor.restore("ckpt.pth")
flor.restore("ckpt.pth")
flor.set_ckpt_interval(30)
for e in flor.loop("epoch", range(2)):
    flor.log("x", e)
out = {n: str(getattr(flor, n)) for n in ("CURRDIR", "PROJID", "FLORDIR", "RUNS_DIR", "DB_PATH", "SCRIPTNAME")}
out["clock"] = flor.Clock.current_datetime
out["words"] = [utils.discretize(s) for s in (5, 50, 500, 5000)]
out["api"] = api.log is flor.log and capture.set_capture is flor.set_capture and database.query is flor.query
print(json.dumps(out))
""",
    )
    project.commit_all()
    out = project.run("train.py")
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    root = str(project.path)
    assert got["CURRDIR"] == root and got["PROJID"] == project.path.name
    assert got["FLORDIR"] == f"{root}/.flor" and got["RUNS_DIR"] == f"{root}/.flor/runs"
    assert got["DB_PATH"].startswith(f"{root}/.flor/") and got["SCRIPTNAME"] == "train.py"
    assert got["clock"][:4].isdigit() and "T" in got["clock"]
    assert got["words"] == ["under 10 seconds", "under 2 minutes", "up to 15 minutes", "more than 15 minutes"]
    assert got["api"] is True
    assert out.stderr.count("flor.restore(...) no longer has an effect") == 1
    assert "set_ckpt_interval(...) no longer has an effect" in out.stderr
    latest = project.py(
        "import json, flordb as flor\nfrom flordb.utils import latest\n"
        "print(json.dumps(len(latest(flor.dataframe('x')))))"
    )
    assert latest == 2


SCRIPT = """
import flordb as flor
for epoch in flor.loop("epoch", range(3)):
    print(f"epoch {epoch} done")
    flor.log("x", epoch)
"""


def test_replay_positional_orders_and_an_output_channel(project: Project):
    project.write("train.py", SCRIPT)
    project.commit_all()
    project.run("train.py", env={"FLOR_EPSILON": "1000"})
    project.write("train.py", SCRIPT.replace('    flor.log("x", epoch)\n', '    flor.log("x", epoch)\n    flor.log("y", epoch * 10)\n'))
    got = project.py(
        """
        import json, flordb as flor
        a = flor.replay(["y"], [("epoch", "1")], "x >= 0", yes=True)   # 4.0.1: narrow_iters, where_clause
        b = flor.replay("y", "x >= 0", "train.py", yes=True)           # 3.x: where_clause, path
        try:
            flor.replay("y", None, None, None, None, yes=True)
            c = "accepted"
        except TypeError as e:
            c = str(e)
        rows = a[a.source == "replay"]
        print(json.dumps([sorted(rows["epoch"].dropna().astype(int).tolist()), len(b[b.source == "replay"]), c]))
        """
    )
    assert got[0] == [1] and got[1] == 3 and "at most 4 positional" in got[2]
    old = project.runs()[0]["run_id"]
    project.run("train.py", "--replay_flor", "--apply", "io::stdout", "--replay_run", old)
    lines = project.py(
        "import json, flordb as flor\ndf = flor.io('io::stdout')\n"
        "print(json.dumps(df[df.source == 'replay']['line'].tolist()))"
    )
    assert lines == ["epoch 0 done", "epoch 1 done", "epoch 2 done"]


ECHOED = """
import flordb as flor
for epoch in flor.loop("epoch", range(2)):
    for step in flor.loop("step", ["a", "b"]):
        flor.log("loss", epoch + 0.5)
    print(f"epoch {epoch} done")
flor.log("final", 1)
"""


def test_the_echo_is_a_switch_and_is_not_captured(project: Project):
    project.write("train.py", ECHOED)
    project.commit_all()
    quiet = project.run("train.py")
    assert quiet.stdout == "epoch 0 done\nepoch 1 done\n"
    loud = project.run("train.py", env={"FLOR_ECHO": "1"})
    assert loud.stdout.splitlines() == [
        "epoch: 0, step: a, loss: 0.5",
        "epoch: 0, step: b, loss: 0.5",
        "epoch 0 done",
        "epoch: 1, step: a, loss: 1.5",
        "epoch: 1, step: b, loss: 1.5",
        "epoch 1 done",
        "final: 1",
    ]
    project.write("switch.py", "import flordb as flor\nflor.set_echo(True)\nflor.log('a', 1)\nflor.set_echo(False)\nflor.log('b', 2)\n")
    assert project.run("switch.py").stdout == "a: 1\n"
    # Only what the script printed itself is its captured output.
    lines = project.py("import json, flordb as flor\nprint(json.dumps(flor.io('io::stdout')['line'].tolist()))")
    assert lines == ["epoch 0 done", "epoch 1 done"] * 2


ERRORS = """
import json, flordb as flor
out = {}
def caught(f, *classes):
    try:
        f()
        return "no error"
    except Exception as e:
        return [c.__name__ for c in classes if isinstance(e, c)]
out["unknown_run"] = caught(lambda: flor.checkpoints("2020-01-01T00:00:00.000000"), flor.RunNotFoundError, ValueError, flor.FlorError)
out["outside"] = caught(lambda: flor.checkpoints("../../outside"), ValueError)
run = flor.runs().run_id.iloc[-1]
out["no_checkpoint"] = caught(lambda: flor.load_checkpoint(run), flor.CheckpointNotFoundError, FileNotFoundError, flor.CheckpointError)
out["missing_arg"] = caught(lambda: flor.arg("never_given"), flor.ArgError, RuntimeError)
print(json.dumps(out))
"""


def test_errors_are_flordb_classes_and_the_ones_401_raised(project: Project):
    project.write("train.py", "import flordb as flor\nflag = flor.arg('flag', True)\nflor.log('flag_was', flag)\n")
    project.commit_all()
    # An empty value is false for a bool default, as in 4.0.1; a typo is refused.
    project.run("train.py", "--kwargs", "flag=")
    bad = project.run("train.py", "--kwargs", "flag=ture", check=False)
    assert bad.returncode != 0 and "cannot read it as bool" in bad.stderr
    assert [r["flag_was"] for r in project.frame("flag_was")] == [False]
    got = project.py(ERRORS)
    assert got == {
        "unknown_run": ["RunNotFoundError", "ValueError", "FlorError"],
        "outside": ["ValueError"],
        "no_checkpoint": ["CheckpointNotFoundError", "FileNotFoundError", "CheckpointError"],
        "missing_arg": ["ArgError", "RuntimeError"],
    }


def test_flor_replay_recaptures_an_output_channel_across_runs(project: Project):
    project.write("train.py", SCRIPT)
    project.commit_all()
    project.run("train.py")
    project.write("train.py", SCRIPT.replace('print(f"epoch {epoch} done")', 'print(f"epoch {epoch} finished")'))
    project.commit_all()
    project.run("train.py")
    out = project.flor("replay", "io::stdout", "--yes")
    assert "replayed 2 of 2" in out.stdout, out.stdout + out.stderr
    lines = project.py(
        "import json, flordb as flor\ndf = flor.io('io::stdout')\n"
        "print(json.dumps(sorted(df[df.source == 'replay']['line'].tolist())))"
    )
    # Each run prints what its own version printed: no statement is propagated.
    assert lines == sorted([f"epoch {e} done" for e in range(3)] + [f"epoch {e} finished" for e in range(3)])
