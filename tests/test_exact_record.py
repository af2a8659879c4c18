"""Nothing changed on the way in or on the way back: a damaged checkpoint is named and
replay stays exact, the recorded code version is the code the run started with, and
values keep every digit (integers beyond 64 bits, arrays, NaN inside lists).

Ground truth is a forward run of the same code: a new statement that reads nothing
random leaves the old version's numbers unchanged, so the newest forward run of today's
script, with the same seed, has the values the replay must produce."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import Project

EVERY = {"FLOR_EPSILON": "1000"}

# The shape: the script's own RandomState, read in a nested loop, that carries
# across epochs beside the enrolled weights.
RNG = """
import numpy as np
import flordb as flor

rs = np.random.RandomState(flor.arg("seed", 7))
w = np.zeros(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(4)):
            w -= 0.1 * rs.randn(3)
        flor.log("loss", float((w ** 2).sum()))
"""
RNG_TODAY = RNG.replace(
    '        flor.log("loss", float((w ** 2).sum()))\n',
    '        flor.log("loss", float((w ** 2).sum()))\n        flor.log("wsum", float(w.sum()) * 100)\n        flor.log("twice", epoch * 2)\n',
)


def _values(p: Project, name: str, source: str, run: str) -> dict:
    return {r["epoch"]: r[name] for r in p.frame(name) if r["source"] == source and r["run_id"] == run and r.get(name) is not None}


def _chunk_path(p: Project, run: str, key: str, which: str) -> Path:
    manifest = json.loads((p.path / ".flor" / "ckpts" / run / f"{key}.json").read_text())
    chunk = manifest["skeleton"]["hash"] if which == "skeleton" else manifest["leaves"][0]["hash"]
    return p.path / ".flor" / "objects" / chunk[:2] / chunk[2:]


def _damage(path: Path, how: str) -> None:
    if how == "flipped":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flipped", "truncated", "deleted"])
def test_a_damaged_end_checkpoint_is_named_and_replay_is_exact(project: Project, how: str):
    project.write("train.py", RNG)
    project.commit_all()
    project.run("train.py", env=EVERY)
    old = project.runs()[-1]["run_id"]
    _damage(_chunk_path(project, old, "0_2_end", "skeleton"), how)
    project.write("train.py", RNG_TODAY)
    project.commit_all()
    project.run("train.py")
    new = project.runs()[-1]["run_id"]
    out = project.flor("replay", "wsum", "--iter", "epoch=3", "--yes")
    assert "0_2_end" in out.stderr and ("missing" if how == "deleted" else "corrupt") in out.stderr, out.stderr
    replayed = _values(project, "wsum", "replay", old)
    assert replayed == {3: _values(project, "wsum", "forward", new)[3]}


def test_a_damaged_nested_checkpoint_is_named_and_the_loop_recomputed(project: Project):
    project.write("train.py", RNG)
    project.commit_all()
    project.run("train.py", env=EVERY)
    old = project.runs()[-1]["run_id"]
    assert (project.path / ".flor" / "ckpts" / old / "0_3_nested0.json").exists()
    _damage(_chunk_path(project, old, "0_3_nested0", "skeleton"), "flipped")
    project.write("train.py", RNG_TODAY)
    project.commit_all()
    project.run("train.py")
    new = project.runs()[-1]["run_id"]
    # `twice` reads nothing the nested loop builds: the replay skips the nested loops by
    # restoring their checkpoints, and must recompute the one whose checkpoint is bad.
    out = project.flor("replay", "twice", "loss", "--yes")
    assert "0_3_nested0" in out.stderr and "is corrupt" in out.stderr and "cannot be used" in out.stderr, out.stderr
    assert _values(project, "twice", "replay", old) == {e: e * 2 for e in range(5)}
    fwd = _values(project, "loss", "forward", new)
    assert _values(project, "loss", "replay", old) == fwd


BIG = 2**70 + 1

VALUES = """
import numpy as np
import flordb as flor

seed = flor.arg("seed", 1)
flor.log("seed_text", str(seed))
flor.log("ints", np.arange(2000))
flor.log("f32", (np.arange(6, dtype=np.float32) / 3).reshape(2, 3))
flor.log("f64", np.array([0.1, 1 / 3, np.nan, np.inf]))
flor.log("in_list", [1.5, float("nan"), 2**70])
flor.log("huge", np.linspace(0, 1, 50_000))
"""


def test_values_keep_every_digit(project: Project):
    import numpy as np

    project.write("train.py", VALUES)
    project.commit_all()
    project.run("train.py", "--kwargs", f"seed={BIG}")
    got = project.py(
        """
        import json, math, numpy as np, flordb as flor
        df = flor.dataframe("seed", "seed_text", "ints", "f32", "f64", "in_list", "huge")
        row = df.iloc[0]
        out = {}
        out["seed"] = [type(row["seed"]).__name__, str(row["seed"])]
        out["seed_text"] = row["seed_text"]
        out["ints"] = row["ints"] == list(range(2000))
        out["f32"] = row["f32"] == (np.arange(6, dtype=np.float32) / 3).reshape(2, 3).tolist()
        f = row["f64"]
        out["f64"] = f[:2] == [0.1, 1 / 3] and math.isnan(f[2]) and f[3] == math.inf
        l = row["in_list"]
        out["in_list"] = l[0] == 1.5 and math.isnan(l[1]) and l[2] == 2**70 and type(l[2]) is int
        out["huge"] = row["huge"]
        print(json.dumps(out))
        """
    )
    assert got["seed"] == ["int", str(BIG)] and got["seed_text"] == str(BIG)
    assert got["ints"] and got["f32"] and got["f64"] and got["in_list"], got
    # Too large for a record: stored as an .npy artifact, exactly, and logged as its path.
    path = project.path / got["huge"] if not os.path.isabs(got["huge"]) else Path(got["huge"])
    assert path.suffix == ".npy" and np.array_equal(np.load(path), np.linspace(0, 1, 50_000))


def test_replay_receives_the_exact_big_argument(project: Project):
    script = "import flordb as flor\nseed = flor.arg('seed', 1)\nfor e in flor.loop('epoch', range(2)):\n    flor.log('x', e)\n"
    project.write("train.py", script)
    project.commit_all()
    project.run("train.py", "--kwargs", f"seed={BIG}", env=EVERY)
    project.write("train.py", script + "    pass\nflor.log('seed_text', str(seed))\n")
    project.flor("replay", "seed_text", "--yes")
    rows = [r for r in project.frame("seed_text") if r["source"] == "replay"]
    assert [r["seed_text"] for r in rows] == [str(BIG)]


CONFIG_READER = """
import config
import flordb as flor

flor.arg("lr", config.LR)
with open("config.py", "w") as f:  # the next run of a sweep, written at once
    f.write("LR = 0.999\\n")
for epoch in flor.loop("epoch", range(2)):
    flor.log("lr_used", config.LR)
"""


def _recorded(project: Project, path: str) -> str:
    version = project.runs()[-1]["version"]
    return project.git("show", f"{version}:{path}")


def test_the_recorded_code_is_the_code_at_the_start(project: Project):
    project.write("train.py", CONFIG_READER)
    for i in range(4):
        project.write("config.py", f"LR = 0.00{i + 1}\n")
        project.run("train.py")
        assert _recorded(project, "config.py") == f"LR = 0.00{i + 1}", i


def test_a_file_changed_after_the_start_is_reported(project: Project):
    script = (
        "import config\n"
        "with open('config.py', 'w') as f:\n"
        "    f.write('LR = 0.5\\n')\n"
        "import flordb as flor\n"
        "flor.log('lr', config.LR)\n"
    )
    project.write("train.py", script)
    project.write("still.py", "import config\nimport flordb as flor\nflor.log('lr', config.LR)\n")
    project.write("config.py", "LR = 0.1\n")
    project.commit_all()
    out = project.run("train.py")
    assert "config.py changed after this run started" in out.stderr, out.stderr
    run = project.runs()[-1]["run_id"]
    lines = [json.loads(x) for x in (project.path / ".flor" / "runs" / f"{run}.jsonl").read_text().splitlines()]
    assert [x["value"] for x in lines if x["name"] == "flor::code_changed"] == [{"files": ["config.py"]}]
    # A run whose files held still says nothing; nor one whose script rewrites its
    # config after the snapshot read it (what a sweep does for the next run).
    out = project.run("still.py")
    assert "changed after this run started" not in out.stderr
    project.write("config_writer.py", CONFIG_READER)
    out = project.run("config_writer.py")
    assert "changed after this run started" not in out.stderr


def test_a_same_size_edit_in_the_same_second_as_a_commit_is_recorded(project: Project):
    project.write("train.py", "import config\nimport flordb as flor\nflor.log('a', config.A)\n")
    for i in range(3):
        pad = "#" * i  # each round a new size, so the test's own commit sees the edit
        project.write("config.py", f"A = 1{pad}\n")
        project.commit_all(f"c{i}")
        project.write("config.py", f"A = 2{pad}\n")  # same size, same second
        project.run("train.py")
        assert _recorded(project, "config.py") == f"A = 2{pad}", i
        time.sleep(0.05)
