import numpy as np
import flordb as flor

w = np.zeros(3)
for epoch in flor.loop("epoch", range(3)):
    w += 1
    flor.log("w0", float(w[0]))
