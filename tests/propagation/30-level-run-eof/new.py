import torch
import torch.nn as nn
import flordb as flor
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

# hyper-parameters
lr = flor.arg("lr", 1e-3)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 32)

train_data = datasets.MNIST("../data", train=True, download=True, transform=transforms.ToTensor())
test_data = datasets.MNIST("../data", train=False, download=True, transform=transforms.ToTensor())
train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True)
test_loader = DataLoader(test_data, batch_size=batch_size)

net = nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(net.parameters(), lr=lr)

for epoch in flor.loop("epoch", range(epochs)):
    net.train()
    for images, labels in flor.loop("step", train_loader):
        optimizer.zero_grad()
        outputs = net(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        flor.log("loss", loss.item())

    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            outputs = net(images)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
    flor.log("val_acc", correct / total)

torch.save(net.state_dict(), "model.pt")
flor.log("final_acc", correct / total)
flor.log("param_bytes", sum(p.numel() * p.element_size() for p in net.parameters()))
