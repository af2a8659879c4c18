# Version 1 of the training script of bench/hindsight.py: a torch MLP on synthetic data,
# trained on the CPU with one thread, sized by its args so that training dominates
# (an epoch takes a second or two; the state is a few MB; evaluation is cheap).
# bench/hindsight.py derives versions 2 and 3 and today's script from this text.
import torch
import flordb as flor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
n = flor.arg("n", 16384)
hidden = flor.arg("hidden", 512)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 12)
torch.manual_seed(flor.arg("seed", 0))

# The same data for every run: its own generator, a fixed seed.
g = torch.Generator().manual_seed(1234)
X = torch.randn(n, 128, generator=g)
y = (X @ torch.randn(128, 10, generator=g)).argmax(1)
Xv, yv = X[:1024], y[:1024]
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
net = nn.Sequential(nn.Linear(128, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))
opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

with flor.checkpointing(model=net, optimizer=opt):
    for epoch in flor.loop("epoch", range(epochs)):
        net.train()
        for xb, yb in flor.loop("step", loader):
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        net.eval()
        with torch.no_grad():
            flor.log("val_acc", (net(Xv).argmax(1) == yv).float().mean().item())

with torch.no_grad():
    flor.log("accuracy", (net(X[-2048:]).argmax(1) == y[-2048:]).float().mean().item())
