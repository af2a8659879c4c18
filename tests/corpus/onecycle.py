"""A classifier trained with a per-iteration learning-rate schedule: OneCycleLR stepped
after every batch (the fastai / timm / "super-convergence" recipe), SGD with Nesterov
momentum, label smoothing and a shuffling DataLoader."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
max_lr = flor.arg("max_lr", 0.2)
torch.manual_seed(seed)

# three gaussian blobs in 10 dimensions
centers = torch.randn(3, 10) * 2
labels = torch.randint(0, 3, (240,))
points = centers[labels] + torch.randn(240, 10)
train_ds = TensorDataset(points[:192], labels[:192])
val_x, val_y = points[192:], labels[192:]
train_loader = DataLoader(train_ds, batch_size=32, shuffle=True, drop_last=True)

net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
opt = torch.optim.SGD(net.parameters(), lr=max_lr / 25, momentum=0.9, nesterov=True, weight_decay=5e-4)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs, steps_per_epoch=len(train_loader))


def weight_norm(model):  # HINDSIGHT
    total = 0.0  # HINDSIGHT
    for p in model.parameters():  # HINDSIGHT
        total += float(p.detach().pow(2).sum())  # HINDSIGHT
    return total ** 0.5  # HINDSIGHT


with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    for epoch in flor.loop("epoch", range(epochs)):
        net.train()
        for xb, yb in flor.loop("step", train_loader):
            opt.zero_grad()
            loss = F.cross_entropy(net(xb), yb, label_smoothing=0.1)
            loss.backward()
            opt.step()
            sched.step()
            flor.log("loss", loss.item())
            flor.log("h_step", sched.get_last_lr()[0] * loss.item())  # HINDSIGHT
        net.eval()
        with torch.no_grad():
            acc = (net(val_x).argmax(1) == val_y).float().mean().item()
        flor.log("val_acc", acc)
        flor.log("h_epoch", weight_norm(net))  # HINDSIGHT
        flor.log("h_epoch2", opt.param_groups[0]["lr"])  # HINDSIGHT
