"""Train a small MLP on handwritten digits with PyTorch, recording with FlorDB.

The PyTorch variant of train.py: the same data, splits and network shape (64
inputs -> `hidden` ReLU units -> 10 classes), written the usual torch way, with
nn.Sequential, SGD with momentum and a shuffling DataLoader.  It runs offline
on the CPU in seconds.  Run it from inside a git repository:

    python train_torch.py                              # the defaults below
    python train_torch.py --kwargs hidden=32 lr=0.1    # other hyper-parameters

`flor.checkpointing(model=net, optimizer=opt)` lets a replay restore any epoch
(weights, momentum buffers and the random state that shuffles the batches)
instead of re-training up to it.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import flordb as flor

# Hyper-parameters: recorded with the run, settable with --kwargs NAME=VALUE.
hidden = flor.arg("hidden", 64)
lr = flor.arg("lr", 0.05)
momentum = flor.arg("momentum", 0.9)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 32)
seed = flor.arg("seed", 0)

# One thread: this network is far too small to gain from more, and a run is then
# reproducible bit for bit.  The seed drives initialisation and shuffling.
torch.set_num_threads(1)
torch.manual_seed(seed)

# Data: the same 1,797 8x8 images and the same fixed splits as train.py.
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
X_train, X_val, y_train, y_val = train_test_split(
    X_train, y_train, test_size=0.2, random_state=0, stratify=y_train
)
X_train, X_val, X_test = map(torch.from_numpy, (X_train, X_val, X_test))
y_train, y_val, y_test = (torch.from_numpy(a).long() for a in (y_train, y_val, y_test))
loader = DataLoader(TensorDataset(X_train, y_train), batch_size=batch_size, shuffle=True)

net = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 10))
opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
loss_fn = nn.CrossEntropyLoss()


def accuracy(x, labels):
    with torch.no_grad():
        return (net(x).argmax(dim=1) == labels).float().mean().item()


# Checkpoints: FlorDB saves these objects at epoch boundaries (within a small time
# budget), so a replay restores any epoch instead of re-training up to it.
with flor.checkpointing(model=net, optimizer=opt):
    for epoch in flor.loop("epoch", range(epochs)):
        for xb, yb in flor.loop("step", loader):
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        flor.log("val_acc", accuracy(X_val, y_val))

test_acc = accuracy(X_test, y_test)
flor.log("accuracy", test_acc)
print(f"test accuracy {test_acc:.4f}")
