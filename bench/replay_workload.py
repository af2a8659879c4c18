# A torch MLP trained on the CPU whose epochs are dominated by training steps: the
# workload of bench/replay.py. `import flordb as flor` is replaced by `import _noflor as
# flor` for the run without FlorDB. Sizes come from the environment (BENCH_*). With
# BENCH_OUT set, each process appends one JSON line: wall-clock marks (time.time()) at its
# phases and the training thread's CPU time in the loop, for the benchmark's breakdown.
import time

T0 = time.time()
import json
import os

import torch
import flordb as flor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

T_IMPORTS = time.time()
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
torch.manual_seed(flor.arg("seed", 0))
N, D, H = int(os.environ.get("BENCH_N", "8192")), 128, int(os.environ.get("BENCH_H", "512"))
X = torch.randn(N, D)
y = (X @ torch.randn(D, 10)).argmax(1)
Xv, yv = X[:1024], y[:1024]
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
net = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Dropout(0.2), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
loss_fn = nn.CrossEntropyLoss()
T_LOOP, THREAD_LOOP = time.time(), time.thread_time()
with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    for epoch in flor.loop("epoch", range(flor.arg("epochs", int(os.environ.get("BENCH_EPOCHS", "10"))))):
        net.train()
        for xb, yb in flor.loop("step", loader):
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        sched.step()
        net.eval()
        with torch.no_grad():
            flor.log("val_loss", loss_fn(net(Xv), yv).item())
T_END, THREAD_END = time.time(), time.thread_time()
if os.environ.get("BENCH_OUT"):
    with open(os.environ["BENCH_OUT"], "a") as f:
        marks = {"start": T0, "imports": T_IMPORTS, "loop": T_LOOP, "end": T_END}
        f.write(json.dumps({"pid": os.getpid(), "marks": marks, "loop_thread_cpu": THREAD_END - THREAD_LOOP}) + "\n")
