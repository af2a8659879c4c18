# Record overhead of bench/replay.py's workload, paired inside one process: each round runs
# one epoch of the same training with FlorDB (flor.loop, loss logged per step, every epoch
# checkpointed), one with plain loops and one plain again (A/A, the noise floor), in
# rotating order (workloads/_paired.py). Separate processes of one script differ by far
# more than the 2% to be measured on this machine; here all arms share data, model and
# memory. Prints one JSON line. Sizes from the environment, as replay_workload.py.
#
# Epoch times here vary by about 12% from one epoch to the next (the host, not the code),
# so the pairing resolves a few percent at best. The line also carries the accounting
# that is exact: the training thread's time in checkpointing, and the CPU time of
# FlorDB's background threads, per epoch.
import json
import os
import time

import torch
import flordb as flor
from _paired import overhead, run_rounds
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from flordb import _ckpt

torch.set_num_threads(1)
torch.manual_seed(0)
N, D, H = int(os.environ.get("BENCH_N", "32768")), 128, int(os.environ.get("BENCH_H", "512"))
ROUNDS = int(os.environ.get("BENCH_PAIR_ROUNDS", "16"))
X = torch.randn(N, D)
y = (X @ torch.randn(D, 10)).argmax(1)
Xv, yv = X[:1024], y[:1024]
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
net = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Dropout(0.2), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.99)
loss_fn = nn.CrossEntropyLoss()


def epoch(wrap, log):
    net.train()
    for xb, yb in wrap("step", loader):
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        log("loss", loss.item())
    sched.step()
    net.eval()
    with torch.no_grad():
        log("val_loss", loss_fn(net(Xv), yv).item())


def plain(name, items):
    return items


def keep(name, value):
    return value


def background_cpu() -> dict[str, float]:
    """CPU seconds of this process's FlorDB threads so far, by thread name (Linux)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            name = open(f"/proc/self/task/{tid}/comm").read().strip()
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if name.startswith("flor-"):
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


# The training thread's time in checkpointing: at the nested loop's exit and at the
# epoch boundary (the end checkpoint, the policy and the records' durability barrier).
spent = {"boundary": 0.0, "nested": 0.0}
nested_exit = _ckpt.nested_exit


def timed_nested_exit():
    started = time.thread_time()
    nested_exit()
    spent["nested"] += time.thread_time() - started


_ckpt.nested_exit = timed_nested_exit


with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    epoch(plain, keep)  # warm-up: first-touch allocations, lazy imports
    # One outer flor.loop, as in the script: advancing it is the epoch boundary (the
    # checkpoint of the epoch before, the durability barrier), timed with the FlorDB side.
    epochs = iter(flor.loop("epoch", range(ROUNDS + 1)))

    def with_flor():
        started = time.thread_time()
        next(epochs)
        spent["boundary"] += time.thread_time() - started
        epoch(flor.loop, flor.log)

    def without():
        epoch(plain, keep)

    with_flor()  # the first epoch starts the background threads
    spent.update(boundary=0.0, nested=0.0)
    before = background_cpu()
    times, cpu = run_rounds(ROUNDS, {"with": with_flor, "without": without, "again": without})
    after = background_cpu()
    next(epochs, None)  # the loop's end
med = sorted(times["without"])[ROUNDS // 2]
print(json.dumps({"overhead": overhead(times["with"], times["without"]), "aa": overhead(times["again"], times["without"]),
                  "thread": overhead(cpu["with"], cpu["without"]), "thread_aa": overhead(cpu["again"], cpu["without"]),
                  "epoch_with_s": sorted(times["with"])[ROUNDS // 2], "epoch_without_s": med, "rounds": ROUNDS,
                  "steps_per_epoch": len(loader),
                  "per_epoch_ms": {"train_thread_boundary": 1e3 * spent["boundary"] / ROUNDS,
                                   "train_thread_nested_exit": 1e3 * spent["nested"] / ROUNDS,
                                   **{f"{k}_cpu": 1e3 * (v - before.get(k, 0.0)) / ROUNDS for k, v in after.items()}}}))
