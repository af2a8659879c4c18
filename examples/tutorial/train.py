"""Train a small MLP on handwritten digits, recording with FlorDB (version 2).

The tutorial's script: the shape of the classic MNIST MLP (one hidden ReLU
layer, softmax, mini-batch SGD) on scikit-learn's bundled 8x8 digits, so that it
runs offline in seconds with numpy alone.  Run it from inside a git repository:

    python train.py                                  # the defaults below
    python train.py --kwargs hidden=32 lr=0.1        # other hyper-parameters

Every `flor.arg` is a recorded input of the run, every `flor.log` a recorded
value with its loop context; `flor.dataframe(...)` shows them for all runs.
train_torch.py beside it is the same script in PyTorch.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import flordb as flor

# Hyper-parameters: recorded with the run, settable with --kwargs NAME=VALUE.
hidden = flor.arg("hidden", 64)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 32)
seed = flor.arg("seed", 0)

# Data: 1,797 images of 8x8 pixels.  The split uses a fixed seed, so every run
# (and every replay) trains and tests on the same images.
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
X_train, X_val, y_train, y_val = train_test_split(
    X_train, y_train, test_size=0.2, random_state=0, stratify=y_train
)

# Model: 64 inputs -> `hidden` ReLU units -> 10 classes.  One Generator seeded
# from `seed` drives both initialisation and shuffling, so a run is exactly
# reproducible from its recorded arguments.
rng = np.random.default_rng(seed)
W_hidden = (rng.standard_normal((X.shape[1], hidden)) * np.sqrt(2.0 / X.shape[1])).astype(np.float32)
b_hidden = np.zeros(hidden, np.float32)
W2 = (rng.standard_normal((hidden, 10)) * 0.01).astype(np.float32)
b2 = np.zeros(10, np.float32)


def forward(x):
    h = np.maximum(x @ W_hidden + b_hidden, 0.0)
    logits = h @ W2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)


def accuracy(x, labels):
    return float((forward(x)[1].argmax(axis=1) == labels).mean())


# Checkpoints: FlorDB saves these objects at epoch boundaries (within a small time
# budget), so a replay restores any epoch instead of re-training up to it.
with flor.checkpointing(W_hidden=W_hidden, b_hidden=b_hidden, W2=W2, b2=b2, rng=rng):
    for epoch in flor.loop("epoch", range(epochs)):
        order = rng.permutation(len(X_train))
        batches = [
            (X_train[order[i : i + batch_size]], y_train[order[i : i + batch_size]])
            for i in range(0, len(order), batch_size)
        ]
        for step, (xb, yb) in flor.loop("step", enumerate(batches)):
            n = len(yb)
            h, probs = forward(xb)
            loss = -np.log(probs[np.arange(n), yb] + 1e-12).mean()
            # Backward pass of softmax + cross-entropy, then plain SGD.
            d = probs
            d[np.arange(n), yb] -= 1.0
            d /= n
            dh = (d @ W2.T) * (h > 0)
            W2 -= lr * (h.T @ d)
            b2 -= lr * d.sum(axis=0)
            W_hidden -= lr * (xb.T @ dh)
            b_hidden -= lr * dh.sum(axis=0)
            flor.log("loss", float(loss))
        flor.log("val_acc", accuracy(X_val, y_val))

test_acc = accuracy(X_test, y_test)
flor.log("accuracy", test_acc)
print(f"test accuracy {test_acc:.4f}")
