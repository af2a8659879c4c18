"""The model of workload (c): a one-hidden-layer MLP with softmax, trained by
plain SGD, written with numpy only, on scikit-learn's bundled digits.

Shared by `train_mlp_flor.py` and `train_mlp_plain.py` so that the two differ
only in the FlorDB calls around the loop.  The tutorial script
(`examples/tutorial/train.py`) is the same model, spelled out in one file.
"""

import os

import numpy as np

BATCH = 5
LR = 0.05

# 1797 digits; holding out 13% leaves 1563 for training, 313 batches of 5:
# the shape of the loop the targets were measured on.
TEST_SIZE = 0.13


def load_split(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=TEST_SIZE, random_state=seed, stratify=y)


def setup():
    """What every (c) workload starts from: the split, the parameters (width from
    BENCH_HIDDEN) and the generator that shuffles each epoch."""
    X_train, X_test, y_train, y_test = load_split(seed=0)
    params = init_params(np.random.default_rng(0), X_train.shape[1], int(os.environ.get("BENCH_HIDDEN", "500")))
    return X_train, X_test, y_train, y_test, params, np.random.default_rng(0)


def epoch_batches(rng, n):
    """One epoch's shuffled index batches of BATCH."""
    order = rng.permutation(n)
    return [order[i : i + BATCH] for i in range(0, n, BATCH)]


def init_params(rng, n_in, hidden, n_out=10):
    # He initialisation for the ReLU layer, small weights for the logits.
    return {
        "W1": (rng.standard_normal((n_in, hidden)) * np.sqrt(2.0 / n_in)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "W2": (rng.standard_normal((hidden, n_out)) * 0.01).astype(np.float32),
        "b2": np.zeros(n_out, np.float32),
    }


def forward(p, x):
    h = np.maximum(x @ p["W1"] + p["b1"], 0.0)
    logits = h @ p["W2"] + p["b2"]
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return h, e / e.sum(axis=1, keepdims=True)


def sgd_step(p, x, y, lr):
    """One step of SGD on cross-entropy; updates `p` in place, returns the loss."""
    n = len(y)
    h, probs = forward(p, x)
    loss = -np.log(probs[np.arange(n), y] + 1e-12).mean()
    d = probs
    d[np.arange(n), y] -= 1.0
    d /= n
    dh = (d @ p["W2"].T) * (h > 0)
    p["W2"] -= lr * (h.T @ d)
    p["b2"] -= lr * d.sum(axis=0)
    p["W1"] -= lr * (x.T @ dh)
    p["b1"] -= lr * dh.sum(axis=0)
    return float(loss)


def accuracy(p, x, y):
    return float((forward(p, x)[1].argmax(axis=1) == y).mean())
