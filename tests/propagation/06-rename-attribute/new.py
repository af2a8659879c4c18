import torch
import flordb as flor


class Trainer:
    def __init__(self, model, loader, lr):
        self.model = model
        self.loader = loader
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def train_epoch(self):
        self.model.train()
        for x, y in flor.loop("step", self.loader):
            self.optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            flor.log("loss", loss.item())
            flor.log("bias", self.model.bias.item())

    def fit(self, epochs):
        for epoch in flor.loop("epoch", range(epochs)):
            self.train_epoch()


Trainer(torch.nn.Linear(8, 1), torch.load("data.pt"), 0.01).fit(20)
