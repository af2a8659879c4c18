"""Replay is exact or says it is not: loop-carried state outside the enrolled objects is
checkpointed and restored, every re-executed statement is checked against the recorded
values, a segment that diverges is recomputed from the start, and a run that cannot be
reproduced fails instead of filling wrong values.

Ground truth is always a forward run of today's version of the script, with the new
statement, in a separate repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PYTHON, Project, git

EVERY = {"FLOR_EPSILON": "1000"}

# nanoGPT's shape in numpy: `while True` as an endless flor.loop, the next batch fetched at
# the end of each micro-step and used at the start of the next, a best-so-far value, a
# learning rate decayed by hand and an iteration counter: none of them enrolled.
NANO = """
import itertools
import numpy as np
import flordb as flor

np.random.seed(flor.arg("seed", 0))
data = np.random.randn(512, 4)
target = data @ np.array([1.0, -2.0, 0.5, 3.0])
w = np.zeros(4)


def get_batch():
    idx = np.random.randint(0, len(data), 8)
    return data[idx], target[idx]


X, Y = get_batch()
iter_num = 0
best = float("inf")
lr = 0.05
with flor.checkpointing(w=w):
    for _ in flor.loop("iter", itertools.count()):
        for micro in range(2):
            err = X @ w - Y
            grad = X.T @ err / len(X)
            X, Y = get_batch()
            w -= lr * grad / 2
        loss = float(np.mean((data @ w - target) ** 2))
        if loss < best:
            best = loss
        flor.log("loss", loss)
        flor.log("best", best)
        lr *= 0.97
        iter_num += 1
        if iter_num >= 30:
            break
flor.log("final_best", best)
"""
NANO_STMT = ('        flor.log("best", best)\n', '        flor.log("best", best)\n        flor.log("wnorm", float(np.linalg.norm(w)) + lr)\n')
NANO_TODAY = NANO.replace(*NANO_STMT)


def ground_truth(tmp_path: Path, files: dict[str, str], name: str, *args: str) -> dict:
    """`name`'s values by loop position in a forward run of today's code."""
    repo = tmp_path / "ground_truth"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    p = Project(repo)
    for path, text in files.items():
        p.write(path, text)
    p.commit_all()
    p.run("train.py", *args)
    return values(p, name, "forward")


def values(p: Project, name: str, source: str) -> dict:
    out = {}
    for r in p.frame(name):
        if r["source"] == source and r.get(name) is not None:
            key = tuple(r.get(c) for c in ("iter", "epoch", "step") if c in r)
            assert key not in out, f"duplicate row {key}"
            out[key] = r[name]
    return out


def record(project: Project, files: dict[str, str], *args: str) -> str:
    for path, text in files.items():
        project.write(path, text)
    project.commit_all()
    project.run("train.py", *args, env=EVERY)
    return project.runs()[-1]["run_id"]


def test_carried_state_is_checkpointed_and_replay_from_mid_run_is_exact(project: Project, tmp_path: Path):
    truth = ground_truth(tmp_path, {"train.py": NANO_TODAY}, "wnorm")
    run = record(project, {"train.py": NANO})
    listed = project.py(
        f"""
        import json, flordb as flor
        ck = flor.checkpoints({run!r})
        row = ck[(ck.iteration == 10) & (ck.point == "end")].iloc[0]
        print(json.dumps(row.carried))
        """
    )
    assert listed == {"X": "value", "Y": "value", "best": "value", "iter_num": "value", "lr": "value"}
    project.write("train.py", NANO_TODAY)
    out = project.run("train.py", "--replay_flor", "--apply", "wnorm", "--iter", "iter=20,25")
    assert "diverged" not in out.stderr, out.stderr
    got = values(project, "wnorm", "replay")
    assert got == {(20,): truth[(20,)], (25,): truth[(25,)]}
    verified = {r["iter"]: r["verified"] for r in project.frame("wnorm") if r["source"] == "replay"}
    assert verified == {20: True, 25: True}


def test_carried_state_with_flor_replay_and_two_workers(project: Project, tmp_path: Path):
    truth = ground_truth(tmp_path, {"train.py": NANO_TODAY}, "wnorm")
    record(project, {"train.py": NANO})
    project.write("train.py", NANO_TODAY)
    out = project.flor("replay", "wnorm", "--workers", "2", "--yes")
    assert "replayed 1 of 1" in out.stdout, out.stdout + out.stderr
    assert values(project, "wnorm", "replay") == truth


# The data cursor lives in a helper module's global: the script's analysis cannot see it,
# so no checkpoint holds it. The check catches the divergence; the replay starts over.
CURSOR_HELPER = """
import numpy as np
np.random.seed(1)
data = np.random.randn(256, 3)
_pos = 0


def next_batch():
    global _pos
    batch = data[_pos:_pos + 16]
    _pos = (_pos + 16) % len(data)
    return batch
"""
CURSOR = """
import numpy as np
import flordb as flor
from helper import next_batch

w = np.zeros(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(6)):
        for step in flor.loop("step", range(3)):
            xb = next_batch()
            w -= 0.1 * (xb @ w - xb.sum(axis=1)) @ xb / len(xb)
            flor.log("loss", float(((xb @ w - xb.sum(axis=1)) ** 2).mean()))
        flor.log("w0", float(w[0]))
"""
CURSOR_TODAY = CURSOR.replace(
    '            flor.log("loss", float(((xb @ w - xb.sum(axis=1)) ** 2).mean()))\n',
    '            flor.log("loss", float(((xb @ w - xb.sum(axis=1)) ** 2).mean()))\n            flor.log("xsum", float(xb.sum()))\n',
)


def test_state_the_analysis_cannot_see_is_caught_and_recomputed_from_the_start(project: Project, tmp_path: Path):
    truth = ground_truth(tmp_path, {"train.py": CURSOR_TODAY, "helper.py": CURSOR_HELPER}, "xsum")
    record(project, {"train.py": CURSOR, "helper.py": CURSOR_HELPER})
    project.write("train.py", CURSOR_TODAY)
    out = project.run("train.py", "--replay_flor", "--apply", "xsum", "--iter", "epoch=3,4")
    assert "diverged from its recorded values" in out.stderr, out.stderr
    assert "replaying it again from the start" in out.stderr
    got = values(project, "xsum", "replay")
    assert got == {k: v for k, v in truth.items() if k[0] in (3, 4)} and len(got) == 6
    prov = project.py(
        """
        import json, flordb as flor
        print(json.dumps(flor.query("select verification from replays").iloc[0, 0]))
        """
    )
    assert json.loads(prov)["retried"], prov


NOISY = """
import os
import numpy as np
import flordb as flor

w = np.ones(2)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        w *= 0.9
        flor.log("w", float(w.sum()) + int.from_bytes(os.urandom(2), "little"))
"""


def test_a_run_that_cannot_be_reproduced_fails_and_records_nothing(project: Project):
    record(project, {"train.py": NOISY})
    project.write("train.py", NOISY.replace("        w *= 0.9\n", "        w *= 0.9\n        flor.log('half', float(w[0]) / 2)\n"))
    out = project.run("train.py", "--replay_flor", "--apply", "half", "--iter", "epoch=2", check=False)
    assert out.returncode != 0
    assert "does not reproduce its recorded values even when recomputed from the start" in out.stderr, out.stderr
    assert values(project, "half", "replay") == {}
    cli = project.flor("replay", "half", "--iter", "epoch=2", "--yes", check=False)
    assert cli.returncode != 0
    assert "does not reproduce" in cli.stdout + cli.stderr
    assert "replayed 0 of 1" in cli.stdout, cli.stdout


# A batch stream that is a generator cannot be saved with a checkpoint: replay starts
# from the loop's entry, and says why.
STREAM = """
import numpy as np
import flordb as flor

np.random.seed(0)
data = np.random.randn(64, 2)


def batches():
    while True:
        for i in range(0, len(data), 8):
            yield data[i:i + 8]


stream = batches()
w = np.zeros(2)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(5)):
        xb = next(stream)
        w += 0.1 * xb.mean(axis=0)
        flor.log("w0", float(w[0]))
"""


def test_state_that_cannot_be_saved_sends_replay_back_to_the_loop_entry(project: Project, tmp_path: Path):
    today = STREAM.replace('        flor.log("w0", float(w[0]))\n', '        flor.log("w0", float(w[0]))\n        flor.log("w1", float(w[1]))\n')
    truth = ground_truth(tmp_path, {"train.py": today}, "w1")
    record(project, {"train.py": STREAM})
    project.write("train.py", today)
    plan = project.flor("replay", "w1", "--iter", "epoch=3", "--dry-run")
    assert "stream" in plan.stdout and "generator" in plan.stdout, plan.stdout
    out = project.run("train.py", "--replay_flor", "--apply", "w1", "--iter", "epoch=3")
    assert "cannot start an iteration" in out.stderr and "generator" in out.stderr, out.stderr
    assert values(project, "w1", "replay") == {(3,): truth[(3,)]}


TIMED = """
import time
import numpy as np
import flordb as flor

w = np.ones(3)
t0 = time.time()
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        w *= 0.5
        t1 = time.time()
        flor.log("secs", t1 - t0)
        t0 = t1
        flor.log("w", float(w.sum()))
"""


def test_values_that_read_the_clock_are_not_compared(project: Project):
    record(project, {"train.py": TIMED})
    project.write("train.py", TIMED.replace('        flor.log("w", float(w.sum()))\n', '        flor.log("w", float(w.sum()))\n        flor.log("w2", float((w ** 2).sum()))\n'))
    out = project.run("train.py", "--replay_flor", "--apply", "w2")
    assert "diverged" not in out.stderr, out.stderr
    assert values(project, "w2", "replay") == {(e,): float(3 * 0.25 ** (e + 1)) for e in range(4)}
