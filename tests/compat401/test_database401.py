"""flordb 4.0.1's tests/test_database.py and tests/test_utils.py, ported as black-box
tests.

4.0.1 calls its database module's helpers (`unpack`, `create_tables`, `pivot`,
`derive_extractions`, `extract_metrics`) on an in-memory sqlite cursor, and its
`utils` helpers directly. Here the same facts are checked from the outside: scripts
recorded in a fresh git repository, read back with `flor.dataframe`, `flor.query`
(the `logs` view), `python -m flordb unpack` and `python -m flordb capture --extract`,
and `--kwargs` for the casting rules. Where this project deliberately differs, the
test's docstring says so ("documented difference")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import Project, init_project




def recorded(p: Project, source: str, *args: str, name: str = "train.py", env: dict | None = None):
    p.write(name, source)
    p.commit_all()
    return p.run(name, *args, env=env)


def query(p: Project, sql: str) -> list[list]:
    return p.py(
        f"""
        import json, flordb as flor
        df = flor.query({sql!r})
        print(json.dumps(df.astype(object).where(df.notna(), None).values.tolist()))
        """
    )


def frame(p: Project, *names: str) -> list[dict]:
    return p.frame(*names)


# --- TestUnpack ---------------------------------------------------------------------------


def test_unpack_tags_source(project: Project):
    script = 'import flordb as flor\nfor epoch in flor.loop("epoch", range(1)):\n    flor.log("loss", 0.5)\n'
    recorded(project, script)
    project.write("train.py", script + '    flor.log("val_acc", 90)\n')
    project.run("train.py", "--replay_flor", "--apply", "val_acc")
    rows = query(project, "select value_name, source from logs where value_name in ('loss', 'val_acc') order by value_name")
    assert rows == [["loss", "forward"], ["val_acc", "replay"]]


def test_a_run_that_logs_nothing_adds_no_rows(project: Project):
    """4.0.1's unpack of an empty buffer: here, a script that imports flordb and never
    calls it records no run and adds nothing to any table."""
    recorded(project, "import flordb as flor\nx = 1\n")
    assert project.runs() == []
    assert query(project, "select count(*) from logs") == [[0]]
    assert project.frame() == []


def test_unpack_ctx_stored_as_json_segments(project: Project):
    recorded(project, 'import flordb as flor\nwith flor.iteration("epoch", 2, None):\n    flor.log("loss", 0.5)\n')
    assert query(project, "select ctx from logs where value_name = 'loss'") == [['[{"name": "epoch", "iteration": 2, "value": null}]']]


# A run file as flordb 4.0.1 writes it (`.flor/runs/<tstamp>.jsonl`).
RUN_401 = [
    {"projid": "proj", "tstamp": "2026-05-22T10:00:00.000000", "filename": "train.py", "ctx": None, "name": "lr", "value": 0.001, "type": 1},
    {
        "projid": "proj",
        "tstamp": "2026-05-22T10:00:00.000000",
        "filename": "train.py",
        "ctx": [{"name": "epoch", "iteration": 1, "value": None}],
        "name": "loss",
        "value": 0.25,
        "type": 1,
    },
]


def write_run_401(p: Project) -> None:
    runs = p.path / ".flor" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "2026-05-22T10:00:00.000000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUN_401))


def test_unpack_accepts_401_run_files(project: Project):
    """Documented difference: values come back as numbers (`query` returns 0.25, where
    4.0.1's cache holds the text "0.25")."""
    write_run_401(project)
    project.flor("unpack")
    assert query(project, "select value_name, value, source from logs where value_name = 'loss'") == [["loss", 0.25, "forward"]]
    rows = project.frame("loss")
    assert [(r["epoch"], r["loss"], r["source"]) for r in rows] == [(1, 0.25, "forward")]


# --- TestCreateTables ---------------------------------------------------------------------


def _old_cache(path: Path, ctx: bool) -> None:
    c = sqlite3.connect(path)
    if ctx:  # 4.0.1 before the source column
        c.execute("CREATE TABLE logs (projid TEXT, tstamp TEXT, filename TEXT, ctx TEXT, value_name TEXT, value TEXT, value_type INTEGER)")
        c.execute("INSERT INTO logs VALUES ('p','t','f',NULL,'loss','0.5',1)")
    else:  # 3.x: ctx_id and a loops table
        c.execute("CREATE TABLE logs (projid TEXT, tstamp TEXT, ctx_id INTEGER, value_name TEXT, value TEXT)")
        c.execute("CREATE TABLE loops (ctx_id INTEGER, name TEXT)")
    c.commit()
    c.close()


def test_an_old_401_cache_is_replaced_by_the_run_files(tmp_path: Path):
    # 4.0.1 migrates its pre-`source` table and reads its rows as forward; here the cache
    # is derived from the run files, so the rows must come from them, tagged forward.
    p = init_project(tmp_path / "flor")
    write_run_401(p)
    _old_cache(p.path / ".flor" / "flor.db", ctx=True)
    out = p.run("-c", "import flordb as flor\nprint(flor.dataframe('loss')[['source', 'loss']].values.tolist())", check=False)
    assert out.returncode == 0 and "[['forward', 0.25]]" in out.stdout, out.stderr


def test_an_older_cache_is_not_read(project: Project):
    """Documented difference: the cache is `.flor/flor.db`, derived from the run files
    (README: `DB_PATH` `.flor/flor.db`); an older cache such as a 3.x-schema
    `.flor/<projid>.db` is left alone, and `logs` has the `ctx` and `source` columns."""
    write_run_401(project)
    old = project.path / ".flor" / f"{project.path.name}.db"
    _old_cache(old, ctx=False)
    before = old.read_bytes()
    cols = project.py(
        """
        import json, flordb as flor
        df = flor.query("select * from logs where value_name = 'loss'")
        print(json.dumps([sorted(df.columns), df["source"].tolist()]))
        """
    )
    assert {"ctx", "source", "value_name", "value"} <= set(cols[0])
    assert cols[1] == ["forward"]
    assert old.read_bytes() == before


def test_unpack_is_idempotent(project: Project):
    recorded(project, 'import flordb as flor\nflor.log("loss", 0.5)\n')
    count = "select count(*) from logs where value_name = 'loss'"
    assert query(project, count) == [[1]]
    project.flor("unpack")
    project.flor("unpack")
    assert query(project, count) == [[1]]


# --- TestPivot ------------------------------------------------------------------------------


def test_pivot_surfaces_source_and_loop_columns(project: Project):
    """Documented difference: `dataframe` returns numbers as numbers (4.0.1: "0.5")."""
    recorded(project, 'import flordb as flor\nfor epoch in flor.loop("epoch", range(2)):\n    flor.log("loss", [0.5, 0.25][epoch])\n')
    rows = frame(project, "loss")
    assert all(r["source"] == "forward" for r in rows)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert [r["loss"] for r in rows] == [0.5, 0.25]


def test_pivot_joins_keep_forward_and_replay_apart(project: Project):
    script = 'import flordb as flor\nfor epoch in flor.loop("epoch", range(1)):\n    flor.log("loss", 0.5)\n    flor.log("val_acc", 90)\n'
    recorded(project, script)
    project.run("train.py", "--replay_flor", "--apply", "val_acc")
    rows = frame(project, "loss", "val_acc")
    forward = [r for r in rows if r["source"] == "forward"]
    replay = [r for r in rows if r["source"] == "replay"]
    assert [(r["loss"], r["val_acc"]) for r in forward] == [(0.5, 90)]
    # The replayed val_acc is not paired with the forward loss.
    assert [(r["loss"], r["val_acc"]) for r in replay] == [(None, 90)]


def test_pivot_star_uses_run_level_rows(project: Project):
    recorded(project, 'import flordb as flor\nflor.log("lr", 0.001)\nfor epoch in flor.loop("epoch", range(1)):\n    flor.log("loss", 0.5)\n')
    rows = frame(project)
    assert [r["lr"] for r in rows] == [0.001]
    assert "loss" not in rows[0]


NESTED_CTX = """
import flordb as flor
with flor.iteration("epoch", 1, None):
    with flor.iteration("step", 7, None):
        flor.log("loss", 0.5)
"""


def test_pivot_nested_ctx_surfaces_every_depth(project: Project):
    recorded(project, NESTED_CTX)
    rows = frame(project, "loss")
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 7)]


def test_pivot_outer_loops_come_before_inner_ones(project: Project):
    recorded(project, NESTED_CTX)
    cols = list(frame(project, "loss")[0])
    assert cols.index("epoch") < cols.index("step") < cols.index("loss")


def test_pivot_value_column_is_dropped_when_it_repeats_the_index(project: Project):
    recorded(project, 'import flordb as flor\nfor epoch in flor.loop("epoch", range(1)):\n    for step in flor.loop("step", range(8)):\n        flor.log("loss", 0.5)\n')
    rows = frame(project, "loss")
    assert "epoch_value" not in rows[0] and "step_value" not in rows[0]
    assert (rows[7]["epoch"], rows[7]["step"]) == (0, 7)


def test_pivot_value_column_survives_when_it_differs_from_the_index(project: Project):
    recorded(project, 'import flordb as flor\nfor epoch in flor.loop("epoch", range(1)):\n    for step in flor.loop("step", ["a", "b"]):\n        flor.log("loss", 0.5)\n')
    rows = frame(project, "loss")
    assert "epoch_value" not in rows[0]
    assert [r["step_value"] for r in rows] == ["a", "b"]
    assert [r["step"] for r in rows] == [0, 1]


# --- TestDeriveExtractions: `python -m flordb capture --extract` -----------------------------

PRINTS = """
import logging
import sys

import flordb as flor

logging.basicConfig(level=logging.INFO)
flor.log("note", "epoch 0 | noted: 0.5")
flor.log("val_acc", 90)
for e, v in [(0, 0.5), (1, 0.3), (2, 0.2)]:
    print(f"epoch {e} | loss: {v}")
print("epoch 0 | twice: 0.9")
print("epoch 0 | twice: 0.4")
logging.info("epoch 0 | acc: 0.9")
print("epoch 0 | grad: 1.5", file=sys.stderr)
for epoch in flor.loop("epoch", range(3)):
    print(f"epoch {epoch} | eloss: 0.{epoch}")
    print("epoch: 1.5")
    if epoch == 2:
        print("step 4 | sloss: 0.5")
"""


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Project:
    p = init_project(tmp_path_factory.mktemp("extract") / "proj")
    recorded(p, PRINTS)
    out = p.flor("capture", "--extract")
    assert "source = extract" in out.stdout, out.stdout
    return p


def extract_rows(p: Project, name: str) -> list[tuple]:
    keys = ("epoch", "step")
    return [(tuple(r.get(k) for k in keys if r.get(k) is not None), r[name], r["source"]) for r in frame(p, name) if r.get(name) is not None]


def test_extract_the_index_goes_to_ctx_and_the_measure_to_the_value(extracted: Project):
    assert extract_rows(extracted, "loss")[0] == ((0,), 0.5, "extract")
    ctx = query(extracted, "select ctx from logs where value_name = 'loss' and source = 'extract' and value = 0.5")
    assert ctx == [['[{"name": "epoch", "iteration": 0, "value": null}]']]


def test_extract_a_synthesized_index_gives_one_row_per_step(extracted: Project):
    """Documented difference: the values are numbers (4.0.1: "0.5", "0.3", "0.2")."""
    rows = extract_rows(extracted, "loss")
    assert [(k, v) for k, v, _ in rows] == [((0,), 0.5), ((1,), 0.3), ((2,), 0.2)]


def test_extract_a_named_loop_keeps_its_own_index(extracted: Project):
    rows = frame(extracted, "eloss")
    assert [(r["epoch"], r["eloss"]) for r in rows] == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert not any(k.startswith("epoch_") for k in rows[0])
    ctx = query(extracted, "select ctx from logs where value_name = 'eloss'")
    assert all([s["name"] for s in json.loads(c)] == ["epoch"] for [c] in ctx)


def test_extract_the_synthesized_index_nests_under_the_named_loop(extracted: Project):
    assert extract_rows(extracted, "sloss") == [((2, 4), 0.5, "extract")]


def test_extract_a_measure_never_shadows_a_recorded_loop(extracted: Project):
    # "epoch: 1.5" inside flor.loop("epoch"): no value named epoch.
    assert query(extracted, "select count(*) from logs where value_name = 'epoch'") == [[0]]


def test_extract_the_last_line_wins_at_one_ctx(extracted: Project):
    assert extract_rows(extracted, "twice") == [((0,), 0.4, "extract")]


def test_extract_only_io_rows_are_read(extracted: Project):
    # flor.log("note", "epoch 0 | noted: 0.5") is a value, not a captured line.
    assert query(extracted, "select count(*) from logs where value_name = 'noted'") == [[0]]


def test_extract_every_channel_is_read(extracted: Project):
    assert extract_rows(extracted, "acc") == [((0,), 0.9, "extract")]  # io::log::info
    assert extract_rows(extracted, "grad") == [((0,), 1.5, "extract")]  # io::stderr
    assert extract_rows(extracted, "loss")  # io::stdout


# --- TestExtractMetrics -------------------------------------------------------------------


def test_extract_rows_are_tagged_extract(extracted: Project):
    assert {s for _, _, s in extract_rows(extracted, "loss")} == {"extract"}
    assert query(extracted, "select distinct source from logs where value_name = 'loss'") == [["extract"]]


def test_extracting_twice_does_not_double_the_rows(project: Project):
    recorded(project, 'import flordb as flor\nflor.log("x", 1)\nprint("epoch 0 | loss: 0.5")\n')
    project.flor("capture", "--extract")
    project.flor("capture", "--extract")
    assert query(project, "select count(*) from logs where source = 'extract'") == [[1]]


def test_a_second_pass_drops_what_the_text_no_longer_says(project: Project):
    recorded(project, 'import flordb as flor\nflor.log("x", 1)\nprint("epoch 0 | loss: 0.5")\n')
    project.flor("capture", "--extract")
    [first] = [r["run_id"] for r in project.runs()]
    # The run that printed the loss is gone; another run prints an accuracy.
    (project.path / ".flor" / "runs" / f"{first}.jsonl").unlink()
    recorded(project, 'import flordb as flor\nflor.log("x", 1)\nprint("epoch 0 | acc: 0.9")\n', name="other.py")
    project.flor("capture", "--extract")
    assert query(project, "select value_name from logs where source = 'extract'") == [["acc"]]


def test_the_reading_is_not_stored_outside_the_cache(project: Project):
    """The extraction lives in the cache only: it writes no run file and no git ref,
    clearing the cache (`flor unpack`) drops it, and extracting again brings it back."""
    recorded(project, 'import flordb as flor\nflor.log("x", 1)\nprint("epoch 0 | loss: 0.5")\n')
    runs = project.path / ".flor" / "runs"
    before = {f.name: f.read_bytes() for f in runs.iterdir()}
    refs = project.git("for-each-ref", "--format=%(refname)")
    head = project.git("rev-parse", "HEAD")
    project.flor("capture", "--extract")
    assert {f.name: f.read_bytes() for f in runs.iterdir()} == before
    assert project.git("for-each-ref", "--format=%(refname)") == refs
    assert project.git("rev-parse", "HEAD") == head and project.git("status", "--porcelain") == ""
    extract = "select value_name, value, source from logs where source = 'extract'"
    assert query(project, extract) == [["loss", 0.5, "extract"]]
    project.flor("unpack")
    assert query(project, extract) == []
    project.flor("capture", "--extract")
    assert query(project, extract) == [["loss", 0.5, "extract"]]


def test_derived_rows_stay_apart_from_forward_ones(extracted: Project):
    # `source` rides along: an extracted guess is never taken for a logged value.
    assert [s for _, _, s in extract_rows(extracted, "loss")] == ["extract"] * 3
    assert [(r["source"], r["val_acc"]) for r in frame(extracted, "val_acc")] == [("forward", 90)]


# --- test_utils.py: TestDuckCast, through --kwargs ----------------------------------------

ARGS = """
import json
import flordb as flor

value = flor.arg("x", DEFAULT)
print(json.dumps([value, type(value).__name__]))
"""


def cast(project: Project, default: str, given: str) -> list:
    out = recorded(project, ARGS.replace("DEFAULT", default), "--kwargs", f"x={given}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("no", False), ("", False)], ids=["true", "1", "no", "empty"])
def test_duck_cast_bool(project: Project, raw, expected):
    assert cast(project, "False", raw) == [expected, "bool"]
    assert [r["x"] for r in project.frame()] == [expected]


def test_duck_cast_int(project: Project):
    assert cast(project, "32", "64") == [64, "int"]


def test_duck_cast_float(project: Project):
    got = cast(project, "1e-3", "5e-4")
    assert got[1] == "float" and got[0] == pytest.approx(5e-4)


def test_duck_cast_str(project: Project):
    assert cast(project, '"cuda"', "cpu") == ["cpu", "str"]


def test_duck_cast_bool_checked_before_int(project: Project):
    # bool is a subclass of int: a true flag must stay a bool, not go through int().
    assert cast(project, "True", "true") == [True, "bool"]


def test_duck_cast_dict_default_reads_json(project: Project):
    """Documented difference: 4.0.1 raises TypeError for a default of another type (a
    dict); here "lists and dicts are read as JSON"."""
    assert cast(project, '{"a": 1}', '{"b": [2, 3]}') == [{"b": [2, 3]}, "dict"]


# --- test_utils.py: TestMisc ------------------------------------------------------------------


def test_jsonable_values_are_kept_and_others_stored_as_text(project: Project):
    # 4.0.1's is_jsonable decides what flor.log keeps as is and what it stores as str().
    recorded(project, 'import flordb as flor\nclass Thing:\n    def __str__(self):\n        return "a thing"\nflor.log("lst", [1, "a"])\nflor.log("obj", Thing())\n')
    [row] = project.frame()
    assert row["lst"] == [1, "a"] and row["obj"] == "a thing"


def test_echo_with_and_without_layers(project: Project):
    """Documented difference: 4.0.1 echoes every flor.log as `loss: 0.5` or `epoch: 1,
    loss: 0.5`; here it does so only with FLOR_ECHO=1 (README)."""
    script = 'import flordb as flor\nflor.log("loss", 0.5)\nfor epoch in flor.loop("epoch", range(2)):\n    flor.log("loss", 0.5)\n'
    quiet = recorded(project, script)
    assert "loss: 0.5" not in quiet.stdout
    loud = project.run("train.py", env={"FLOR_ECHO": "1"})
    lines = loud.stdout.splitlines()
    assert "loss: 0.5" in lines and "epoch: 1, loss: 0.5" in lines, loud.stdout


def test_dataframe_values_are_typed(project: Project):
    # 4.0.1's cast_dtypes turns numeric text into numbers; here dataframe is typed.
    recorded(project, 'import flordb as flor\nfor epoch in flor.loop("epoch", range(2)):\n    flor.log("loss", [0.5, 0.25][epoch])\n    flor.log("note", "ab"[epoch])\n')
    kinds = project.py(
        """
        import json, flordb as flor
        df = flor.dataframe("loss", "note")
        print(json.dumps([df["loss"].dtype.kind, str(df["note"].dtype), df["note"].tolist()]))
        """
    )
    assert kinds[0] == "f" and kinds[1] in ("object", "str", "string") and kinds[2] == ["a", "b"]


def test_latest_keeps_only_max_tstamp(project: Project):
    recorded(project, 'import flordb as flor\nflor.log("w", flor.arg("v", 1))\n')
    project.run("train.py", "--kwargs", "v=2")
    got = project.py(
        """
        import json, flordb as flor
        from flordb import utils
        print(json.dumps(utils.latest(flor.dataframe("w"))["w"].tolist()))
        """
    )
    assert got == [2]


@pytest.mark.parametrize(
    "seconds, expected",
    [(1, "under 10 seconds"), (50, "under 2 minutes"), (500, "up to 15 minutes"), (5000, "more than 15 minutes")],
)
def test_discretize(project: Project, seconds, expected):
    got = project.py(f"import json\nfrom flordb import utils\nprint(json.dumps(utils.discretize({seconds})))")
    assert got == expected
    assert not (project.path / ".flor").exists()
