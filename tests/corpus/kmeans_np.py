"""Lloyd's k-means in numpy on the digits, written the textbook way: the centroids are
rebound every iteration (centroids = new_centroids), the assignment pass runs over
chunks of the data, and it stops when the centroids no longer move. Only an unrelated
settings dict is enrolled."""

import numpy as np
from sklearn.datasets import load_digits

import flordb as flor

seed = flor.arg("seed", 0)
k = flor.arg("k", 10)
max_iter = flor.arg("max_iter", 8)
tol = flor.arg("tol", 1e-4)
chunk = 300

X = load_digits().data[:900] / 16.0
rng = np.random.default_rng(seed)
centroids = X[rng.choice(len(X), size=k, replace=False)].copy()
settings = {"k": k, "init": "random", "chunk": chunk}

with flor.checkpointing(settings=settings):
    for it in flor.loop("epoch", range(max_iter)):
        sums = np.zeros_like(centroids)
        counts = np.zeros(k)
        inertia = 0.0
        for c in flor.loop("step", range(len(X) // chunk)):
            part = X[c * chunk:(c + 1) * chunk]
            dist = ((part[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
            assign = dist.argmin(1)
            inertia += float(dist[np.arange(len(part)), assign].sum())
            np.add.at(sums, assign, part)
            counts += np.bincount(assign, minlength=k)
            flor.log("h_step", int(np.bincount(assign, minlength=k).max()))  # HINDSIGHT
        flor.log("inertia", inertia)
        empty = counts == 0
        new_centroids = sums / np.maximum(counts, 1)[:, None]
        new_centroids[empty] = centroids[empty]
        shift = float(np.sqrt(((new_centroids - centroids) ** 2).sum()))
        centroids = new_centroids
        flor.log("shift", shift)
        flor.log("h_epoch", float(centroids.sum()))  # HINDSIGHT
        flor.log("h_epoch2", int(counts.min()))  # HINDSIGHT
        if shift < tol:
            break
print("inertia", inertia)
