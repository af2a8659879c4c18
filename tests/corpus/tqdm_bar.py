"""The step loop wrapped in a tqdm progress bar with the loss in its postfix, as in most
Kaggle notebooks and research repos."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
torch.manual_seed(seed)

X = torch.randn(128, 4)
y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(128, 1)
loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
model = nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        epoch_loss = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}", mininterval=0)
        for x, y_true in flor.loop("step", bar):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y_true)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item() * len(x)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            flor.log("loss", loss.item())
            flor.log("h_step", float(model[2].weight.grad.norm()))  # HINDSIGHT
        scheduler.step()
        flor.log("train_loss", epoch_loss / len(loader.dataset))
        flor.log("h_epoch", scheduler.get_last_lr()[0])  # HINDSIGHT
        flor.log("h_epoch2", bar.n)  # HINDSIGHT
