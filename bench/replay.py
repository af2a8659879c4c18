"""Replay benchmark (issue 3): checkpoints and partial, parallel replay of one run.

    .venv/bin/python bench/replay.py                 # short: 6 epochs, a minute or two
    .venv/bin/python bench/replay.py --epochs 10 --n 32768

On `bench/replay_workload.py` (torch MLP, CPU, one thread per process) in a throwaway
git repository it measures:
  (a) record overhead: the script with FlorDB and checkpointing against the same
      script without FlorDB (training-loop time, timed in the script);
  (b) a new epoch-level statement for every epoch of the run, against re-training;
  (c) a new step-level statement for one epoch of N, against re-training;
  (d) (c) for every epoch with --workers 1 and --workers 2;
  (e) flordb 4.0.1's replay of (b) and (c), when its venv exists
      (~/.cache/flordb-bench/venv-flordb401; bench/run.py creates it).
Every time is a whole process, startup included, the way a user waits for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = (HERE / "replay_workload.py").read_text()
NOFLOR = """
from contextlib import nullcontext
def arg(name, default=None): return default
def log(name, value): return value
def loop(name, iterable): return iterable
def checkpointing(**objs): return nullcontext()
"""
EPOCH_STMT = '            flor.log("wnorm", sum(p.norm().item() for p in net.parameters()))\n'
STEP_STMT = '            flor.log("gnorm", net[0].weight.grad.norm().item())\n'
TORCH_PTH = "flordb-torch.pth"


def sh(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if check and out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return secs, out


def repo(python: str, env: dict) -> Path:
    d = Path(tempfile.mkdtemp(prefix="flor-replay-bench-"))
    for c in (["init", "-q", "-b", "main"], ["config", "user.email", "b@x"], ["config", "user.name", "b"]):
        subprocess.run(["git", *c], cwd=d, check=True)
    (d / "train.py").write_text(WORKLOAD)
    (d / "plain.py").write_text(WORKLOAD.replace("import flordb as flor", "import _noflor as flor"))
    (d / "_noflor.py").write_text(NOFLOR)
    subprocess.run(["git", "add", "-A"], cwd=d, check=True)
    subprocess.run(["git", "commit", "-qm", "code"], cwd=d, check=True)
    return d


def add_statements(d: Path) -> None:
    text = (d / "train.py").read_text()
    text = text.replace('            flor.log("val_loss"', EPOCH_STMT + '            flor.log("val_loss"', 1)
    text = text.replace("            opt.step()\n", "            opt.step()\n" + STEP_STMT, 1)
    (d / "train.py").write_text(text)


def timed_loop(python: str, script: str, d: Path, env: dict) -> tuple[float, float]:
    out = d / "bench_out.json"
    secs, _ = sh([python, script], d, {**env, "BENCH_OUT": str(out)})
    return secs, json.loads(out.read_text())["loop"]


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--n", type=int, default=8192, help="training samples (steps per epoch = n/64)")
    ap.add_argument("--rounds", type=int, default=2, help="repeats of (a)")
    ap.add_argument("--no-flordb401", action="store_true")
    a = ap.parse_args()
    python = sys.executable
    env = {"BENCH_N": str(a.n), "PYTHONWARNINGS": "ignore"}
    epochs = a.epochs
    rows: list[tuple[str, str, str]] = []

    d = repo(python, env)
    kw = ["--kwargs", f"epochs={epochs}"]
    # (a) record overhead, alternating plain and flor runs.
    plain_loops, flor_loops, plain_procs, flor_procs = [], [], [], []
    for _ in range(a.rounds):
        p_secs, p_loop = timed_loop(python, "plain.py", d, env)
        (d / "bench_out.json").unlink()
        out = d / "bench_out.json"
        f_secs, _ = sh([python, "train.py", *kw], d, {**env, "BENCH_OUT": str(out)})
        f_loop = json.loads(out.read_text())["loop"]
        plain_loops.append(p_loop), flor_loops.append(f_loop), plain_procs.append(p_secs), flor_procs.append(f_secs)
    p_loop, f_loop = min(plain_loops), min(flor_loops)
    rows.append(("(a) training loop, no FlorDB", f"{p_loop:.2f} s", f"{epochs} epochs x {a.n // 64} steps"))
    rows.append(("(a) training loop, FlorDB + checkpoints", f"{f_loop:.2f} s", f"overhead {100 * (f_loop / p_loop - 1):+.1f}% (target: within 1/15, under 2%)"))
    stats = json.loads(
        sh([python, "-c", "import json, flordb as flor; df = flor.query(\"select value from logs where value_name = 'time::ckpt'\"); print(json.dumps(df.value.tolist()))"], d)[1].stdout
    )
    ck = sh([python, "-c", "import flordb as flor; r = flor.runs().run_id.iloc[-1]; c = flor.checkpoints(r); print(len(set(zip(c.iteration, c.point))), int(c.drop_duplicates(['iteration','point']).raw_bytes.sum()))"], d)[1].stdout.split()
    stored = dir_bytes(d / ".flor" / "objects")
    runs = len(flor_procs)
    rows.append(("(a) checkpoint time on the training thread", f"{stats[-1]:.3f} s", f"{100 * stats[-1] / f_loop:.2f}% of the loop"))
    rows.append(("(a) checkpoints, raw bytes, stored bytes", f"{ck[0]}", f"raw {int(ck[1]) / 1e6:.1f} MB per run; stored {stored / 1e6:.1f} MB for {runs} runs (dedup + zstd)"))
    retrain = min(plain_procs)
    rows.append(("re-training (process, no FlorDB)", f"{retrain:.2f} s", "the baseline of (b)-(d)"))

    startup = min(sh([python, "-c", "import torch, flordb"], d, env)[0] for _ in range(2))
    rows.append(("process startup (import torch, flordb)", f"{startup:.2f} s", "paid by every process below"))
    add_statements(d)
    t_b, _ = sh([python, "train.py", "--replay_flor", "--apply", "wnorm"], d, env)
    rows.append(("(b) epoch-level statement, all epochs", f"{t_b:.2f} s", f"{retrain / t_b:.1f}x faster than re-training (target 50x); {t_b - startup:.2f} s after startup"))
    mid = epochs // 2
    t_c, _ = sh([python, "train.py", "--replay_flor", "--apply", "gnorm", "--iter", f"epoch={mid}"], d, env)
    rows.append(("(c) step-level statement, 1 epoch of N", f"{t_c:.2f} s", f"{t_c / retrain:.3f} of re-training (target <= 1.5/N = {1.5 / epochs:.3f})"))
    t_d1, _ = sh([python, "train.py", "--replay_flor", "--apply", "gnorm", "--workers", "1"], d, env)
    t_d2, _ = sh([python, "train.py", "--replay_flor", "--apply", "gnorm", "--workers", "2"], d, env)
    rows.append(("(d) step-level, all epochs, --workers 1", f"{t_d1:.2f} s", f"{t_d1 / retrain:.2f} of re-training"))
    rows.append(("(d) step-level, all epochs, --workers 2", f"{t_d2:.2f} s", f"{t_d1 / t_d2:.2f}x faster than 1 worker (2 cores)"))

    venv = Path(os.environ.get("FLOR_BENCH_CACHE", "~/.cache/flordb-bench")).expanduser() / "venv-flordb401"
    if not a.no_flordb401 and (venv / "bin" / "python").exists():
        rows += flordb401(venv / "bin" / "python", env, epochs, a.n, retrain)
    else:
        rows.append(("(e) flordb 4.0.1", "n/a", f"no venv at {venv}"))
    shutil.rmtree(d, ignore_errors=True)

    print(f"\nReplay benchmark: torch {torch_version(python)}, {epochs} epochs, {a.n} samples, 1 thread per process, {os.cpu_count()} cores")
    print(f"command: {' '.join([Path(sys.executable).name, 'bench/replay.py', *sys.argv[1:]])}\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(w)} | time | note |\n|{'-' * (w + 2)}|---:|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(w)} | {value} | {note} |")


def flordb401(python: Path, env: dict, epochs: int, n: int, retrain: float) -> list[tuple[str, str, str]]:
    torch_dir = next((Path(l.strip()) for l in open(Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / TORCH_PTH)), None)
    env4 = {**env, "PYTHONPATH": str(torch_dir)}
    d = repo(str(python), env4)
    out: list[tuple[str, str, str]] = []
    try:
        sh([str(python), "train.py", "--kwargs", f"epochs={epochs}"], d, env4)
        add_statements(d)
        subprocess.run(["git", "commit", "-qam", "statements"], cwd=d)
        # flordb 4.0.1's child flags (spec §3.1, §6.5): it recomputes from iteration 0.
        t_b, _ = sh([str(python), "train.py", "--replay_flor", "--apply", "wnorm", "--iter", f"epoch={','.join(map(str, range(epochs)))}"], d, env4)
        out.append(("(e) flordb 4.0.1: epoch-level, all epochs", f"{t_b:.2f} s", f"{t_b / retrain:.2f} of re-training"))
        t_c, _ = sh([str(python), "train.py", "--replay_flor", "--apply", "gnorm", "--iter", f"epoch={epochs // 2}", "--iter", "step=all"], d, env4)
        out.append(("(e) flordb 4.0.1: step-level, 1 epoch of N", f"{t_c:.2f} s", f"{t_c / retrain:.2f} of re-training"))
    except SystemExit as err:
        out.append(("(e) flordb 4.0.1", "failed", str(err).splitlines()[0][:80]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def torch_version(python: str) -> str:
    return subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
