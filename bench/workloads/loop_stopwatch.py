"""(c) A stopwatch around FlorDB's calls inside the real training loop, the way the issue
timed flordb 4.0.1 (407 us a step, about 10% of its loop).

The loop of train_mlp_flor.py is written out so that FlorDB's calls are timed where they
happen. A timer is itself slow once the training has evicted it from the caches, so the
steps alternate: on even steps the timer goes around advancing `flor.loop("step")` and
around `flor.log`, on odd steps around nothing at the same two points (the calls then
run untimed). FlorDB's cost per step is the difference of the two means; the epoch
boundary (advancing `flor.loop("epoch")`, creating the step loop, the epoch's
`flor.log`) is timed as a whole and added per step. The first epoch, where the run
starts (its file, threads and code snapshot: a cost per run, not per step), is left out.

Unlike the pairing rows this misses what FlorDB does to the training's own caches and
its background threads, but it resolves a cost far below the noise between epochs.
"""

import os
import statistics
import time

import flordb as flor
from _report import report
from mlp_core import LR, accuracy, epoch_batches, setup, sgd_step

EPOCHS = int(os.environ.get("BENCH_EPOCHS", "6"))
X_train, X_test, y_train, y_test, params, rng = setup()
clock = time.perf_counter

timed: list[float] = []  # even steps: around the calls
empty: list[float] = []  # odd steps: around nothing, at the same points
boundary = 0.0  # the epoch-level calls, timer included
boundary_regions = 0
steps = 0
epochs = iter(flor.loop("epoch", range(EPOCHS)))
while True:
    t = clock()
    epoch = next(epochs, None)
    if epoch == 1:  # the measured epochs start here
        timed.clear(), empty.clear()
        boundary, boundary_regions, steps = 0.0, 0, 0
        t_loop = t
    boundary += clock() - t
    boundary_regions += 1
    if epoch is None:
        break
    batches = epoch_batches(rng, len(X_train))
    t = clock()
    step_items = iter(flor.loop("step", enumerate(batches)))
    boundary += clock() - t
    boundary_regions += 1
    while True:
        if steps % 2 == 0:
            t = clock()
            item = next(step_items, None)
            a = clock() - t
        else:
            t = clock()
            a = clock() - t
            item = next(step_items, None)
        if item is None:
            break
        _, idx = item
        loss = sgd_step(params, X_train[idx], y_train[idx], LR)
        if steps % 2 == 0:
            t = clock()
            flor.log("loss", loss)
            timed.append(a + clock() - t)
        else:
            t = clock()
            b = clock() - t
            flor.log("loss", loss)
            empty.append(a + b)
        steps += 1
    acc = accuracy(params, X_test, y_test)
    t = clock()
    flor.log("val_acc", acc)
    boundary += clock() - t
    boundary_regions += 1
loop_s = clock() - t_loop
timer = statistics.mean(empty) / 2  # one timed region
per_step = max(0.0, statistics.mean(timed) - statistics.mean(empty)) + max(0.0, boundary - boundary_regions * timer) / steps
report(
    flor_per_step_s=per_step,
    plain_step_s=loop_s / steps - per_step - 2 * timer,  # two timed regions a step
    timer_s=timer,
    steps=steps,
)
