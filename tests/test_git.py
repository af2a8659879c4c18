"""Code versions: each run's code is committed under refs/flor/ without touching the
user's working tree, index, HEAD or branches."""

from __future__ import annotations

import hashlib
import time

from conftest import TRAIN, Project


def tree_state(p: Project) -> dict:
    files = {
        str(f.relative_to(p.path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in p.path.rglob("*")
        if f.is_file() and ".git" not in f.parts and ".flor" not in f.parts
    }
    return {
        "status": p.git("status", "--porcelain", "--untracked-files=all"),
        "head": p.git("rev-parse", "HEAD"),
        "branch": p.git("symbolic-ref", "-q", "HEAD", check=False),
        "branches": p.git("for-each-ref", "refs/heads"),
        "staged": p.git("diff", "--cached"),
        "stash": p.git("stash", "list"),
        "files": files,
    }


def test_run_leaves_the_users_checkout_exactly_as_it_was(project: Project):
    project.write("train.py", TRAIN)
    project.write(".gitignore", "data/\n")
    project.commit_all()
    project.write("train.py", TRAIN + "\n# an uncommitted edit\n")
    project.write("notes.txt", "staged but not committed\n")
    project.git("add", "notes.txt")
    project.write("scratch.py", "untracked\n")
    before = tree_state(project)
    project.run("train.py")
    after = tree_state(project)
    assert after == before
    assert (project.path / ".gitignore").read_text() == "data/\n"


def test_snapshot_holds_the_working_tree_as_it_was_at_start(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.write("train.py", TRAIN + "\n# edited before the run\n")
    project.write("helper.py", "X = 1\n")
    project.run("train.py")
    (run,) = project.runs()
    version = run["version"]
    assert project.git("show", f"{version}:train.py").endswith("# edited before the run")
    assert project.git("show", f"{version}:helper.py") == "X = 1"
    assert project.git("rev-parse", f"{version}^") == project.git("rev-parse", "HEAD")
    ref = f"refs/flor/runs/{run['run_id']}"
    records_commit = project.git("rev-parse", ref)
    assert project.git("rev-parse", f"{records_commit}^") == version
    assert f".flor/runs/{run['run_id']}.jsonl" in project.git("ls-tree", "-r", "--name-only", ref)
    assert project.git("log", "-1", "--format=%s", ref).startswith("FLOR::Auto-commit::")
    assert "lr=0.001" in project.git("log", "-1", "--format=%b", ref)


def test_repository_without_commits(project: Project):
    project.write("train.py", TRAIN)
    project.run("train.py")
    (run,) = project.runs()
    assert run["status"] == "finished" and run["version"]
    assert project.git("rev-parse", "-q", "--verify", "HEAD", check=False) == ""
    assert project.git("status", "--porcelain") == "?? train.py"


def test_detached_head(project: Project):
    project.write("train.py", TRAIN)
    first = project.commit_all()
    project.write("other.txt", "x")
    project.commit_all("second")
    project.git("checkout", "-q", first)
    project.run("train.py")
    (run,) = project.runs()
    assert run["branch"] is None
    assert project.git("rev-parse", f"{run['version']}^") == first
    assert project.git("rev-parse", "HEAD") == first


def test_script_outside_git_records_and_says_so(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    p = Project(folder)
    p.write("train.py", TRAIN)
    out = p.run("train.py")
    assert "not inside a git repository" in out.stderr and "git init" in out.stderr
    (run,) = p.runs()
    assert run["version"] is None and run["status"] == "finished"
    assert len(p.frame("loss")) == 12


def test_flor_branch_receives_each_run_and_the_user_stays_on_it(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.git("checkout", "-q", "-b", "flor.shadow")
    project.run("train.py")
    project.run("train.py", "--kwargs", "lr=0.5")
    assert project.git("symbolic-ref", "--short", "HEAD") == "flor.shadow"
    assert project.git("status", "--porcelain") == ""
    log = project.git("log", "--format=%s", "flor.shadow").splitlines()
    assert [s.split("::")[1] for s in log[:2]] == ["Auto-commit", "Auto-commit"]
    files = project.git("ls-tree", "-r", "--name-only", "flor.shadow", "--", ".flor/runs/").splitlines()
    assert len(files) == 2
    assert project.git("rev-parse", "main") == project.git("rev-parse", "flor.shadow~2")


def test_other_branches_never_move(trained: Project):
    assert trained.git("log", "--format=%s", "main").splitlines() == ["code"]
    assert trained.git("for-each-ref", "--format=%(refname)", "refs/heads") == "refs/heads/main"


def test_runs_of_unchanged_code_share_a_version(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py")
    project.run("train.py", "--kwargs", "lr=0.5")
    project.write("train.py", TRAIN + "\n# changed\n")
    project.run("train.py")
    versions = [r["version"] for r in project.runs()]
    assert versions[0] == versions[1] != versions[2]


def wait_for_background_commit(p: Project, timeout: float = 60) -> None:
    """Off `flor.*` branches the run file is committed after exit, by a detached process."""
    pending = p.path / ".flor" / "tmp" / "pending"
    deadline = time.monotonic() + timeout
    while any(pending.glob("*.json")):
        assert time.monotonic() < deadline, "the records commit was never made"
        time.sleep(0.05)


def test_records_are_committed_after_exit_without_any_read(project: Project):
    project.write("train.py", TRAIN)
    project.commit_all()
    project.run("train.py", "--kwargs", "lr=0.02")
    wait_for_background_commit(project)
    (run_file,) = (project.path / ".flor" / "runs").glob("*.jsonl")
    ref = f"refs/flor/runs/{run_file.stem}"
    assert f".flor/runs/{run_file.name}" in project.git("ls-tree", "-r", "--name-only", ref)
    assert "lr=0.02" in project.git("log", "-1", "--format=%b", ref)
    assert project.git("show", f"{ref}:.flor/runs/{run_file.name}") == run_file.read_text().strip()
    # Nothing failed and was set aside; the checkout is untouched.
    assert list((project.path / ".flor" / "tmp" / "pending").iterdir()) == []
    assert project.git("status", "--porcelain") == ""
