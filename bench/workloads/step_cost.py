"""(c) What FlorDB adds to one training step, measured inside one process.

The same epoch of 313 steps (batch-5 index batches, as in train_mlp_flor.py) is
iterated with `flor.loop` + `flor.log("loss", ...)` and without, alternating,
many times; the per-step difference of the medians is FlorDB's cost per step.
Whole-process comparisons on a shared 2-core machine swing by tens of percent;
this pairing cancels that noise, and cost / plain step is the loop overhead.
"""

import os
import statistics
import time

import numpy as np

import flordb as flor
from _report import report

ROUNDS = int(os.environ.get("BENCH_STEP_ROUNDS", "200"))
order = np.random.default_rng(0).permutation(1565)
batches = [order[i : i + 5] for i in range(0, len(order), 5)]
loss = np.float64(0.5)


def with_flor():
    for step, idx in flor.loop("step", enumerate(batches)):
        flor.log("loss", loss)


def without():
    for step, idx in enumerate(batches):
        pass


times = {"with": [], "without": []}
for epoch in flor.loop("epoch", range(ROUNDS)):
    for name, body in (("with", with_flor), ("without", without)):
        t = time.perf_counter()
        body()
        times[name].append(time.perf_counter() - t)

steps = len(batches)
report(
    per_step_s=(statistics.median(times["with"]) - statistics.median(times["without"])) / steps,
    per_step_min_s=(min(times["with"]) - min(times["without"])) / steps,
    steps=steps,
    rounds=ROUNDS,
)
