"""A script whose main() holds the loop while the training step and the evaluation live
in a helpers module next to it (torchvision's references/classification/train.py and
utils.py, timm's train.py): the nested flor.loop is inside train_one_epoch()."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import flordb as flor
from helpers import evaluate, train_one_epoch


def get_args():
    return {
        "seed": flor.arg("seed", 0),
        "epochs": flor.arg("epochs", 4),
        "lr": flor.arg("lr", 0.1),
        "batch_size": flor.arg("batch_size", 32),
    }


def main():
    args = get_args()
    torch.set_num_threads(1)
    torch.manual_seed(args["seed"])
    X = torch.randn(192, 12)
    y = (X[:, 0] * X[:, 1] > 0).long()
    train_loader = DataLoader(TensorDataset(X[:160], y[:160]), batch_size=args["batch_size"], shuffle=True)
    val_loader = DataLoader(TensorDataset(X[160:], y[160:]), batch_size=64)
    model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args["lr"], momentum=0.9, weight_decay=1e-4)
    lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args["epochs"])

    best_acc = 0.0
    with flor.checkpointing(model=model, optimizer=optimizer, lr_scheduler=lr_scheduler):
        for epoch in flor.loop("epoch", range(args["epochs"])):
            train_one_epoch(model, criterion, optimizer, train_loader, epoch)
            lr_scheduler.step()
            metrics = evaluate(model, criterion, val_loader)
            best_acc = max(best_acc, metrics["acc1"])
            flor.log("acc1", metrics["acc1"])
            flor.log("val_loss", metrics["loss"])
            flor.log("h_epoch", float(model[1].running_mean.sum()))  # HINDSIGHT
            flor.log("h_epoch2", best_acc)  # HINDSIGHT
    print(f"best acc {best_acc:.3f}")


if __name__ == "__main__":
    main()
