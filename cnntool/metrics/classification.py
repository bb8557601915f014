"""Classification metrics from a confusion matrix: accuracy, per-class precision, recall, F1.

The confusion matrix has true classes in rows and predicted classes in columns, like
scikit-learn's ``confusion_matrix``; a test checks the numbers against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], *, num_classes: int,
                     num_predicted: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``; int64.

    ``num_predicted`` allows extra prediction columns (an ``unknown`` column for predictions
    below a confidence threshold).

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    cols = num_predicted or num_classes
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    flat = np.bincount(y_true * cols + y_pred, minlength=num_classes * cols)
    return flat.reshape(num_classes, cols)


def classification_report(confusion: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, macro averages and per-class precision/recall/F1/support from a confusion matrix.

    Precision of class ``j`` is ``C[j, j] / sum(C[:, j])``, recall ``C[i, i] / sum(C[i, :])``,
    F1 their harmonic mean; a ratio with a zero denominator is 0 (scikit-learn's
    ``zero_division=0``). Extra prediction columns (``unknown``) count as wrong answers.

    Returns
    -------
    dict
        ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``, ``samples`` and
        ``per_class`` (``{name: {precision, recall, f1, support}}``).

    Examples
    --------
    >>> r = classification_report(np.array([[2, 0], [1, 1]]), ["a", "b"])
    >>> r["accuracy"], r["per_class"]["a"]["precision"]
    (0.75, 0.6666666666666666)
    """
    confusion = np.asarray(confusion, np.int64)
    n = len(classes)
    diag = np.diag(confusion[:, :n]).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    predicted = confusion[:, :n].sum(axis=0).astype(np.float64)
    precision = _ratio(diag, predicted)
    recall = _ratio(diag, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = float(confusion.sum())
    per_class = {
        str(name): {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                    "support": int(support[i])}
        for i, name in enumerate(classes)
    }
    return {
        "accuracy": float(diag.sum() / total) if total else 0.0,
        "macro_precision": float(precision.mean()) if n else 0.0,
        "macro_recall": float(recall.mean()) if n else 0.0,
        "macro_f1": float(f1.mean()) if n else 0.0,
        "samples": int(total),
        "per_class": per_class,
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out
