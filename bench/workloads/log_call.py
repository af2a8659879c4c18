"""(a) The cost of one `flor.log(name, float)` call, timeit-style.

Inside a `flor.loop` (so the record carries a loop context, as in training),
each repetition times CALLS back-to-back calls and subtracts the same loop with
no call in it; the harness takes the median per-call time over repetitions.
BENCH_IN_LOOP=0 logs at run level instead, with no `flor.loop` around: flordb
4.0.1 redraws its progress bars on every log inside a loop, and the difference
is worth seeing.
What the implementation pays later, at exit, is measured by the harness from
`t_end_ns` (see _report.py).
"""

import os
import time

import flordb as flor

from _report import report

CALLS = int(os.environ.get("BENCH_CALLS", "5000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "21"))
IN_LOOP = os.environ.get("BENCH_IN_LOOP", "1") == "1"

per_call_ns = []
value = 0.123456789
reps = flor.loop("rep", range(REPEATS)) if IN_LOOP else range(REPEATS)
for rep in reps:
    t0 = time.perf_counter_ns()
    for _ in range(CALLS):
        flor.log("loss", value)
    t1 = time.perf_counter_ns()
    for _ in range(CALLS):
        pass
    t2 = time.perf_counter_ns()
    per_call_ns.append(((t1 - t0) - (t2 - t1)) / CALLS)

report(per_call_ns=per_call_ns, values=CALLS * REPEATS)
