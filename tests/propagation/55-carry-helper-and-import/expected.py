"""Train a small regressor."""
import numpy as np
import flordb as flor
import math

EPS = 1e-12

def norm(v):
    return math.sqrt(float((v ** 2).sum()) + EPS)

def relative(v, ref):
    return norm(v) / (norm(ref) + EPS)


LR = 0.1
w = np.zeros(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(4)):
            g = np.random.randn(3)
            w -= LR * g
            flor.log("loss", float((w ** 2).sum()))
        flor.log("w0", float(w[0]))
        flor.log("rel", relative(w, np.ones(3)))
