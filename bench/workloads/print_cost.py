"""Output capture's cost per printed line: N `print` calls of an epoch line inside a
`flor.loop` (stdout goes to /dev/null), minus the same loop without the print."""

import os
import time

import flordb as flor
from _report import report

N = int(os.environ.get("BENCH_LINES", "20000"))


def timed(with_print: bool) -> float:
    t0 = time.perf_counter()
    for i in flor.loop("epoch", range(N)):
        if with_print:
            print(f"epoch {i} | loss: {1.0 / (i + 1):.5f} | acc: 0.5")
    return time.perf_counter() - t0


timed(True)  # warm up
empty = min(timed(False) for _ in range(3))
full = min(timed(True) for _ in range(3))
report(per_line_s=(full - empty) / N, lines=N)
