"""`flor.arg` and `--kwargs`: FlorDB takes only its own flags."""

from __future__ import annotations

from conftest import Project

ARGS = """
import json, flordb as flor
vals = {
    "n": flor.arg("n", 1),
    "lr": flor.arg("lr", 0.5),
    "flag": flor.arg("flag", False),
    "name": flor.arg("name", "x"),
    "layers": flor.arg("layers", [1]),
    "opts": flor.arg("opts", {"a": 1}),
    "path": flor.arg("path", "p"),
}
print(json.dumps(vals))
"""


def test_kwargs_cast_to_the_defaults_type(project: Project):
    project.write("a.py", ARGS)
    out = project.run(
        "a.py", "--kwargs", "n=3", "lr=0.01", "flag=yes", "name=bob", "layers=[64, 32]", 'opts={"b": 2}', "path=a=b=c"
    )
    import json

    vals = json.loads(out.stdout.strip().splitlines()[-1])
    assert vals == {"n": 3, "lr": 0.01, "flag": True, "name": "bob", "layers": [64, 32], "opts": {"b": 2}, "path": "a=b=c"}
    (row,) = project.frame()
    assert row["n"] == 3 and row["lr"] == 0.01 and row["flag"] is True and row["layers"] == [64, 32]


def test_defaults_are_recorded_without_kwargs(project: Project):
    project.write("a.py", ARGS)
    project.run("a.py")
    (row,) = project.frame()
    assert row["n"] == 1 and row["name"] == "x" and row["opts"] == {"a": 1}


def test_scripts_own_argparse_flags_keep_working(project: Project):
    project.write(
        "own.py",
        """
        import argparse, flordb as flor
        p = argparse.ArgumentParser()
        p.add_argument("--myflag", type=int)
        p.add_argument("positional")
        a = p.parse_args()
        flor.log("mine", a.myflag)
        flor.log("pos", a.positional)
        flor.log("lr", flor.arg("lr", 0.1))
        """,
    )
    project.run("own.py", "--myflag", "1", "--kwargs", "lr=0.5", "replay")
    project.run("own.py", "--kwargs", "lr=0.25", "--myflag", "2", "query")
    rows = sorted(project.frame("mine", "pos", "lr"), key=lambda r: r["mine"])
    assert [(r["mine"], r["pos"], r["lr"]) for r in rows] == [(1, "replay", 0.5), (2, "query", 0.25)]


def test_bad_values_and_missing_args_say_what_to_do(project: Project):
    project.write("bad.py", "import flordb as flor\nflor.arg('n', 1)\n")
    out = project.run("bad.py", "--kwargs", "n=many", check=False)
    assert out.returncode != 0
    assert "--kwargs n=many" in out.stderr and "int" in out.stderr
    project.write("missing.py", "import flordb as flor\nflor.arg('seed')\n")
    out = project.run("missing.py", check=False)
    assert "pass --kwargs seed=VALUE" in out.stderr
    out = project.run("missing.py", "--kwargs", check=False)
    assert "--kwargs needs at least one NAME=VALUE" in out.stderr


def test_unread_kwargs_are_reported(project: Project):
    project.write("a.py", "import flordb as flor\nflor.arg('n', 1)\n")
    out = project.run("a.py", "--kwargs", "n=2", "typo=3")
    assert "--kwargs typo given but never read" in out.stderr
