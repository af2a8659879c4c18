"""A plain mixed-precision-ready torch loop as the PyTorch AMP recipe writes it, run on
the CPU with both switched off: GradScaler(enabled=False) and
autocast(device_type="cpu", enabled=False); the scaler is enrolled next to the model
and the optimizer."""

import torch
import torch.nn as nn

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
use_amp = flor.arg("use_amp", False)
torch.manual_seed(seed)

X = torch.randn(96, 16)
y = torch.randint(0, 4, (96,))
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
scaler = torch.amp.GradScaler(enabled=use_amp)
loss_fn = nn.CrossEntropyLoss()

with flor.checkpointing(model=model, optimizer=optimizer, scaler=scaler):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        perm = torch.randperm(96)
        for step in flor.loop("step", range(6)):
            idx = perm[step * 16:(step + 1) * 16]
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=use_amp):
                output = model(X[idx])
                loss = loss_fn(output, y[idx])
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            flor.log("h_step", float(torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)))  # HINDSIGHT
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            flor.log("loss", loss.item())
        model.eval()
        with torch.no_grad():
            flor.log("acc", (model(X).argmax(1) == y).float().mean().item())
        flor.log("h_epoch", scaler.get_scale())  # HINDSIGHT
        flor.log("h_epoch2", float(model[3].bias.detach().sum()))  # HINDSIGHT
