"""Diagnostic, not a table row: what one call costs right after a training step has
evicted its code and data, next to CPython's own floor for a call.

Each step of the real MLP (width from BENCH_HIDDEN; 16384 is the issue's step weight) is
followed by one timed call of one kind, kinds in turn; the rest of FlorDB's per-step calls
run untimed, so every kind meets the same cold caches. Prints, per kind, the median and
mean nanoseconds over an empty timed region.

    cd <a git repository holding this file and mlp_core.py>
    BENCH_HIDDEN=16384 python call_cold.py
"""

import math
import os
import statistics
import time

import flordb as flor
from flordb import _native
from mlp_core import epoch_batches, setup, sgd_step

X_train, _, y_train, _, params, rng = setup()
clock = time.perf_counter


def generator(items):
    for item in items:
        yield item


KINDS = ("empty", "math.sqrt", "generator next", "flor.loop next", "flor.log",
         "PyO3 function (loop_depth)")
times: dict[str, list[float]] = {k: [] for k in KINDS}
batches = epoch_batches(rng, len(X_train))
for _ in flor.loop("epoch", [0]):
    gen = generator(range(10**9))
    steps = flor.loop("step", range(10**9))
    for i, idx in enumerate(batches * 4):
        loss = sgd_step(params, X_train[idx], y_train[idx], 0.05)
        kind = KINDS[i % len(KINDS)]
        t = clock()
        if kind == "math.sqrt":
            math.sqrt(2.0)
        elif kind == "generator next":
            next(gen)
        elif kind == "flor.loop next":
            next(steps)
        elif kind == "flor.log":
            flor.log("loss", loss)
        elif kind == "PyO3 function (loop_depth)":
            _native.loop_depth()
        times[kind].append(clock() - t)
        if kind != "flor.loop next":
            next(steps)
        if kind != "flor.log":
            flor.log("loss", loss)

floor_med = statistics.median(times["empty"])
floor_mean = statistics.mean(times["empty"])
print(f"hidden {os.environ.get('BENCH_HIDDEN', '500')}: ns per call over an empty region "
      f"({len(times['empty'])} samples a kind)")
for kind, ts in times.items():
    print(f"  {kind:32s} median {(statistics.median(ts) - floor_med) * 1e9:8.0f}"
          f"  mean {(statistics.mean(ts) - floor_mean) * 1e9:8.0f}")
