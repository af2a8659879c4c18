import torch
import flordb as flor
from model import build_model, make_loaders

model = build_model()
train_loader, test_loader = make_loaders()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def evaluate(net, data):
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in data:
            correct += (net(x).argmax(1) == y).sum().item()
    flor.log("weight_norm", sum(p.norm().item() for p in net.parameters()))
    return correct / len(data.dataset)


for epoch in flor.loop("epoch", range(10)):
    model.train()
    for x, y in flor.loop("step", train_loader):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    flor.log("acc", evaluate(model, test_loader))
