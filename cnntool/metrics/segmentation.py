"""Segmentation metrics, all from one confusion matrix; instance masks as COCO RLE.

Semantic segmentation is scored by accumulating one ``K x K`` confusion matrix over every
evaluated pixel (rows: true class, columns: predicted class; pixels whose true label is the
ignore value, 255, are not counted). Every figure then comes from that matrix:

- IoU of class ``c``: ``TP / (TP + FP + FN)`` = ``cm[c, c] / (row_c + col_c - cm[c, c])``;
- mIoU: the mean IoU over the classes *present*, those with ``TP + FP + FN > 0`` (in the
  truth or in the predictions); a class that appears nowhere has no IoU (NaN), and is left out;
- pixel accuracy: ``trace / total``;
- Dice (F1) of class ``c``: ``2 TP / (2 TP + FP + FN)``; mean Dice over the same present classes.

Because the matrix is a sum over pixels, batches, images and processes add up exactly: the
validation of a distributed run sums its processes' matrices (:func:`all_reduce_confusion`) and
gets the figures one process would have got over the whole set. This is the
"dataset-level" (micro over pixels, macro over classes) convention of the PASCAL VOC and
Cityscapes benchmarks and of torchmetrics' ``MulticlassJaccardIndex(average=None)`` per class.

How this differs from segmentation_models_pytorch
-------------------------------------------------
``segmentation_models_pytorch.metrics.iou_score(tp, fp, fn, tn, reduction="macro")`` also sums
the statistics over images and averages IoU over classes, but with its default
``zero_division=1.0`` a class absent from both the truth and the predictions scores IoU **1.0**
and enters the mean. With four classes of which three score 0.5 and one is absent, smp
reports (0.5 + 0.5 + 0.5 + 1.0) / 4 = **0.625** where cnntool reports 0.5 (the example of
``tests/metrics/test_segmentation.py``). The smp figure rises with every class that is absent
from the evaluated set, so it flatters small evaluation sets; cnntool's mean only covers
classes that something was said about. Per-image averaging (smp's ``"micro-imagewise"``/
``"macro-imagewise"``) gives other numbers again; cnntool has none.

Examples
--------
>>> true = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
>>> pred = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
>>> cm = confusion_matrix(true, pred, num_classes=3)
>>> cm
array([[3, 1, 0],
       [0, 3, 0],
       [0, 0, 0]])
>>> iou_per_class(cm)
array([0.75, 0.75,  nan])
>>> float(mean_iou(cm)), float(pixel_accuracy(cm))
(0.75, 0.8571428571428571)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from cnntool.data.masks import IGNORE_INDEX  # pixels not scored (in true masks) and not trained on


def confusion_matrix(true, pred, *, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """The (num_classes, num_classes) int64 confusion matrix of two label arrays.

    Parameters
    ----------
    true, pred : array-like of int (NumPy arrays or torch tensors), same shape
        True and predicted class indices. Torch tensors are counted on their own device.
    num_classes : int
    ignore_index : int or None
        True pixels with this value are not counted (their prediction does not matter).

    Returns
    -------
    numpy.ndarray
        ``cm[t, p]``: pixels of true class ``t`` predicted as ``p``.

    Raises
    ------
    ValueError
        Shapes differ, or a true label (other than ``ignore_index``) or a prediction is not in
        ``[0, num_classes)``.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 255], [0, 1, 0, 1], num_classes=2)
    array([[1, 0],
           [1, 1]])
    """
    if _is_tensor(true) or _is_tensor(pred):
        return _confusion_torch(true, pred, num_classes, ignore_index)
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"true and predicted labels differ in shape: {true.shape} vs {pred.shape}")
    true = true.ravel().astype(np.int64, copy=False)
    pred = pred.ravel().astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = true != ignore_index
        true, pred = true[keep], pred[keep]
    _check_range(true, "true", num_classes, ignore_index)
    _check_range(pred, "predicted", num_classes, None)
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def _check_range(values: np.ndarray, what: str, num_classes: int, ignore_index) -> None:
    if values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        extra = f" or {ignore_index}" if ignore_index is not None else ""
        raise ValueError(f"{what} label {bad} out of range: expected 0..{num_classes - 1}{extra}")


def _confusion_torch(true, pred, num_classes: int, ignore_index) -> np.ndarray:
    import torch

    true = torch.as_tensor(true)
    pred = torch.as_tensor(pred, device=true.device)
    if true.shape != pred.shape:
        raise ValueError(f"true and predicted labels differ in shape: {tuple(true.shape)} vs {tuple(pred.shape)}")
    true = true.reshape(-1).long()
    pred = pred.reshape(-1).long()
    if ignore_index is not None:
        keep = true != ignore_index
        true, pred = true[keep], pred[keep]
    if true.numel():
        stats = torch.stack([true.min(), true.max(), pred.min(), pred.max()]).cpu().numpy()
        _check_range(stats[:2], "true", num_classes, ignore_index)
        _check_range(stats[2:], "predicted", num_classes, None)
    counts = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu().numpy().astype(np.int64)


# --- figures from a matrix -------------------------------------------------------------------

def _parts(cm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {cm.shape}")
    tp = np.diag(cm)
    return tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp  # tp, fp, fn


def iou_per_class(cm) -> np.ndarray:
    """IoU of each class, ``TP / (TP + FP + FN)``; NaN for a class absent from truth and predictions.

    Examples
    --------
    >>> iou_per_class([[2, 1], [0, 1]])
    array([0.66666667, 0.5       ])
    """
    tp, fp, fn = _parts(cm)
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def dice_per_class(cm) -> np.ndarray:
    """Dice (F1) of each class, ``2 TP / (2 TP + FP + FN)``; NaN for an absent class.

    Examples
    --------
    >>> dice_per_class([[2, 1], [0, 1]])
    array([0.8       , 0.66666667])
    """
    tp, fp, fn = _parts(cm)
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def present_classes(cm) -> np.ndarray:
    """Boolean mask of the classes with ``TP + FP + FN > 0`` (in the truth or the predictions)."""
    tp, fp, fn = _parts(cm)
    return (tp + fp + fn) > 0


def mean_iou(cm) -> float:
    """Mean IoU over the present classes; NaN when nothing was counted.

    Examples
    --------
    >>> float(mean_iou([[2, 1, 0], [0, 1, 0], [0, 0, 0]]))  # class 2 absent: (2/3 + 1/2) / 2
    0.5833333333333333
    """
    values = iou_per_class(cm)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def mean_dice(cm) -> float:
    """Mean Dice over the present classes; NaN when nothing was counted."""
    values = dice_per_class(cm)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def pixel_accuracy(cm) -> float:
    """Correct pixels over counted pixels; NaN when nothing was counted.

    Examples
    --------
    >>> pixel_accuracy([[2, 1], [0, 1]])
    0.75
    """
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def class_accuracy(cm) -> np.ndarray:
    """Recall of each class, ``TP / (TP + FN)``; NaN for a class absent from the truth."""
    tp, _, fn = _parts(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fn > 0, tp / (tp + fn), np.nan)


def segmentation_report(cm, classes: Sequence[str] | None = None) -> dict:
    """All figures of a confusion matrix as plain data (JSON-ready: NaN becomes None).

    Returns
    -------
    dict
        ``miou``, ``pixel_accuracy``, ``mean_dice``, ``pixels`` (counted), ``classes_present``
        and ``per_class``: one dict per class with ``class``, ``iou``, ``dice``, ``accuracy``
        (recall), ``true_pixels`` and ``predicted_pixels``.

    Examples
    --------
    >>> report = segmentation_report([[2, 1], [0, 1]], ["bg", "cat"])
    >>> report["miou"], report["per_class"][1]["iou"], report["pixels"]
    (0.5833333333333333, 0.5, 4)
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    classes = list(classes) if classes is not None else [str(i) for i in range(k)]
    if len(classes) != k:
        raise ValueError(f"{len(classes)} class names for a {k}-class confusion matrix")
    iou, dice, acc = iou_per_class(cm), dice_per_class(cm), class_accuracy(cm)
    per_class = [{"class": name, "iou": _num(iou[i]), "dice": _num(dice[i]), "accuracy": _num(acc[i]),
                  "true_pixels": int(cm[i].sum()), "predicted_pixels": int(cm[:, i].sum())}
                 for i, name in enumerate(classes)]
    return {"miou": _num(mean_iou(cm)), "pixel_accuracy": _num(pixel_accuracy(cm)),
            "mean_dice": _num(mean_dice(cm)), "pixels": int(cm.sum()),
            "classes_present": int(present_classes(cm).sum()), "per_class": per_class}


def _num(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


# --- accumulation ----------------------------------------------------------------------------

class SegmentationMetrics:
    """Accumulates one confusion matrix over batches: ``update`` per batch, ``compute`` at the end.

    Parameters
    ----------
    num_classes : int
    classes : sequence of str, optional
        Names for :meth:`report`.
    ignore_index : int or None

    Examples
    --------
    >>> metrics = SegmentationMetrics(2)
    >>> metrics.update(np.array([[0, 1]]), np.array([[0, 0]]))
    >>> metrics.update(np.array([[1, 255]]), np.array([[1, 1]]))
    >>> metrics.matrix
    array([[1, 0],
           [1, 1]])
    >>> metrics.compute()["miou"]
    0.5
    """

    def __init__(self, num_classes: int, *, classes: Sequence[str] | None = None,
                 ignore_index: int | None = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.classes = list(classes) if classes is not None else None
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, true, pred) -> None:
        """Add a batch: ``true`` labels (N, H, W) and ``pred`` labels of the same shape, or
        scores (N, K, H, W) whose argmax over K is taken. NumPy arrays or torch tensors."""
        if np.ndim(pred) == np.ndim(true) + 1:
            pred = pred.argmax(1)
        self.matrix += confusion_matrix(true, pred, num_classes=self.num_classes,
                                        ignore_index=self.ignore_index)

    def merge(self, other: "SegmentationMetrics | np.ndarray") -> None:
        """Add another accumulator's (or a plain matrix's) counts to this one."""
        matrix = other.matrix if isinstance(other, SegmentationMetrics) else np.asarray(other)
        if matrix.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {matrix.shape} matrix into a {self.matrix.shape} one")
        self.matrix += matrix.astype(np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def compute(self) -> dict:
        """:func:`segmentation_report` of the matrix so far."""
        return segmentation_report(self.matrix, self.classes)


def sum_confusion(matrices: Iterable) -> np.ndarray:
    """The element-wise sum of confusion matrices of one shape (from shards, processes, files).

    Examples
    --------
    >>> sum_confusion([np.eye(2, dtype=int), [[0, 1], [2, 0]]])
    array([[1, 1],
           [2, 1]])
    """
    total = None
    for matrix in matrices:
        matrix = np.asarray(matrix, dtype=np.int64)
        if total is None:
            total = matrix.copy()
        elif matrix.shape != total.shape:
            raise ValueError(f"cannot add a {matrix.shape} confusion matrix to a {total.shape} one")
        else:
            total += matrix
    if total is None:
        raise ValueError("no confusion matrices to sum")
    return total


def all_reduce_confusion(matrix, *, device=None) -> np.ndarray:
    """The sum of ``matrix`` over every process of a ``torch.distributed`` run (a copy of it
    without one). Every process must call it; each gets the total.

    ``device`` is where the reduction runs: a CUDA device for NCCL, the CPU for gloo (default).

    Examples
    --------
    >>> all_reduce_confusion(np.array([[1, 2], [3, 4]]))
    array([[1, 2],
           [3, 4]])
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return matrix.copy()
    import torch

    tensor = torch.from_numpy(matrix.copy()).to(device or "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(np.int64)


# --- instance masks as COCO RLE ----------------------------------------------------------------

def masks_to_rle(masks) -> list[dict]:
    """Binary masks (N, H, W) (or one (H, W)) as COCO run-length encodings, JSON-ready.

    Uses ``pycocotools.mask.encode``; ``counts`` is decoded to ``str`` so the result can be
    written with :func:`json.dumps`.

    Examples
    --------
    >>> masks = np.zeros((1, 4, 5), bool); masks[0, 1:3, 2:4] = True
    >>> rle = masks_to_rle(masks)[0]
    >>> rle["size"], rle_area(rle)
    ([4, 5], 4)
    >>> bool((rle_to_masks([rle])[0] == masks[0]).all())
    True
    """
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or (H, W), got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    encoded = mask_utils.encode(fortran)
    out = []
    for rle in encoded:
        counts = rle["counts"]
        out.append({"size": [int(s) for s in rle["size"]],
                    "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts})
    return out


def masks_from_labels(labels) -> np.ndarray:
    """One bool mask per region of a label image (0 background, 1..N regions): (N, H, W),
    mask ``i`` for label ``i + 1``, so that classical regions can be written as COCO RLE.

    Examples
    --------
    >>> masks_from_labels(np.array([[0, 1, 2, 2]])).astype(int).tolist()
    [[[0, 1, 0, 0]], [[0, 0, 1, 1]]]
    """
    labels = np.asarray(labels)
    count = int(labels.max()) if labels.size else 0
    return labels[None] == np.arange(1, count + 1).reshape(-1, *([1] * labels.ndim))


def rle_to_masks(rles: Sequence[dict]) -> np.ndarray:
    """COCO RLEs (compressed, ``counts`` str or bytes) back to bool masks (N, H, W)."""
    from pycocotools import mask as mask_utils

    if not rles:
        return np.zeros((0, 0, 0), bool)
    prepared = [_bytes_counts(r) for r in rles]
    return mask_utils.decode(prepared).transpose(2, 0, 1).astype(bool)


def rle_area(rle: dict) -> int:
    """Pixels of one RLE (``pycocotools.mask.area``)."""
    from pycocotools import mask as mask_utils

    return int(mask_utils.area(_bytes_counts(rle)))


def _bytes_counts(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE: let pycocotools compress it
        from pycocotools import mask as mask_utils

        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def coco_segm_results(image_id: int, masks, labels: Sequence[int], scores: Sequence[float], *,
                      category_ids: Sequence[int] | None = None) -> list[dict]:
    """Instance masks of one image in COCO *results* format (``loadRes`` input for ``segm``).

    Parameters
    ----------
    image_id : int
    masks : array-like of bool, (N, H, W)
    labels : sequence of int
        Model class indices.
    scores : sequence of float
    category_ids : sequence of int, optional
        COCO category id of each model class index (``category_ids[label]``); by default the
        label itself.

    Returns
    -------
    list of dict
        ``image_id``, ``category_id``, ``segmentation`` (RLE), ``score``, ``bbox`` (x, y, w, h)
        and ``area``, one per mask.

    Examples
    --------
    >>> masks = np.zeros((1, 6, 6), bool); masks[0, 2:5, 1:3] = True
    >>> result = coco_segm_results(7, masks, [1], [0.9], category_ids=[0, 18])[0]
    >>> result["category_id"], result["bbox"], result["area"], result["score"]
    (18, [1.0, 2.0, 2.0, 3.0], 6, 0.9)
    """
    from pycocotools import mask as mask_utils

    rles = masks_to_rle(masks)
    if not (len(rles) == len(labels) == len(scores)):
        raise ValueError(f"{len(rles)} masks, {len(labels)} labels and {len(scores)} scores")
    results = []
    for rle, label, score in zip(rles, labels, scores):
        encoded = _bytes_counts(rle)
        category = int(category_ids[int(label)]) if category_ids is not None else int(label)
        results.append({"image_id": int(image_id), "category_id": category, "segmentation": rle,
                        "score": float(score),
                        "bbox": [float(v) for v in mask_utils.toBbox(encoded)],
                        "area": int(mask_utils.area(encoded))})
    return results


__all__ = [
    "IGNORE_INDEX", "SegmentationMetrics", "all_reduce_confusion", "class_accuracy", "coco_segm_results",
    "confusion_matrix", "dice_per_class", "iou_per_class", "masks_from_labels", "masks_to_rle", "mean_dice", "mean_iou",
    "pixel_accuracy", "present_classes", "rle_area", "rle_to_masks", "segmentation_report", "sum_confusion",
]
