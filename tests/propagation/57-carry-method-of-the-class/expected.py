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
                flor.log("gnorm", self.grad_norm())
        return self.steps

    def scale(self):
        return 1.0 / max(self.steps, 1)

    def grad_norm(self):
        return self.model.norm() * self.scale()
