"""A step-based loop over a persistent iterator, as in many RL / LM / GAN codebases:
train_iter = iter(loader) once before the loop, next(train_iter) inside it, and a fresh
iterator when the old one runs dry. Which batch comes next carries across outer
iterations in the iterator's position, which cannot be pickled."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
n_iters = flor.arg("n_iters", 10)
accum = flor.arg("accum", 2)
torch.manual_seed(seed)

X = torch.randn(100, 6)
y = (X[:, :2].sum(1) > 0).float()
loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.RMSprop(model.parameters(), lr=5e-3)
criterion = nn.BCEWithLogitsLoss()

train_iter = iter(loader)
passes = 0
with flor.checkpointing(model=model, optimizer=optimizer):
    for it in flor.loop("iter", range(n_iters)):
        optimizer.zero_grad()
        for micro in flor.loop("step", range(accum)):
            try:
                xb, yb = next(train_iter)
            except StopIteration:
                train_iter = iter(loader)
                passes += 1
                xb, yb = next(train_iter)
            loss = criterion(model(xb).squeeze(1), yb) / accum
            loss.backward()
            flor.log("loss", loss.item())
            flor.log("h_step", float(yb.sum()) + 1000 * len(yb))  # HINDSIGHT
        optimizer.step()
        with torch.no_grad():
            val = criterion(model(X).squeeze(1), y).item()
        flor.log("val", val)
        flor.log("h_epoch", passes)  # HINDSIGHT
        flor.log("h_epoch2", model[0].weight.detach().norm().item())  # HINDSIGHT
