"""The training step and the evaluation of main_helper/train.py."""

import torch

import flordb as flor


def train_one_epoch(model, criterion, optimizer, data_loader, epoch, print_freq=2):
    model.train()
    for i, (image, target) in flor.loop("step", enumerate(data_loader)):
        output = model(image)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        flor.log("loss", loss.item())
        flor.log("h_step", float(model[0].weight.grad.norm()))  # HINDSIGHT
        if i % print_freq == 0:
            print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] loss {loss.item():.4f} lr {optimizer.param_groups[0]['lr']:.4f}")


def evaluate(model, criterion, data_loader):
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.inference_mode():
        for image, target in data_loader:
            output = model(image)
            loss_sum += criterion(output, target).item() * len(target)
            correct += (output.argmax(1) == target).sum().item()
            total += len(target)
    return {"acc1": correct / total, "loss": loss_sum / total}
