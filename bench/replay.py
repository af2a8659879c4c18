"""Replay benchmark (issue 3): checkpoints and partial, parallel replay of one run.

    .venv/bin/python bench/replay.py                       # 10 epochs x 512 steps, ~10-15 min
    .venv/bin/python bench/replay.py --n 393216 --rounds 1 # 6,144 steps an epoch, ~45 min
    .venv/bin/python bench/replay.py --epochs 10 --n 8192  # 128 steps an epoch, a few minutes

On `bench/replay_workload.py` (torch MLP 128-512-512-10 with dropout, Adam, StepLR,
shuffled DataLoader; CPU, one thread per process) in a throwaway git repository:
  (a) record overhead: the script with FlorDB and every epoch checkpointed against the
      same script without FlorDB, in alternating rounds (training loop, timed in the
      script: wall time and the training thread's CPU time); the same comparison inside
      one process (replay_pairing.py: rounds of one FlorDB epoch, one plain and one plain
      again as the A/A noise floor, which takes the process-to-process noise out);
      checkpoint bytes;
  (b) a new epoch-level statement for every epoch of the run, against re-training;
  (c) a new step-level statement for one epoch of N, against re-training;
  (d) a step-level statement for the first --d-epochs epochs, --workers 1 and 2;
  (e) flordb 4.0.1 on the same script and questions (its venv:
      ~/.cache/flordb-bench/venv-flordb401, created by bench/run.py).
The plain runs of (a) are the re-training that (b), (c) and (e) are compared with, round
by round. Every figure but the pairing is a whole process, the way a user waits for it, and every process is
broken down (from marks the script writes) into start-up (interpreter, `import torch`,
the script's set-up, in which torch's first optimizer imports torch._dynamo), the loop,
and exit (atexit handlers and the interpreter's teardown). A process of the same script
with 0 epochs is the floor: start-up and a normal exit (a replay process skips the
interpreter's teardown at exit, so it can end a little under it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = (HERE / "replay_workload.py").read_text()
NOFLOR = """
from contextlib import nullcontext
def arg(name, default=None): return default
def log(name, value): return value
def loop(name, iterable): return iterable
def checkpointing(**objs): return nullcontext()
"""
EPOCH_STMT = '            flor.log("wnorm", sum(p.norm().item() for p in net.parameters()))\n'
STEP_STMT = '            flor.log("gnorm", net[0].weight.grad.norm().item())\n'
TORCH_PTH = "flordb-torch.pth"


@dataclass
class Proc:
    """One measured process: wall and CPU time (its children included) and its phases."""

    wall: float
    cpu: float
    phases: dict = field(default_factory=dict)
    loop_thread_cpu: float = 0.0
    stderr: str = ""

    @property
    def loop(self) -> float:
        return self.phases.get("loop", float("nan"))


def run(cmd: list[str], d: Path, env: dict, check: bool = True) -> Proc:
    """Runs `cmd` in `d`; its script appends its marks to a fresh BENCH_OUT."""
    fd, out = tempfile.mkstemp(prefix="bench-out-", suffix=".jsonl")
    os.close(fd)
    err = Path(out).with_suffix(".err")
    with open(err, "w") as ferr:
        launched = time.time()
        p = subprocess.Popen(cmd, cwd=d, env={**os.environ, **env, "BENCH_OUT": out}, stdout=subprocess.DEVNULL, stderr=ferr)
        _, status, usage = os.wait4(p.pid, 0)
        reaped = time.time()
    code = os.waitstatus_to_exitcode(status)
    stderr = err.read_text()
    lines = [json.loads(line) for line in Path(out).read_text().splitlines() if line.strip()]
    os.unlink(out), os.unlink(err)
    if check and code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{stderr[-3000:]}")
    proc = Proc(wall=reaped - launched, cpu=usage.ru_utime + usage.ru_stime, stderr=stderr)
    mine = next((x for x in lines if x["pid"] == p.pid), None)
    if mine:
        m = mine["marks"]
        proc.phases = {
            "interpreter": m["start"] - launched,
            "imports": m["imports"] - m["start"],
            "setup": m["loop"] - m["imports"],
            "loop": m["end"] - m["loop"],
            "exit": reaped - m["end"],
        }
        proc.loop_thread_cpu = mine["loop_thread_cpu"]
    return proc


def repo() -> Path:
    d = Path(tempfile.mkdtemp(prefix="flor-replay-bench-"))
    for c in (["init", "-q", "-b", "main"], ["config", "user.email", "b@x"], ["config", "user.name", "b"]):
        subprocess.run(["git", *c], cwd=d, check=True)
    (d / "train.py").write_text(WORKLOAD)
    (d / "plain.py").write_text(WORKLOAD.replace("import flordb as flor", "import _noflor as flor"))
    (d / "_noflor.py").write_text(NOFLOR)
    (d / "pairing.py").write_text((HERE / "replay_pairing.py").read_text())
    (d / "_paired.py").write_text((HERE / "workloads" / "_paired.py").read_text())
    subprocess.run(["git", "add", "-A"], cwd=d, check=True)
    subprocess.run(["git", "commit", "-qm", "code"], cwd=d, check=True)
    return d


def add_statements(d: Path) -> None:
    text = (d / "train.py").read_text()
    text = text.replace('            flor.log("val_loss"', EPOCH_STMT + '            flor.log("val_loss"', 1)
    text = text.replace("            opt.step()\n", "            opt.step()\n" + STEP_STMT, 1)
    (d / "train.py").write_text(text)


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n", type=int, default=32768, help="training samples (steps per epoch = n/64)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (a) and of (b), (c), (e), each paired with (a)'s re-training")
    ap.add_argument("--d-epochs", type=int, default=4, help="(d) replays the step-level statement for this many epochs")
    ap.add_argument("--pair-n", type=int, default=32768, help="(a) in-process pairing: samples per epoch (a shorter epoch is the harder case)")
    ap.add_argument("--no-flordb401", action="store_true")
    a = ap.parse_args()
    python = sys.executable
    N = a.epochs
    env = {"BENCH_N": str(a.n), "BENCH_EPOCHS": str(N), "PYTHONWARNINGS": "ignore"}
    d = repo()

    # (a) record overhead: plain and FlorDB runs alternating, order swapped each round.
    plain_a: list[Proc] = []
    rec: list[Proc] = []
    for r in range(a.rounds):
        for which in ("plain", "flor") if r % 2 == 0 else ("flor", "plain"):
            if which == "plain":
                plain_a.append(run([python, "plain.py"], d, env))
            else:
                rec.append(run([python, "train.py"], d, env))
    ck = ckpt_facts(python, d)
    # (a) again, inside one process: FlorDB epochs against plain epochs, alternating.
    paired = subprocess.run([python, "pairing.py"], cwd=d, env={**os.environ, **env, "BENCH_N": str(a.pair_n)},
                            capture_output=True, text=True, check=True)
    pair = json.loads(paired.stdout.strip().splitlines()[-1])
    add_statements(d)

    venv = Path(os.environ.get("FLOR_BENCH_CACHE", "~/.cache/flordb-bench")).expanduser() / "venv-flordb401"
    old: Old | str
    if a.no_flordb401:
        old = "skipped (--no-flordb401)"
    elif not (venv / "bin" / "python").exists():
        old = f"no venv at {venv}"
    else:
        old = Old.record(venv / "bin" / "python", env)

    # (b), (c), (e): in rounds, each against the re-training of its round of (a).
    plain, floor, B, C, OB, OC = plain_a, [], [], [], [], []
    for _ in range(a.rounds):
        B.append(run([python, "train.py", "--replay_flor", "--apply", "wnorm"], d, env))
        C.append(run([python, "train.py", "--replay_flor", "--apply", "gnorm", "--iter", f"epoch={N // 2}"], d, env))
        if isinstance(old, Old):
            # flordb 4.0.1's flags (spec §3.1, §6.5): it recomputes from iteration 0.
            OB.append(old.run("--apply", "wnorm", "--iter", f"epoch={','.join(map(str, range(N)))}"))
            OC.append(old.run("--apply", "gnorm", "--iter", f"epoch={N // 2}", "--iter", "step=all"))
        floor.append(run([python, "plain.py"], d, {**env, "BENCH_EPOCHS": "0"}))
    # (d) the step-level statement for the first epochs, on 1 and 2 workers
    dk = min(N, a.d_epochs)
    first = f"epoch={','.join(map(str, range(dk)))}"
    d1 = run([python, "train.py", "--replay_flor", "--apply", "gnorm", "--iter", first, "--workers", "1"], d, env)
    d2 = run([python, "train.py", "--replay_flor", "--apply", "gnorm", "--iter", first, "--workers", "2"], d, env)
    for p, what in [(p, "(b)") for p in B] + [(p, "(c)") for p in C] + [(d1, "(d)"), (d2, "(d)")]:
        if "recomputing" in p.stderr or "corrupt" in p.stderr:
            print(f"warning: {what} did not use checkpoints only: {p.stderr.strip()[:300]}", file=sys.stderr)
    shutil.rmtree(d, ignore_errors=True)
    if isinstance(old, Old):
        old.close()

    # -- the tables --------------------------------------------------------------------
    overhead_wall = med([f.loop / p.loop - 1 for p, f in zip(plain_a, rec)])
    overhead_cpu = med([f.loop_thread_cpu / p.loop_thread_cpu - 1 for p, f in zip(plain_a, rec)])
    retrain, retrain_loop, fl = med([p.wall for p in plain]), med([p.loop for p in plain]), med([p.wall for p in floor])

    def faster(xs: list[Proc], loop: bool = False) -> str:
        if not xs:
            return old if isinstance(old, str) else "n/a"
        if loop:
            return f"{med([p.loop / x.loop for p, x in zip(plain, xs)]):.1f}x faster ({med([x.loop for x in xs]):.2f} s)"
        return f"{med([p.wall / x.wall for p, x in zip(plain, xs)]):.2f}x faster ({med([x.wall for x in xs]):.1f} s)"

    def share(xs: list[Proc], loop: bool = False) -> str:
        if not xs:
            return old if isinstance(old, str) else "n/a"
        if loop:
            return f"{med([x.loop / p.loop for p, x in zip(plain, xs)]):.3f} of the training loop"
        return f"{med([x.wall / p.wall for p, x in zip(plain, xs)]):.3f} of re-training ({med([x.wall for x in xs]):.1f} s)"

    print(f"\nReplay benchmark: torch {torch_version(python)}, {N} epochs x {a.n // 64} steps (batch 64, {a.n} samples), "
          f"1 torch thread per process, {os.cpu_count()} cores; medians of {a.rounds} rounds, ratios paired within a round")
    print(f"command: {' '.join(['.venv/bin/python', 'bench/replay.py', *sys.argv[1:]])}\n")
    o_rec = old.rec if isinstance(old, Old) else None
    na = old if isinstance(old, str) else "n/a"
    pe = pair["per_epoch_ms"]
    ck_ms = pe["train_thread_nested_exit"] + pe["train_thread_boundary"]
    bg_ms = sum(v for k, v in pe.items() if k.endswith("_cpu"))
    epoch_ms = 1e3 * pair["epoch_without_s"]
    rows = [
        ("re-training, no FlorDB: process / its loop", f"{retrain:.1f} s / {retrain_loop:.1f} s", "same", "baseline"),
        ("floor: the script with 0 epochs (start-up + exit)", f"{fl:.1f} s", "same", "start-up no replay avoids"),
        ("(a) record overhead, training loop wall time", f"{100 * overhead_wall:+.1f}%",
         f"{100 * (o_rec.loop / med([p.loop for p in plain_a]) - 1):+.1f}% (1 run, no checkpoints)" if o_rec else na, "within eps (6.7%), < 2%"),
        ("(a) record overhead, in-process pairing", f"{100 * pair['overhead']['median']:+.1f}%", "",
         f"within eps, < 2%  ({pair['rounds']} rounds of {pair['steps_per_epoch']} steps, one process; bootstrap 95% "
         f"{100 * pair['overhead']['low']:+.1f}%..{100 * pair['overhead']['high']:+.1f}%; A/A {100 * pair['aa']['median']:+.1f}% "
         f"[{100 * pair['aa']['low']:+.1f}%, {100 * pair['aa']['high']:+.1f}%])"),
        ("(a) per epoch: training thread in checkpointing / FlorDB's other threads' CPU",
         f"{ck_ms:.1f} ms / {bg_ms:.1f} ms = {100 * (ck_ms + bg_ms) / epoch_ms:.2f}% of a {epoch_ms:.0f} ms epoch", "",
         "exact accounting; the other threads run on another core (pairing's process; the boundary includes the records' barrier)"),
        ("(a) record overhead, training thread CPU time", f"{100 * overhead_cpu:+.1f}%",
         f"{100 * (o_rec.loop_thread_cpu / med([p.loop_thread_cpu for p in plain_a]) - 1):+.1f}%" if o_rec else na, ""),
        ("(a) checkpointing on the training thread", f"{100 * ck['ckpt_secs'] / rec[-1].loop:.2f}% of the loop", "", "within eps"),
        ("(a) checkpoints per run; stored bytes / raw tensor bytes",
         f"{ck['count']}; {ck['stored'] / 1e6:.1f} / {ck['raw'] / 1e6:.1f} MB = {ck['stored'] / ck['raw']:.2f} ({a.rounds} runs)", "", "<= 1.00"),
        ("(b) epoch-level statement, all epochs", faster(B), faster(OB), ">= 50x"),
        ("(b) ... loops only", faster(B, loop=True), faster(OB, loop=True), ""),
        ("(b) ... re-training / floor (start-up + exit)", f"{retrain / fl:.1f}x", "", ""),
        (f"(c) step-level statement, 1 epoch of {N}", share(C), share(OC), f"<= 1.5/N = {1.5 / N:.3f}"),
        ("(c) ... loops only", share(C, loop=True), share(OC, loop=True), f"<= {1.5 / N:.3f}"),
        (f"(d) step-level, {dk} of {N} epochs, --workers 1", f"{d1.wall / retrain:.2f} of re-training ({d1.wall:.1f} s, {d1.cpu:.1f} s CPU)", "", ""),
        (f"(d) step-level, {dk} of {N} epochs, --workers 2", f"{d1.wall / d2.wall:.2f}x vs 1 worker ({d2.wall:.1f} s, {d2.cpu:.1f} s CPU)", "", "faster"),
    ]
    table(["measure", "ours", "flordb 4.0.1", "target"], rows)

    print("\nWhere each process's time goes (wall seconds; last round):\n")
    procs = [("re-training", plain[-1]), ("recording with FlorDB", rec[-1]), ("floor (0 epochs)", floor[-1]),
             ("(b) replay, epoch-level", B[-1]), ("(c) replay, 1 epoch", C[-1]),
             ("(d) --workers 1", d1), ("(d) --workers 2 (task 0; CPU of both)", d2)]
    if isinstance(old, Old):
        procs += [("(e) flordb 4.0.1 recording", old.rec), ("(e) flordb 4.0.1 (b)", OB[-1]), ("(e) flordb 4.0.1 (c)", OC[-1])]
    prow = []
    for name, p in procs:
        ph = p.phases
        prow.append((name, f"{p.wall:.2f}", f"{ph.get('interpreter', 0):.2f}", f"{ph.get('imports', 0):.2f}",
                     f"{ph.get('setup', 0):.2f}", f"{ph.get('loop', 0):.2f}", f"{ph.get('exit', 0):.2f}", f"{p.cpu:.2f}"))
    table(["process", "wall", "interpreter", "imports", "set-up", "loop", "exit", "CPU"], prow)


class Old:
    """flordb 4.0.1 on the same script, in its own repository."""

    def __init__(self, python: Path, env: dict, d: Path, rec: Proc):
        self.python, self.env, self.d, self.rec = python, env, d, rec

    @staticmethod
    def record(python: Path, env: dict) -> "Old | str":
        pth = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / TORCH_PTH
        env4 = {**env, "PYTHONPATH": pth.read_text().strip()}
        d = repo()
        try:
            rec = run([str(python), "train.py"], d, env4)
        except SystemExit as err:
            shutil.rmtree(d, ignore_errors=True)
            return f"failed: {str(err).splitlines()[0][:80]}"
        add_statements(d)
        subprocess.run(["git", "commit", "-qam", "statements"], cwd=d)
        return Old(python, env4, d, rec)

    def run(self, *flags: str) -> Proc:
        return run([str(self.python), "train.py", "--replay_flor", *flags], self.d, self.env)

    def close(self) -> None:
        shutil.rmtree(self.d, ignore_errors=True)


def ckpt_facts(python: str, d: Path) -> dict:
    """Checkpoints of the last recorded run, their raw tensor bytes, and the bytes the
    store holds for all runs against the raw bytes of all their checkpoints."""
    code = """
import json, flordb as flor
runs = flor.runs().run_id.tolist()
per = [flor.checkpoints(r).drop_duplicates(['iteration', 'point']) for r in runs]
df = flor.query("select value from logs where value_name = 'time::ckpt'")
print(json.dumps({"count": len(per[-1]), "raw_all": int(sum(p.raw_bytes.sum() for p in per)),
                  "ckpt_secs": float(df.value.iloc[-1]) if len(df) else float('nan')}))
"""
    out = subprocess.run([python, "-c", code], cwd=d, capture_output=True, text=True, check=True).stdout
    facts = json.loads(out)
    facts["stored"] = dir_bytes(d / ".flor" / "objects")
    facts["raw"] = facts.pop("raw_all")
    return facts


def table(header: list[str], rows: list[tuple]) -> None:
    w = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("| " + " | ".join(h.ljust(n) for h, n in zip(header, w)) + " |")
    print("|" + "|".join("-" * (n + 2) for n in w) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).ljust(n) for x, n in zip(r, w)) + " |")


def torch_version(python: str) -> str:
    return subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
