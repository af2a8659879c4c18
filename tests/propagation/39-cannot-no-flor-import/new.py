import json
import flordb as flor
from model import fit, score

params = json.load(open("params.json"))
model = fit(params)
flor.log("score", score(model))
flor.log("n_params", len(params))
