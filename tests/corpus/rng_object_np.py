"""A numpy MLP on the digits whose shuffling and dropout come from its own
np.random.RandomState(seed) object (cs231n / "neural networks from scratch" style);
the weights are enrolled, the RNG object is not."""

import numpy as np
from sklearn.datasets import load_digits

import flordb as flor

seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 4)
hidden = flor.arg("hidden", 32)
lr = flor.arg("lr", 0.1)
batch_size = 64
keep = 0.9

digits = load_digits()
X = digits.data[:640] / 16.0
Y = np.eye(10)[digits.target[:640]]
X_val, y_val = digits.data[640:900] / 16.0, digits.target[640:900]

rng = np.random.RandomState(seed)
W1 = rng.randn(64, hidden) * np.sqrt(2.0 / 64)
b1 = np.zeros(hidden)
W2 = rng.randn(hidden, 10) * np.sqrt(2.0 / hidden)
b2 = np.zeros(10)


def forward(x, train=False):
    h = np.maximum(0, x @ W1 + b1)
    mask = None
    if train:
        mask = (rng.rand(*h.shape) < keep) / keep
        h = h * mask
    z = h @ W2 + b2
    z = z - z.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return h, mask, p


with flor.checkpointing(W1=W1, b1=b1, W2=W2, b2=b2):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = rng.permutation(len(X))
        for step in flor.loop("step", range(len(X) // batch_size)):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            x, t = X[idx], Y[idx]
            h, mask, p = forward(x, train=True)
            loss = float(-np.sum(t * np.log(p + 1e-12)) / len(x))
            dz = (p - t) / len(x)
            dW2 = h.T @ dz
            db2 = dz.sum(0)
            dh = (dz @ W2.T) * (h > 0) * mask
            dW1 = x.T @ dh
            db1 = dh.sum(0)
            W1 -= lr * dW1
            b1 -= lr * db1
            W2 -= lr * dW2
            b2 -= lr * db2
            flor.log("loss", loss)
            flor.log("h_step", float(np.linalg.norm(dW1)))  # HINDSIGHT
        _, _, p_val = forward(X_val)
        flor.log("val_acc", float(np.mean(p_val.argmax(1) == y_val)))
        flor.log("h_epoch", float(np.linalg.norm(W1)))  # HINDSIGHT
        flor.log("h_epoch2", int(perm[:8].sum()))  # HINDSIGHT
