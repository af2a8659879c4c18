"""flordb 4.0.1's tests/test_commit.py and tests/test_gitignore.py, ported as black-box
tests.

4.0.1 tests its commit sequencing in-process, by swapping its own git function for one
that raises. Here git itself fails or stalls: a `git` earlier on PATH that stands in for
the real one and either exits 130 (as a Ctrl-C would leave it) or, while one run's commit
is under way, records another run and reads the table. 4.0.1's .gitignore tests become
checks that this project leaves the user's .gitignore alone and still gets every run
file into git (documented: runs are committed under refs/flor/runs/<run>)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import Project, new_project, run_files, settle

MARKER = 'import flordb as flor\nflor.log("marker", {n})\n'
REAL_GIT = shutil.which("git")








def fake_git(folder, body: str) -> dict:
    """A `git` in `folder` running `body` (Python, with `args`) before the real git;
    returns the env that puts it first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "git"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, subprocess, sys, time\n"
        f"REAL = {REAL_GIT!r}\nargs = sys.argv[1:]\n{body}\n"
        "os.execv(REAL, [REAL, *args])\n"
    )
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


MARKERS = """
import json, flordb as flor
df = flor.dataframe("marker")
print(json.dumps(sorted([r.run_id, int(r.marker)] for r in df.itertuples())))
"""


# --- 4.0.1's TestGitFailureDoesNotStrandTheConnection ---------------------------------

INTERRUPTED = """
if "update-ref" in args and any(a.startswith("refs/flor/") for a in args):
    sys.stderr.write("git: interrupted\\n")
    sys.exit(130)
"""


@pytest.fixture(scope="module")
def git_failed(tmp_path_factory):
    """A run whose every git ref update fails, then one with a working git."""
    p = new_project(tmp_path_factory, "git_failed")
    p.write("t.py", MARKER.format(n=1))
    p.commit_all()
    broken = fake_git(p.path.parent / "bin", INTERRUPTED)
    s = {"first": p.run("t.py", env=broken, check=False)}
    s["after_first"] = p.py(MARKERS)
    p.write("t.py", MARKER.format(n=2))
    s["second"] = p.run("t.py", check=False)
    settle(p)
    s["after_second"] = p.py(MARKERS)
    s["runs"] = p.runs()
    s["files"] = run_files(p)
    return s


def test_the_store_is_writable_after_git_failed(git_failed):
    assert git_failed["second"].returncode == 0, git_failed["second"].stderr
    assert [m for _, m in git_failed["after_second"]] == [1, 2]
    assert git_failed["runs"][1]["version"]  # the next run's code is committed as usual


def test_the_run_is_recorded_even_though_git_failed(git_failed):
    first = git_failed["first"]
    assert first.returncode == 0, first.stderr  # the script's own status, not git's
    assert "code version of this run was not recorded" in first.stderr
    assert [m for _, m in git_failed["after_first"]] == [1]
    run = git_failed["runs"][0]
    assert run["status"] == "finished" and run["version"] is None


def test_the_records_are_not_replayed_into_a_second_run(git_failed):
    rows = git_failed["after_second"]
    assert len({run for run, _ in rows}) == len(rows) == 2
    first_file = [json.loads(line) for line in git_failed["files"][0].read_text().splitlines()]
    assert [r["value"] for r in first_file if r["name"] == "marker"] == [1]


STALLED = """
if "update-ref" in args and any(a.startswith("refs/flor/runs/") for a in args):
    state = os.environ["STALL_STATE"]
    calls = len([f for f in os.listdir(state) if f.startswith("call")])
    open(os.path.join(state, f"call{calls}"), "w").close()
    if calls == int(os.environ["STALL_AT"]):
        env = {**os.environ, "PATH": os.environ["STALL_PATH"]}
        py, cwd, report = os.environ["STALL_PYTHON"], args[args.index("-C") + 1], {}
        for key, cmd in (("other", [py, "other.py"]), ("read", [py, "-c", os.environ["STALL_READ"]])):
            t0 = time.monotonic()
            try:
                out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=8)
                report[key] = [out.returncode, out.stdout.strip(), out.stderr, time.monotonic() - t0]
            except subprocess.TimeoutExpired:
                report[key] = ["timeout", "", "", time.monotonic() - t0]
        with open(os.path.join(state, "report.json"), "w") as f:
            json.dump(report, f)
"""


def stalled_run(project: Project, tmp_path, at: int) -> dict:
    """Runs t.py with a git that, at its `at`-th update of a run's ref (0: the code
    snapshot at the run's first FlorDB call; 1: the records commit after exit), first
    records other.py and reads the table (8 s each at most); returns what they did."""
    project.write("t.py", MARKER.format(n=1))
    project.write("other.py", MARKER.format(n=2))
    project.commit_all()
    state = tmp_path / "state"
    state.mkdir()
    env = fake_git(tmp_path / "bin", STALLED)
    env.update(STALL_STATE=str(state), STALL_AT=str(at), STALL_PATH=os.environ["PATH"],
               STALL_PYTHON=sys.executable, STALL_READ=MARKERS)
    project.run("t.py", env=env)
    deadline = time.monotonic() + 60
    while not (state / "report.json").exists():
        assert time.monotonic() < deadline, "the stalled git step never ran"
        time.sleep(0.1)
    report = json.loads((state / "report.json").read_text())
    settle(project)
    return report


def test_the_store_is_writable_while_git_runs_at_the_start(project, tmp_path):
    """Not only released on the way out: while the run's code snapshot is being
    committed, another run records and a read answers."""
    report = stalled_run(project, tmp_path, at=0)
    assert report["other"][0] == 0, report["other"][2]
    assert report["read"][0] == 0, report["read"][2]
    assert [m for _, m in json.loads(report["read"][1])] == [2]  # t.py has logged nothing yet
    assert sorted(m for _, m in project.py(MARKERS)) == [1, 2]


def test_the_store_is_writable_while_git_runs_for_the_records(project, tmp_path):
    """The same while the run's records are committed after its exit."""
    report = stalled_run(project, tmp_path, at=1)
    assert report["other"][0] == 0, report["other"][2]
    assert report["read"][0] == 0, report["read"]
    assert sorted(m for _, m in json.loads(report["read"][1])) == [1, 2]
    assert sorted(m for _, m in project.py(MARKERS)) == [1, 2]


# --- 4.0.1's test_gitignore.py: TestEnsureGitignored and TestGitAgreesWithTheIntent ----


def record(project: Project, gitignore: str | None = None) -> tuple:
    """Commits t.py (and the user's .gitignore), runs it; returns (run file, ref tree)."""
    if gitignore is not None:
        project.write(".gitignore", gitignore)
    project.write("t.py", MARKER.format(n=1))
    project.commit_all()
    project.run("t.py")
    settle(project)
    (path,) = run_files(project)[-1:]
    tree = project.git("ls-tree", "-r", "--name-only", f"refs/flor/runs/{path.stem}").splitlines()
    return path, tree


def ignored(project: Project, path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=project.path).returncode == 0


def test_no_gitignore_is_created(project):
    """Documented difference: 4.0.1 creates .gitignore with `.flor/*` and `!.flor/runs/`;
    here none is written, .flor/ ignores itself and the checkout stays clean."""
    record(project)
    assert not (project.path / ".gitignore").exists()
    assert (project.path / ".flor" / ".gitignore").read_text().strip().splitlines()[-1] == "*"
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_gitignore_is_left_alone_across_runs(project):
    """Documented difference: 4.0.1's edit is idempotent; here there is no edit at all."""
    record(project, "data/\n")
    project.run("t.py")
    assert (project.path / ".gitignore").read_text() == "data/\n"
    assert project.git("status", "--porcelain") == ""


def test_legacy_bare_entry_is_left_alone_and_runs_still_reach_git(project):
    """Documented difference: 4.0.1 rewrites a legacy `.flor/` line so run files can be
    tracked; here the line stays and the run file is committed under refs/flor/runs/."""
    text = "*.pyc\n.flor/\nbuild/\n"
    path, tree = record(project, text)
    assert (project.path / ".gitignore").read_text() == text
    assert f".flor/runs/{path.name}" in tree


def test_preserves_unrelated_entries(project):
    record(project, "# comment\n\n.venv/\n")
    assert (project.path / ".gitignore").read_text() == "# comment\n\n.venv/\n"


def test_run_files_reach_git_whatever_gitignore_says(project):
    """Documented difference: 4.0.1 appends its re-include last so it beats `*.jsonl`;
    here nothing is appended and the run file is committed regardless."""
    path, tree = record(project, ".flor/\n*.jsonl\n")
    assert (project.path / ".gitignore").read_text() == ".flor/\n*.jsonl\n"
    assert f".flor/runs/{path.name}" in tree


def test_runs_are_in_git_cache_and_objstore_are_not(project):
    """Documented difference: in the checkout all of .flor/ is ignored (4.0.1 tracks
    .flor/runs/ on the branch); the run file is in the run's commit, the cache and the
    object store are in neither."""
    path, tree = record(project)
    assert ignored(project, f".flor/runs/{path.name}")
    assert ignored(project, ".flor/objects/ab/cdef")
    assert ignored(project, ".flor/flor.db")
    assert f".flor/runs/{path.name}" in tree
    assert not [f for f in tree if f.startswith(".flor/") and not f.startswith(".flor/runs/")]


def test_migrated_repo_keeps_runs_in_git_too(project):
    path, tree = record(project, ".flor/\n")
    assert f".flor/runs/{path.name}" in tree
    assert not [f for f in tree if f.startswith(".flor/objects/") or f.endswith(".db")]
    assert project.git("show", f"refs/flor/runs/{path.stem}:.flor/runs/{path.name}") == path.read_text().strip()
