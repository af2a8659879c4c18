"""(c) Baseline: `train_mlp_flor.py` without FlorDB -- no flordb import, plain
loops, the same work per step and per epoch (the loss is still computed and the
validation accuracy still evaluated, just not logged).
"""

import os
import time

from _report import report
from mlp_core import LR, accuracy, epoch_batches, setup, sgd_step

EPOCHS = int(os.environ.get("BENCH_EPOCHS", "20"))
# A line per epoch, as most scripts print (bench/capture.py: the cost of output capture).
PRINT = os.environ.get("BENCH_PRINT") == "1"
X_train, X_test, y_train, y_test, params, rng = setup()

t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
for epoch in range(EPOCHS):
    batches = epoch_batches(rng, len(X_train))
    for step, idx in enumerate(batches):
        loss = sgd_step(params, X_train[idx], y_train[idx], LR)
    val_acc = accuracy(params, X_test, y_test)
    if PRINT:
        print(f"epoch {epoch} | loss: {loss:.5f} | val_acc: {val_acc:.4f}")
loop_s = time.perf_counter() - t0
# CPU time of this (the training) thread and of the whole process: far less
# sensitive than wall time to other work on a shared machine, and the second
# includes any background thread the implementation runs.
loop_thread_s, loop_cpu_s = time.thread_time() - c0, time.process_time() - p0

report(
    loop_s=loop_s,
    loop_thread_s=loop_thread_s,
    loop_cpu_s=loop_cpu_s,
    steps=EPOCHS * len(batches),
    val_acc=accuracy(params, X_test, y_test),
)
