"""Detection metrics: COCO mAP (boxes and masks) by pycocotools, per-class AP and recall,
precision-recall curves and a detection confusion matrix with a background row and column.

:func:`coco_results` turns detections into COCO's results format (``--save-coco``, and what
pycocotools' ``loadRes`` reads). The numbers are pycocotools' own: ground truth and detections
are handed to ``COCOeval``
(``iouType`` ``bbox`` or ``segm``), exactly as a COCO annotations file and a results file
loaded with ``COCO.loadRes`` would be. The tests check equality with ``COCOeval`` run on files
written by :mod:`cnntool.data.boxes`, and with torchmetrics' ``MeanAveragePrecision``.

Inputs, per image (NumPy arrays or tensors):

- prediction: ``boxes`` (N, 4) x1, y1, x2, y2 pixels, ``scores`` (N,), ``labels`` (N,);
  for ``segm`` also ``masks`` (N, H, W) or (N, 1, H, W) bool or probabilities (thresholded at
  0.5, as Mask R-CNN's output is), or ``segmentation`` (N RLE dicts);
- target: ``boxes``, ``labels``, optional ``iscrowd`` (N,); for ``segm`` also ``masks`` or
  ``segmentation`` (COCO polygons or RLE) with ``size`` (height, width) for polygons.

Labels are 0-based class indices, or torchvision model labels (class + 1) with
``model_labels=True`` (see :data:`cnntool.data.boxes.BACKGROUND_OFFSET`).

Examples
--------
>>> ev = DetectionEvaluator(["cat", "dog"])
>>> ev.update([{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}],
...           [{"boxes": [[0, 0, 10, 10]], "labels": [1]}])
>>> report = ev.compute()
>>> round(report.map50, 6), round(report.per_class[1]["ap"], 6), report.per_class[0]["ap"]
(1.0, 1.0, None)
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cnntool.data.boxes import BACKGROUND_OFFSET, to_rle

IOU_TYPES = ("bbox", "segm")
#: Defaults of the confusion matrix (Ultralytics uses a 0.25 confidence too).
CONFUSION_IOU = 0.5
CONFUSION_SCORE = 0.25


def _array(value, dtype, shape=None) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    out = np.asarray(value if value is not None else [], dtype)
    return out.reshape(shape) if shape is not None else out


@dataclass
class DetectionReport:
    """COCO metrics of a set of detections.

    Attributes
    ----------
    classes : list of str
    iou_type : str
    map, map50, map75 : float
        AP averaged over IoU 0.50:0.05:0.95, at 0.5 and at 0.75 (all areas, at most
        ``max_detections`` per image); NaN when no image has ground truth.
    map_small, map_medium, map_large : float
        mAP over COCO's area ranges (NaN when a range has no object).
    mar1, mar10, mar100 : float
        Recall averaged over IoU 0.50:0.95 with at most 1, 10, ``max_detections`` detections
        per image (COCO's AR; ``mar100`` is with ``max_detections``).
    mar_small, mar_medium, mar_large : float
        ``mar100`` over COCO's area ranges.
    per_class : list of dict
        ``class``, ``ap``, ``ap50``, ``ap75``, ``recall`` (max recall at ``max_detections``,
        averaged over IoU 0.50:0.95), ``recall50`` (the same at IoU 0.5), ``objects`` (non-crowd
        ground truth), ``detections``. Values are None for a class without ground truth.
    precision : numpy.ndarray
        (T, R, K) interpolated precision at IoU threshold t and recall ``recall_thresholds[r]``
        for class k (all areas, ``max_detections``), -1 where a class has no ground truth.
    iou_thresholds, recall_thresholds : numpy.ndarray
    images : int
    max_detections : int
    """

    classes: list[str]
    iou_type: str
    map: float
    map50: float
    map75: float
    map_small: float
    map_medium: float
    map_large: float
    mar1: float
    mar10: float
    mar100: float
    mar_small: float
    mar_medium: float
    mar_large: float
    per_class: list[dict]
    precision: np.ndarray = field(repr=False)
    iou_thresholds: np.ndarray = field(repr=False)
    recall_thresholds: np.ndarray = field(repr=False)
    images: int = 0
    max_detections: int = 100

    def to_dict(self) -> dict:
        """The summary as JSON-ready values (NaN becomes None), without the precision array."""
        keys = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar1", "mar10", "mar100",
                "mar_small", "mar_medium", "mar_large")
        out = {"iou_type": self.iou_type, "images": self.images, "max_detections": self.max_detections}
        out.update({k: _none_if_nan(getattr(self, k)) for k in keys})
        out["per_class"] = [dict(row) for row in self.per_class]
        return out


def _none_if_nan(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class DetectionEvaluator:
    """Accumulates detections and ground truth image by image; :meth:`compute` runs COCOeval.

    Parameters
    ----------
    classes : sequence of str
    iou_type : {"bbox", "segm"}
    model_labels : bool
        Labels given to :meth:`update` are torchvision model labels (class index + 1), as a
        detector and :class:`~cnntool.data.detection.DetectionDataset` give them; a detection
        labelled 0 (the background, which sigmoid heads could emit) is dropped.
    max_detections : int
        Detections per image that count (the highest scoring), COCO's 100 by default.

    Notes
    -----
    Images are keyed by the target's ``image_id`` when it has one, else by arrival order. For
    distributed validation, every process updates with its shard and :meth:`gather` collects
    all images on every process (``torch.distributed.all_gather_object``); :meth:`merge` does
    the same with another evaluator.
    """

    def __init__(self, classes: Sequence[str], *, iou_type: str = "bbox", model_labels: bool = False,
                 max_detections: int = 100):
        if iou_type not in IOU_TYPES:
            from cnntool.errors import unknown_choice

            raise unknown_choice("iou type", iou_type, IOU_TYPES)
        self.classes = list(classes)
        self.iou_type = iou_type
        self.offset = BACKGROUND_OFFSET if model_labels else 0
        self.max_detections = int(max_detections)
        self.records: list[dict] = []

    def reset(self) -> None:
        self.records = []

    def __len__(self) -> int:
        return len(self.records)

    def update(self, predictions: Sequence[dict], targets: Sequence[dict]) -> None:
        """Add a batch: one prediction dict and one target dict per image (see module docstring)."""
        if len(predictions) != len(targets):
            raise ValueError("predictions and targets differ in length")
        for pred, target in zip(predictions, targets):
            gt_labels = _array(target["labels"], np.int64, (-1,)) - self.offset
            dt_labels = _array(pred["labels"], np.int64, (-1,)) - self.offset
            keep = dt_labels >= 0 if self.offset else np.ones(len(dt_labels), bool)  # no background boxes
            for name, labels in (("target", gt_labels), ("prediction", dt_labels[keep])):
                if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                    bad = int(labels.min() if labels.min() < 0 else labels.max()) + self.offset
                    raise ValueError(f"{name} label {bad} is outside the {len(self.classes)} classes "
                                     f"(model_labels={bool(self.offset)})")
            key = target.get("image_id")
            record = {
                "key": int(key) if key is not None else None,
                "gt_boxes": _array(target["boxes"], np.float64, (-1, 4)), "gt_labels": gt_labels,
                "gt_crowd": (_array(target["iscrowd"], np.uint8, (-1,)) if target.get("iscrowd") is not None
                             else np.zeros(len(gt_labels), np.uint8)),
                "dt_boxes": _array(pred["boxes"], np.float64, (-1, 4))[keep], "dt_labels": dt_labels[keep],
                "dt_scores": _array(pred["scores"], np.float64, (-1,))[keep],
            }
            if self.iou_type == "segm":
                record["gt_rles"] = _rles(target, len(gt_labels))
                record["dt_rles"] = [r for r, k in zip(_rles(pred, len(dt_labels)), keep) if k]
                record["size"] = _size(record["gt_rles"] + record["dt_rles"], target)
            self.records.append(record)

    def merge(self, other: "DetectionEvaluator") -> None:
        """Add the images ``other`` has accumulated."""
        self.records.extend(other.records)

    def gather(self) -> None:
        """Collect every process's images on every process (no-op without distributed training)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self.records)
        self.records = [r for part in parts for r in part]

    def _ordered(self) -> list[dict]:
        keys = [r["key"] for r in self.records]
        if None not in keys and len(set(keys)) == len(keys):
            return sorted(self.records, key=lambda r: r["key"])
        return list(self.records)

    def compute(self) -> DetectionReport:
        """COCO metrics over every image added so far."""
        return _coco_report(self._ordered(), self.classes, self.iou_type, self.max_detections)

    def confusion_matrix(self, *, iou_threshold: float = CONFUSION_IOU,
                         score_threshold: float = CONFUSION_SCORE) -> np.ndarray:
        """:func:`detection_confusion_matrix` over every image added so far."""
        return detection_confusion_matrix(self._ordered(), num_classes=len(self.classes),
                                          iou_threshold=iou_threshold, score_threshold=score_threshold)


def _rles(entry: dict, count: int) -> list[dict]:
    if entry.get("segmentation") is not None:
        segm = list(entry["segmentation"])
        if segm and not isinstance(segm[0], dict) and entry.get("size") is None:
            raise ValueError("polygon segmentations need the image 'size' (height, width)")
        height, width = (int(v) for v in entry["size"]) if entry.get("size") is not None else (0, 0)
        rles = [to_rle(s, height, width) for s in segm]
    elif entry.get("masks") is not None:
        masks = _array(entry["masks"], np.float32)
        masks = masks.reshape(-1, *masks.shape[-2:]) > 0.5 if masks.size else np.zeros((0, 1, 1), bool)
        rles = [to_rle(m, *m.shape) for m in masks]
    else:
        raise ValueError("iou_type 'segm' needs 'masks' or 'segmentation' in every prediction and target")
    if len(rles) != count:
        raise ValueError(f"{len(rles)} masks for {count} objects")
    return rles


def _size(rles: list[dict], target: dict) -> tuple[int, int]:
    if rles:
        return tuple(int(v) for v in rles[0]["size"])
    size = target.get("size")
    return tuple(int(v) for v in size) if size is not None else (0, 0)


def coco_inputs(records: Sequence[dict], classes: Sequence[str], iou_type: str = "bbox") -> tuple[dict, list[dict]]:
    """The ground truth as a COCO dataset dict and the detections as COCO results, from
    :class:`DetectionEvaluator` records (image ids 1, 2, ... in record order; category id =
    class index + 1)."""
    images, annotations, results = [], [], []
    for image_id, r in enumerate(records, start=1):
        height, width = r.get("size", (0, 0))
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        for j, (box, label, crowd) in enumerate(zip(r["gt_boxes"], r["gt_labels"], r["gt_crowd"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)}
            if iou_type == "segm":
                from pycocotools import mask as mask_utils

                ann["segmentation"] = r["gt_rles"][j]
                ann["area"] = float(mask_utils.area(r["gt_rles"][j]))
            annotations.append(ann)
        for j, (box, label, score) in enumerate(zip(r["dt_boxes"], r["dt_labels"], r["dt_scores"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            res = {"image_id": image_id, "category_id": int(label) + 1, "score": float(score)}
            if iou_type == "segm":
                res["segmentation"] = r["dt_rles"][j]
            else:
                res["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            results.append(res)
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": k + 1, "name": name} for k, name in enumerate(classes)]}
    return gt, results


def _coco_report(records: Sequence[dict], classes: Sequence[str], iou_type: str,
                 max_detections: int) -> DetectionReport:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = coco_inputs(records, classes, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else _empty_results(coco_gt)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.maxDets = [1, 10, max_detections]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float("nan") if s < 0 else float(s) for s in ev.stats]
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K): all areas, max detections
    recall = ev.eval["recall"][:, :, 0, -1]  # (T, K)
    thresholds = np.asarray(ev.params.iouThrs)
    t50, t75 = int(np.argmin(abs(thresholds - 0.5))), int(np.argmin(abs(thresholds - 0.75)))
    objects = np.zeros(len(classes), np.int64)
    detections = np.zeros(len(classes), np.int64)
    for r in records:
        np.add.at(objects, r["gt_labels"][r["gt_crowd"] == 0], 1)
        top = np.argsort(-r["dt_scores"], kind="stable")[:max_detections]
        np.add.at(detections, r["dt_labels"][top], 1)
    per_class = []
    for k, name in enumerate(classes):
        p, rec = precision[:, :, k], recall[:, k]
        valid = p[p > -1]
        per_class.append({
            "class": name,
            "ap": float(valid.mean()) if valid.size else None,
            "ap50": _mean_or_none(p[t50]), "ap75": _mean_or_none(p[t75]),
            "recall": _mean_or_none(rec), "recall50": _mean_or_none(rec[t50:t50 + 1]),
            "objects": int(objects[k]), "detections": int(detections[k]),
        })
    return DetectionReport(list(classes), iou_type, *stats[:12], per_class,
                           precision.copy(), thresholds, np.asarray(ev.params.recThrs), len(records), max_detections)


def _mean_or_none(values: np.ndarray):
    values = values[values > -1]
    return float(values.mean()) if values.size else None


def _empty_results(coco_gt):
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                     "categories": list(coco_gt.dataset["categories"])}
    empty.createIndex()
    return empty


def evaluate_detections(predictions: Sequence[dict], targets: Sequence[dict], *, classes: Sequence[str],
                        iou_type: str = "bbox", model_labels: bool = False,
                        max_detections: int = 100) -> DetectionReport:
    """COCO metrics of ``predictions`` against ``targets`` (one dict each per image).

    Examples
    --------
    >>> report = evaluate_detections(
    ...     [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "scores": [0.9, 0.8], "labels": [0, 0]}],
    ...     [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "labels": [0, 0]}], classes=["cat"])
    >>> round(report.map50, 3), report.per_class[0]["recall50"]
    (0.505, 0.5)
    """
    ev = DetectionEvaluator(classes, iou_type=iou_type, model_labels=model_labels, max_detections=max_detections)
    ev.update(predictions, targets)
    return ev.compute()


def ground_truth(image) -> dict:
    """A target dict (0-based labels) from a :class:`~cnntool.data.boxes.ImageLabels`, with its
    segmentations when it has them for every object."""
    target = {"boxes": image.boxes, "labels": image.labels, "iscrowd": image.iscrowd,
              "image_id": image.image_id, "size": (image.height, image.width)}
    if image.segmentation is not None and all(s is not None for s in image.segmentation):
        target["segmentation"] = image.segmentation
    return target


# --- COCO results files ----------------------------------------------------------------------

def coco_results(predictions: Sequence[dict], image_ids: Sequence[int], category_ids: Sequence[int]) -> list[dict]:
    """Detections in COCO's results format, which pycocotools' ``COCO.loadRes`` reads.

    Parameters
    ----------
    predictions : sequence of dict
        Per image: ``boxes`` (N, 4) x1, y1, x2, y2 pixels, ``scores`` (N,), ``labels`` (N,) 0-based
        class indices; optional ``masks`` (N, H, W) or (N, 1, H, W), bool or probabilities
        (thresholded at 0.5), or ``segmentation`` (N RLE dicts).
    image_ids : sequence of int
        The COCO image id of each prediction.
    category_ids : sequence of int
        COCO category id of each class index (:attr:`~cnntool.data.boxes.BoxDataset.category_ids`).

    Returns
    -------
    list of dict
        ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (+ ``segmentation`` as
        compressed RLE with ``counts`` a str, when masks are given). For mask AP, drop ``bbox``
        before ``loadRes``: with it, pycocotools takes the box area as the object's area (the
        small/medium/large split), as detectron2 notes and does.

    Examples
    --------
    >>> coco_results([{"boxes": [[1, 2, 11, 22]], "scores": [0.9], "labels": [0]}], [5], [3])
    [{'image_id': 5, 'category_id': 3, 'bbox': [1.0, 2.0, 10.0, 20.0], 'score': 0.9}]
    """
    results = []
    for pred, image_id in zip(predictions, image_ids):
        boxes = _array(pred["boxes"], np.float64, (-1, 4))
        scores = _array(pred["scores"], np.float64, (-1,))
        labels = _array(pred["labels"], np.int64, (-1,))
        rles = pred.get("segmentation")
        if rles is None and pred.get("masks") is not None:
            masks = _array(pred["masks"], None)
            masks = masks if masks.dtype == bool else masks > 0.5  # Mask R-CNN gives probabilities
            rles = [to_rle(m.reshape(m.shape[-2:]), *m.shape[-2:]) for m in masks]
        for j, (box, score, label) in enumerate(zip(boxes, scores, labels)):
            x1, y1, x2, y2 = (float(v) for v in box)
            res = {"image_id": int(image_id), "category_id": int(category_ids[int(label)]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            if rles is not None:
                rle = dict(rles[j])
                if isinstance(rle["counts"], bytes):
                    rle["counts"] = rle["counts"].decode("ascii")
                res["segmentation"] = rle
            results.append(res)
    return results


def write_coco_results(path: str | os.PathLike, results: list[dict]) -> None:
    """Write :func:`coco_results` output as JSON (atomically)."""
    from cnntool.data.writers import atomic_write_json

    atomic_write_json(path, results)



# --- confusion matrix ------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1, y1, x2, y2 boxes: (N, M).

    Examples
    --------
    >>> box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def detection_confusion_matrix(records: Sequence[dict], *, num_classes: int, iou_threshold: float = CONFUSION_IOU,
                               score_threshold: float = CONFUSION_SCORE) -> np.ndarray:
    """Counts of (true class, predicted class) over matched boxes (box IoU, for masks too), with a
    background row and column.

    Per image, detections scoring at least ``score_threshold`` are matched one-to-one to
    non-crowd ground truth of any class, greedily by decreasing IoU (at least
    ``iou_threshold``). A match counts at ``[true, predicted]`` (off the diagonal: a class
    confusion); an unmatched object at ``[true, K]`` (missed: the background column); an
    unmatched detection at ``[K, predicted]`` (a false box: the background row).

    Parameters
    ----------
    records : sequence of dict
        :class:`DetectionEvaluator` records (``gt_boxes``, ``gt_labels``, ``gt_crowd``,
        ``dt_boxes``, ``dt_labels``, ``dt_scores``; 0-based labels).
    num_classes : int
        K, without the background.

    Returns
    -------
    numpy.ndarray
        int64 (K + 1, K + 1): rows true, columns predicted, index K the background.

    Examples
    --------
    >>> r = {"gt_boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "gt_labels": np.array([0, 1]),
    ...      "gt_crowd": np.zeros(2), "dt_boxes": np.array([[0, 0, 10, 9], [50, 50, 60, 60]]),
    ...      "dt_labels": np.array([1, 0]), "dt_scores": np.array([0.9, 0.8])}
    >>> detection_confusion_matrix([r], num_classes=2).tolist()
    [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    """
    k = num_classes
    matrix = np.zeros((k + 1, k + 1), np.int64)
    for r in records:
        keep_gt = np.asarray(r["gt_crowd"]) == 0
        gt_boxes, gt_labels = r["gt_boxes"][keep_gt], r["gt_labels"][keep_gt]
        keep_dt = r["dt_scores"] >= score_threshold
        dt_boxes, dt_labels = r["dt_boxes"][keep_dt], r["dt_labels"][keep_dt]
        iou = box_iou(gt_boxes, dt_boxes)
        gi, di = np.nonzero(iou >= iou_threshold)
        order = np.argsort(-iou[gi, di], kind="stable")
        used_g, used_d = set(), set()
        for g, d in zip(gi[order], di[order]):
            if g in used_g or d in used_d:
                continue
            used_g.add(g)
            used_d.add(d)
            matrix[gt_labels[g], dt_labels[d]] += 1
        for g in set(range(len(gt_labels))) - used_g:
            matrix[gt_labels[g], k] += 1
        for d in set(range(len(dt_labels))) - used_d:
            matrix[k, dt_labels[d]] += 1
    return matrix


# --- plots -----------------------------------------------------------------------------------

def plot_detection_confusion(matrix: np.ndarray, classes: Sequence[str], path: str | os.PathLike, *,
                             iou_threshold: float = CONFUSION_IOU, score_threshold: float = CONFUSION_SCORE) -> None:
    """The detection confusion matrix as a PNG (rows true, columns predicted, ``background``
    last: missed objects in its column, false boxes in its row)."""
    from cnntool.metrics.plots import plot_confusion

    labels = [*classes, "background"]
    plot_confusion(np.asarray(matrix), labels, path, predicted_classes=labels,
                   title=f"detection confusion (IoU >= {iou_threshold:g}, score >= {score_threshold:g})")


def plot_pr_curves(report: DetectionReport, path: str | os.PathLike, *, iou: float = 0.5,
                   classes: Sequence[int] | None = None) -> None:
    """Precision-recall curves at IoU ``iou`` (one of COCO's thresholds) as a PNG: one curve per
    class (``classes``: which indices; default all with ground truth), its AP in the legend, and
    the mean of those curves when there are several.

    Examples
    --------
    >>> import os, tempfile
    >>> report = evaluate_detections([{"boxes": [[0, 0, 9, 9]], "scores": [0.7], "labels": [0]}],
    ...                              [{"boxes": [[0, 0, 10, 10]], "labels": [0]}], classes=["cat"])
    >>> path = os.path.join(tempfile.mkdtemp(), "pr.png")
    >>> plot_pr_curves(report, path); os.path.getsize(path) > 0
    True
    """
    from cnntool.metrics.plots import _pyplot, _save

    t = int(np.argmin(abs(report.iou_thresholds - iou)))
    if abs(report.iou_thresholds[t] - iou) > 1e-6:
        raise ValueError(f"iou must be one of {', '.join(f'{v:.2f}' for v in report.iou_thresholds)}")
    recall = report.recall_thresholds
    chosen = [k for k in (classes if classes is not None else range(len(report.classes)))
              if (report.precision[t, :, k] > -1).any()]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    curves = []
    for k in chosen:
        p = np.clip(report.precision[t, :, k], 0, None)
        curves.append(p)
        ax.plot(recall, p, linewidth=1.2 if len(chosen) < 10 else 0.6,
                label=f"{report.classes[k]} {p.mean():.3f}" if len(chosen) <= 20 else None)
    if len(curves) > 1:
        mean = np.mean(curves, axis=0)
        ax.plot(recall, mean, color="black", linewidth=2.5, label=f"all classes {mean.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"precision-recall at IoU {report.iou_thresholds[t]:.2f} ({report.iou_type})")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def write_pr_curves(report: DetectionReport, out_dir: str | os.PathLike, *, iou: float = 0.5) -> list[str]:
    """One precision-recall PNG per class with ground truth, ``out_dir/pr_<class>.png`` (the
    name made file-safe), plus ``pr_all.png`` with every class; returns the paths written."""
    import re

    paths = [os.path.join(out_dir, "pr_all.png")]
    plot_pr_curves(report, paths[0], iou=iou)
    t = int(np.argmin(abs(report.iou_thresholds - iou)))
    for k, name in enumerate(report.classes):
        if (report.precision[t, :, k] > -1).any():
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or f"class_{k}"
            paths.append(os.path.join(out_dir, f"pr_{k:03d}_{safe}.png"))
            plot_pr_curves(report, paths[-1], iou=iou, classes=[k])
    return paths
