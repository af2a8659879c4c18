"""Tiny helper every workload uses to hand its numbers to the harness.

`t_end_ns` is the wall clock when the script's own work ended; the harness
subtracts it from the moment the process was reaped, which is what the
implementation costs at exit (atexit commit, flushing, git).
"""

import json
import os
import time


def report(**values):
    values["t_end_ns"] = time.time_ns()
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(values, f)
