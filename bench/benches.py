"""The four benchmarks of issue 2, item 7.  Each takes the implementations and a
`Config`, runs its workload in child processes (both sides interleaved, so a
burst of load from elsewhere on the machine hits both), and returns table rows
plus the raw samples for the JSON record.
"""

from __future__ import annotations

import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import (
    WORKLOADS, ChildFailed, Impl, Row, count_jsonl_records, make_repo, median, quartiles, run_child,
)
import synth


@dataclass
class Config:
    work: Path  # scratch directory for the throwaway repositories
    quick: bool = False
    # (a)
    log_calls: int = 5000
    log_repeats: int = 21
    log_procs: int = 3
    # (b): per side, so that ours logs enough for its cost to rise above the
    # noise of process start-up while flordb 4.0.1 finishes in seconds.
    tput_values: dict = None
    tput_pairs: int = 3
    # (c)
    rounds: int = 15
    epochs: int = 20
    # The width of the seed tutorial's MNIST MLP (784-500-10); on digits a step
    # is still only a few hundred microseconds.
    hidden: int = 500
    # In-process pairing rounds on that step.
    pair_rounds: int = 120
    # A step as heavy as the loop (about 3 ms here), for the stopwatch rows.
    heavy_hidden: int = 16384
    stopwatch_epochs: int = 6
    stopwatch_procs: int = 3
    # (d): (runs, repeats) per case
    df_cases: tuple = ((50, 3), (1000, 3))
    df_ref_repeats_large: int = 2  # flordb 4.0.1 takes ~20 s per query at 1M records

    @classmethod
    def make(cls, work: Path, quick: bool) -> "Config":
        if not quick:
            return cls(work=work, tput_values={"ours": 1_000_000, "flordb401": 100_000})
        return cls(
            work=work, quick=True,
            log_calls=2000, log_repeats=11, log_procs=2,
            tput_values={"ours": 200_000, "flordb401": 20_000}, tput_pairs=2,
            rounds=3, epochs=5, pair_rounds=40, stopwatch_epochs=3, stopwatch_procs=1,
            df_cases=((50, 2), (200, 2)), df_ref_repeats_large=1,
        )


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_seq = 0


def fresh_repo(cfg: Config, tag: str, scripts: list[str]) -> Path:
    """A new repository holding the named workload files, plus their helpers."""
    global _seq
    _seq += 1
    files = {name: WORKLOADS / name for name in [*scripts, "_report.py", "_paired.py", "mlp_core.py"]}
    return make_repo(cfg.work / f"{_seq:04d}-{tag}" / "proj", files)


def live(impls: list[Impl]) -> list[Impl]:
    return [i for i in impls if i.ok]


# --------------------------------------------------------------------------
# (a) one flor.log call
# --------------------------------------------------------------------------


def bench_log_call(impls: list[Impl], cfg: Config):
    env = {"BENCH_CALLS": cfg.log_calls, "BENCH_REPEATS": cfg.log_repeats}
    tiny = {"BENCH_CALLS": 1, "BENCH_REPEATS": 1}
    per_call, exit_full, exit_tiny, values, errors = {}, {}, {}, {}, {}
    for p in range(cfg.log_procs):
        for impl in live(impls):
            if impl.key in errors:
                continue
            say(f"(a) flor.log call: {impl.label}, process {p + 1}/{cfg.log_procs}")
            try:
                full = run_child(impl.python, "log_call.py", fresh_repo(cfg, f"a-{impl.key}", ["log_call.py"]), env)
                small = run_child(impl.python, "log_call.py", fresh_repo(cfg, f"a0-{impl.key}", ["log_call.py"]), tiny)
            except ChildFailed as e:
                errors[impl.key] = str(e)
                say(str(e))
                continue
            per_call.setdefault(impl.key, []).extend(x / 1e9 for x in full.report["per_call_ns"])
            exit_full.setdefault(impl.key, []).append(full.exit_s)
            exit_tiny.setdefault(impl.key, []).append(small.exit_s)
            values[impl.key] = full.report["values"]

    # The same calls at run level, one process per side: no loop context, and
    # for flordb 4.0.1 no progress bar to redraw.
    flat = {}
    for impl in live(impls):
        if impl.key in errors:
            continue
        say(f"(a) flor.log call at run level: {impl.label}")
        try:
            res = run_child(impl.python, "log_call.py", fresh_repo(cfg, f"a1-{impl.key}", ["log_call.py"]),
                            {**env, "BENCH_IN_LOOP": 0})
            flat[impl.key] = median([x / 1e9 for x in res.report["per_call_ns"]])
        except ChildFailed as e:
            say(str(e))

    call = {k: median(v) for k, v in per_call.items()}
    # What the run pays after its last statement, per value logged: the exit of
    # the full run minus the exit of a one-value run (git, file creation, the
    # interpreter's own teardown), spread over the values.
    later = {k: (median(exit_full[k]) - median(exit_tiny[k])) / values[k] for k in exit_full}
    exit_abs = {k: median(v) for k, v in exit_full.items()}
    total = {k: call[k] + max(later[k], 0.0) for k in call}
    rows = [
        Row("a", "flor.log call, median", "time", call.get("ours"), call.get("flordb401"),
            target="<= 1 µs", passed=_le(call.get("ours"), 1e-6),
            note=f"{cfg.log_calls} calls x {cfg.log_repeats} repeats x {cfg.log_procs} processes per side, "
                 "float value inside flor.loop; empty-loop time subtracted"),
        Row("a", "flor.log call at run level, median", "time", flat.get("ours"), flat.get("flordb401"),
            note="same, outside any flor.loop (one process per side)"),
        Row("a", "later cost per value (at exit)", "time", later.get("ours"), later.get("flordb401"),
            target="~0 (<= 0.2 µs)", passed=_le(later.get("ours"), 0.2e-6),
            note="(exit time of the run) - (exit time of a 1-value run), divided by the values logged; "
                 "exit = last statement to process reaped"),
        Row("a", "exit time of that run", "time", exit_abs.get("ours"), exit_abs.get("flordb401")),
        Row("a", "call + later, per value", "time", total.get("ours"), total.get("flordb401")),
    ]
    _note_errors(rows[0], errors)
    raw = {"per_call_s": per_call, "run_level_call_s": flat, "exit_full_s": exit_full, "exit_tiny_s": exit_tiny, "values": values}
    return rows, raw


# --------------------------------------------------------------------------
# (b) records per second into the store
# --------------------------------------------------------------------------


def bench_throughput(impls: list[Impl], cfg: Config):
    diffs, walls, checks, errors = {}, {}, {}, {}
    for p in range(cfg.tput_pairs):
        for impl in live(impls):
            if impl.key in errors:
                continue
            n = cfg.tput_values[impl.key]
            say(f"(b) records/s: {impl.label}, {n:,} values, pair {p + 1}/{cfg.tput_pairs}")
            try:
                base = run_child(impl.python, "log_throughput.py",
                                 fresh_repo(cfg, f"b0-{impl.key}", ["log_throughput.py"]),
                                 {"BENCH_VALUES": n, "BENCH_LOG": 0})
                repo = fresh_repo(cfg, f"b-{impl.key}", ["log_throughput.py"])
                full = run_child(impl.python, "log_throughput.py", repo, {"BENCH_VALUES": n, "BENCH_LOG": 1})
            except ChildFailed as e:
                errors[impl.key] = str(e)
                say(str(e))
                continue
            diffs.setdefault(impl.key, []).append(full.wall_s - base.wall_s)
            walls.setdefault(impl.key, []).append((base.wall_s, full.wall_s))
            # Durable means on disk once the process is gone: count the records.
            checks.setdefault(impl.key, []).append(count_jsonl_records(repo, "x") == n)
    rate = {}
    for k, d in diffs.items():
        m = median(d)
        rate[k] = cfg.tput_values[k] / m if m > 0 else float("inf")
    notes = [f"{cfg.tput_values[k]:,} values ({k})" for k in diffs]
    bad = [k for k, c in checks.items() if not all(c)]
    if bad:
        notes.append(f"RECORD COUNT MISMATCH in .flor/runs for: {', '.join(bad)}")
    rows = [Row("b", "records/s into the store", "rate", rate.get("ours"), rate.get("flordb401"),
                better="higher",
                note="; ".join(notes) + "; (wall of logging run - wall of same loops without the call), "
                     f"median of {cfg.tput_pairs} pairs; records counted in the JSONL after exit")]
    _note_errors(rows[0], errors)
    return rows, {"wall_diff_s": diffs, "walls_s": walls, "jsonl_count_ok": checks}


# --------------------------------------------------------------------------
# (c) record overhead on a real training loop
# --------------------------------------------------------------------------


def bench_overhead(impls: list[Impl], cfg: Config):
    env = {"BENCH_EPOCHS": cfg.epochs, "BENCH_HIDDEN": cfg.hidden}
    samples = {i.key: [] for i in live(impls)}  # per round: (plain, flor) ChildResults
    twins = []  # per round: two processes of the plain script (the A/A noise floor)
    errors = {}
    order_rng = random.Random(7)
    for r in range(cfg.rounds):
        jobs = [(impl, kind) for impl in live(impls) if impl.key not in errors for kind in ("plain", "flor")]
        jobs += [(impl, "plain-twin") for impl in live(impls)[:1]]
        # Shuffled within the round so neither side is always first after a pause.
        order_rng.shuffle(jobs)
        say(f"(c) training loop: round {r + 1}/{cfg.rounds}")
        got = {}
        for impl, kind in jobs:
            if impl.key in errors:
                continue
            script = f"train_mlp_{kind.removesuffix('-twin')}.py"
            try:
                got[(impl.key, kind)] = run_child(impl.python, script, fresh_repo(cfg, f"c-{impl.key}-{kind}", [script]), env)
            except ChildFailed as e:
                errors[impl.key] = str(e)
                say(str(e))
        for impl in live(impls):
            if (impl.key, "plain") in got and (impl.key, "flor") in got:
                samples[impl.key].append((got[(impl.key, "plain")], got[(impl.key, "flor")]))
            if (impl.key, "plain") in got and (impl.key, "plain-twin") in got:
                twins.append((got[(impl.key, "plain")], got[(impl.key, "plain-twin")]))

    loop_oh, proc_oh, per_step, step_s, spread, raw = {}, {}, {}, {}, {}, {}
    thread_oh, cpu_oh = {}, {}
    for k, pairs in samples.items():
        if not pairs:
            continue
        ratios = [f.report["loop_s"] / p.report["loop_s"] - 1 for p, f in pairs]
        loop_oh[k] = median(ratios)
        spread[k] = quartiles(ratios)
        thread_oh[k] = median([f.report["loop_thread_s"] / p.report["loop_thread_s"] - 1 for p, f in pairs])
        cpu_oh[k] = median([f.report["loop_cpu_s"] / p.report["loop_cpu_s"] - 1 for p, f in pairs])
        proc_oh[k] = median([f.wall_s / p.wall_s - 1 for p, f in pairs])
        steps = pairs[0][1].report["steps"]
        per_step[k] = median([(f.report["loop_s"] - p.report["loop_s"]) / steps for p, f in pairs])
        step_s[k] = median([p.report["loop_s"] / steps for p, _ in pairs])
        raw[k] = [{"plain_loop_s": p.report["loop_s"], "flor_loop_s": f.report["loop_s"],
                   "plain_thread_s": p.report["loop_thread_s"], "flor_thread_s": f.report["loop_thread_s"],
                   "plain_cpu_s": p.report["loop_cpu_s"], "flor_cpu_s": f.report["loop_cpu_s"],
                   "plain_wall_s": p.wall_s, "flor_wall_s": f.wall_s} for p, f in pairs]
    steps_txt = f"{cfg.epochs} epochs x 313 steps, batch 5, hidden {cfg.hidden}"
    rows = [
        Row("c", "training loop overhead, separate processes", "pct", loop_oh.get("ours"), loop_oh.get("flordb401"),
            note=f"{steps_txt}; median over {cfg.rounds} rounds of (loop with flor)/(loop without) - 1; "
                 "the A/A row shows that separate processes cannot resolve 1% here (the target is judged "
                 "on the stopwatch row at the issue's step weight); "
                 "quartiles of the ratios: " + ", ".join(
                     f"{k} {lo * 100:+.1f}%..{hi * 100:+.1f}%" for k, (lo, hi) in spread.items())),
        Row("c", "loop overhead, CPU of training thread", "pct", thread_oh.get("ours"), thread_oh.get("flordb401"),
            note="same pairing, time.thread_time() around the loop: what the training thread itself pays, "
                 "and much less noisy than wall time on a busy machine"),
        Row("c", "loop overhead, CPU of whole process", "pct", cpu_oh.get("ours"), cpu_oh.get("flordb401"),
            note="time.process_time(): includes background threads"),
        Row("c", "process overhead", "pct", proc_oh.get("ours"), proc_oh.get("flordb401"),
            note="whole process wall time, same pairing"),
        Row("c", "added per training step", "time", per_step.get("ours"), per_step.get("flordb401")),
        Row("c", "plain training step (reference)", "time", step_s.get("ours"), step_s.get("flordb401"),
            better="none", note="time of one step without FlorDB, with each side's numpy"),
    ]
    if twins:
        aa = [b.report["loop_s"] / a.report["loop_s"] - 1 for a, b in twins]
        lo, hi = quartiles(aa)
        rows.append(Row("c", "A/A: plain script against itself", "pct", median(aa), None, better="none",
                        note=f"noise floor of the paired rows above: the same plain script in two processes, "
                             f"{len(aa)} rounds; quartiles {lo * 100:+.1f}%..{hi * 100:+.1f}%, "
                             f"median |difference| {median([abs(x) for x in aa]) * 100:.1f}%"))
    _note_errors(rows[0], errors)
    # FlorDB's own cost per step in a tight loop, paired inside one process.
    cost = {}
    for impl in live(impls):
        script = "step_cost.py"
        try:
            res = run_child(impl.python, script, fresh_repo(cfg, f"c-cost-{impl.key}", [script]))
            cost[impl.key] = res.report["per_step_s"]
        except ChildFailed as e:
            say(str(e))
    rows.append(Row("c", "FlorDB cost per step, tight loop (caches warm)", "time", cost.get("ours"),
                    cost.get("flordb401"),
                    note="step_cost.py: flor.loop + flor.log over the same 313 batches with and without FlorDB, "
                         "alternating 200 times in one process, no training in between; difference of medians "
                         "per step. Inside a real loop the same calls find their code and data evicted by the "
                         "training and cost several times more: the pairing rows below measure that"))
    # The whole training loop (real SGD step, loss logged every step, epoch boundary)
    # with and without FlorDB, alternating epochs inside one process. On a step as heavy
    # as the issue's loop (flordb 4.0.1's 407 us a step were about 10% of it: a step of
    # about 4 ms) epochs differ by several percent from one to the next, so there the
    # stopwatch around FlorDB's calls, the issue's own method, is what resolves 1%.
    rows += _loop_pairing_rows(impls, cfg, cfg.hidden, cfg.pair_rounds)
    for hidden, target in ((cfg.hidden, False), (cfg.heavy_hidden, True)):
        rows += _stopwatch_rows(impls, cfg, hidden, target)
    return rows, raw


def _stopwatch_rows(impls: list[Impl], cfg: Config, hidden: int, target: bool) -> list[Row]:
    got: dict[str, list[dict]] = {}
    for p in range(cfg.stopwatch_procs):
        for impl in live(impls):
            script = "loop_stopwatch.py"
            try:
                res = run_child(impl.python, script, fresh_repo(cfg, f"c-watch{hidden}-{impl.key}", [script]),
                                {"BENCH_HIDDEN": hidden, "BENCH_EPOCHS": cfg.stopwatch_epochs})
                got.setdefault(impl.key, []).append(res.report)
            except ChildFailed as e:
                say(str(e))
    if not got:
        return []
    per_step = {k: median([r["flor_per_step_s"] for r in v]) for k, v in got.items()}
    share = {k: median([r["flor_per_step_s"] / r["plain_step_s"] for r in v]) for k, v in got.items()}
    plain = median([r["plain_step_s"] for v in got.values() for r in v])
    label = f"hidden {hidden}, {plain * 1e6:,.0f} us/step"
    note = (f"loop_stopwatch.py: {cfg.stopwatch_epochs} epochs x 313 steps (the first, where the run starts, "
            f"left out), {cfg.stopwatch_procs} processes per side, medians; a timer around FlorDB's calls in "
            "the real loop (step loop and flor.log on even steps, around nothing at the same points on odd "
            "steps: difference of means; the epoch boundary timed whole); share = that time / the rest "
            "of the step. "
            "It leaves out what FlorDB's threads and memory do to the training (the pairing row above "
            "measures everything, on the light step)")
    return [
        Row("c", f"stopwatch: FlorDB calls per step ({label})", "time", per_step.get("ours"),
            per_step.get("flordb401"), note=note + ("; the issue's stopwatch on flordb 4.0.1: 407 us a step"
                                                  if target else "")),
        Row("c", f"stopwatch: share of the loop ({label})", "pct", share.get("ours"), share.get("flordb401"),
            target="<= 1%" if target else "", passed=_le(share.get("ours"), 0.01) if target else None),
    ]


def _loop_pairing_rows(impls: list[Impl], cfg: Config, hidden: int, rounds: int) -> list[Row]:
    paired = {}
    for impl in live(impls):
        script = "loop_pairing.py"
        try:
            res = run_child(impl.python, script, fresh_repo(cfg, f"c-pair{hidden}-{impl.key}", [script]),
                            {"BENCH_HIDDEN": hidden, "BENCH_PAIR_ROUNDS": rounds})
            paired[impl.key] = res.report
        except ChildFailed as e:
            say(str(e))
    if not paired:
        return []
    any_report = next(iter(paired.values()))
    steps = any_report["steps_per_epoch"]

    def ci(r: dict) -> str:
        return f"{r['median'] * 100:+.1f}% [{r['low'] * 100:+.1f}%, {r['high'] * 100:+.1f}%]"

    oh = {k: v["overhead"]["median"] for k, v in paired.items()}
    per_step = {k: v["overhead"]["median"] * v["epoch_without_s"] / steps for k, v in paired.items()}
    plain_step = any_report["epoch_without_s"] / steps
    ours = paired.get("ours")
    label = f"hidden {hidden}, {plain_step * 1e6:,.0f} us/step"
    return [
        Row("c", f"loop overhead, in-process pairing ({label})", "pct", oh.get("ours"), oh.get("flordb401"),
            note=f"loop_pairing.py: {rounds} rounds in one process, each one epoch of the real loop ({steps} SGD "
                 "steps, loss per step, val_acc per epoch, the epoch boundary) with FlorDB, without, without "
                 "again (A/A) and through a bare Python generator, in rotating order; median over rounds of "
                 "(with / without) - 1 [bootstrap 95%]: "
                 + "; ".join(f"{k} {ci(v['overhead'])}" for k, v in paired.items())
                 + (f"; A/A {ci(ours['aa'])}; bare generator {ci(ours['generator'])}; ours by the training "
                    f"thread's CPU time {ci(ours['thread'])} (A/A {ci(ours['thread_aa'])})" if ours else "")),
        Row("c", f"FlorDB cost per step inside that loop ({label})", "time", per_step.get("ours"),
            per_step.get("flordb401"), note="the overhead above x the median epoch without FlorDB / steps"),
    ]



# --------------------------------------------------------------------------
# (d) flor.dataframe over many runs
# --------------------------------------------------------------------------

_QUERY = "import runpy; runpy.run_path('query_dataframe.py', run_name='__main__')"


def bench_dataframe(impls: list[Impl], cfg: Config):
    rows, raw = [], {}
    for n_runs, repeats in cfg.df_cases:
        large = n_runs == max(n for n, _ in cfg.df_cases)
        stage = cfg.work / f"d-stage-{n_runs}" / "proj"
        say(f"(d) writing {n_runs} synthetic runs")
        n_records = synth.write_runs(stage / ".flor" / "runs", "proj", n_runs)
        unpack_s, df_s, shapes, errors = {}, {}, {}, {}
        projects = {}
        for impl in live(impls):
            # Every side gets its own copy: unpack writes its cache next to the runs.
            proj = make_repo(cfg.work / f"d-{impl.key}-{n_runs}" / "proj",
                             {"query_dataframe.py": WORKLOADS / "query_dataframe.py",
                              "_report.py": WORKLOADS / "_report.py",
                              # 250 MB of runs would make every git call slow and
                              # is not what this measures; the files are read
                              # from disk by unpack either way.
                              ".gitignore": ".flor/\n"})
            shutil.copytree(stage / ".flor", proj / ".flor")
            projects[impl.key] = proj
            say(f"(d) {impl.label}: python -m flordb unpack over {n_runs} runs ({n_records:,} records)")
            try:
                res = run_child(impl.python, "-m", proj, args=("flordb", "unpack"), timeout=3600)
                unpack_s[impl.key] = res.wall_s
            except ChildFailed as e:
                errors[impl.key] = str(e)
                say(str(e))
        reps = {i.key: (cfg.df_ref_repeats_large if (large and i.key == "flordb401") else repeats)
                for i in live(impls)}
        for rep in range(max(reps.values(), default=0)):
            for impl in live(impls):
                if impl.key in errors or rep >= reps[impl.key]:
                    continue
                say(f"(d) {impl.label}: flor.dataframe('loss', 'acc') over {n_runs} runs, try {rep + 1}/{reps[impl.key]}")
                try:
                    res = run_child(impl.python, "-c", projects[impl.key], args=(_QUERY,), timeout=3600)
                except ChildFailed as e:
                    errors[impl.key] = str(e)
                    say(str(e))
                    continue
                df_s.setdefault(impl.key, []).append(res.report["dataframe_s"])
                shapes[impl.key] = {k: res.report[k] for k in ("rows", "cols", "loss_dtype", "loss_nonnull", "acc_nonnull")}
        for proj in projects.values():
            shutil.rmtree(proj.parent, ignore_errors=True)
        shutil.rmtree(stage.parent, ignore_errors=True)

        t = {k: median(v) for k, v in df_s.items()}
        label = f"dataframe('loss','acc'), {n_runs} runs x 1,010 values"
        row = Row("d", label, "time", t.get("ours"), t.get("flordb401"))
        if n_runs == 1000:
            ok_fast = _le(t.get("ours"), 0.5)
            ratio = row.ratio()
            row.target = "< 0.5 s and >= 40x"
            row.passed = None if ok_fast is None else bool(ok_fast and ratio is not None and ratio >= 40)
        shape_note = "; ".join(f"{k}: {s['rows']:,} rows, loss {s['loss_dtype']}" for k, s in shapes.items())
        rows_differ = len({s["rows"] for s in shapes.values()}) > 1
        tries = " / ".join(f"{len(v)} ({k})" for k, v in df_s.items())
        row.note = (f"median of {tries} tries, fresh process each, import excluded; " + shape_note
                    + ("; ROW COUNTS DIFFER" if rows_differ else ""))
        _note_errors(row, errors)
        rows.append(row)
        rows.append(Row("d", f"python -m flordb unpack, {n_runs} runs", "time",
                        unpack_s.get("ours"), unpack_s.get("flordb401"),
                        note=f"once per side, {n_records:,} records, whole process"))
        raw[n_runs] = {"dataframe_s": df_s, "unpack_s": unpack_s, "shapes": shapes, "records": n_records}
    return rows, raw


# --------------------------------------------------------------------------


def _le(x, bound):
    if x is None or x != x:
        return None
    return x <= bound


def _note_errors(row: Row, errors: dict) -> None:
    for k, msg in errors.items():
        first = msg.strip().splitlines()[-1] if msg.strip() else "?"
        row.note = (row.note + "; " if row.note else "") + f"{k} FAILED: {first}"


BENCHES = {
    "a": bench_log_call,
    "b": bench_throughput,
    "c": bench_overhead,
    "d": bench_dataframe,
}
