"""PNG figures of a run: learning curves and the confusion matrix (matplotlib, Agg backend)."""

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


def plot_learning_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Loss (train, val) and accuracy (train, val) per epoch, side by side, as a PNG.

    ``history`` holds the per-epoch records of ``metrics.jsonl`` (``epoch``, ``train_loss``,
    ``val_loss``, ``train_accuracy``, ``val_accuracy``).
    """
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        ax_loss.plot(epochs, [r.get(key) for r in history], marker=".", label=label)
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "val")):
        ax_acc.plot(epochs, [r.get(key) for r in history], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
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
