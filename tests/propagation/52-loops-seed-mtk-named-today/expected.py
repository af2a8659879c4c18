import torch
import torch.nn as nn
import flor
from flor import MTK as Flor
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

hidden_size = flor.arg("hidden_size", 500)
num_epochs = flor.arg("epochs", 5)
learning_rate = flor.arg("lr", 1e-3)

train_data = datasets.MNIST("../data", train=True, download=True, transform=transforms.ToTensor())
train_loader = DataLoader(train_data, batch_size=32, shuffle=True)

net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
Flor.checkpoints(net, optimizer)

for epoch in Flor.loop(range(num_epochs)):
    for i, (images, labels) in Flor.loop(enumerate(train_loader)):
        outputs = net(images)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        flor.log("loss", loss.item())
        flor.log("batch_acc", (outputs.argmax(1) == labels).float().mean().item())
    print(f"epoch {epoch} done")
