# Record overhead of bench/replay.py's workload, paired inside one process: each round runs
# one epoch of the same training with FlorDB (flor.loop, loss logged per step, every epoch
# checkpointed), one with plain loops and one plain again (A/A, the noise floor), in
# rotating order (workloads/_paired.py). Separate processes of one script differ by far
# more than the 2% to be measured on this machine; here all arms share data, model and
# memory. Prints one JSON line. Sizes from the environment, as replay_workload.py.
import json
import os

import torch
import flordb as flor
from _paired import overhead, run_rounds
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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


with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    epoch(plain, keep)  # warm-up: first-touch allocations, lazy imports
    # One outer flor.loop, as in the script: advancing it is the epoch boundary (the
    # checkpoint of the epoch before, the durability barrier), timed with the FlorDB side.
    epochs = iter(flor.loop("epoch", range(ROUNDS)))

    def with_flor():
        next(epochs)
        epoch(flor.loop, flor.log)

    def without():
        epoch(plain, keep)

    times, cpu = run_rounds(ROUNDS, {"with": with_flor, "without": without, "again": without})
    next(epochs, None)  # the loop's end
med = sorted(times["without"])[ROUNDS // 2]
print(json.dumps({"overhead": overhead(times["with"], times["without"]), "aa": overhead(times["again"], times["without"]),
                  "thread": overhead(cpu["with"], cpu["without"]), "thread_aa": overhead(cpu["again"], cpu["without"]),
                  "epoch_with_s": sorted(times["with"])[ROUNDS // 2], "epoch_without_s": med, "rounds": ROUNDS,
                  "steps_per_epoch": len(loader)}))
