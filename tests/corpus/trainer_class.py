"""A class-based trainer whose fit() method holds the loop (the shape of Lightning-free
research code, Keras-like wrappers and the HF Trainer): state lives on self, including
a global_step counter and a running history, and the model and optimizer are enrolled
from inside the method."""

import torch
import torch.nn as nn

import flordb as flor


class Trainer:
    def __init__(self, model, lr, epochs, batch_size=16):
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.epochs = epochs
        self.batch_size = batch_size
        self.global_step = 0
        self.history = []

    def training_step(self, xb, yb):
        self.optimizer.zero_grad()
        loss = nn.functional.mse_loss(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        self.global_step += 1
        return loss.item()

    def validate(self, X, y):
        self.model.eval()
        with torch.no_grad():
            out = nn.functional.mse_loss(self.model(X), y).item()
        self.model.train()
        return out

    def grad_norm(self):  # HINDSIGHT
        return float(sum(p.grad.pow(2).sum() for p in self.model.parameters()) ** 0.5)  # HINDSIGHT

    def fit(self, X, y, X_val, y_val):
        with flor.checkpointing(model=self.model, optimizer=self.optimizer):
            for epoch in flor.loop("epoch", range(self.epochs)):
                perm = torch.randperm(len(X))
                for i in flor.loop("step", range(0, len(X), self.batch_size)):
                    idx = perm[i:i + self.batch_size]
                    loss = self.training_step(X[idx], y[idx])
                    flor.log("loss", loss)
                    flor.log("h_step", self.grad_norm())  # HINDSIGHT
                val = self.validate(X_val, y_val)
                self.history.append(val)
                flor.log("val_loss", val)
                flor.log("h_epoch", self.global_step)  # HINDSIGHT
                flor.log("h_epoch2", min(self.history))  # HINDSIGHT
        return self.history


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(flor.arg("seed", 0))
    X = torch.rand(112, 3) * 4 - 2
    y = (X ** 2).sum(1, keepdim=True) + 0.1 * torch.randn(112, 1)
    trainer = Trainer(nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 1)), flor.arg("lr", 0.02), flor.arg("epochs", 4))
    history = trainer.fit(X[:80], y[:80], X[80:], y[80:])
    print("best", min(history))
