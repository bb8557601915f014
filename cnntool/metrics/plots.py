"""PNG figures: learning curves of whatever a task tracks, and confusion matrices (matplotlib, Agg)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

#: Above this many classes the confusion matrix is drawn without per-cell numbers.
MAX_ANNOTATED_CLASSES = 30


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    from cnntool.data.writers import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def curve_panels(history: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """The panels of :func:`plot_learning_curves`: one per measure that has a ``train_``/``val_``
    (or ``test_``) value in the records, in first-seen order, loss first.

    Examples
    --------
    >>> curve_panels([{"epoch": 1, "lr": 0.1, "train_loss": 1.0, "val_loss": 2.0, "val_miou": 0.5}])
    [('loss', ['train_loss', 'val_loss']), ('miou', ['val_miou'])]
    """
    panels: dict[str, list[str]] = {}
    for record in history:
        for key, value in record.items():
            prefix, _, measure = key.partition("_")
            if prefix in ("train", "val", "test") and measure and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and not measure.endswith(("per_s", "seconds", "images")):
                keys = panels.setdefault(measure, [])
                if key not in keys:
                    keys.append(key)
    ordered = sorted(panels.items(), key=lambda item: item[0] != "loss")
    return [(measure, keys) for measure, keys in ordered]


def plot_learning_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """One panel per tracked measure (loss, accuracy, mIoU, mAP...), train and val per epoch, as a PNG.

    ``history`` holds the per-epoch records of ``metrics.jsonl`` (``epoch`` and ``train_*`` /
    ``val_*`` values); which measures there are is read from the records, so every task's curves
    come out of this one function.
    """
    plt = _pyplot()
    panels = curve_panels(history) or [("loss", [])]
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (measure, keys) in zip(axes[0], panels):
        for key in keys:
            ax.plot(epochs, [r.get(key) for r in history], marker=".", label=key.partition("_")[0])
        ax.set(xlabel="epoch", ylabel=measure, title=measure)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend()
    _save(fig, path)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike, *,
                   predicted_classes: Sequence[str] | None = None, title: str = "confusion matrix") -> None:
    """The confusion matrix (rows true, columns predicted) as a PNG, counts in the cells."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    columns = list(predicted_classes or classes)
    size = max(4.0, 0.45 * max(len(classes), len(columns)) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=90 if len(columns) > 10 else 0)
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if max(len(classes), len(columns)) <= MAX_ANNOTATED_CLASSES:
        peak = confusion.max() if confusion.size else 0
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > peak / 2 else "black")
    _save(fig, path)
    plt.close(fig)


def plot_iou(values, classes, path, *, title: str = "IoU per class") -> None:
    """A horizontal bar per class (its IoU; classes absent from truth and predictions shown as
    "absent"), as a PNG."""
    plt = _pyplot()
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in values]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.35 * len(classes) + 1)))
    positions = np.arange(len(classes))
    ax.barh(positions, [v or 0.0 for v in values], color="tab:blue")
    for y, v in zip(positions, values):
        ax.text((v or 0.0) + 0.01, y, "absent" if v is None else f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(positions, labels=list(classes))
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.1), xlabel="IoU", title=title)
    _save(fig, path)
    plt.close(fig)
