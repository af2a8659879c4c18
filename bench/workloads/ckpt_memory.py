"""A state of BENCH_MIB MiB enrolled in `flor.checkpointing`, updated in place each epoch
(every page touched, as an optimizer step does), BENCH_SLEEP seconds of "training" per
epoch. Without FlorDB when BENCH_PLAIN is set: the anchor the extra memory is measured
against. The parent reads the peak RSS of this process from wait4."""

import contextlib
import os
import time

import numpy as np

mib = int(os.environ.get("BENCH_MIB", "1024"))
epochs = int(os.environ.get("BENCH_EPOCHS", "4"))
sleep = float(os.environ.get("BENCH_SLEEP", "0"))
plain = bool(os.environ.get("BENCH_PLAIN"))

# Weights look like noise to a compressor: the chunk store keeps them raw.
state = np.random.default_rng(0).standard_normal((mib << 20) // 8)

if plain:
    loop, log, block = (lambda name, it: it), (lambda name, v: v), contextlib.nullcontext()
else:
    import flordb as flor

    # FLOR_EPSILON sets how often checkpoints are taken (a large one: every epoch).
    loop, log, block = flor.loop, flor.log, flor.checkpointing(state=state)

with block:
    for epoch in loop("epoch", range(epochs)):
        state += 1e-3
        time.sleep(sleep)
        log("head", float(state[:1024].sum()))
