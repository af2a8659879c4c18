"""Training with an exponential moving average of the weights, as timm's ModelEmaV2 or
the diffusion repos keep one: ema_model = copy.deepcopy(model), updated in place after
every optimizer step, evaluated every epoch. The EMA copy is not enrolled."""

import copy
import math  # HINDSIGHT

import torch
import torch.nn as nn

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
decay = flor.arg("ema_decay", 0.9)
torch.manual_seed(seed)

X = torch.randn(160, 8)
w_true = torch.randn(8)
y = ((X @ w_true + 0.3 * torch.randn(160)) > 0).long()
X_train, y_train, X_val, y_val = X[:128], y[:128], X[128:], y[128:]

model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
ema_model = copy.deepcopy(model)
for p in ema_model.parameters():
    p.requires_grad_(False)


@torch.no_grad()
def update_ema(ema, live, d):
    for e, p in zip(ema.parameters(), live.parameters()):
        e.mul_(d).add_(p.detach(), alpha=1 - d)


@torch.no_grad()
def accuracy(m):
    m.eval()
    return (m(X_val).argmax(1) == y_val).float().mean().item()


def ema_gap(ema, live):  # HINDSIGHT
    sq = sum(float((e - p.detach()).pow(2).sum()) for e, p in zip(ema.parameters(), live.parameters()))  # HINDSIGHT
    return math.sqrt(sq)  # HINDSIGHT


with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        perm = torch.randperm(128)
        for step in flor.loop("step", range(8)):
            idx = perm[step * 16:(step + 1) * 16]
            loss = nn.functional.cross_entropy(model(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            update_ema(ema_model, model, decay)
            flor.log("loss", loss.item())
            flor.log("h_step", float(ema_model[0].weight.sum()))  # HINDSIGHT
        flor.log("acc", accuracy(model))
        flor.log("ema_acc", accuracy(ema_model))
        flor.log("h_epoch", ema_gap(ema_model, model))  # HINDSIGHT
