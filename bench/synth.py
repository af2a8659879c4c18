"""Synthetic flordb-4 projects for workload (d): N runs of `train.py`, each
with a run-level `lr` arg, 10 epochs x 100 steps of `loss` and one `acc` per
epoch -- 1,011 records per run, 1,010 of them values a dataframe returns.

Files are written exactly as flordb 4.0.1 writes them (`orm.to_jsonl`: one
`json.dumps(asdict(record))` per line, default separators, emission order,
named `.flor/runs/<tstamp>.jsonl`), so both implementations ingest the same
bytes through their own `unpack`.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

EPOCHS = 10
STEPS = 100
FILENAME = "train.py"


def _seg(name: str, i: int) -> dict:
    # flor.loop over range(): iteration is the 0-based index, value is str(item).
    return {"name": name, "iteration": i, "value": str(i)}


def write_runs(runs_dir: Path, projid: str, n_runs: int, seed: int = 0) -> int:
    """Write `n_runs` run files into `runs_dir`; return the number of records."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0, 0, 123456)
    total = 0
    for r in range(n_runs):
        # Distinct, sortable, microsecond ISO stamps, as flordb 4 takes them.
        tstamp = (start + timedelta(seconds=97 * r, microseconds=r)).isoformat(timespec="microseconds")
        lr = rnd.choice([1e-3, 3e-3, 1e-2, 3e-2, 0.1])
        base = {"projid": projid, "tstamp": tstamp, "filename": FILENAME}
        lines = [json.dumps({**base, "ctx": None, "name": "lr", "value": lr, "type": 1})]
        loss = 2.3 + rnd.random()
        for e in range(EPOCHS):
            for s in range(STEPS):
                loss *= 0.999 - 0.001 * rnd.random()
                ctx = [_seg("epoch", e), _seg("step", s)]
                lines.append(json.dumps({**base, "ctx": ctx, "name": "loss", "value": loss, "type": 1}))
            acc = min(1.0, 0.5 + 0.05 * e + 0.02 * rnd.random())
            lines.append(json.dumps({**base, "ctx": [_seg("epoch", e)], "name": "acc", "value": acc, "type": 1}))
        (runs_dir / f"{tstamp}.jsonl").write_text("\n".join(lines) + "\n")
        total += len(lines)
    return total


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1])
    n = write_runs(out / ".flor" / "runs", out.name, int(sys.argv[2]) if len(sys.argv) > 2 else 50)
    print(f"{n} records in {out}")
