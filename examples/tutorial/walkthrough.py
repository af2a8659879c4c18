"""The FlorDB tutorial, end to end, in a throwaway git repository.

    python examples/tutorial/walkthrough.py [--dir PATH]

`make demo` runs it with the project's .venv.  It never touches the project
checkout: the repository it works in is a fresh temporary directory (or --dir),
printed at the start and left in place so you can look around afterwards
(`cd` there and try `flor dataframe loss`).

Each step is one function in STEPS, printing a heading that says what it does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable  # the interpreter whose `import flordb` we demonstrate

# The three runs of step 2: same code, different hyper-parameters.
RUNS = [
    ["hidden=32", "lr=0.05"],
    ["hidden=64", "lr=0.1"],
    ["hidden=128", "lr=0.2", "epochs=8"],
]


def heading(n: int, text: str) -> None:
    print(f"\n== {n}. {text}", flush=True)


def sh(repo: Path, *cmd: str, show: bool = True) -> str:
    """Run a command in the tutorial repository; fail loudly, with its output."""
    if show:
        print("   $ " + " ".join(cmd if cmd[0] != PYTHON else ("python", *cmd[1:])), flush=True)
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"walkthrough: `{' '.join(cmd)}` failed with exit code {proc.returncode}")
    return proc.stdout


def python_code(repo: Path, code: str) -> str:
    return sh(repo, PYTHON, "-c", textwrap.dedent(code), show=False)


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def make_project(repo: Path) -> None:
    heading(1, f"Make a project: a git repository with train.py committed, in {repo}")
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "train.py", repo / "train.py")
    sh(repo, "git", "init", "-q", "-b", "main")
    # A local identity: FlorDB commits code snapshots, and a fresh machine may
    # have no global git identity.
    sh(repo, "git", "config", "user.email", "tutorial@example.com", show=False)
    sh(repo, "git", "config", "user.name", "FlorDB tutorial", show=False)
    sh(repo, "git", "add", "train.py")
    sh(repo, "git", "commit", "-q", "-m", "Train an MLP on digits")


def record_runs(repo: Path) -> None:
    heading(2, f"Record {len(RUNS)} training runs with different hyper-parameters")
    for kwargs in RUNS:
        out = sh(repo, PYTHON, "train.py", "--kwargs", *kwargs)
        # The script prints its test accuracy last; the per-step echo before it
        # is FlorDB's and would fill the screen.
        last = [line for line in out.splitlines() if line.startswith("test accuracy")]
        print("     " + (last[-1] if last else "(no accuracy printed)"))


def query(repo: Path) -> None:
    heading(3, 'Query every run at once: flor.dataframe("hidden", "lr", "val_acc", "accuracy")')
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        df = flor.dataframe("hidden", "lr", "val_acc", "accuracy")
        print(df.to_string())
    """))
    heading(4, "The run table: flor.dataframe() with no names, one row per run with its args and run-level values")
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        print(flor.dataframe().to_string())
    """))
    heading(5, "What FlorDB knows about each run: flor.runs()")
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        if not hasattr(flor, "runs"):
            print("(flor.runs() is not in this flordb; flordb 4.0.1 has no run metadata table)")
        else:
            runs = flor.runs()
            wanted = ["run_id", "script", "branch", "version", "status", "exit_code", "duration", "records"]
            print(runs[[c for c in wanted if c in runs.columns]].to_string())
    """))


# Later issues extend the tutorial here, in this order: commit a second version
# of train.py, add a new flor.log statement to today's code, and fill it in for
# the past runs with `flor replay`; each is one more function appended to STEPS.
STEPS = [make_project, record_runs, query]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, help="where to create the tutorial repository (must not exist)")
    args = ap.parse_args(argv)
    if args.dir is not None:
        repo = args.dir.resolve()
        if repo.exists():
            ap.error(f"{repo} already exists; pick a new directory")
    else:
        repo = Path(tempfile.mkdtemp(prefix="flor-tutorial-")) / "digits"
    print(f"FlorDB tutorial with {PYTHON}\nworking in {repo} (outside the project checkout; left in place)")
    # Keep the user's global git hooks and templates out of the tutorial repo.
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    for step in STEPS:
        step(repo)
    print(f"\nDone. The project is in {repo}; cd there to explore.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
