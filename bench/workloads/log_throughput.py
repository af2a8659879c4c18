"""(b) Records per second into the store.

Logs VALUES floats inside a two-level `flor.loop` (10 outer iterations, like
epochs; the inner loop is plain Python so only the log calls differ).  With
BENCH_LOG=0 the same loops run without the call: the harness subtracts that
process's wall time, so import, git and loop costs cancel and what remains is
the cost of getting VALUES records durable by the time the process has exited.
"""

import os

import flordb as flor

from _report import report

VALUES = int(os.environ.get("BENCH_VALUES", "100000"))
LOG = os.environ.get("BENCH_LOG", "1") == "1"
OUTER = 10

per_epoch = VALUES // OUTER
for epoch in flor.loop("epoch", range(OUTER)):
    if LOG:
        for i in range(per_epoch):
            flor.log("x", float(i))
    else:
        for i in range(per_epoch):
            float(i)

report(values=per_epoch * OUTER if LOG else 0)
