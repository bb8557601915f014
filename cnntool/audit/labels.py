"""Label checks for a labelled ImageFolder: likely mislabelled images and class balance.

Labels are the folder each image sits in (``root/<class>/x.jpg``, also
``root/train/<class>/x.jpg``). Mislabelled images are found by confident learning
(cleanlab's :func:`cleanlab.filter.find_label_issues`) from *out-of-sample* predicted
probabilities: a logistic-regression probe on CNN embeddings, cross-validated
(``cross_val_predict(method="predict_proba")``), so no image is judged by a model that saw its
label. The label quality score is cleanlab's self-confidence (the out-of-sample probability of
the given label).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from cnntool.errors import DatasetError


def class_labels(rels: list[PurePath]) -> tuple[np.ndarray, list[str]]:
    """Integer labels from each file's parent folder, and the sorted class names.

    Raises
    ------
    DatasetError
        A file directly in the root (no class folder), or fewer than two classes.

    Examples
    --------
    >>> labels, classes = class_labels([PurePath("cat/1.png"), PurePath("dog/2.png"), PurePath("cat/3.png")])
    >>> labels.tolist(), classes
    ([0, 1, 0], ['cat', 'dog'])
    """
    names = []
    for rel in rels:
        if len(PurePath(rel).parts) < 2:
            raise DatasetError(f"{rel} is not inside a class folder",
                               hint="--labels needs an ImageFolder: ROOT/<class>/<image>")
        names.append(PurePath(rel).parent.name)
    classes = sorted(set(names))
    if len(classes) < 2:
        raise DatasetError(f"--labels needs at least two class folders, found {len(classes)}",
                           hint="give the folder that holds one sub-folder per class")
    index = {c: k for k, c in enumerate(classes)}
    return np.array([index[n] for n in names], dtype=np.int64), classes


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, *, folds: int = 5,
                                seed: int = 0) -> np.ndarray:
    """Cross-validated predicted probabilities of a standardised logistic-regression probe.

    Parameters
    ----------
    features : numpy.ndarray
        (N, D) embeddings.
    labels : numpy.ndarray
        (N,) integers 0..K-1, every class with at least two members.
    folds : int
        At most this many stratified folds (fewer when the smallest class is smaller).

    Returns
    -------
    numpy.ndarray
        (N, K) probabilities, each row from the fold that did not train on it.

    Examples
    --------
    >>> x = np.r_[np.zeros((6, 2)), np.ones((6, 2))] + np.random.default_rng(0).normal(0, 0.1, (12, 2))
    >>> p = out_of_sample_probabilities(x, np.r_[np.zeros(6, int), np.ones(6, int)], folds=3)
    >>> p.shape, bool((p.argmax(1) == np.r_[np.zeros(6), np.ones(6)]).all())
    ((12, 2), True)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = min(Counter(labels.tolist()).values())
    splits = max(2, min(folds, smallest))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    return cross_val_predict(probe, features, labels, cv=cv, method="predict_proba")


@dataclass(frozen=True)
class LabelIssue:
    index: int
    quality: float
    given: int
    suggested: int
    suggested_probability: float


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> list[LabelIssue]:
    """cleanlab's likely label errors, worst first.

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0])
    >>> probs = np.array([[.9, .1]] * 4 + [[.1, .9]] * 5)
    >>> [i.index for i in find_label_issues(labels, probs)]
    [8]
    """
    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    ranked = cleanlab_find(labels, pred_probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    suggested = pred_probs.argmax(axis=1)
    return [LabelIssue(int(i), float(quality[i]), int(labels[i]), int(suggested[i]), float(pred_probs[i, suggested[i]]))
            for i in ranked]


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    """Images per class, in class order.

    Examples
    --------
    >>> class_counts(np.array([0, 1, 1]), ["a", "b"])
    {'a': 1, 'b': 2}
    """
    counts = np.bincount(labels, minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts)}

