import flordb as flor
import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import f1_score
from data import load_split

X_train, y_train = load_split("train")
X_test, y_test = load_split("test")
clf = SGDClassifier(loss="log_loss", alpha=flor.arg("alpha", 1e-4))

for epoch in flor.loop("epoch", range(flor.arg("epochs", 20))):
    clf.partial_fit(X_train, y_train, classes=np.unique(y_train))
    flor.log("train_acc", clf.score(X_train, y_train))


def report(model, X, y):
    pred = model.predict(X)
    flor.log("test_acc", (pred == y).mean())
    flor.log("test_f1", f1_score(y, pred, average="macro"))


report(clf, X_test, y_test)
