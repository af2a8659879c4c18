"""Hindsight exactness on a corpus of training scripts shaped like other people's code.

Each script in ``tests/corpus/`` is "today's" version; its lines marked ``# HINDSIGHT``
are the statements a user adds in hindsight, and removing them gives the version that
was recorded. For every script:

- ground truth: today's version, committed in a throwaway repository and run forward
  with its default args, logs the values of every hindsight name;
- recorded run: the old version, committed in another throwaway repository and run
  forward with one checkpoint per outer iteration (FLOR_EPSILON=1000); then today's
  version is written into the working tree, as a user would;
- each replay form runs in its own copy of the recorded repository (``.git`` and
  ``.flor`` included) and its ``source="replay"`` rows must equal the ground truth's for
  the iterations asked, bit for bit, same keys, same count.

The forms: ``flor replay`` (the CLI) of the epoch-level statements with no ``--iter``, with
``--iter OUTER=last``, with two mid-run iterations and with ``--workers 2``; of the
step-level statement with one iteration and with ``--workers 2``; and, for a few scripts,
``python SCRIPT --replay_flor --apply ... --iter OUTER=A,B`` inside the repository. Each
(script, form) is one test case, so the table of what is exact and what is not reads
straight off the pytest report (``FLOR_CORPUS_REPORT=path`` also writes it as JSON lines). ``test_forward_is_deterministic`` checks the harness's own
premise: both forward runs log the same values for the names both versions log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import PYTHON, Project, init_project

CORPUS = Path(__file__).resolve().parent / "corpus"
EVERY = {"FLOR_EPSILON": "1000"}  # one checkpoint per outer iteration
MARK = "# HINDSIGHT"
REPLAY_TIMEOUT = 240

_probe = subprocess.run([PYTHON, "-c", "import torch"], capture_output=True, text=True)
HAS_TORCH = _probe.returncode == 0
NO_TORCH = pytest.mark.skipif(
    not HAS_TORCH,
    reason="torch is not installed (`make torch` installs it into ~/.cache/flordb): " + _probe.stderr[-200:],
)


@dataclass(frozen=True)
class Case:
    script: str  # path of the script inside tests/corpus (and inside the repository)
    outer: str  # the outer flor.loop's name
    mid: tuple[int, int]  # two mid-run outer iterations, for --iter OUTER=A,B
    torch: bool = True
    direct: bool = False  # also replay as `python SCRIPT --replay_flor ...`
    commit_today: bool = False  # commit today's version before replaying (else left uncommitted)
    data_outside: bool = False  # reads ../data/digits.pt, outside the repository
    extra: tuple[str, ...] = ()  # other corpus files the script needs, besides .gitignore

    @property
    def files(self) -> list[str]:
        return [self.script, *self.extra]


CASES: dict[str, Case] = {
    "nanogpt": Case("nanogpt.py", "iter", (4, 9), direct=True, commit_today=True),
    "nanogpt_micro": Case("nanogpt_micro.py", "iter", (4, 9)),
    "mnist_examples": Case("mnist_examples.py", "epoch", (1, 2), direct=True, data_outside=True),
    "resume_ckpt": Case("resume_ckpt.py", "epoch", (1, 3), direct=True),
    "resume_ckpt_4x": Case("resume_ckpt_4x.py", "epoch", (1, 3)),
    "onecycle": Case("onecycle.py", "epoch", (1, 2)),
    "ema": Case("ema.py", "epoch", (1, 2)),
    "early_stop": Case("early_stop.py", "epoch", (5, 12)),
    "manual_decay": Case("manual_decay.py", "epoch", (2, 4), torch=False),
    "kmeans_np": Case("kmeans_np.py", "epoch", (2, 5), torch=False, commit_today=True),
    "hf_steps": Case("hf_steps.py", "epoch", (1, 2), commit_today=True),
    "data_iter": Case("data_iter.py", "iter", (3, 7), direct=True),
    "tqdm_bar": Case("tqdm_bar.py", "epoch", (1, 2)),
    "main_helper": Case("main_helper/train.py", "epoch", (1, 2), extra=("main_helper/helpers.py",), commit_today=True),
    "rng_object_np": Case("rng_object_np.py", "epoch", (1, 2), torch=False, direct=True),
    "amp_scaler": Case("amp_scaler.py", "epoch", (1, 2)),
    "trainer_class": Case("trainer_class.py", "epoch", (1, 2)),
    "while_metric": Case("while_metric.py", "epoch", (3, 7), torch=False),
}


def today_text(rel: str) -> str:
    return (CORPUS / rel).read_text()


def old_text(rel: str) -> str:
    """The recorded version: today's text without the lines marked # HINDSIGHT."""
    return "".join(line for line in today_text(rel).splitlines(keepends=True) if MARK not in line)


_LOG = re.compile(r"""flor\.log\(\s*["']([A-Za-z0-9_]+)["']""")


def hindsight_names(case: Case) -> tuple[list[str], list[str]]:
    """(epoch-level names, step-level names) of the statements marked # HINDSIGHT."""
    names: list[str] = []
    for rel in case.files:
        for line in today_text(rel).splitlines():
            if MARK in line:
                names += _LOG.findall(line)
    names = list(dict.fromkeys(names))
    return [n for n in names if n.startswith("h_epoch")], [n for n in names if n.startswith("h_step")]


def recorded_names(case: Case) -> list[str]:
    names: list[str] = []
    for rel in case.files:
        names += _LOG.findall(old_text(rel))
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Form:
    level: str  # "epoch" or "step"
    how: str  # "all", "last", "AB", "A", "workers2", "direct"


FORMS = {
    "epoch-all": Form("epoch", "all"),
    "epoch-last": Form("epoch", "last"),
    "epoch-AB": Form("epoch", "AB"),
    "epoch-workers2": Form("epoch", "workers2"),
    "step-A": Form("step", "A"),
    "step-workers2": Form("step", "workers2"),
    "direct-AB": Form("epoch", "direct"),
}


def forms_of(case: Case) -> list[str]:
    epoch, step = hindsight_names(case)
    out = [f for f, form in FORMS.items() if form.level == "epoch" and form.how != "direct"] if epoch else []
    if step:
        out += ["step-A", "step-workers2"]
    if case.direct:
        out.append("direct-AB")
    return out


# -- repositories ---------------------------------------------------------------------------




def write_version(p: Project, case: Case, old: bool) -> None:
    shutil.copy(CORPUS / ".gitignore", p.path / ".gitignore")
    for rel in case.files:
        dst = p.path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(old_text(rel) if old else today_text(rel))


WRITE_DIGITS = """
import torch
from sklearn.datasets import load_digits
d = load_digits()
torch.save({"images": torch.tensor(d.images, dtype=torch.uint8), "labels": torch.tensor(d.target, dtype=torch.uint8)}, "data/digits.pt")
"""

# Every row of every name, as [source, run_id, [[loop, iteration], ...], value]; the
# key holds the script's loop columns only (the frame may carry other columns).
READ_ROWS = """
import json, sys
import pandas as pd
import flordb as flor
names, loops = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for name in names:
    df = flor.dataframe(name)
    rows = []
    if name in df.columns:
        cols = [c for c in df.columns if c in loops or (c.rsplit("_", 1)[0] in loops and c.rsplit("_", 1)[-1].isdigit())]
        for rec in df.to_dict(orient="records"):
            v = rec[name]
            if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
                continue
            v = v.item() if hasattr(v, "item") else v
            key = [[c, int(rec[c])] for c in cols if not pd.isna(rec[c])]
            rows.append([rec["source"], rec["run_id"], key, v])
    out[name] = rows
print(json.dumps(out))
"""

_LOOP = re.compile(r"""flor\.loop\(\s*["']([A-Za-z0-9_]+)["']""")


def loop_names(case: Case) -> list[str]:
    names: list[str] = []
    for rel in case.files:
        names += _LOOP.findall(today_text(rel))
    return list(dict.fromkeys(names))


def read_rows(p: Project, case: Case, names: list[str]) -> dict[str, list]:
    out = p.run("-c", READ_ROWS, json.dumps(names), json.dumps(loop_names(case)))
    return json.loads(out.stdout.strip().splitlines()[-1])


Key = tuple  # ((loop, iteration), ...)


def keyed(rows: list, source: str) -> tuple[dict[Key, object], list[Key]]:
    """{key: value} of the rows from ``source``, and the keys seen more than once."""
    got: dict[Key, object] = {}
    dups = []
    for src, _run, key, value in rows:
        if src != source:
            continue
        k = tuple(tuple(seg) for seg in key)
        if k in got:
            dups.append(k)
        got[k] = value
    return got, dups


@dataclass
class Built:
    case: Case
    base: Path
    truth: dict[str, dict[Key, object]]  # every hindsight and recorded name, from today's forward run
    recorded: Project  # old version recorded, today's version in the working tree
    recorded_forward: dict[str, dict[Key, object]] = field(default_factory=dict)
    last: int = -1  # the outer loop's last iteration in the ground truth
    error: str | None = None


def _run_dir(p: Project, case: Case) -> Path:
    return p.path / Path(case.script).parent if case.data_outside else p.path


def _script_arg(case: Case) -> str:
    return Path(case.script).name if case.data_outside else case.script


def build(case_id: str, base: Path) -> Built:
    case = CASES[case_id]
    epoch, step = hindsight_names(case)
    names = epoch + step + recorded_names(case)
    if case.data_outside:
        (base / "data").mkdir()
        subprocess.run([PYTHON, "-c", WRITE_DIGITS], cwd=base, check=True, capture_output=True, timeout=120)

    truth_p = init_project(base / "truth")
    write_version(truth_p, case, old=False)
    truth_p.commit_all("today")
    truth_p.run(_script_arg(case), cwd=_run_dir(truth_p, case))
    truth_rows = read_rows(truth_p, case, names)
    truth = {n: keyed(truth_rows[n], "forward")[0] for n in names}
    outer = [dict(k)[case.outer] for rows in truth.values() for k in rows if case.outer in dict(k)]

    rec = init_project(base / "recorded")
    write_version(rec, case, old=True)
    rec.commit_all("recorded")
    rec.run(_script_arg(case), cwd=_run_dir(rec, case), env=EVERY)
    rec_rows = read_rows(rec, case, names)
    recorded_forward = {n: keyed(rec_rows[n], "forward")[0] for n in names}
    write_version(rec, case, old=False)
    if case.commit_today:
        rec.commit_all("today")
    return Built(case, base, truth, rec, recorded_forward, last=max(outer, default=-1))


@pytest.fixture(scope="session")
def corpus_builds(tmp_path_factory):
    cache: dict[str, Built] = {}

    def get(case_id: str) -> Built:
        if case_id not in cache:
            base = tmp_path_factory.mktemp(f"corpus-{case_id}")
            try:
                cache[case_id] = build(case_id, base)
            except Exception as err:  # reported by every case of the script
                cache[case_id] = Built(CASES[case_id], base, {}, Project(base), error=f"{type(err).__name__}: {err}")
        built = cache[case_id]
        if built.error:
            pytest.fail(f"setup: a forward run of {case_id} failed (the script or the engine):\n{built.error[-3000:]}", pytrace=False)
        return built

    return get


# -- comparing -------------------------------------------------------------------------------


def _fmt_key(k: Key) -> str:
    return ", ".join(f"{loop}={i}" for loop, i in k) or "(run level)"


def compare(name: str, expected: dict[Key, object], rows: list) -> str | None:
    got, dups = keyed(rows, "replay")
    if dups:
        return f"{name}: duplicate replay rows at {_fmt_key(dups[0])} ({len(dups)} duplicates)"
    if not got and expected:
        return f"{name}: no replay rows, expected {len(expected)}"
    missing = [k for k in sorted(expected) if k not in got]
    extra = [k for k in sorted(got) if k not in expected]
    differ = [k for k in sorted(expected) if k in got and not (got[k] == expected[k])]
    if not (missing or extra or differ):
        return None
    parts = [f"{name}: {len(got)} replay row(s) vs {len(expected)} expected"]
    if differ:
        k = differ[0]
        parts.append(f"{len(differ)} differ, first at {_fmt_key(k)}: replay {got[k]!r} != truth {expected[k]!r}")
    if missing:
        parts.append(f"{len(missing)} missing, first {_fmt_key(missing[0])} (truth {expected[missing[0]]!r})")
    if extra:
        parts.append(f"{len(extra)} unexpected, first {_fmt_key(extra[0])} = {got[extra[0]]!r}")
    return "; ".join(parts)


def _tail(text: str, n: int = 1500) -> str:
    text = text or ""
    return text if len(text) <= n else "..." + text[-n:]


def run_form(built: Built, form_id: str):
    case, form = built.case, FORMS[form_id]
    epoch, step = hindsight_names(case)
    names = epoch if form.level == "epoch" else step
    a, b = case.mid
    spec = {"all": None, "last": "last", "AB": f"{a},{b}", "A": f"{a}", "workers2": None, "direct": f"{a},{b}"}[form.how]
    want = {"all": None, "last": {built.last}, "AB": {a, b}, "A": {a}, "workers2": None, "direct": {a, b}}[form.how]

    dst = built.base / f"form-{form_id}"
    shutil.copytree(built.recorded.path, dst, symlinks=True)
    p = Project(dst)
    iter_args = ["--iter", f"{case.outer}={spec}"] if spec else []
    if form.how == "direct":
        cmd = [_script_arg(case), "--replay_flor", "--apply", ",".join(names), *iter_args]
    else:
        cmd = ["-m", "flordb", "replay", *names, "--yes", *iter_args]
        if form.how == "workers2":
            cmd += ["--workers", "2"]
    try:
        out = p.run(*cmd, check=False, cwd=_run_dir(p, case), timeout=REPLAY_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"replay timed out after {REPLAY_TIMEOUT}s: python {' '.join(cmd)}\nstderr:\n{_tail(str(err.stderr or ''))}", pytrace=False)
    return p, cmd, out, names, want


@pytest.mark.parametrize(
    "case_id",
    [pytest.param(c, marks=[NO_TORCH] if CASES[c].torch else []) for c in CASES],
)
def test_forward_is_deterministic(corpus_builds, case_id: str):
    """The premise: today's and the old version log the same values where both log, the
    old version logs no hindsight name, and today's logs every one of them."""
    built = corpus_builds(case_id)
    epoch, step = hindsight_names(built.case)
    for name in epoch + step:
        assert built.truth[name], f"{name}: today's version logged nothing"
        assert not built.recorded_forward[name], f"{name}: the old version logged it"
    for name in recorded_names(built.case):
        assert built.truth[name], f"{name}: today's version logged nothing"
        assert built.recorded_forward[name] == built.truth[name], f"{name}: the two forward runs differ"


PARAMS = [
    pytest.param(c, f, id=f"{c}-{f}", marks=[NO_TORCH] if CASES[c].torch else [])
    for c in CASES
    for f in forms_of(CASES[c])
]


def _plan(stdout: str, n: int = 40) -> str:
    """What `flor replay` printed before its table of values: the plan and the verdicts."""
    lines = []
    for line in (stdout or "").splitlines():
        if line.startswith("projid"):
            break
        lines.append(line)
    return "\n".join(lines[-n:])


_WHY = re.compile(r"(\w+Error: .*|cannot place: .*|no flor\.log call .*|skipped: .*)")


def _why(out) -> str:
    """One line on why a replay exited non-zero: the first error it printed."""
    for text in (out.stderr or "", out.stdout or ""):
        m = _WHY.search(text)
        if m:
            return m.group(1).strip()
    return _tail(out.stderr, 200).strip().splitlines()[-1] if out.stderr.strip() else "no message"


def _report(case_id: str, form_id: str, status: str, reason: str) -> None:
    """With FLOR_CORPUS_REPORT=path, one JSON line per case (for tables of the corpus)."""
    path = os.environ.get("FLOR_CORPUS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"script": case_id, "form": form_id, "status": status, "reason": reason}) + "\n")


@pytest.mark.parametrize("case_id,form_id", PARAMS)
def test_replay_is_exact(corpus_builds, case_id: str, form_id: str):
    built = corpus_builds(case_id)
    p, cmd, out, names, want = run_form(built, form_id)
    where = f"python {' '.join(cmd)}  (in {p.path.name}, exit {out.returncode})"
    # The values are compared also when the replay failed: a failing statement may
    # leave the others' rows in place.
    rows = read_rows(p, built.case, names)
    problems = []
    for name in names:
        truth = built.truth[name]
        expected = {k: v for k, v in truth.items() if want is None or dict(k).get(built.case.outer) in want}
        problem = compare(name, expected, rows[name])
        if problem:
            problems.append(problem)
    if out.returncode == 0 and not problems:
        _report(case_id, form_id, "PASS", "")
        return
    ok = [n for n in names if not any(pr.startswith(f"{n}:") for pr in problems)]
    if out.returncode != 0:
        head = f"replay error (exit {out.returncode}): {_why(out)}"
        _report(case_id, form_id, "FAIL", head + (f" | {problems[0]}" if problems else " | values exact"))
    else:
        head = "wrong values with exit 0"
        _report(case_id, form_id, "FAIL", f"{head}: {problems[0]}")
    pytest.fail(
        f"{head}\n{where}\n"
        + "".join(f"{pr}\n" for pr in problems)
        + f"exact: {', '.join(ok) or 'none'}\n"
        + f"--- plan (stdout):\n{_plan(out.stdout)}\n--- stderr tail:\n{_tail(out.stderr)}",
        pytrace=False,
    )
