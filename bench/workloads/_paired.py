"""Paired timing inside one process, for the in-process overhead rows.

Each round runs every arm once, in an order that rotates through all permutations so
that no arm always follows another. The overhead is the median over rounds of
(arm / baseline) - 1: neighbours in time share the machine's load, which on a shared
2-core machine drifts by tens of percent over seconds. A bootstrap over the rounds gives
the 95% interval, and an A/A arm (the baseline run a second time) shows the noise floor.
"""

import itertools
import random
import statistics
import time


def run_rounds(rounds: int, arms: dict) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Times `arms` (name -> zero-argument callable) `rounds` times each: wall time, and
    the calling thread's CPU time (which time taken by other processes does not inflate;
    FlorDB's own threads show only in the wall time)."""
    orders = list(itertools.permutations(arms))
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        for name in orders[r % len(orders)]:
            t, c = time.perf_counter(), time.thread_time()
            arms[name]()
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - t)
    return wall, cpu


def overhead(arm: list[float], base: list[float], resamples: int = 2000) -> dict:
    """Median paired ratio - 1, with a bootstrap 95% interval."""
    ratios = [a / b for a, b in zip(arm, base)]
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return {
        "median": statistics.median(ratios) - 1,
        "low": boots[int(0.025 * resamples)] - 1,
        "high": boots[int(0.975 * resamples) - 1] - 1,
    }
