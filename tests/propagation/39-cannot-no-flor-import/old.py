import json
from model import fit, score

params = json.load(open("params.json"))
model = fit(params)
print("score", score(model))
