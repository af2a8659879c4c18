"""(c) The training loop of train_mlp_flor.py with and without FlorDB, paired inside one
process: each round runs one epoch with FlorDB (the real SGD step on the digits,
`flor.log("loss")` every step, an epoch boundary with its durability barrier), one
without, one without again (A/A: the noise floor) and one through a bare Python
generator (what any per-step wrapper written in Python costs on this loop).

Separate processes of the *same* script differ by tens of percent on this machine (the
harness's A/A row shows how much), far more than the 1% to be measured; inside one
process all arms share the memory layout, the data and the model.
"""

import os

import flordb as flor
from _paired import overhead, run_rounds
from _report import report
from mlp_core import LR, accuracy, epoch_batches, setup, sgd_step

ROUNDS = int(os.environ.get("BENCH_PAIR_ROUNDS", "120"))
X_train, X_test, y_train, y_test, params, rng = setup()
epochs = iter(range(1 << 30))


def batches():
    return epoch_batches(rng, len(X_train))


def with_flor():
    # One outer iteration per call: the boundary (barrier, timing records) is paid here.
    for _ in flor.loop("epoch", [next(epochs)]):
        for step, idx in flor.loop("step", enumerate(batches())):
            loss = sgd_step(params, X_train[idx], y_train[idx], LR)
            flor.log("loss", loss)
        flor.log("val_acc", accuracy(params, X_test, y_test))


def without():
    for _ in [next(epochs)]:
        for step, idx in enumerate(batches()):
            loss = sgd_step(params, X_train[idx], y_train[idx], LR)
        accuracy(params, X_test, y_test)


def generator(items):
    for item in items:
        yield item


def bare_generator():
    for _ in generator([next(epochs)]):
        for step, idx in generator(enumerate(batches())):
            loss = sgd_step(params, X_train[idx], y_train[idx], LR)
        accuracy(params, X_test, y_test)


without()  # warm-up
times, cpu = run_rounds(ROUNDS, {"with": with_flor, "without": without, "again": without, "generator": bare_generator})
flor_side, base = times["with"], times["without"]
report(
    overhead=overhead(flor_side, base),
    aa=overhead(times["again"], base),
    thread=overhead(cpu["with"], cpu["without"]),
    thread_aa=overhead(cpu["again"], cpu["without"]),
    generator=overhead(times["generator"], base),
    epoch_with_s=sorted(flor_side)[len(flor_side) // 2],
    epoch_without_s=sorted(base)[len(base) // 2],
    steps_per_epoch=len(batches()),
    rounds=ROUNDS,
)
