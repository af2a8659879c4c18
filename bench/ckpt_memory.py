"""Peak memory of checkpointing a large state, against the same script without FlorDB.

    python bench/ckpt_memory.py [--mib 1024] [--epochs 4] [--rounds 2]

workloads/ckpt_memory.py holds a float64 array of MIB MiB (noise, so it is stored raw),
updates it in place every epoch and logs one value. Arms, each a fresh process in a
fresh repository, in shuffled order every round:

  plain         the script without FlorDB (the anchor)
  ours          with `flor.checkpointing(state=...)`, the default budget, 0.5 s of
                "training" per epoch
  ours, every   FLOR_EPSILON=1000 and no training time: a checkpoint every epoch, the
                writer always behind (what a slow disk does to any state)
  flordb 4.0.1  the same script; its `checkpointing` keeps nothing (4.0.1 retired it)

Rows: the peak RSS (wait4's ru_maxrss) and the extra over plain in copies of the state
(median over rounds); wall time for scale.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_DIR, Impl, child_env, ensure_reference_venv, make_repo, median, probe  # noqa: E402

SCRIPT = "ckpt_memory.py"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak(python: str, repo: Path, env: dict) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one run of the workload in `repo`."""
    err = repo.parent / f".{repo.name}.stderr"
    with open(err, "w") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, SCRIPT], cwd=repo, env=child_env(env), stdout=subprocess.DEVNULL, stderr=f)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{SCRIPT} exited {proc.returncode} in {repo}:\n{err.read_text()[-2000:]}")
    return usage.ru_maxrss / 1024, wall  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    ours = probe(Impl("ours", "ours", sys.executable), require_native=True)
    ref = probe(Impl("flordb401", "flordb 4.0.1", str(ensure_reference_venv(log=say))), require_native=False)
    base = {"BENCH_MIB": str(args.mib), "BENCH_EPOCHS": str(args.epochs)}
    arms = [
        ("plain", ours, {"BENCH_PLAIN": "1", "BENCH_SLEEP": "0.5"}),
        ("ours", ours, {"BENCH_SLEEP": "0.5"}),
        ("ours, every epoch, writer behind", ours, {"FLOR_EPSILON": "1000", "BENCH_SLEEP": "0"}),
    ]
    if ref.ok:
        arms.append(("flordb 4.0.1 (keeps nothing)", ref, {"BENCH_SLEEP": "0.5"}))
    work = Path(tempfile.mkdtemp(prefix="flor-ckpt-memory-"))
    workload = (BENCH_DIR / "workloads" / SCRIPT).read_text()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in arms}
    order = random.Random(5)
    n = 0
    for r in range(args.rounds):
        jobs = list(arms)
        order.shuffle(jobs)
        for name, impl, env in jobs:
            n += 1
            say(f"round {r + 1}/{args.rounds}: {name}")
            repo = make_repo(work / f"r{n}", {SCRIPT: workload})
            results[name].append(peak(impl.python, repo, {**base, **env}))
    plain = median([p for p, _ in results["plain"]])
    print(f"state: {args.mib} MiB, {args.epochs} epochs, {args.rounds} rounds (medians)\n")
    print(f"| arm | peak RSS MiB | extra over plain, in copies of the state | wall s |")
    print("|---|---|---|---|")
    for name, *_ in arms:
        mib = median([p for p, _ in results[name]])
        wall = median([w for _, w in results[name]])
        print(f"| {name} | {mib:,.0f} | {(mib - plain) / args.mib:+.2f} | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
