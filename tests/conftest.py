"""Shared fixtures: throwaway git repositories and scripts run as real subprocesses,
the way users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str, check: bool = True) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


class Project:
    """A git repository with helpers to write scripts, run them and read results."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, name: str, text: str) -> Path:
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.path, *args, check=check)

    def commit_all(self, message: str = "code") -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def run(self, *args: str, check: bool = True, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
        full_env = {**os.environ, **(env or {})}
        out = subprocess.run([PYTHON, *args], cwd=cwd or self.path, capture_output=True, text=True, env=full_env, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"python {' '.join(args)} exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        return out

    def flor(self, *args: str, check: bool = True):
        return self.run("-m", "flordb", *args, check=check)

    def py(self, code: str):
        """Runs `code` in a fresh interpreter in the project; returns what it printed as JSON."""
        out = self.run("-c", textwrap.dedent(code))
        return json.loads(out.stdout.strip().splitlines()[-1])

    def frame(self, *names: str) -> list[dict]:
        """flor.dataframe(*names) as a list of row dicts (NaN and NA as None)."""
        return self.py(
            f"""
            import json, flordb as flor
            df = flor.dataframe(*{list(names)!r})
            df = df.astype(object).where(df.notna(), None)
            for c in df.columns:
                if str(df[c].dtype).startswith('datetime'):
                    df[c] = df[c].astype(str)
            print(json.dumps(df.to_dict(orient='records'), default=str))
            """
        )

    def runs(self) -> list[dict]:
        return self.py(
            """
            import json, flordb as flor
            df = flor.runs()
            df = df.astype(object).where(df.notna(), None)
            print(json.dumps(df.to_dict(orient='records'), default=str))
            """
        )


def init_project(repo: Path) -> Project:
    """A fresh git repository at `repo` (branch main, a local identity)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tester@example.com")
    git(repo, "config", "user.name", "Tester")
    git(repo, "config", "commit.gpgsign", "false")
    return Project(repo)


def new_project(factory, name: str) -> Project:
    """A fresh project from pytest's `tmp_path_factory`, for a module-scoped scenario
    recorded once and read by several tests."""
    return init_project(factory.mktemp(name) / "proj")


def run_files(p: Project) -> list[Path]:
    """The project's run files, oldest first (run ids sort by start time)."""
    return sorted((p.path / ".flor" / "runs").glob("*.jsonl"))


def settle(p: Project, timeout: float = 60) -> None:
    """Waits until every run's records commit (made after exit, in the background) is in git."""
    deadline = time.monotonic() + timeout
    while True:
        refs = p.git("for-each-ref", "--format=%(subject)", "refs/flor/runs").splitlines()
        if all(s.startswith("FLOR::Auto-commit::") for s in refs):
            return
        assert time.monotonic() < deadline, f"records commits never made: {refs}"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "proj")


TRAIN = """
import flordb as flor
lr = flor.arg("lr", 1e-3)
for epoch in flor.loop("epoch", range(flor.arg("epochs", 3))):
    for step in flor.loop("step", range(4)):
        flor.log("loss", epoch + step / 10)
    flor.log("val_acc", epoch / 10)
flor.log("accuracy", 0.9)
"""


@pytest.fixture
def trained(project: Project) -> Project:
    """A project with train.py committed and two recorded runs."""
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py", "--kwargs", "lr=0.01", "epochs=2")
    project.run("train.py", "--kwargs", "lr=0.1")
    return project
