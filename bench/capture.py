"""Output capture's cost, ours against flordb 4.0.1, capture on and off, side by side.

    python bench/capture.py [--rounds 9] [--epochs 20]

(1) The (c) training loop of bench/run.py (numpy MLP on digits, `loss` every step,
    `val_acc` every epoch) printing one line per epoch, as most scripts do; every round
    runs each arm once in shuffled order, in fresh repositories: the plain script (no
    flordb), ours with capture on and off (FLOR_CAPTURE=0), flordb 4.0.1 with capture
    on and off. Rows: median over rounds of (loop CPU time of the training thread with
    flor) / (plain) - 1.
(2) One printed line inside a `flor.loop`, in one process (workloads/print_cost.py):
    time per line with the print minus without, capture on and off.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_DIR, Impl, ensure_reference_venv, make_repo, median, probe, run_child  # noqa: E402

WORKLOADS = BENCH_DIR / "workloads"
FILES = ["train_mlp_flor.py", "train_mlp_plain.py", "mlp_core.py", "_report.py", "print_cost.py"]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    ours = probe(Impl("ours", "ours", sys.executable), require_native=True)
    ref = probe(Impl("flordb401", "flordb 4.0.1", str(ensure_reference_venv(log=say))), require_native=False)
    impls = [i for i in (ours, ref) if i.ok]
    work = Path(tempfile.mkdtemp(prefix="flor-capture-bench-"))
    files = {name: (WORKLOADS / name).read_text() for name in FILES}
    n = 0

    def repo() -> Path:
        nonlocal n
        n += 1
        return make_repo(work / f"r{n}", files)

    env = {"BENCH_EPOCHS": str(args.epochs), "BENCH_PRINT": "1"}
    arms = [("plain", impls[0], "train_mlp_plain.py", {})]
    for impl in impls:
        arms += [(f"{impl.key} on", impl, "train_mlp_flor.py", {}), (f"{impl.key} off", impl, "train_mlp_flor.py", {"FLOR_CAPTURE": "0"})]
    times: dict[str, list[float]] = {name: [] for name, *_ in arms}
    order = random.Random(11)
    for r in range(args.rounds):
        say(f"(1) round {r + 1}/{args.rounds}")
        jobs = list(arms)
        order.shuffle(jobs)
        for name, impl, script, extra in jobs:
            times[name].append(run_child(impl.python, script, repo(), {**env, **extra}).report["loop_thread_s"])
    print(f"(1) training loop printing a line per epoch, {args.epochs} epochs x 313 steps, {args.rounds} rounds")
    print(f"    plain loop (training thread CPU): {median(times['plain']):.3f} s")
    for impl in impls:
        row = []
        for state in ("on", "off"):
            ratios = [t / p - 1 for t, p in zip(times[f"{impl.key} {state}"], times["plain"])]
            row.append(f"capture {state} {median(ratios) * 100:+.1f}%")
        print(f"    {impl.label:>13}: " + ", ".join(row))
    print("(2) one printed line in a flor.loop, one process (print minus no print)")
    for impl in impls:
        cells = []
        for state, extra in (("on", {}), ("off", {"FLOR_CAPTURE": "0"})):
            got = [run_child(impl.python, "print_cost.py", repo(), extra).report["per_line_s"] for _ in range(3)]
            cells.append(f"capture {state} {median(got) * 1e6:.2f} us")
        print(f"    {impl.label:>13}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
