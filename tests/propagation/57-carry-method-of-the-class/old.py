import flordb as flor


class Trainer:
    def __init__(self, model):
        self.model = model
        self.steps = 0

    def fit(self, batches):
        for epoch in flor.loop("epoch", range(3)):
            for b in flor.loop("step", batches):
                self.steps += 1
                flor.log("loss", self.model(b))
        return self.steps
