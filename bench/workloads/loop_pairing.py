"""(c) The training loop of train_mlp_flor.py with and without FlorDB, paired inside one
process: epochs alternate between the two versions of the loop (the real SGD step on the
digits, `flor.log("loss")` every step, an epoch boundary with its durability barrier),
and the per-epoch medians are compared.

Separate processes of the *same* script differ by tens of percent on this machine (the
harness's A/A row shows how much), far more than the 1% to be measured; inside one
process both versions share the memory layout, the data and the model, so what remains
between them is what FlorDB adds, writer thread included.
"""

import os
import statistics
import time

import numpy as np

import flordb as flor
from _report import report
from mlp_core import accuracy, init_params, load_split, sgd_step

ROUNDS = int(os.environ.get("BENCH_PAIR_ROUNDS", "60"))
HIDDEN = int(os.environ.get("BENCH_HIDDEN", "500"))
BATCH = 5
LR = 0.05

X_train, X_test, y_train, y_test = load_split(seed=0)
params = init_params(np.random.default_rng(0), X_train.shape[1], HIDDEN)
rng = np.random.default_rng(0)


def batches():
    order = rng.permutation(len(X_train))
    return [order[i : i + BATCH] for i in range(0, len(order), BATCH)]


def epoch_with_flor(r):
    # One outer iteration per call: the boundary (barrier, timing records) is paid here.
    for _ in flor.loop("epoch", [r]):
        for step, idx in flor.loop("step", enumerate(batches())):
            loss = sgd_step(params, X_train[idx], y_train[idx], LR)
            flor.log("loss", loss)
        flor.log("val_acc", accuracy(params, X_test, y_test))


def epoch_without(r):
    for _ in [r]:
        for step, idx in enumerate(batches()):
            loss = sgd_step(params, X_train[idx], y_train[idx], LR)
        accuracy(params, X_test, y_test)


times = {"with": [], "without": []}
cpu = {"with": [], "without": []}
for r in range(ROUNDS):
    # Alternate which goes first, so neither always follows the other's cache state.
    order = (("with", epoch_with_flor), ("without", epoch_without))
    for name, body in order if r % 2 == 0 else order[::-1]:
        t, c = time.perf_counter(), time.process_time()
        body(r)
        times[name].append(time.perf_counter() - t)
        cpu[name].append(time.process_time() - c)

w, wo = statistics.median(times["with"]), statistics.median(times["without"])
report(
    overhead=w / wo - 1,
    cpu_overhead=statistics.median(cpu["with"]) / statistics.median(cpu["without"]) - 1,
    epoch_with_s=w,
    epoch_without_s=wo,
    steps_per_epoch=len(batches()),
    rounds=ROUNDS,
)
