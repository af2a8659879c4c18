import numpy as np
import flordb as flor

weights = np.ones(3)
m = np.zeros_like(weights)
for epoch in flor.loop("epoch", range(4)):
    for step in flor.loop("step", range(5)):
        m *= 0.5
        m += 0.1 * (weights @ weights - 1.0) * weights
        weights -= m
    flor.log("norm", float(np.linalg.norm(weights)))
    flor.log("m_norm", float(np.linalg.norm(m)))
    flor.log("w_sum", float(weights.sum()))
