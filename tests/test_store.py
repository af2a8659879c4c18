"""The store: JSONL files are the truth, the SQLite cache follows them."""

from __future__ import annotations

import json

from conftest import Project


def flordb4_line(tstamp: str, ctx, name: str, value, kind: int = 1) -> str:
    return json.dumps({"projid": "proj", "tstamp": tstamp, "filename": "train.py", "ctx": ctx, "name": name, "value": value, "type": kind})


def test_flordb4_run_files_import_unchanged(project: Project):
    runs = project.path / ".flor" / "runs"
    runs.mkdir(parents=True)
    ts = "2026-08-13T11:27:06.417615"
    lines = [flordb4_line(ts, None, "lr", 0.01)]
    for e in range(2):
        ctx = [{"name": "epoch", "iteration": e, "value": str(e)}]
        lines.append(flordb4_line(ts, ctx, "acc", 0.5 + e / 10))
    lines.append(flordb4_line(ts, None, "time::script", 1.5, 3))
    (runs / f"{ts}.jsonl").write_text("\n".join(lines) + "\n")
    rows = project.frame("lr", "acc")
    assert [(r["epoch"], r["lr"], r["acc"]) for r in rows] == [(0, 0.01, 0.5), (1, 0.01, 0.6)]
    assert rows[0]["tstamp"].startswith("2026-08-13 11:27:06.417615")
    (run,) = project.runs()
    assert run["run_id"] == ts and run["status"] == "finished"


def test_unpack_rebuilds_the_cache_and_is_idempotent(trained: Project):
    before = trained.frame("lr", "loss")
    (trained.path / ".flor" / "flor.db").unlink()
    for suffix in ("-wal", "-shm"):
        p = trained.path / ".flor" / f"flor.db{suffix}"
        if p.exists():
            p.unlink()
    assert trained.frame("lr", "loss") == before
    out = trained.flor("unpack")
    assert "from 2 run file(s)" in out.stdout
    trained.flor("unpack")
    assert trained.frame("lr", "loss") == before


def test_deleted_run_files_leave_the_cache(trained: Project):
    files = sorted((trained.path / ".flor" / "runs").glob("*.jsonl"))
    files[0].unlink()
    assert len(trained.runs()) == 1
    assert len({r["run_id"] for r in trained.frame("loss")}) == 1


def test_query_is_read_only_parameterised_and_always_a_frame(trained: Project):
    got = trained.py(
        """
        import json, flordb as flor
        df = flor.query("select value_name, value from logs where value_name = ? and value >= ?", ["loss", 2.0])
        empty = flor.query("select * from logs where value_name = ?", ['no"such'])
        try:
            flor.query("delete from records")
            refused = None
        except flor.QueryError as e:
            refused = str(e)
        try:
            flor.query("selec nonsense")
            bad = None
        except flor.QueryError as e:
            bad = str(e)
        print(json.dumps({"n": len(df), "cols": list(df.columns), "empty": [len(empty), list(empty.columns)], "refused": refused, "bad": bad}))
        """
    )
    assert got["n"] == 4 and got["cols"] == ["value_name", "value"]
    assert got["empty"][0] == 0 and "value_name" in got["empty"][1]
    assert "read-only" in got["refused"] and "write=True" in got["refused"]
    assert "syntax error" in got["bad"]
    assert len(trained.frame("loss")) == 20


def test_names_with_quotes_are_safe(project: Project):
    project.write("q.py", "import flordb as flor\nflor.log('we\"ird', 1)\nflor.log(\"it's\", 2)\n")
    project.run("q.py")
    assert project.frame('we"ird')[0]['we"ird'] == 1
    assert project.frame("it's")[0]["it's"] == 2


def test_frame_follows_write_queries_mixed_values_and_grown_files(project: Project):
    """The pivot reads a columnar copy of the records; it must never disagree with them."""
    project.write(
        "mixed.py",
        """
        import flordb as flor
        for epoch in flor.loop("epoch", ["a", "b", "c"]):
            flor.log("m", epoch if epoch == "b" else 1.5)
            flor.log("n", 7)
        """,
    )
    project.run("mixed.py")
    rows = project.frame("m", "n")
    assert [(r["epoch"], r["epoch_value"], r["m"], r["n"]) for r in rows] == [(0, "a", 1.5, 7), (1, "b", "b", 7), (2, "c", 1.5, 7)]
    # A write query changes records behind the cache's back: the frame follows it.
    project.py(
        """
        import json, flordb as flor
        flor.query("delete from records where name = (select name from names where text = 'n') and value = 7 and ctx = (select min(ctx) from records)", write=True)
        print(json.dumps(None))
        """
    )
    assert [r["n"] for r in project.frame("n")] == [7, 7]
    project.flor("unpack")
    assert [r["n"] for r in project.frame("n")] == [7, 7, 7]
    # A run file that grows (a run still writing) is re-read.
    (path,) = (project.path / ".flor" / "runs").glob("*.jsonl")
    last = json.loads(path.read_text().splitlines()[-2])
    path.write_text(path.read_text() + json.dumps({**last, "name": "n", "value": 8, "type": 1}) + "\n")
    assert [r["n"] for r in project.frame("n")][-1] == 8


def test_the_cache_holds_a_run_soon_after_it_ends_without_any_read(project: Project):
    """The process that commits a run's file to git after exit also imports it, so the
    first dataframe or replay after training does not pay for it."""
    import sqlite3
    import time

    from conftest import TRAIN

    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py")
    (run_file,) = (project.path / ".flor" / "runs").glob("*.jsonl")
    logged = sum(1 for line in run_file.read_text().splitlines() if '"type": 3' not in line and '"type": 0' not in line)
    deadline = time.monotonic() + 60
    rows = []
    while time.monotonic() < deadline:
        db = project.path / ".flor" / "flor.db"
        if db.exists():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                try:
                    rows = conn.execute("SELECT run_id, status, records FROM runs").fetchall()
                except sqlite3.OperationalError:  # the tables are being created
                    rows = []
        if rows:
            break
        time.sleep(0.05)
    assert rows == [(run_file.stem, "finished", logged)]
