import torch
import flordb as flor
from data import loaders
from nets import ResNet18

train_loader, test_loader = loaders(batch_size=128)
model = ResNet18()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)


def accuracy(model, loader):
    model.eval()
    hits = 0
    with torch.no_grad():
        for inputs, targets in loader:
            hits += (model(inputs).argmax(1) == targets).sum().item()
    model.train()
    return hits / len(loader.dataset)


for epoch in flor.loop("epoch", range(90)):
    for inputs, targets in flor.loop("step", train_loader):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
    scheduler.step()
    flor.log("test_acc", accuracy(model, test_loader))
    flor.log("train_acc", accuracy(model, train_loader))
