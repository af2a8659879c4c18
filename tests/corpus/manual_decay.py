"""Logistic regression in numpy with hand-written SGD, as in course notebooks: a
momentum buffer v and a learning rate decayed by hand each epoch, both plain
variables; only the weight vector w is enrolled."""

import numpy as np

import flordb as flor

seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 6)
lr = flor.arg("lr", 0.5)
mu = flor.arg("momentum", 0.8)
batch = 20
np.random.seed(seed)

n, d = 200, 5
X = np.hstack([np.random.randn(n, d), np.ones((n, 1))])
true_w = np.random.randn(d + 1)
y = (1 / (1 + np.exp(-X @ true_w)) > np.random.rand(n)).astype(float)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


w = np.zeros(d + 1)
v = np.zeros(d + 1)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = np.random.permutation(n)
        for step in flor.loop("step", range(n // batch)):
            b = perm[step * batch:(step + 1) * batch]
            p = sigmoid(X[b] @ w)
            g = X[b].T @ (p - y[b]) / batch
            v = mu * v + g
            w -= lr * v
            flor.log("h_step", float(np.linalg.norm(g)))  # HINDSIGHT
            flor.log("loss", float(-np.mean(y[b] * np.log(p + 1e-12) + (1 - y[b]) * np.log(1 - p + 1e-12))))
        acc = float(np.mean((sigmoid(X @ w) > 0.5) == (y > 0.5)))
        flor.log("acc", acc)
        flor.log("h_epoch", lr)  # HINDSIGHT
        flor.log("h_epoch2", float(np.linalg.norm(v)))  # HINDSIGHT
        lr *= 0.9
print("w", w.round(3))
