"""Images and large arrays logged with ``flor.log``: stored with the project,
content-addressed, and logged as their path.

``flor.log("cf_matrix", fig)`` with a matplotlib figure (or axes), a PIL image, or the
path of an image file writes the image to ``.flor/artifacts/<sha256>.<ext>`` (outside
git: ``.flor/`` ignores itself) and logs the path relative to the project root, so the
record stays valid when the project moves. The readers of the 2023 tables
(``flor.log_records``) give it back as an absolute path for ``IPython.display.Image``.

The native ``log`` converts numbers, strings and containers itself and never comes
here for them: only objects it would otherwise log as ``str(obj)``, and strings that
end in an image suffix, reach ``_object_hook``. matplotlib and PIL are never imported
to check a type: an object can only be a figure or an image if the script already
imported them (``sys.modules``).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from ._native import FlorError

ARTIFACTS = ".flor/artifacts"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp")


# The recorder's project root, set when it is configured.
_root: Path | None = None


class MissingDependencyError(FlorError, ImportError):
    """A feature needs an optional package that is not installed."""


def configure(cwd: str) -> None:
    """Stores artifacts in the project of ``cwd`` (where the recorder writes runs)."""
    global _root
    # Under `flor replay` the script runs in a worktree of its version; artifacts go to
    # the user's project, where the replayed values point.
    project = os.environ.get("FLORDB_PROJECT")
    _root = Path(project) if project else project_root(cwd)


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds (or will hold) ``.flor/``: the nearest one at or above
    ``start`` (default: the working directory) with ``.git`` or ``.flor``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists() or (folder / ".flor").is_dir():
            return folder
    return here


def store_bytes(data: bytes, suffix: str, root: Path | None = None) -> str:
    """Stores ``data`` as ``.flor/artifacts/<sha256><suffix>``; returns that path,
    relative to the project root. Storing the same bytes twice keeps one file."""
    root = root or _root or project_root()
    rel = f"{ARTIFACTS}/{hashlib.sha256(data).hexdigest()}{suffix.lower()}"
    path = root / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = root / ".flor" / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# FlorDB's data: run files travel in git under refs/flor/, not in your commits.\n*\n")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return rel


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _image_bytes(obj: Any) -> tuple[bytes, str] | None:
    """The image in ``obj`` as ``(bytes, suffix)``, or None if it is not one."""
    if "matplotlib" in sys.modules:
        import matplotlib.axes
        import matplotlib.figure

        if isinstance(obj, matplotlib.axes.Axes):
            obj = obj.figure
        if isinstance(obj, matplotlib.figure.Figure):
            return _figure_png(obj), ".png"
    if "PIL.Image" in sys.modules:
        from PIL import Image

        if isinstance(obj, Image.Image):
            buf = io.BytesIO()
            obj.save(buf, format="PNG")
            return buf.getvalue(), ".png"
    if isinstance(obj, (str, os.PathLike)):
        path = Path(os.fspath(obj))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            return path.read_bytes(), path.suffix
    return None


def _array_bytes(obj: Any) -> bytes | None:
    """A numpy array or torch tensor the native ``log`` could not keep in a record (over
    its inline size, or of complex numbers) as ``.npy`` bytes: every element, its dtype
    and shape. None for anything else."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
        obj = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    if not isinstance(obj, np.ndarray) or obj.dtype.hasobject:
        return None
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=False)
    return buf.getvalue()


_told_arrays = False


def _object_hook(obj: Any) -> str | None:
    """Called by the native ``log`` for objects it cannot log as themselves and for
    strings with an image suffix: the stored path, or None to log ``str(obj)``."""
    global _told_arrays
    found = _image_bytes(obj)
    if found is not None:
        data, suffix = found
        return store_bytes(data, suffix)
    data = _array_bytes(obj)
    if data is None:
        return None
    path = store_bytes(data, ".npy")
    if not _told_arrays:
        _told_arrays = True
        print(
            f"flordb: an array too large for a record ({getattr(obj, 'shape', '?')}) is stored exactly as {path} "
            "and logged as that path (np.load reads it); arrays of up to 10000 numbers are logged as lists",
            file=sys.stderr,
        )
    return path


def resolve(path: str, root: Path | None = None) -> str:
    """An artifact path as logged (relative to the project root) made absolute."""
    if isinstance(path, str) and path.startswith(ARTIFACTS + "/"):
        return str((root or project_root()) / path)
    return path


def plot_confusion_matrix(y_true, y_pred, x_classes=None, y_classes=None) -> str:
    """Draws the confusion matrix of ``y_true`` against ``y_pred`` (rows: true labels,
    columns: predictions) with matplotlib, stores it as a PNG artifact and returns
    its absolute path, ready for ``flor.log`` and ``IPython.display.Image``.

    ``x_classes`` and ``y_classes`` name the predicted and true classes (default: the
    labels themselves). Needs matplotlib; pyplot is not touched.
    """
    import numpy as np

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plot_confusion_matrix needs matplotlib: pip install matplotlib") from None
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise FlorError(f"plot_confusion_matrix: {y_true.size} true labels but {y_pred.size} predictions")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    index = {label: i for i, label in enumerate(labels.tolist())}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        matrix[index[t], index[p]] += 1
    x_names = [str(c) for c in (x_classes if x_classes is not None else labels.tolist())]
    y_names = [str(c) for c in (y_classes if y_classes is not None else labels.tolist())]
    for what, names in (("x_classes", x_names), ("y_classes", y_names)):
        if len(names) != len(labels):
            raise FlorError(f"plot_confusion_matrix: {what} names {len(names)} classes but the labels have {len(labels)}")

    size = max(4.0, 0.5 * len(labels) + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), x_names, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), y_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    high = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > high else "black")
    root = _root or project_root()
    return str(root / store_bytes(_figure_png(fig), ".png", root))
