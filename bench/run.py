"""Benchmarks of the recording engine against flordb 4.0.1, side by side.

    python bench/run.py                 # everything, ~15 minutes on 2 busy cores
    python bench/run.py --quick         # fewer rounds and runs, a few minutes
    python bench/run.py --only a,c      # some of them: a b c d

"ours" is the flordb importable by the interpreter running this file (`make
bench` uses the project's .venv); flordb 4.0.1 comes from PyPI into a virtual
environment cached under ${FLOR_BENCH_CACHE:-~/.cache/flordb-bench}.  Both run
the same workload scripts (bench/workloads/) in fresh git repositories.

  (a) median cost of one `flor.log(name, float)` call, and what each value
      costs later, at exit
  (b) records per second into the store, durable once the process is gone
  (c) record overhead on a numpy MLP trained on scikit-learn's digits
  (d) `flor.dataframe("loss", "acc")` over 50 and 1,000 runs x 1,010 values

The table goes to stdout; progress to stderr; the table and the raw samples to
bench/results/<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benches import BENCHES, Config, say  # noqa: E402
from harness import BENCH_DIR, Impl, ensure_reference_venv, probe, render_table  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and runs (a few minutes)")
    ap.add_argument("--only", default="a,b,c,d", help="comma list of benchmarks to run: a,b,c,d")
    ap.add_argument("--ours", default=sys.executable,
                    help="interpreter whose `import flordb` is ours (default: this one, which must "
                         "have flordb._native; a given one need not, e.g. the 4.0.1 venv to test the harness)")
    ap.add_argument("--rounds", type=int, help="(c) paired rounds (default 15, quick 3)")
    ap.add_argument("--hidden", type=int, help="(c) hidden units of the MLP (default 500)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch repositories")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in only if b not in BENCHES]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2

    ref_python = str(ensure_reference_venv(log=say))
    ours = probe(Impl("ours", "ours", args.ours), require_native=args.ours == sys.executable)
    ref = probe(Impl("flordb401", "flordb 4.0.1", ref_python), require_native=False)
    for impl in (ours, ref):
        if impl.ok:
            say(f"{impl.label}: flordb {impl.version} via {impl.python}")
        else:
            say(f"{impl.label}: UNAVAILABLE -- {impl.why}; its column stays empty")
    if not (ours.ok or ref.ok):
        return 1
    impls = [ours, ref]

    work = Path(tempfile.mkdtemp(prefix="flor-bench-"))
    say(f"scratch repositories under {work}")
    cfg = Config.make(work, args.quick)
    if args.rounds:
        cfg.rounds = args.rounds
    if args.hidden:
        cfg.hidden = args.hidden

    rows, raw = [], {}
    started = time.time()
    try:
        for b in only:
            t0 = time.time()
            r, x = BENCHES[b](impls, cfg)
            rows += r
            raw[b] = x
            say(f"({b}) done in {time.time() - t0:.0f} s")
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    table = render_table(rows)
    header = [
        f"flordb benchmarks{' (--quick)' if args.quick else ''}: ours vs flordb 4.0.1, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"{time.time() - started:.0f} s",
    ]
    for impl in impls:
        header.append(f"  {impl.label:13s} " + (f"flordb {impl.version}, {impl.python}" if impl.ok else f"UNAVAILABLE: {impl.why}"))
    print("\n".join(header) + "\n\n" + table)

    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    record = {
        "when": stamp, "quick": args.quick, "only": only, "seconds": time.time() - started,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "impls": {i.key: {"python": i.python, "ok": i.ok, "why": i.why, "version": i.version} for i in impls},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "rows": [r.as_dict() for r in rows],
        "table": table,
        "raw": raw,
    }
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(record, indent=1, default=str))
    shutil.copyfile(path, out_dir / "latest.json")
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
