"""Early stopping as the Keras-style callbacks and countless notebooks write it by hand:
best_val, a patience counter that counts down, a deep copy of the best state_dict, and a
break when patience runs out; the best weights are restored after the loop."""

import copy

import torch
import torch.nn as nn

import flordb as flor

torch.set_num_threads(1)
seed = flor.arg("seed", 0)
max_epochs = flor.arg("max_epochs", 40)
patience_limit = flor.arg("patience", 3)
torch.manual_seed(seed)

# few noisy points: the network overfits quickly and validation turns up
X = torch.linspace(-2, 2, 60).unsqueeze(1)
y = torch.sin(2 * X) + 0.4 * torch.randn(60, 1)
perm = torch.randperm(60)
tr, va = perm[:24], perm[24:]

model = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
loss_fn = nn.MSELoss()


def param_distance(a, b):  # HINDSIGHT
    return sum(float((a[k].float() - b[k].float()).abs().sum()) for k in a)  # HINDSIGHT


best_val = float("inf")
patience = patience_limit
best_state = copy.deepcopy(model.state_dict())
best_epoch = -1
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(max_epochs)):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for step in flor.loop("step", range(3)):
            idx = order[step * 8:(step + 1) * 8]
            optimizer.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            flor.log("h_step", float(sum(p.grad.norm() ** 2 for p in model.parameters()) ** 0.5))  # HINDSIGHT
            optimizer.step()
            flor.log("loss", loss.item())
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(X[va]), y[va]).item()
        flor.log("val_loss", val)
        if val < best_val:
            best_val = val
            best_epoch = epoch
            patience = patience_limit
            best_state = copy.deepcopy(model.state_dict())
        else:
            patience -= 1
        flor.log("h_epoch", patience)  # HINDSIGHT
        flor.log("h_epoch2", param_distance(model.state_dict(), best_state))  # HINDSIGHT
        if patience == 0:
            print(f"early stop at epoch {epoch}, best epoch {best_epoch} ({best_val:.4f})")
            break
model.load_state_dict(best_state)
with torch.no_grad():
    flor.log("final_val", loss_fn(model(X[va]), y[va]).item())
