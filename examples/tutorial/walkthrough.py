"""The FlorDB tutorial, end to end, in a throwaway git repository.

    python examples/tutorial/walkthrough.py [--dir PATH]

`make demo` runs it with the project's .venv.  It never touches the project
checkout: the repository it works in is a fresh temporary directory (or --dir),
printed at the start and left in place so you can look around afterwards
(`cd` there and try `flor dataframe loss`).

Each step is one function in STEPS, printing a heading that says what it does.
The walkthrough uses the numpy script (train_v1.py, then train.py); train_torch.py is
the same script in PyTorch, with `flor.checkpointing(model=net, optimizer=opt)`, and
replays the same way (tests/test_tutorial_torch.py does it across two versions).
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

# The runs of step 2 (version 1 of train.py) and step 3 (version 2).
RUNS_V1 = [["hidden=32", "lr=0.05"], ["hidden=64", "lr=0.1"]]
RUNS_V2 = [["hidden=128", "lr=0.2", "epochs=8"]]

# Step 6 adds this statement to today's train.py, after the epoch's val_acc.
NEW_STATEMENT = '        flor.log("weight_norm", float(np.linalg.norm(W_hidden)))\n'
ANCHOR = '        flor.log("val_acc", accuracy(X_val, y_val))\n'
WHERE = "hidden >= 64"


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
    heading(1, f"Make a project: a git repository with version 1 of train.py committed, in {repo}")
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "train_v1.py", repo / "train.py")
    sh(repo, "git", "init", "-q", "-b", "main")
    # A local identity: FlorDB commits code snapshots, and a fresh machine may
    # have no global git identity.
    sh(repo, "git", "config", "user.email", "tutorial@example.com", show=False)
    sh(repo, "git", "config", "user.name", "FlorDB tutorial", show=False)
    sh(repo, "git", "add", "train.py")
    sh(repo, "git", "commit", "-q", "-m", "Train an MLP on digits")


def train(repo: Path, runs: list[list[str]]) -> None:
    for kwargs in runs:
        out = sh(repo, PYTHON, "train.py", "--kwargs", *kwargs)
        last = [line for line in out.splitlines() if line.startswith("test accuracy")]
        print("     " + (last[-1] if last else "(no accuracy printed)"))


def record_runs(repo: Path) -> None:
    heading(2, f"Record {len(RUNS_V1)} training runs of version 1 with different hyper-parameters")
    train(repo, RUNS_V1)


def second_version(repo: Path) -> None:
    heading(3, "Commit version 2 (the hidden layer's weights are renamed W_hidden) and record a run")
    shutil.copyfile(HERE / "train.py", repo / "train.py")
    sh(repo, "git", "commit", "-q", "-am", "Rename the hidden layer's weights")
    train(repo, RUNS_V2)


def query(repo: Path) -> None:
    heading(4, 'Query every run at once: flor.dataframe("hidden", "lr", "val_acc", "accuracy")')
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        df = flor.dataframe("hidden", "lr", "val_acc", "accuracy")
        print(df.to_string())
    """))
    heading(5, "The run table: flor.dataframe() with no names, one row per run with its args and run-level values")
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        print(flor.dataframe().to_string())
    """))
    heading(6, "What FlorDB knows about each run: flor.runs()")
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


def new_statement(repo: Path) -> None:
    heading(7, "Hindsight: add a new flor.log statement to today's train.py (not committed)")
    script = repo / "train.py"
    text = script.read_text()
    if ANCHOR not in text:
        raise SystemExit("walkthrough: train.py no longer has the val_acc line to add the statement after")
    script.write_text(text.replace(ANCHOR, ANCHOR + NEW_STATEMENT))
    print(sh(repo, "git", "diff", "--", "train.py"))


def replay(repo: Path) -> None:
    heading(8, f"Fill it in for the past runs where {WHERE}: `flor replay` propagates the statement into each run's version and replays from checkpoints")
    flor = str(Path(PYTHON).with_name("flor"))
    cmd = [flor, "replay", "weight_norm", "--where", WHERE, "--yes"]
    print("   $ " + " ".join(["flor", *cmd[1:]]), flush=True)
    proc = subprocess.run(cmd, cwd=repo, text=True, capture_output=True)
    print(textwrap.indent(proc.stdout.rstrip(), "     "))
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"walkthrough: flor replay failed with exit code {proc.returncode}")
    heading(9, 'The filled column: flor.dataframe("hidden", "lr", "weight_norm")')
    print(python_code(repo, """
        import pandas as pd
        import flordb as flor
        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        df = flor.dataframe("hidden", "lr", "weight_norm")
        print(df[df["weight_norm"].notna()].to_string())
    """))
    print(sh(repo, "git", "status", "--short"), end="")
    print("   (git status: only today's edit; replay ran each version in its own worktree)")


STEPS = [make_project, record_runs, second_version, query, new_statement, replay]


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
