"""Hindsight replay across runs and versions: ``flor replay`` and ``flor.replay``.

Real scripts in throwaway git repositories: runs recorded with two versions of a numpy
training script, a new statement added to today's code, replayed into the old runs.
Replayed values are checked against a forward run of today's code with the same args
(training is deterministic), bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time


from conftest import PYTHON, Project

V1 = """
import numpy as np
import flordb as flor

seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
data = flor.arg("data", "a")
rng = np.random.default_rng(seed)
X = np.loadtxt(f"data/{data}.txt")
w = rng.standard_normal(X.shape[1])
with flor.checkpointing(w=w, rng=rng):
    for epoch in flor.loop("epoch", range(epochs)):
        for step in flor.loop("step", range(5)):
            i = rng.integers(len(X))
            w -= 0.1 * (X[i] @ w - 1.0) * X[i]
            flor.log("loss", float((X[i] @ w - 1.0) ** 2))
        flor.log("norm", float(np.linalg.norm(w)))
print("trained", float(w.sum()))
"""

# Version 2 renames the weights and adds a momentum buffer.
V2 = (
    V1.replace("w = rng", "weights = rng")
    .replace("w=w", "weights=weights, m=m")
    .replace("            w -= 0.1 * (X[i] @ w - 1.0) * X[i]\n", "            m *= 0.5\n            m += 0.1 * (X[i] @ weights - 1.0) * X[i]\n            weights -= m\n")
    .replace("(X[i] @ w - 1.0) ** 2", "(X[i] @ weights - 1.0) ** 2")
    .replace("np.linalg.norm(w)", "np.linalg.norm(weights)")
    .replace("w.sum()", "weights.sum()")
    .replace("with flor.checkpointing", "m = np.zeros_like(weights)\nwith flor.checkpointing")
)

# Today's code: version 2 plus an epoch-level and a step-level statement.
TODAY = V2.replace(
    '        flor.log("norm", float(np.linalg.norm(weights)))\n',
    '        flor.log("norm", float(np.linalg.norm(weights)))\n        flor.log("w_sum", float(weights.sum()))\n',
).replace(
    '            flor.log("loss", float((X[i] @ weights - 1.0) ** 2))\n',
    '            flor.log("loss", float((X[i] @ weights - 1.0) ** 2))\n            flor.log("w0", float(weights[0]))\n',
)

# What propagation makes of today's statements in version 1.
V1_WITH_STATEMENTS = V1.replace(
    '        flor.log("norm", float(np.linalg.norm(w)))\n',
    '        flor.log("norm", float(np.linalg.norm(w)))\n        flor.log("w_sum", float(w.sum()))\n',
).replace(
    '            flor.log("loss", float((X[i] @ w - 1.0) ** 2))\n',
    '            flor.log("loss", float((X[i] @ w - 1.0) ** 2))\n            flor.log("w0", float(w[0]))\n',
)


def write_data(p: Project) -> None:
    rows = {
        "a": [[1.0, 0.5, -0.2], [0.3, 1.0, 0.1], [0.2, -0.4, 1.0], [0.9, 0.1, 0.4]],
        "b": [[0.5, 0.5, 0.5], [1.0, -1.0, 0.2], [0.1, 0.2, 0.3]],
    }
    for name, data in rows.items():
        p.write(f"data/{name}.txt", "\n".join(" ".join(map(str, r)) for r in data) + "\n")


def versions(p: Project) -> None:
    """v1: runs seed=1 (data a), seed=2 (data b); v2: seed=3 (data a). Today's
    statements are an uncommitted edit."""
    p.write(".gitignore", "data/\n")
    write_data(p)
    p.write("train.py", V1)
    p.commit_all("v1")
    p.run("train.py", "--kwargs", "seed=1", "data=a")
    p.run("train.py", "--kwargs", "seed=2", "data=b")
    p.write("train.py", V2)
    p.commit_all("v2")
    p.run("train.py", "--kwargs", "seed=3", "data=a", "epochs=5")
    p.write("train.py", TODAY)


def replay(p: Project, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = p.flor("replay", *args, "--yes", check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"flor replay exited {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def checkout_state(p: Project) -> dict:
    """Everything of the user's checkout that replay must leave alone."""
    files = {}
    for path in sorted(p.path.rglob("*")):
        rel = path.relative_to(p.path)
        if rel.parts[0] in (".git", ".flor") or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "status": p.git("status", "--porcelain", "--untracked-files=all"),
        "stash": p.git("stash", "list"),
        "head": p.git("rev-parse", "HEAD"),
        "symbolic": p.git("symbolic-ref", "-q", "HEAD", check=False),
        "branches": p.git("for-each-ref", "refs/heads", "refs/stash"),
        "index": p.git("ls-files", "--stage", "--debug"),
        "worktrees": p.git("worktree", "list", "--porcelain"),
        "files": files,
    }


def rows(p: Project, source: str, *names: str) -> dict:
    """{(seed, epoch, step?): {name: value}} of the rows from ``source``."""
    out = {}
    for row in p.frame("seed", *names):
        if row["source"] != source:
            continue
        key = (row["seed"], row.get("epoch"), row.get("step"))
        vals = {n: row[n] for n in names if row.get(n) is not None}
        if vals:
            out.setdefault(key, {}).update(vals)
    return out


def replay_rows(p: Project, *names: str) -> dict:
    return rows(p, "replay", *names)


def forward_rows(p: Project, *names: str) -> dict:
    return rows(p, "forward", *names)


def test_replay_across_versions_is_exact_and_leaves_the_checkout_alone(project: Project):
    p = project
    versions(p)
    # Make the checkout as busy as a user's: a stash entry, a staged and an untracked file.
    p.write("notes.txt", "draft\n")
    p.git("stash", "push", "-q", "--include-untracked", "--", "notes.txt")
    p.write("staged.txt", "staged\n")
    p.git("add", "staged.txt")
    p.write("scratch.txt", "untracked\n")
    before = checkout_state(p)

    out = replay(p, "w_sum", "w0", "--where", "seed >= 2")
    assert "w_sum: placed at line" in out.stdout
    assert "replayed 2 of 2 run(s)" in out.stdout, out.stdout
    assert checkout_state(p) == before
    assert not list((p.path / ".flor" / "worktrees").glob("*"))
    # Provenance: which statements, from which version, for each run's replay file.
    prov = p.py(
        """
        import json, flordb as flor
        df = flor.query("select runs.run_id, runs.version, replays.version as replayed_version, statements "
                        "from replays join runs on runs.run = replays.run")
        print(json.dumps(df.to_dict(orient="records")))
        """
    )
    assert len(prov) == 2
    for row in prov:
        assert row["replayed_version"] == row["version"]
        texts = [s["text"] for s in json.loads(row["statements"])]
        assert texts == ['flor.log("w_sum", float(weights.sum()))', 'flor.log("w0", float(weights[0]))']

    # Epoch-level: one value per epoch; step-level: one per step.
    epochs, steps = replay_rows(p, "w_sum"), replay_rows(p, "w0")
    assert {k[0] for k in epochs} == {k[0] for k in steps} == {2, 3}
    assert len(epochs) == 4 + 5 and all(k[2] is None for k in epochs)
    assert len(steps) == (4 + 5) * 5

    # The same replay again replaces its values instead of adding copies.
    replay(p, "w_sum", "w0", "--where", "seed >= 2")
    assert replay_rows(p, "w_sum") == epochs and replay_rows(p, "w0") == steps
    n = sum(1 for r in p.frame("w_sum") if r["source"] == "replay" and r["w_sum"] is not None)
    assert n == 9

    # Each version with the statements in it, run forward with the same args, logs
    # the same values bit for bit.
    p.run("train.py", "--kwargs", "seed=3", "data=a", "epochs=5")
    p.write("train.py", V1_WITH_STATEMENTS)
    p.run("train.py", "--kwargs", "seed=2", "data=b")
    p.write("train.py", TODAY)
    assert forward_rows(p, "w_sum") == epochs
    assert forward_rows(p, "w0") == steps



def test_plan_explains_unplaceable_statements_and_failures_stay_isolated(project: Project):
    p = project
    versions(p)
    # A statement that reads version 2's momentum buffer: version 1 has none.
    p.write("train.py", TODAY.replace('flor.log("w_sum", float(weights.sum()))', 'flor.log("m_norm", float(np.linalg.norm(m)))'))
    dry = replay(p, "m_norm", "--dry-run", check=False)
    assert dry.returncode == 0, dry.stderr
    assert 'm_norm: cannot place: free variable "m" has no counterpart in this version' in dry.stdout
    assert "no statement could be placed in its version" in dry.stdout
    assert "total: 1 run(s), 1 task(s)" in dry.stdout
    assert not (p.path / ".flor" / "replays").exists()

    # Another version-2 run whose data is gone by replay time: its task fails, alone.
    p.write("data/c.txt", "1 0.2 0.3\n0.5 0.1 0.2\n")
    p.run("train.py", "--kwargs", "seed=4", "data=c")
    (p.path / "data" / "c.txt").unlink()
    out = replay(p, "m_norm", check=False)
    assert out.returncode == 1
    assert "FileNotFoundError" in out.stderr and "data/c.txt" in out.stderr, out.stderr
    assert "nothing recorded for this run" in out.stderr
    got = replay_rows(p, "m_norm")
    assert {k[0] for k in got} == {3}
    assert len(got) == 5


def test_python_replay_selects_with_pandas_and_returns_the_columns(project: Project):
    p = project
    versions(p)
    got = p.py(
        """
        import json, flordb as flor
        df = flor.replay(["w_sum"], where_clause='w_sum.isna() and seed.astype("float") < 3', path="train.py")
        rows = df[df["source"] == "replay"]
        print(json.dumps({"columns": list(df.columns), "seeds": sorted(set(int(s) for s in rows["seed"])),
                          "n": int(rows["w_sum"].notna().sum())}))
        """
    )
    assert {"w_sum", "seed", "epoch"} <= set(got["columns"])
    assert got["seeds"] == [1, 2]
    assert got["n"] == 8


def test_workers_share_one_pool_and_give_the_same_values(project: Project):
    p = project
    versions(p)
    one = replay(p, "w0", "--run", "dummy", check=False)
    assert one.returncode == 2 and 'no recorded run "dummy"' in one.stderr
    out = replay(p, "w0", "--workers", "2")
    assert "on 2 worker(s)" in out.stdout
    assert out.stderr.count(": done in") >= 3, out.stderr
    two = replay_rows(p, "w0")
    # Line selectors name the same statement.
    line = TODAY.splitlines().index('            flor.log("w0", float(weights[0]))') + 1
    replay(p, f"@{line}")
    assert replay_rows(p, "w0") == two
    assert len(two) == (4 + 4 + 5) * 5


SLOW = V1.replace(
    '        flor.log("norm", float(np.linalg.norm(w)))\n',
    '        flor.log("norm", float(np.linalg.norm(w)))\n        time.sleep(0.3)\n',
).replace("import numpy as np\n", "import time\nimport numpy as np\n")


def test_ctrl_c_leaves_the_checkout_exactly_as_it_was(project: Project):
    p = project
    p.write(".gitignore", "data/\n")
    write_data(p)
    p.write("train.py", SLOW)
    p.commit_all("slow")
    p.run("train.py", "--kwargs", "epochs=30")
    p.write("train.py", SLOW.replace('        time.sleep(0.3)\n', '        time.sleep(0.3)\n        flor.log("w_sum", float(w.sum()))\n'))
    p.write("wip.txt", "uncommitted\n")
    before = checkout_state(p)
    proc = subprocess.Popen(
        [PYTHON, "-m", "flordb", "replay", "w_sum", "--yes"],
        cwd=p.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worktrees = p.path / ".flor" / "worktrees"
    deadline = time.time() + 60
    during = None
    while time.time() < deadline:
        if worktrees.exists() and any(worktrees.iterdir()) and list((p.path / ".flor" / "tmp" / "replay-logs").glob("*.log")):
            time.sleep(1.0)
            during = checkout_state(p)
            break
        time.sleep(0.05)
    assert during is not None, proc.communicate(timeout=30)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "interrupted" in err, err
    # While it ran, git saw one more worktree and nothing else; after, nothing at all.
    during.pop("worktrees")
    state = checkout_state(p)
    assert state == before
    assert {k: v for k, v in before.items() if k != "worktrees"} == during
    assert not any(worktrees.iterdir())
    assert not list((p.path / ".flor").glob("replays/*/*.jsonl"))


def test_missing_versions_and_checkpoints_are_reported_not_fatal(project: Project):
    p = project
    versions(p)
    runs = {r["run_id"]: r for r in p.runs()}
    seeds = {row["run_id"]: row["seed"] for row in p.frame() if row["source"] == "forward"}
    by_seed = {s: rid for rid, s in seeds.items()}
    # Version 1 (seeds 1 and 2) is gone from the repository (a clone without refs/flor/*).
    gone = runs[by_seed[1]]["version"]
    for seed in (1, 2):
        p.git("update-ref", "-d", f"refs/flor/runs/{by_seed[seed]}")
    p.git("reflog", "expire", "--expire=now", "--all")
    p.git("gc", "-q", "--prune=now")
    assert p.git("cat-file", "-t", gone, check=False) == ""
    # Seed 3's checkpoints are gone (they stay on the machine that recorded them).
    import shutil

    shutil.rmtree(p.path / ".flor" / "ckpts" / by_seed[3])
    out = replay(p, "w_sum", check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    for seed in (1, 2):
        assert f"run {by_seed[seed]}: skipped: its code version {gone[:10]} is not in this repository" in out.stdout
    assert "no checkpoints: recomputed from the start" in out.stdout
    assert "replayed 1 of 3 run(s)" in out.stdout
    got = replay_rows(p, "w_sum")
    assert {k[0] for k in got} == {3}
    # Recomputed from the start, seed 3's values are those a forward run logs.
    p.run("train.py", "--kwargs", "seed=3", "data=a", "epochs=5")
    fwd = forward_rows(p, "w_sum")
    assert {k: v for k, v in got.items() if k[0] == 3} == fwd
