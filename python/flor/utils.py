"""``flor.utils``: helpers of flordb 2.6-2.7 that notebooks still call."""

from flordb._artifacts import plot_confusion_matrix

__all__ = ["plot_confusion_matrix"]
