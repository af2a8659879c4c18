"""Shared plumbing for `bench/run.py`: the two implementations, throwaway git
repositories, timed child processes, statistics and the result table.

Every measurement runs in a child process inside a fresh git repository,
because both implementations record per project (`.flor/` next to `.git`) and
commit or snapshot code at exit; measuring in-process would hide exactly the
costs a user pays.  Children report what they time themselves by writing one
JSON object to the path in `$BENCH_OUT`; the parent adds the process wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS = BENCH_DIR / "workloads"

# The version the targets were measured against; pinned so numbers stay
# comparable across machines and months.
FLORDB_PIN = "flordb==4.0.1"
REFERENCE_PACKAGES = [FLORDB_PIN, "numpy", "scikit-learn"]


# --------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------


@dataclass
class Impl:
    """One side of the comparison: a name and the interpreter that runs it."""

    key: str  # "ours" or "flordb401"; used in JSON output
    label: str  # column heading in the table
    python: str
    ok: bool = True
    why: str = ""  # why it is unavailable, when not ok
    version: str = ""
    has_flor_cli: bool = False  # our `flor` executable next to the interpreter


def cache_dir() -> Path:
    return Path(os.environ.get("FLOR_BENCH_CACHE", "~/.cache/flordb-bench")).expanduser()


def reference_venv() -> Path:
    return cache_dir() / "venv-flordb401"


def ensure_reference_venv(log=print) -> Path:
    """Create (once) the virtual environment holding flordb 4.0.1 from PyPI.

    The `.complete` marker is written last, so an interrupted install is redone
    rather than half-used.
    """
    venv = reference_venv()
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists() and python.exists():
        return python
    log(f"creating {venv} with {' '.join(REFERENCE_PACKAGES)} (once; reused afterwards)")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Use the base interpreter rather than our venv's so the reference venv does
    # not depend on the project's .venv surviving a `make clean`.
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + REFERENCE_PACKAGES, check=True)
    marker.write_text(" ".join(REFERENCE_PACKAGES) + "\n")
    return python


_PROBE = (
    "import json, importlib.metadata as m, flordb\n"
    "try:\n    import flordb._native\n    native = True\n"
    "except ImportError:\n    native = False\n"
    "try:\n    v = m.version('flordb')\nexcept Exception:\n    v = getattr(flordb, '__version__', '?')\n"
    "print(json.dumps({'version': v, 'native': native}))\n"
)


def probe(impl: Impl, *, require_native: bool) -> Impl:
    """Check that `import flordb` works with this interpreter, outside any repo.

    flordb 4.0.1 asserts at import that the working directory is inside a git
    repository, so the probe runs in a throwaway one.
    """
    with tempfile.TemporaryDirectory(prefix="flor-bench-probe-") as tmp:
        repo = make_repo(Path(tmp) / "probe", {})
        try:
            out = subprocess.run(
                [impl.python, "-c", _PROBE], cwd=repo, capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            impl.ok, impl.why = False, f"cannot run {impl.python}: {e}"
            return impl
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        impl.ok, impl.why = False, f"`import flordb` fails with {impl.python}: {last}"
        return impl
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if require_native and not info["native"]:
        impl.ok, impl.why = False, f"flordb._native is missing for {impl.python} (engine not built?)"
        return impl
    impl.version = info["version"]
    flor_exe = Path(impl.python).parent / "flor"
    impl.has_flor_cli = flor_exe.exists()
    return impl


# --------------------------------------------------------------------------
# Throwaway repositories and child processes
# --------------------------------------------------------------------------

_GIT_ENV = {
    # Keep the user's global git config (hooks, signing, templates) out of the
    # measurement; both implementations call git at run start or exit.
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def child_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env.update(_GIT_ENV)
    # One BLAS thread per process: the machine has few cores and is shared, and
    # a multi-threaded matmul would turn scheduler noise into the signal.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    # flordb 4.0.1 captures stdout/stderr into the run; the workloads print
    # nothing of their own, so leave capture at its default on both sides.
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, env=child_env(), check=True, capture_output=True, text=True
    )


def make_repo(path: Path, files: dict) -> Path:
    """A fresh git repository at `path` with `files` (name -> source path or
    text) committed on branch `main`, and a local identity."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "bench@example.com")
    git(path, "config", "user.name", "flor bench")
    git(path, "config", "commit.gpgsign", "false")
    for name, src in files.items():
        dst = path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copyfile(src, dst)
        else:
            dst.write_text(src)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", "bench workload")
    return path


@dataclass
class ChildResult:
    wall_s: float  # fork to reaped, as the parent saw it
    exit_s: float  # from the script's last statement to reaped (atexit, commit, teardown)
    report: dict = field(default_factory=dict)  # what the script wrote to $BENCH_OUT


class ChildFailed(RuntimeError):
    pass


def run_child(python: str, script: str, repo: Path, env: Optional[dict] = None,
              args: tuple = (), timeout: float = 900) -> ChildResult:
    """Run `python script args` in `repo` and time it.

    stdout goes to /dev/null: flordb 4.0.1 echoes every `flor.log` to stdout
    (tqdm.write), and a pipe the parent must drain, or a terminal, would add
    noise of its own.  stderr goes to a file, shown if the child fails.
    """
    out_path = repo / ".bench-out.json"
    if out_path.exists():
        out_path.unlink()
    err_path = repo.parent / f".{repo.name}.stderr"
    with open(err_path, "w") as err:
        t0 = time.time_ns()
        proc = subprocess.run(
            [python, script, *args],
            cwd=repo,
            env=child_env({"BENCH_OUT": out_path, **(env or {})}),
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=timeout,
        )
        t1 = time.time_ns()
    if proc.returncode != 0:
        tail = "\n".join(err_path.read_text(errors="replace").splitlines()[-15:])
        raise ChildFailed(f"{script} exited {proc.returncode} in {repo}:\n{tail}")
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    end = report.get("t_end_ns")
    exit_s = (t1 - end) / 1e9 if end else float("nan")
    return ChildResult(wall_s=(t1 - t0) / 1e9, exit_s=exit_s, report=report)


def count_jsonl_records(repo: Path, name: str) -> int:
    """How many records called `name` the run files of `repo` hold."""
    n = 0
    needle = f'"name": "{name}"'
    needle_compact = f'"name":"{name}"'
    for path in (repo / ".flor" / "runs").glob("*.jsonl"):
        with open(path) as f:
            for line in f:
                if needle in line or needle_compact in line:
                    n += 1
    return n


# --------------------------------------------------------------------------
# Statistics and the table
# --------------------------------------------------------------------------


def median(xs):
    xs = [x for x in xs if x == x]  # drop NaN
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs):
    """(25th, 75th) percentile, for showing how noisy a median is."""
    xs = sorted(x for x in xs if x == x)
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (float("nan"), float("nan"))
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_rate(per_s: Optional[float]) -> str:
    if per_s is None or per_s != per_s:
        return "-"
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M/s"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k/s"
    return f"{per_s:.0f} /s"


def fmt_pct(frac: Optional[float]) -> str:
    if frac is None or frac != frac:
        return "-"
    return f"{frac * 100:+.1f}%"


FORMATS = {"time": fmt_time, "rate": fmt_rate, "pct": fmt_pct, "int": lambda v: "-" if v is None else f"{v:,}"}


@dataclass
class Row:
    """One line of the table.  `kind` picks the formatter; `better` says which
    direction wins, so the ratio reads "how many times better ours is"."""

    bench: str
    name: str
    kind: str  # time | rate | pct | int
    ours: Optional[float] = None
    ref: Optional[float] = None
    better: str = "lower"  # lower | higher | none
    target: str = ""
    passed: Optional[bool] = None
    note: str = ""

    def ratio(self) -> Optional[float]:
        if self.better == "none" or self.ours is None or self.ref is None:
            return None
        if self.ours != self.ours or self.ref != self.ref:
            return None
        if self.kind == "pct":
            return None  # a ratio of two overheads says little; show both
        if self.ours <= 0 or self.ref <= 0:
            return None  # a cost measured at or below zero is noise: no ratio
        try:
            return self.ref / self.ours if self.better == "lower" else self.ours / self.ref
        except ZeroDivisionError:
            return None

    def as_dict(self) -> dict:
        return {
            "bench": self.bench, "name": self.name, "kind": self.kind,
            "ours": self.ours, "flordb401": self.ref, "ratio": self.ratio(),
            "target": self.target or None, "pass": self.passed, "note": self.note or None,
        }


def render_table(rows: list[Row]) -> str:
    head = ["benchmark", "ours", "flordb 4.0.1", "ours better by", "target", ""]
    lines = []
    for r in rows:
        fmt = FORMATS[r.kind]
        ratio = r.ratio()
        mark = {True: "PASS", False: "FAIL", None: ""}[r.passed]
        lines.append([
            f"({r.bench}) {r.name}",
            fmt(r.ours),
            fmt(r.ref),
            "-" if ratio is None else f"{ratio:.1f}x",
            r.target,
            mark,
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    def line(cells):
        return "  ".join(str(c).ljust(w) if i in (0, 4, 5) else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [line(head), line(["-" * w for w in widths])]
    out += [line(c) for c in lines]
    notes = [f"  ({r.bench}) {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:"] + notes
    return "\n".join(out)
