"""Iterative reweighting until convergence, as scipy-style solvers and hand-written EM
loops do: an endless loop with a tolerance check that breaks when the metric stops
improving, the previous objective carried in a plain variable, and a damping factor
adapted by hand. Nothing is enrolled (no flor.checkpointing)."""

import itertools

import numpy as np

import flordb as flor

seed = flor.arg("seed", 0)
tol = flor.arg("tol", 1e-9)
max_iter = flor.arg("max_iter", 50)
rng = np.random.default_rng(seed)

# robust regression by iteratively reweighted least squares (Huber weights)
n, d = 120, 4
A = rng.standard_normal((n, d))
x_true = rng.standard_normal(d)
b = A @ x_true + 0.1 * rng.standard_normal(n)
b[rng.choice(n, 10, replace=False)] += 5 * rng.standard_normal(10)

x = np.linalg.lstsq(A, b, rcond=None)[0]
prev_obj = np.inf
damping = 0.4
delta = 0.5
for it in flor.loop("epoch", itertools.count()):
    r = b - A @ x
    w = np.where(np.abs(r) <= delta, 1.0, delta / np.abs(r))
    for j in flor.loop("step", range(d)):  # one coordinate-wise correction per unknown
        Aw = A[:, j] * w
        x[j] += damping * (Aw @ (b - A @ x)) / (Aw @ A[:, j])
        flor.log("h_step", float(x[j]))  # HINDSIGHT
    r = b - A @ x
    obj = float(np.sum(np.where(np.abs(r) <= delta, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))))
    flor.log("objective", obj)
    if obj > prev_obj:
        damping *= 0.5
    else:
        damping = min(1.0, damping * 1.1)
    flor.log("h_epoch", damping)  # HINDSIGHT
    flor.log("h_epoch2", float(prev_obj - obj) if np.isfinite(prev_obj) else -1.0)  # HINDSIGHT
    flor.log("h_epoch3", int(np.sum(w < 1.0)))  # HINDSIGHT
    if abs(prev_obj - obj) < tol * max(1.0, obj) or it + 1 >= max_iter:
        break
    prev_obj = obj
print("x", x.round(4), "iterations", it + 1)
