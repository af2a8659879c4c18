"""A script that resumes from its own checkpoint file, as many research repos do: a
guarded torch.load of ckpt.pth before the loop, torch.save at the end of every epoch,
and the loop starting at the saved epoch + 1. Also under flor.checkpointing."""

import os

import torch
import torch.nn as nn

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 5)
lr = flor.arg("lr", 0.05)
batch_size = flor.arg("batch_size", 16)
torch.manual_seed(seed)

# a regression problem with a nonlinearity
X = torch.randn(128, 6)
y = torch.tanh(X @ torch.randn(6, 1)) + 0.05 * torch.randn(128, 1)
X_val, y_val = X[96:], y[96:]
X, y = X[:96], y[:96]

model = nn.Sequential(nn.Linear(6, 24), nn.Tanh(), nn.Linear(24, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
criterion = nn.MSELoss()

start_epoch = 0
if os.path.exists("ckpt.pth"):
    state = torch.load("ckpt.pth")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start_epoch = state["epoch"] + 1
    print(f"resuming from epoch {start_epoch}")

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(start_epoch, epochs)):
        model.train()
        perm = torch.randperm(len(X))
        running = 0.0
        for step in flor.loop("step", range(len(X) // batch_size)):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            optimizer.zero_grad()
            loss = criterion(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            running += loss.item()
            flor.log("loss", loss.item())
            flor.log("h_step", float(model[0].weight.grad.abs().max()))  # HINDSIGHT
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(X_val), y_val).item()
        flor.log("val_loss", val_loss)
        flor.log("h_epoch", running / (len(X) // batch_size))  # HINDSIGHT
        flor.log("h_epoch2", float(optimizer.state[model[0].weight]["momentum_buffer"].norm()))  # HINDSIGHT
        torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, "ckpt.pth")
print("done", epochs)
