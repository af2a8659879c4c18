import torch
import flordb as flor


class Trainer:
    def __init__(self, net, loader, lr):
        self.net = net
        self.loader = loader
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)

    def train_epoch(self):
        self.net.train()
        for x, y in flor.loop("step", self.loader):
            self.opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            loss.backward()
            self.opt.step()
            flor.log("loss", loss.item())
            flor.log("bias", self.net.bias.item())

    def fit(self, epochs):
        for epoch in flor.loop("epoch", range(epochs)):
            self.train_epoch()


Trainer(torch.nn.Linear(8, 1), torch.load("data.pt"), 0.01).fit(20)
