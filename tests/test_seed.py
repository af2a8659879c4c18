"""The 2023 notebook's API (`import flor`): MTK names, `--flor NAME`, `log_records` and
`full_pivot`, images logged with `flor.log`, one run per IPython cell."""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import Project

pytest.importorskip("matplotlib")
pytest.importorskip("IPython")

ENV = {"MPLBACKEND": "Agg"}

# A seed-style main.py: MTK names, hyper-parameters through flor.arg, a confusion
# matrix only when CF is true (the version "we" run; the teammate's does not log it).
MAIN = """
import flor
from flor import MTK as Flor

CF = {cf}
hidden_size = flor.arg("hidden_size", 500)
lr = flor.arg("lr", 1e-3)
batch_size = flor.arg("batch_size", 32)
model, optimizer = {{"w": [0.0]}}, {{"lr": lr}}
Flor.checkpoints(model, optimizer)
for epoch in Flor.loop(range(2)):
    for i, batch in Flor.loop(enumerate(range(3))):
        flor.log("loss", 1.0 / (1 + epoch + i) + hidden_size / 1e4)
    flor.log("val_acc", 0.5 + epoch / 10)
y_true = [0, 1, 2, 2, 1, 0, 1]
y_pred = [0, 2, 2, 2, 1, 0, 0]
if CF:
    flor.log("accuracy", sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true))
    flor.log("cf_matrix", flor.utils.plot_confusion_matrix(y_true, y_pred))
"""

PIVOT = """
import json, flor
from flor import log_records, full_pivot
pvt = full_pivot(log_records(), names={names!r})
out = {{
    "columns": list(pvt.columns),
    "shape": list(pvt.shape),
    "rows": json.loads(pvt.astype(object).where(pvt.notna(), None).to_json(orient="records", date_format="iso")),
    "runs": json.loads(flor.runs().to_json(orient="records")),
}}
print(json.dumps(out))
"""


def pivot(p: Project, names=()) -> dict:
    return p.py(PIVOT.format(names=list(names)))


def test_import_flor_gives_the_seed_names(project: Project):
    got = project.py(
        """
        import json, flor, flordb
        from flor import MTK as Flor, log_records, full_pivot
        try:
            flor.replay
            replay = "present"
        except AttributeError as err:
            replay = str(err)
        print(json.dumps({
            "keys": [flor.DATA_PREP, flor.OUTR_LOOP, flor.INNR_LOOP],
            "same": [flor.log is flordb.log, flor.dataframe is flordb.dataframe, flor.commit is flordb.commit],
            "forwarded": flor.query is flordb.query and flor.StoreError is flordb.StoreError,
            "cm": callable(flor.utils.plot_confusion_matrix),
            "replay": replay,
            "file": flor.__file__,
        }))
        """
    )
    assert got["keys"] == [
        ["projid", "runid", "tstamp", "vid"],
        ["projid", "runid", "tstamp", "vid", "epoch"],
        ["projid", "runid", "tstamp", "vid", "epoch", "step"],
    ]
    assert all(got["same"]) and got["forwarded"] and got["cm"]
    assert got["replay"] == "present"
    assert not (project.path / ".flor" / "runs").exists()


def test_seed_script_runs_and_pivots(project: Project):
    project.write("main.py", MAIN.format(cf=False))
    old = project.commit_all("teammate's version")
    project.run("main.py", "--flor", "Small", "--kwargs", "hidden_size=100", env=ENV)
    project.run("main.py", "--kwargs", "hidden_size=300", "--flor", "Large", "0.1", env=ENV)
    project.write("main.py", MAIN.format(cf=True))
    new = project.commit_all("log the confusion matrix")
    project.run("main.py", "--flor", "EpicDemo", env=ENV)
    project.run("main.py", "--kwargs", "lr=0.01", env=ENV)

    got = pivot(project, names=["grad_norm"])
    cols = got["columns"]
    assert cols[:6] == ["projid", "runid", "tstamp", "vid", "epoch", "step"]
    assert set(cols[6:]) == {"hidden_size", "lr", "batch_size", "loss", "val_acc", "accuracy", "cf_matrix", "grad_norm"}
    assert cols[-1] == "grad_norm"
    assert got["shape"] == [4 * 2 * 3, len(cols)]
    runs = {r["run_id"]: r for r in got["runs"]}
    unnamed = next(r["run_id"] for r in got["runs"] if r["name"] is None)
    assert sorted(r["name"] or "" for r in got["runs"]) == ["", "EpicDemo", "Large", "Small"]
    by_run: dict[str, list[dict]] = {}
    for row in got["rows"]:
        by_run.setdefault(row["runid"], []).append(row)
    assert set(by_run) == {"Small", "Large", "EpicDemo", unnamed}
    version = {r["name"] or r["run_id"]: r["version"] for r in runs.values()}
    for runid, rows in by_run.items():
        assert {r["vid"] for r in rows} == {version[runid]}
        assert [(r["epoch"], r["step"]) for r in rows] == [(e, s) for e in range(2) for s in range(3)]
        assert {r["val_acc"] for r in rows if r["epoch"] == 1} == {0.6}
        assert all(r["grad_norm"] is None and r["batch_size"] == 32 for r in rows)
    assert project.git("rev-parse", f"{version['Small']}^") == old
    assert project.git("rev-parse", f"{version['EpicDemo']}^") == new
    assert {r["hidden_size"] for r in by_run["Small"]} == {100}
    assert {r["lr"] for r in by_run[unnamed]} == {0.01}
    assert all(r["cf_matrix"] is None and r["accuracy"] is None for r in by_run["Small"] + by_run["Large"])
    paths = {r["cf_matrix"] for r in by_run["EpicDemo"] + by_run[unnamed]}
    (path,) = paths  # the same figure twice: one content-addressed file
    assert path.startswith(str(project.path / ".flor" / "artifacts")) and path.endswith(".png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert project.git("status", "--porcelain") == ""

    selected = project.py(
        """
        import json
        from flor import log_records, full_pivot
        pvt = full_pivot(log_records(), names=["grad_norm"])
        hits = pvt.query('cf_matrix.isna() and hidden_size.astype("float") < 250')
        print(json.dumps(sorted(set(hits["runid"]))))
        """
    )
    assert selected == ["Small"]


MTK_SCRIPT = """
import json, sys, flordb, flor
from flor import MTK as Flor
calls = []
if "--with-engine" in sys.argv:
    class Block:  # stands in for flordb.checkpointing until the checkpoint engine lands
        def __init__(self, **objs):
            calls.append(["init", sorted(objs)])
        def __enter__(self):
            calls.append("enter")
        def __exit__(self, *exc):
            calls.append("exit")
    flordb.checkpointing = Block
model, optimizer = object(), object()
Flor.checkpoints(model, optimizer)
for e in Flor.loop(range(2)):
    for s in flor.loop(range(3)):
        for k in Flor.loop(range(2)):
            flor.log("x", e * 100 + s * 10 + k)
        if s == 1:
            break
print(json.dumps({"calls": calls, "enrolled": sorted(Flor.enrolled())}))
"""


@pytest.mark.parametrize("engine", [False, True])
def test_mtk_loops_are_named_by_depth_and_checkpoints_enrol(project: Project, engine: bool):
    project.write("a.py", MTK_SCRIPT)
    out = project.run("a.py", *(["--with-engine"] if engine else []))
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["enrolled"] == ["obj_0", "obj_1"]
    assert got["calls"] == ([["init", ["obj_0", "obj_1"]], "enter", "exit"] if engine else [])
    assert out.stderr == ""
    rows = project.frame("x")
    assert [(r["epoch"], r["step"], r["loop_2"], r["x"]) for r in rows][:4] == [
        (0, 0, 0, 0), (0, 0, 1, 1), (0, 1, 0, 10), (0, 1, 1, 11)
    ]
    assert len(rows) == 8


def test_classification_follows_every_run(project: Project):
    # `once` has one value per run in one run but one per epoch in the other: OUTR_LOOP.
    project.write(
        "a.py",
        """
        import flor
        from flor import MTK as Flor
        n = flor.arg("n", 1)
        for e in Flor.loop(range(2)):
            if n == 2 or e == 0:
                flor.log("once", e)
        flor.log("final", n)
        """,
    )
    project.run("a.py")
    project.run("a.py", "--kwargs", "n=2")
    got = pivot(project)
    assert got["columns"] == ["projid", "runid", "tstamp", "vid", "epoch", "n", "final", "once"]
    assert got["shape"][0] == 3


def test_run_outside_loops_and_empty_project(tmp_path, project: Project):
    got = pivot(project)
    assert got["columns"] == ["projid", "runid", "tstamp", "vid"] and got["shape"] == [0, 4]
    project.write("a.py", "import flor\nflor.log('acc', 0.5)\nflor.log('tag', 'x')\n")
    project.run("a.py", "--flor", "only")
    got = pivot(project)
    assert got["columns"] == ["projid", "runid", "tstamp", "vid", "acc", "tag"]
    assert [(r["runid"], r["acc"], r["tag"]) for r in got["rows"]] == [("only", 0.5, "x")]


def test_legacy_arg_spelling_and_bad_flor_flag(project: Project):
    project.write("a.py", "import flor\nprint(flor.arg('hidden_size', 500), flor.arg('lr', 0.1))\n")
    out = project.run("a.py", "--hidden_size", "128", "--lr=0.5")
    assert out.stdout.split() == ["128", "0.5"]
    out = project.run("a.py", "--hidden_size", "128", "--kwargs", "hidden_size=64")
    assert out.stdout.split() == ["64", "0.1"]
    out = project.run("a.py", "--hidden_size", "many", check=False)
    assert out.returncode != 0 and "--hidden_size many" in out.stderr and "Traceback" not in out.stderr.split("ArgError")[-1]
    out = project.run("a.py", "--flor", check=False)
    assert out.returncode != 0 and "--flor needs a run name" in out.stderr


IMAGES = """
import sys, flordb as flor
flor.log("plain", object.__new__(type("Thing", (), {"__str__": lambda self: "thing"})))
flor.log("missing", "no/such/file.png")
assert "matplotlib" not in sys.modules and "PIL" not in sys.modules
import matplotlib.pyplot as plt
from PIL import Image
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
assert flor.log("fig", fig) is fig
flor.log("axes", ax)
img = Image.new("RGB", (4, 4), (255, 0, 0))
flor.log("pil", img)
img.save("red.png")
flor.log("file", "red.png")
flor.log("again", "red.png")
"""


def test_images_are_stored_content_addressed_outside_git(project: Project):
    project.write("img.py", IMAGES)
    project.commit_all()
    project.run("img.py", env=ENV)
    (row,) = project.frame("plain", "missing", "fig", "axes", "pil", "file", "again")
    assert row["plain"] == "thing" and row["missing"] == "no/such/file.png"
    assert row["fig"] == row["axes"] and row["pil"] == row["file"] == row["again"]
    stored = sorted(p.name for p in (project.path / ".flor" / "artifacts").iterdir())
    assert len(stored) == 2 and all(len(n) == 64 + 4 and n.endswith(".png") for n in stored)
    for name in ("fig", "pil"):
        assert row[name].startswith(".flor/artifacts/")
        assert (project.path / row[name]).read_bytes()[:4] == b"\x89PNG"
    assert project.git("status", "--porcelain") == "?? red.png"
    (run,) = project.runs()
    files = project.git("ls-tree", "-r", "--name-only", f"refs/flor/runs/{run['run_id']}")
    assert "artifacts" not in files


def test_plot_confusion_matrix_errors_are_flor_errors(project: Project):
    got = project.py(
        """
        import json, flor
        try:
            flor.utils.plot_confusion_matrix([0, 1], [0])
        except flor.FlorError as err:
            print(json.dumps(str(err)))
        """
    )
    assert "2 true labels but 1 predictions" in got


SHELL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
cells = json.loads(sys.stdin.read())
for cell in cells:
    result = shell.run_cell(cell)
    if cell.startswith("#raises"):
        assert result.error_in_exec is not None
    elif not result.success:
        raise SystemExit(f"cell failed: {cell!r}: {result.error_in_exec or result.error_before_exec!r}")
"""


def run_cells(p: Project, cells: list[str], cwd=None) -> str:
    import subprocess
    import sys
    import os

    out = subprocess.run(
        [sys.executable, "-c", SHELL],
        input=json.dumps([textwrap.dedent(c) for c in cells]),
        cwd=cwd or p.path.parent,
        capture_output=True,
        text=True,
        # `!python main.py` in a cell runs this interpreter, as in a notebook's kernel.
        env={**os.environ, **ENV, "GIT_PAGER": "cat", "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]},
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_ipython_records_one_run_per_cell_that_logs(project: Project):
    project.write("README", "x\n")
    project.commit_all()
    run_cells(
        project,
        [
            "import flor, os",
            f"os.chdir({str(project.path)!r})",
            "flor.log('a', 1)",
            "pvt = flor.full_pivot(flor.log_records()); df = flor.dataframe('a'); rs = flor.runs()",
            "x = 1 + 1",
            "flor.log('b', 2)\nflor.log('c', 3)",
            "flor.log('d', 4)\nflor.commit()\nflor.log('e', 5)",
            "#raises\nflor.log('f', 6)\nraise ValueError('boom')",
        ],
    )
    runs = project.runs()
    assert [r["status"] for r in runs] == ["finished"] * 4 + ["failed"]
    assert [r["records"] for r in runs] == [1, 2, 1, 1, 1]
    assert not (project.path.parent / ".flor").exists()


# The teammate's branch runs a version without the accuracy and confusion matrix; ours
# logs them (the notebook's story: `flor.replay` fills cf_matrix in for their runs).
BASE = MAIN.format(cf=False).split("if CF:")[0]
OURS = BASE + """flor.log("accuracy", sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true))
flor.log("cf_matrix", flor.utils.plot_confusion_matrix(y_true, y_pred))
"""


def test_notebook_cells_in_order(project: Project, tmp_path):
    """The seed notebook's code cells, word for word, the replay cell included."""
    project.write("main.py", BASE)
    project.commit_all("tutorial")
    # A teammate's branch, made before the notebook starts: runs with small models,
    # without the confusion matrix or accuracy.
    project.git("checkout", "-q", "-b", "flor.shadow.compressed")
    for h in (100, 200, 400):
        project.run("main.py", "--flor", f"Compressed{h}", "--kwargs", f"hidden_size={h}", env=ENV)
    project.git("checkout", "-q", "main")
    project.write("main.py", OURS)
    project.commit_all("instrument main.py")
    notebook = [
        "import flor",
        f"import os\nos.chdir({str(project.path)!r})",
        "!python main.py --flor EpicDemo",
        "!git checkout -b flor.shadow",
        "from flor import log_records, full_pivot\npvt = full_pivot(log_records())\npvt",
        """
        from IPython.display import display
        from IPython.core.display import Image
        from pathlib import PurePath

        pvt = full_pivot(log_records())
        for projid,runid,tstamp,vid,cf_matrix in pvt[
            list(flor.DATA_PREP) + ['cf_matrix']].drop_duplicates().values:
          if not isinstance(cf_matrix, float):
            p = PurePath(cf_matrix)
            display(Image(p))
        """,
        "!git branch -r",
        "!git checkout flor.shadow.compressed",
        """
        from flor import log_records, full_pivot
        pvt = full_pivot(log_records())
        pvt[list(flor.DATA_PREP) 
        + ['cf_matrix', 'hidden_size', 
           'lr', 'batch_size', 'accuracy']].drop_duplicates()
        """,
        """
        from IPython.display import display
        from IPython.core.display import Image
        from pathlib import PurePath

        pvt = full_pivot(log_records())
        for projid,runid,tstamp,vid,cf_matrix,accuracy in pvt[
            list(flor.DATA_PREP) + ['cf_matrix', 'accuracy']].drop_duplicates().values:
          if not isinstance(cf_matrix, float):
            p = PurePath(cf_matrix)
            print((runid, str(tstamp), accuracy))
            display(Image(p))
        """,
        """flor.replay(apply_vars=['cf_matrix'], where_clause='cf_matrix.isna() and hidden_size.astype("float") < 250', path='main.py')""",
        # After the notebook: what the refreshed frame holds.
        """
        import json
        pvt = full_pivot(log_records())
        filled = pvt[pvt["cf_matrix"].notna()][["runid", "cf_matrix"]].drop_duplicates()
        print("FILLED", json.dumps(sorted(set(filled["runid"]))))
        print("IMAGES", json.dumps([open(p, "rb").read(4).hex() for p in filled["cf_matrix"]]))
        print("RUNIDS", json.dumps(sorted(set(pvt["runid"]))))
        """,
    ]
    out = run_cells(project, notebook)
    assert out.count("<IPython.core.display.Image object>") == 2, out
    assert "('EpicDemo'," in out
    assert "replayed 2 of 2 run(s)" in out, out
    filled = json.loads(out.split("FILLED ", 1)[1].splitlines()[0])
    images = json.loads(out.split("IMAGES ", 1)[1].splitlines()[0])
    runids = json.loads(out.split("RUNIDS ", 1)[1].splitlines()[0])
    # The selected runs (no matrix yet, hidden_size < 250) got theirs; 400 did not.
    assert filled == ["Compressed100", "Compressed200", "EpicDemo"]
    assert images == ["89504e47"] * 3
    # The teammate's runs came with the branch; EpicDemo ran on main (not committed
    # to a branch), so its file stays; no run was recorded on flor.shadow.
    assert runids == ["Compressed100", "Compressed200", "Compressed400", "EpicDemo"]
    assert project.git("symbolic-ref", "--short", "HEAD") == "flor.shadow.compressed"
    assert project.git("status", "--porcelain") == ""
    assert len(project.runs()) == 4


def test_switching_flor_branches_reads_their_runs(project: Project):
    project.write("main.py", MAIN.format(cf=False))
    project.commit_all()
    project.git("checkout", "-q", "-b", "flor.shadow")
    project.run("main.py", "--flor", "mine", env=ENV)
    project.git("checkout", "-q", "main")
    project.git("checkout", "-q", "-b", "flor.shadow.compressed")
    project.run("main.py", "--flor", "theirs", "--kwargs", "hidden_size=50", env=ENV)
    seen = {}
    for branch in ("flor.shadow", "flor.shadow.compressed", "flor.shadow"):
        project.git("checkout", "-q", branch)
        seen.setdefault(branch, []).append(sorted({r["runid"] for r in pivot(project)["rows"]}))
    assert seen == {"flor.shadow": [["mine"], ["mine"]], "flor.shadow.compressed": [["theirs"]]}
    assert project.git("status", "--porcelain") == ""
