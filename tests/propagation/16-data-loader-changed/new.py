import torch
import torch.nn as nn
import flordb as flor
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

# hyper-parameters
lr = flor.arg("lr", 1e-3)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 32)

trainset = datasets.CIFAR10("../data", train=True, download=True, transform=transforms.ToTensor())
testset = datasets.CIFAR10("../data", train=False, download=True, transform=transforms.ToTensor())
trainloader = DataLoader(trainset, batch_size=batch_size, shuffle=True, num_workers=4)
testloader = DataLoader(testset, batch_size=batch_size, num_workers=4)
flor.log("n_train", len(trainset))

net = nn.Sequential(nn.Flatten(), nn.Linear(3072, 500), nn.ReLU(), nn.Linear(500, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(net.parameters(), lr=lr)

for epoch in flor.loop("epoch", range(epochs)):
    net.train()
    for images, labels in flor.loop("step", trainloader):
        optimizer.zero_grad()
        outputs = net(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        flor.log("loss", loss.item())

    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
    flor.log("val_acc", correct / total)

torch.save(net.state_dict(), "model.pt")
flor.log("final_acc", correct / total)
