import numpy as np
import flordb as flor

w = np.ones(3)
for epoch in flor.loop("epoch", range(4)):
    for step in flor.loop("step", range(5)):
        w -= 0.1 * (w @ w - 1.0) * w
    flor.log("norm", float(np.linalg.norm(w)))
    flor.log("w_sum", float(w.sum()))
