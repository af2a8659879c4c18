"""Hindsight benchmark (issue 5): `flor replay` across 8 runs and 3 versions.

    make bench-hindsight                     # = .venv/bin/python bench/hindsight.py (~40 min)
    .venv/bin/python bench/hindsight.py --epochs 4 --n 4096 --no-flordb401   # a quick look

A project in a throwaway git repository under /tmp records 8 runs of a torch training
script (`hindsight_workload.py`: MLP on synthetic data, CPU, one thread) over 3 versions
(v2 renames the model and adds dropout, v3 adds an LR scheduler). Today's script is v3
plus two new statements: `wnorm` once per epoch and `gnorm` once per training step.
Measured, every time a whole process the way a user waits for it:

  re-training   the wall time of recording those 8 runs (one process each)
  ours          `flor replay wnorm|gnorm --yes --workers 1|2` over all 8 runs, and the
                plan's estimate ("estimated X", printed after the plan) against the time
                the replay then took (FLOR_REPLAY_TIMINGS "replay")
  flordb 4.0.1  `python -m flordb replay --apply wnorm|gnorm` (answering its prompt with
                y) on runs recorded by flordb 4.0.1 itself: on 8 small runs over the 3
                versions, where it fails when the script changed between runs, and on a
                full-size one-version project (the 3 runs of v1, today's script = v1 +
                the statements), against `flor replay --run ...` of our 3 runs of v1.

flordb 4.0.1 comes from ${FLOR_BENCH_CACHE:-~/.cache/flordb-bench}/venv-flordb401 (created
on first use, see harness.py) with torch from .venv's flordb-torch.pth. Temporary projects
are deleted at the end (--keep leaves them). Results also go to bench/results/hindsight-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import child_env, ensure_reference_venv, git, make_repo

HERE = Path(__file__).resolve().parent
V1 = (HERE / "hindsight_workload.py").read_text()


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    if old not in text:
        raise SystemExit(f"hindsight.py: the workload no longer contains {old!r}")
    return text.replace(old, new, count)


# Version 2: the model is called `model`, and a dropout layer follows the first ReLU.
V2 = _replace(re.sub(r"\bnet\b", "model", V1), "nn.Linear(128, hidden), nn.ReLU(), ", "nn.Linear(128, hidden), nn.ReLU(), nn.Dropout(0.1), ")
# Version 3: an LR scheduler, stepped after each epoch's training and checkpointed.
V3 = _replace(
    _replace(
        _replace(V2, "loss_fn = nn.CrossEntropyLoss()\n", "loss_fn = nn.CrossEntropyLoss()\nsched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)\n"),
        "flor.checkpointing(model=model, optimizer=opt)", "flor.checkpointing(model=model, optimizer=opt, scheduler=sched)",
    ),
    "        model.eval()\n", "        sched.step()\n        model.eval()\n",
)
EPOCH_NAME, STEP_NAME = "wnorm", "gnorm"
# (n, epochs) of flordb 4.0.1's 8-run project, which only shows that it fails.
SMALL = (1024, 4)


def with_statements(text: str, model: str) -> str:
    """Today's script: `text` with the epoch-level and the step-level statement."""
    val = next(line for line in text.splitlines(keepends=True) if 'flor.log("val_acc"' in line)
    text = _replace(text, val, val + f'        flor.log("{EPOCH_NAME}", {model}[0].weight.norm().item())\n')
    loss = '            flor.log("loss", loss.item())\n'
    return _replace(text, loss, loss + f'            flor.log("{STEP_NAME}", {model}[0].weight.grad.norm().item())\n')


TODAY = with_statements(V3, "model")
TODAY_V1 = with_statements(V1, "net")

# The 8 runs: (version, kwargs). n and epochs come from the command line.
RUNS = [
    (1, "lr=0.05 seed=1"), (1, "lr=0.1 seed=2"), (1, "lr=0.02 hidden=384 seed=3"),
    (2, "lr=0.05 seed=4"), (2, "lr=0.1 hidden=384 seed=5"), (2, "lr=0.02 seed=6"),
    (3, "lr=0.05 seed=7"), (3, "lr=0.1 seed=8"),
]
VERSIONS = {1: V1, 2: V2, 3: V3}


def secs_of(text: str) -> float:
    """Seconds from the CLI's durations: '4.2 s', '12 s', '3 min 05 s', '1 h 02 min'."""
    m = re.fullmatch(r"\s*(?:(\d+) h )?(?:(\d+) min)?\s*(?:([\d.]+) s)?\s*", text)
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mi + s


class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.python = sys.executable
        self.flor = str(Path(self.python).with_name("flor"))
        self.tmp = Path(tempfile.mkdtemp(prefix="flor-hindsight-bench-"))
        self.env = child_env({"FLOR_REPLAY_TIMINGS": "1"})
        self.log = self.tmp / "logs"
        self.log.mkdir()
        self.results: dict = {"config": vars(a), "ours": {}, "flordb401": {}}

    def run(self, cmd: list[str], cwd: Path, env: dict | None = None, stdin: str | None = None,
            check: bool = True, tag: str = "cmd") -> tuple[float, subprocess.CompletedProcess]:
        out_path = self.log / f"{tag}.out"
        t0 = time.perf_counter()
        with open(out_path, "w") as out:
            proc = subprocess.run(cmd, cwd=cwd, env=env or self.env, input=stdin, stdout=out,
                                  stderr=subprocess.PIPE, text=True)
        secs = time.perf_counter() - t0
        proc.stdout = out_path.read_text(errors="replace")
        if check and proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed ({proc.returncode}) in {cwd}:\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return secs, proc

    def note(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # ------------------------------------------------------------------ recording

    def record(self, python: str, repo: Path, env: dict, runs, side: str, size: tuple | None = None) -> list[float]:
        """Commits each version and records its runs (`size`: (n, epochs), default the
        command line's); the wall time of each run."""
        n, epochs = size or (self.a.n, self.a.epochs)
        times = []
        version = 0
        for i, (v, kwargs) in enumerate(runs):
            if v != version:
                (repo / "train.py").write_text(VERSIONS[v])
                git(repo, "add", "-A")
                git(repo, "commit", "-qm", f"version {v}")
                version = v
            kw = ["--kwargs", f"n={n}", f"epochs={epochs}", *kwargs.split()]
            secs, _ = self.run([python, "train.py", *kw], repo, env, tag=f"{side}-record-{i}")
            times.append(secs)
            self.note(f"{side}: recorded run {i + 1}/{len(runs)} (v{v}, {kwargs}) in {secs:.1f} s")
        return times

    # ------------------------------------------------------------------ ours

    def flor_replay(self, repo: Path, name: str, workers: int, extra=(), tag="") -> dict:
        cmd = [self.flor, "replay", name, "--workers", str(workers), "--yes", *extra]
        secs, proc = self.run(cmd, repo, tag=f"ours-{tag or name}-w{workers}")
        total = re.search(r"^total: .* estimated (.+?) \(re-training", proc.stdout, re.M)
        done = re.search(r"^replayed (\d+) of (\d+) run\(s\) in (.+?); estimated", proc.stdout, re.M)
        phases = re.search(r"flor replay: timings (\{.*\})", proc.stderr)
        r = {
            "wall": secs,
            "estimate": secs_of(total.group(1)) if total else None,
            "replayed": int(done.group(1)) if done else 0,
            "runs": int(done.group(2)) if done else 0,
            "phases": json.loads(phases.group(1)) if phases else None,
        }
        if r["phases"]:
            # The estimate is printed after the plan: it predicts the replay from there on.
            r["estimate"] = r["phases"]["estimate"]
            r["estimated_part"] = r["phases"].get("replay", secs)
        self.note(f"ours: flor replay {name} {' '.join(extra)} --workers {workers}: {secs:.1f} s "
                  f"(estimated {r['estimate']:.1f} s), {r['replayed']} of {r['runs']} run(s)")
        return r

    def ours(self) -> None:
        repo = make_repo(self.tmp / "ours", {"README": "hindsight bench\n"})
        self.ours_repo = repo
        self.note(f"ours: recording {len(RUNS)} runs in {repo}")
        times = self.record(self.python, repo, self.env, RUNS, "ours")
        res = self.results["ours"]
        res["record"] = times
        (repo / "train.py").write_text(TODAY)
        ids = subprocess.run(
            [self.python, "-c", "import flordb as flor; print(' '.join(flor.runs().run_id))"],
            cwd=repo, env=self.env, capture_output=True, text=True, check=True,
        ).stdout.split()
        res["run_ids"] = ids
        for name in (EPOCH_NAME,) if self.a.epoch_level_only else (EPOCH_NAME, STEP_NAME):
            for w in (1, 2):
                res[f"{name}-w{w}"] = self.flor_replay(repo, name, w)
        # The one-version subset flordb 4.0.1 can do: the 3 runs of v1.
        v1 = [f"--run={i}" for i, (v, _) in zip(ids, RUNS) if v == 1]
        res[f"{EPOCH_NAME}-v1"] = self.flor_replay(repo, EPOCH_NAME, 1, v1, tag=f"{EPOCH_NAME}-v1")
        res["rows"] = self.count_rows(self.python, repo, self.env)

    def count_rows(self, python: str, repo: Path, env: dict) -> dict:
        # Replayed values per name (each name alone: the pivot would repeat an epoch's
        # value on every step row of a frame with both).
        code = (
            "import json, flordb as flor\n"
            "out = {}\n"
            f"for n in ({EPOCH_NAME!r}, {STEP_NAME!r}):\n"
            "    df = flor.dataframe(n)\n"
            "    out[n] = int(df[n].notna().sum()) if n in df else 0\n"
            "print(json.dumps(out))\n"
        )
        out = subprocess.run([python, "-c", code], cwd=repo, env=env, capture_output=True, text=True)
        try:
            return json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}

    # ------------------------------------------------------------------ flordb 4.0.1

    def flordb401(self) -> None:
        res = self.results["flordb401"]
        try:
            python = str(ensure_reference_venv(log=self.note))
        except (subprocess.CalledProcessError, OSError) as e:
            res["error"] = f"cannot create the flordb 4.0.1 venv: {e}"
            return
        pth = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "flordb-torch.pth"
        torch_dir = pth.read_text().strip() if pth.exists() else ""
        # Its orchestrator starts `python` from PATH; its children must find torch.
        env = child_env({"PYTHONPATH": torch_dir, "PATH": f"{Path(python).parent}:{os.environ['PATH']}"})
        repo = make_repo(self.tmp / "flordb401", {"README": "hindsight bench\n"})
        # All 8 runs over 3 versions. It fails on the first change of version whatever the
        # runs' size, so they are recorded small: minutes of bench saved, nothing hidden.
        self.note(f"flordb 4.0.1: recording {len(RUNS)} small runs ({SMALL[0]} samples, {SMALL[1]} epochs) in {repo}")
        res["record"] = self.record(python, repo, env, RUNS, "flordb401", size=SMALL)
        (repo / "train.py").write_text(TODAY)
        replay = [python, "-m", "flordb", "replay", "--apply"]
        secs, proc = self.run(replay + [EPOCH_NAME], repo, env, stdin="y\n", check=False, tag="f401-all")
        res[f"{EPOCH_NAME}-all"] = {"wall": secs, "rc": proc.returncode, "rows": self.count_rows(python, repo, env),
                                    "error": last_error(proc)}
        self.note(f"flordb 4.0.1: replay --apply {EPOCH_NAME} on 8 runs / 3 versions: exit {proc.returncode} "
                  f"after {secs:.1f} s: {res[f'{EPOCH_NAME}-all']['error']}")
        # The one-version subset, full size: the 3 runs of v1, today's script = v1 + the
        # statements. flordb 4.0.1 names its store after the project folder: same name.
        subset = make_repo(self.tmp / "v1-only" / "flordb401", {"README": "hindsight bench\n"})
        v1_runs = [r for r in RUNS if r[0] == 1]
        self.note(f"flordb 4.0.1: recording the {len(v1_runs)} runs of v1 in {subset}")
        res["record-v1"] = self.record(python, subset, env, v1_runs, "flordb401-v1")
        (subset / "train.py").write_text(TODAY_V1)
        for name, extra in ((EPOCH_NAME, []), (STEP_NAME, ["--iter", "epoch=all", "--iter", "step=all"])):
            if name == STEP_NAME and self.a.quick_subset:
                continue
            secs, proc = self.run(replay + [name, *extra], subset, env, stdin="y\n", check=False, tag=f"f401-v1-{name}")
            res[f"{name}-v1"] = {"wall": secs, "rc": proc.returncode, "error": last_error(proc) if proc.returncode else ""}
            self.note(f"flordb 4.0.1: replay --apply {name} {' '.join(extra)} on the 3 runs of v1: "
                      f"exit {proc.returncode} in {secs:.1f} s")
        res["rows-v1"] = self.count_rows(python, subset, env)

    # ------------------------------------------------------------------ report

    def table(self) -> str:
        o, f = self.results["ours"], self.results["flordb401"]
        retrain = sum(o["record"])
        retrain_v1 = sum(t for t, (v, _) in zip(o["record"], RUNS) if v == 1)
        rows: list[tuple[str, str, str, str]] = []

        def est(r):
            actual = r.get("estimated_part", r["wall"])
            return f"{r['estimate']:.1f} s ({r['estimate'] / actual:.2f}x of actual {actual:.1f} s)" if r.get("estimate") else "-"

        rows.append(("re-training 8 runs (recording them, ours)", f"{retrain:.1f} s", "1x", "-"))
        if f.get("record"):
            rows.append((f"flordb 4.0.1 recording 8 small runs ({SMALL[0]} samples, {SMALL[1]} epochs)", f"{sum(f['record']):.1f} s", "-", "-"))
        for name, level in ((EPOCH_NAME, "epoch-level"), (STEP_NAME, "step-level")):
            for w in (1, 2):
                r = o.get(f"{name}-w{w}")
                if r is None:
                    continue
                rows.append((f"ours, {level} ({name}), 8 runs, --workers {w}", f"{r['wall']:.1f} s",
                             f"{retrain / r['wall']:.1f}x faster", est(r)))
        rows.append(("re-training the 3 runs of v1 (recording, ours)", f"{retrain_v1:.1f} s", "1x", "-"))
        if "error" in f:
            rows.append(("flordb 4.0.1", "n/a", f["error"], "-"))
        for name, level in ((EPOCH_NAME, "epoch-level"), (STEP_NAME, "step-level")):
            r = o.get(f"{name}-v1")
            if r is not None:
                rows.append((f"ours, {level}, 3 runs of v1, --workers 1", f"{r['wall']:.1f} s",
                             f"{retrain_v1 / r['wall']:.1f}x faster", est(r)))
            g = f.get(f"{name}-v1")
            if not g:
                continue
            if g["rc"]:
                rows.append((f"flordb 4.0.1, {level}, 3 runs of v1", f"failed ({g['rc']})", g["error"][:90], "-"))
                continue
            # Against its own recording of the same 3 runs (load changes over the bench), and
            # ours against it: on the same runs where measured, else per second of
            # re-training (ours: 8 runs, 1 worker, against our recording).
            own = sum(f["record-v1"])
            frac = g["wall"] / own
            ours = (f"ours {g['wall'] / r['wall']:.1f}x faster (same runs)" if r is not None else
                    f"ours {frac / (o[f'{name}-w1']['wall'] / retrain):.2f}x faster per second of re-training")
            rows.append((f"flordb 4.0.1, {level}, 3 runs of v1", f"{g['wall']:.1f} s",
                         f"{frac:.2f}x of its own recording of them ({own:.1f} s); {ours}", "-"))
        a = f.get(f"{EPOCH_NAME}-all")
        if a:
            what = "failed" if a["rc"] else "ok"
            rows.append((f"flordb 4.0.1, epoch-level, 8 runs / 3 versions", f"{a['wall']:.1f} s ({what}, exit {a['rc']})",
                         (a["error"] or "")[:90], "-"))
        steps = self.a.n // 64
        self.footer = (f"\nValues replayed (non-null, per name): ours {o.get('rows')} on 8 runs "
                       f"(expected {EPOCH_NAME} {8 * self.a.epochs}, {STEP_NAME} {8 * self.a.epochs * steps}); "
                       f"flordb 4.0.1 {f.get(f'{EPOCH_NAME}-all', {}).get('rows')} on 8 runs, "
                       f"{f.get('rows-v1')} on the 3 runs of v1 (its step-level default logs 1 step per epoch; "
                       f"given --iter step=all here)")
        w = max(len(r[0]) for r in rows)
        lines = [f"| {'measure'.ljust(w)} | wall time | against re-training / note | plan's estimate |",
                 f"|{'-' * (w + 2)}|---:|---|---|"]
        lines += [f"| {r[0].ljust(w)} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
        return "\n".join(lines)

    def phases(self) -> str:
        out = ["", "Where the time of `flor replay` went (seconds; FLOR_REPLAY_TIMINGS):",
               "| replay | plan | worktrees | server wait | tasks | merge | cleanup | total | wall |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, r in self.results["ours"].items():
            if not isinstance(r, dict) or not r.get("phases"):
                continue
            p = dict(r["phases"])
            # The server may be waited for before the plan is shown (it starts with the plan).
            p["server_wait"] = p.get("server_wait", 0) + p.get("server_wait_before_plan", 0)
            out.append(f"| {key} | " + " | ".join(f"{p.get(k, 0):.2f}" for k in
                       ("plan", "worktrees", "server_wait", "tasks", "merge", "cleanup", "total")) + f" | {r['wall']:.2f} |")
        return "\n".join(out)


def last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [l for l in (proc.stderr + "\n" + proc.stdout).splitlines() if l.strip()]
    for l in reversed(lines):
        if re.search(r"(Error|error|fatal|exited with code)", l):
            return l.strip()[:200]
    return lines[-1].strip()[:200] if lines else ""


def torch_version(python: str) -> str:
    return subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--n", type=int, default=65536, help="training samples (steps per epoch = n/64)")
    ap.add_argument("--no-flordb401", action="store_true", help="skip flordb 4.0.1")
    ap.add_argument("--quick-subset", action="store_true", help="skip flordb 4.0.1's step-level replay of the v1 subset")
    ap.add_argument("--keep", action="store_true", help="leave the temporary projects in place")
    ap.add_argument("--epoch-level-only", action="store_true", help="skip the step-level statement (the longest part)")
    ap.add_argument("--from-json", type=Path, help="print the tables of an earlier run's results file")
    a = ap.parse_args()
    if a.from_json:
        results = json.loads(a.from_json.read_text())
        b = Bench.__new__(Bench)
        b.a = argparse.Namespace(**results["config"])
        b.results = results
        print(b.table() + "\n" + b.footer + "\n" + b.phases())
        return
    b = Bench(a)
    started = time.perf_counter()
    try:
        b.ours()
        if not a.no_flordb401:
            b.flordb401()
        else:
            b.results["flordb401"]["error"] = "not run (--no-flordb401)"
    finally:
        if a.keep:
            print(f"kept {b.tmp}")
        else:
            shutil.rmtree(b.tmp, ignore_errors=True)
    cmd = " ".join([".venv/bin/python", "bench/hindsight.py", *sys.argv[1:]])
    head = (f"\nHindsight benchmark: torch {torch_version(b.python)}, CPU, 1 thread per process, "
            f"{os.cpu_count()} cores; 8 runs x {a.epochs} epochs x {a.n // 64} steps; "
            f"{(time.perf_counter() - started) / 60:.0f} min in all\ncommand: {cmd}\n")
    text = head + "\n" + b.table() + "\n" + b.footer + "\n" + b.phases()
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"hindsight-{stamp}.json").write_text(json.dumps({**b.results, "table": text}, indent=1))


if __name__ == "__main__":
    main()
