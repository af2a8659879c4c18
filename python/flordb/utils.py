"""``flordb.utils``: flordb 4.0.1's helpers for tables and estimates."""

from __future__ import annotations

from typing import Any

from ._artifacts import plot_confusion_matrix

__all__ = ["discretize", "latest", "plot_confusion_matrix"]


def latest(df: Any) -> Any:
    """The rows of ``df`` with the greatest ``tstamp`` (the newest run's)."""
    if len(df) == 0 or "tstamp" not in df.columns:
        return df
    return df[df["tstamp"] == df["tstamp"].max()]


def discretize(seconds: float) -> str:
    """A duration in the words flordb 4.0.1's replay prompt uses."""
    if seconds < 10:
        return "under 10 seconds"
    if seconds < 100:
        return "under 2 minutes"
    if seconds < 1000:
        return "up to 15 minutes"
    return "more than 15 minutes"
